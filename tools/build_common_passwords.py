"""Build ``idp/data/common-passwords.txt``, the list of common and breached passwords shipped
with the project (nothing is downloaded when the server runs).

Run once, when the list should change: ``.venv/bin/python tools/build_common_passwords.py``.

Sources:
* the 10,000 most frequent passwords of the leaked-password corpus shipped by the ``zxcvbn``
  package (MIT; its ``frequency_lists.passwords``, drawn from public breach compilations);
* French and Martinican words and phrases people commonly use as passwords (public knowledge
  of French password studies: ``azerty``, ``motdepasse``, ``soleil``, ``doudou`` …, and the
  island's names and places), each with its obvious variants: suffixes (digits, years, 972,
  punctuation), prefixes and doubling.

At run time (``idp.services.password_policy``) the check lowercases the password, undoes
common character substitutions (``@``→``a``, ``0``→``o`` …) and strips leading and trailing
digits and punctuation, so ``P@ssw0rd-2026!`` is refused as ``password``.
"""

from __future__ import annotations

from pathlib import Path

from zxcvbn.frequency_lists import FREQUENCY_LISTS

OUTPUT = Path(__file__).resolve().parents[1] / "idp" / "data" / "common-passwords.txt"
TOP_BREACHED = 10_000


def words(text: str) -> list[str]:
    return text.split()


FRENCH = words("""
azerty azertyuiop azertyui azertyu qwertz qsdfghjklm wxcvbn azerty123 azertyuiop123
motdepasse motdepass mot2passe mdp monmotdepasse motdepasse123 passe password123 mdp123
soleil bonjour bonsoir salut coucou doudou chouchou loulou nounours nounou bisous bisou
jetaime jetaimetoujours tequiero amour monamour moncoeur mamour toujours amitie famille
bebe bebes cheri cherie chérie mamie papy papa maman mapuce mapuce ptitcoeur
marseille paris lyon toulouse bordeaux nantes nice lille france vivelafrance allezlesbleus
olympique psg om olympiquedemarseille football foot rugby basket
nicolas julien camille thomas alexandre maxime antoine quentin kevin jeremy florian
romain guillaume pierre sebastien mathieu laurent olivier christophe stephane frederic
marie sophie julie aurelie emilie celine nathalie isabelle sandrine stephanie laetitia
manon lea chloe emma ines sarah lucas hugo louis jules enzo nathan mathis
jesus dieu jesuschrist seigneur alleluia
chocolat fraise pomme banane vanille caramel coca fromage
chien chat cheval lapin tigre lion dauphin papillon
liberte egalite fraternite
bienvenue welcome accueil admin administrateur utilisateur connexion
secret confidentiel privé prive
printemps ete automne hiver janvier fevrier mars avril mai juin juillet aout septembre
octobre novembre decembre lundi mardi mercredi jeudi vendredi samedi dimanche
un deux trois quatre cinq six sept huit neuf dix
""")

MARTINIQUE = words("""
martinique madinina matinik matinique martiniquais martiniquaise mada madiana
gwada guadeloupe guyane antilles antillais antillaise caraibes caraibe caribbean
fortdefrance fort-de-france foyal lamentin lelamentin schoelcher schoelcher ducos
rivierepilote riviere-pilote sainteluce sainte-luce saintpierre saint-pierre trinite
letrinite robert lerobert francois lefrancois vauclin levauclin marin lemarin diamant
lediamant troisilets trois-ilets anses-darlet ansesdarlet case-pilote casepilote
carbet lecarbet bellefontaine precheur leprecheur morne-rouge mornerouge lorrain
lelorrain marigot basse-pointe bassepointe grandriviere gros-morne grosmorne
sainte-marie saintemarie sainte-anne sainteanne saint-esprit saintesprit riviere-salee
rivieresalee ajoupa-bouillon macouba fonds-saint-denis
montpelee pelee lapelee savane lasavane rocherdudiamant
ctm collectivite collectivitemartinique
zouk kompa bele biguine madras creole kreyol kreol tibo doudou doudoune chabine chabin
zanmi zanmis sakafet sakapase mwen mwenka lanmou doudoumwen
bokit accras colombo boudin rhum rhumagricole ti-punch tipunch planteur ananas coco
mangue goyave banane bananier canne cannesucre flamboyant colibri manicou mangouste
""")

SUFFIXES = [
    "", "1", "12", "123", "1234", "12345", "123456", "1234567", "12345678", "!", "!!", "?",
    ".", "*", "01", "69", "972", "971", "973", "@972", "-972", "_972", "972!", "2020",
    "2021", "2022", "2023", "2024", "2025", "2026", "2027", "1972", "123!", "1234!",
]
PREFIXES = ["mon", "ma", "jaime", "ilove", "i love "]


def variants(word: str) -> set[str]:
    out = {word + suffix for suffix in SUFFIXES} | {prefix + word for prefix in PREFIXES}
    out.add(word + word)
    out.add(word.replace("-", ""))
    return {v.lower() for v in out}


def build() -> list[str]:
    entries: dict[str, None] = {}
    for word in FREQUENCY_LISTS["passwords"][:TOP_BREACHED]:
        entries[word.lower()] = None
    for word in FRENCH + MARTINIQUE:
        for value in sorted(variants(word)):
            entries[value] = None
    return [e for e in entries if e and "\n" not in e]


def main() -> None:
    entries = build()
    header = [
        "# Common and breached passwords (one per line, lowercase), refused at registration,",
        "# reset and change. Generated by tools/build_common_passwords.py from the zxcvbn",
        "# package's leaked-password frequency list (top 10,000, MIT) and French and",
        "# Martinican words with their obvious variants. Do not edit by hand.",
    ]
    OUTPUT.write_text("\n".join(header + entries) + "\n", encoding="utf-8")
    print(f"{len(entries)} entries written to {OUTPUT}")


if __name__ == "__main__":
    main()
