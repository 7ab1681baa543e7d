"""The translation catalogues are complete where they must be: every string of the citizen
pages (templates and code) has its English translation; the kréyòl draft covers the sign-in
and registration pages; translations keep their placeholders; the template is up to date."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir, extract_from_file
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from idp import i18n
from idp.api.register import CHECK_MAIL, INVALID_LINK, SENT_SPAM
from idp.services.accounts import Profile, check_email
from idp.services.factors.service import THROTTLED
from idp.services.password_policy import LABELS as STRENGTH_LABELS
from idp.services.password_policy import assess
from idp.services.users import GENERIC_FAILURE

ROOT = Path(__file__).resolve().parents[3]
TEMPLATES = ROOT / "idp" / "templates"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "Msg": None}
# The kréyòl first step: these pages, and the messages they show.
KREYOL_TEMPLATES = [ROOT / "plateforme" / "templates" / "base.html", TEMPLATES / "login.html",
                    TEMPLATES / "register_form.html", TEMPLATES / "account_macros.html"]


def catalogue(lang: str):  # type: ignore[no-untyped-def]
    with open(i18n.LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po", "rb") as fh:
        return read_po(fh)


def translated(lang: str) -> set[str]:
    """The msgids (singular) with a reviewed, non-empty translation."""
    done = set()
    for message in catalogue(lang):
        if not message.id or message.fuzzy:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if all(strings):
            done.add(message.id[0] if isinstance(message.id, tuple) else message.id)
    return done


def extracted() -> set[str]:
    """Every marked string, extracted as ``make messages`` does (babel.cfg)."""
    with open(ROOT / "babel.cfg") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=KEYWORDS):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def template_strings(path: Path) -> set[str]:
    return {m[1][0] if isinstance(m[1], tuple) else m[1] for m in extract_from_file(
        "jinja2", str(path), keywords=KEYWORDS)}


def test_every_string_of_the_citizen_pages_has_its_english_translation() -> None:
    strings = extracted()
    assert len(strings) > 300
    assert "Se connecter" in strings and "Adresse électronique ou mot de passe incorrect." \
        in strings
    missing = sorted(strings - translated("en"))
    assert not missing, missing


def test_the_template_catalogue_is_up_to_date() -> None:
    with open(i18n.LOCALE_DIR / "messages.pot", "rb") as fh:
        pot = {m.id[0] if isinstance(m.id, tuple) else m.id for m in read_po(fh) if m.id}
    assert extracted() == pot, "run make messages"


def test_kreyol_covers_the_sign_in_and_registration_pages() -> None:
    strings: set[str] = set()
    for path in KREYOL_TEMPLATES:
        strings |= template_strings(path)
    # What these pages show from the code: titles, field labels, the sign-in failure and the
    # registration form's errors, the password rules and the strength meter.
    strings |= {"Se connecter", "Créer votre compte", GENERIC_FAILURE, THROTTLED,
                *STRENGTH_LABELS}
    # The pages that follow the form: check your mailbox, confirm the address, invalid link.
    strings |= {CHECK_MAIL, SENT_SPAM, INVALID_LINK, "Confirmer votre adresse électronique",
                "Confirmer mon adresse", "Adresse confirmée", "Lien non valable",
                "Recevoir un nouveau lien de confirmation"}
    strings |= template_strings(TEMPLATES / "register_email_request.html")
    strings |= {check_email(""), check_email("x" * 400), check_email("pas-une-adresse")} - {None}
    errors = Profile(given_name="", family_name="", birthdate="31/02/2000", phone_number="?",
                     postal_code="?", locality="x" * 300, locale="de").check()
    strings |= {getattr(e, "msgid", e) for e in errors.values()}
    errors = Profile(given_name="x" * 101, family_name="Dupont").check()
    strings |= {getattr(e, "msgid", e) for e in errors.values()}
    for verdict in (assess(""), assess("court"), assess("x" * 300), assess("motdepasse123"),
                    assess("Marie-Dupont-1990", user_inputs=["marie.dupont@example.mq"]),
                    assess("aaaaaaaaaaaaaaaaaa")):
        strings |= {getattr(p, "msgid", p) for p in verdict.problems + verdict.advice}
    missing = sorted(strings - translated("gcf"))
    assert not missing, missing


def test_kreyol_catalogue_is_marked_for_review_by_native_speakers() -> None:
    header = (i18n.LOCALE_DIR / "gcf" / "LC_MESSAGES" / "messages.po").read_text()[:800]
    assert "LOCUTEURS NATIFS" in header and "REVIEWED BY NATIVE SPEAKERS" in header


def test_translations_keep_their_placeholders() -> None:
    for lang in ("en", "gcf"):
        problems = [(m.id, errors) for m, errors in catalogue(lang).check()]
        assert not problems, (lang, problems)


def test_translate_formats_after_translating() -> None:
    message = i18n.Msg("Le mot de passe doit contenir au moins %(minimum)d caractères "
                       "(%(length)d actuellement).", minimum=12, length=5)
    assert str(message).startswith("Le mot de passe doit contenir au moins 12 caractères")
    assert i18n.translate("en", message) == \
        "The password must have at least 12 characters (5 now)."
    joined = i18n.Msg.join([message, "Ce mot de passe est trop facile à deviner."])
    assert i18n.translate("en", joined).endswith("(5 now). This password is too easy to guess.")
    assert i18n.translate("de", "Se connecter") == "Se connecter"


def test_language_negotiation() -> None:
    assert i18n.accept_language("de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7") == "en"
    assert i18n.accept_language("en;q=0, fr") == "fr"
    assert i18n.accept_language("*, de") is None
    assert i18n.accept_language("") is None
    assert i18n.ui_locales("es gcf-MQ en") == "gcf"
    assert i18n.ui_locales("<script>") is None
    assert i18n.supported("EN-gb") == "en"
