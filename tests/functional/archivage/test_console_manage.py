"""The management pages of the archives console: sharing a unit with another organisation
(create with an end date, list, revoke), the rules référentiel (list, CSV import with every
error, a unit's rules changed with a reason), the ingest contract, and the deposit form's
progress path (the script posts with ``X-Progression`` and is told where to go)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import date, timedelta

import pytest

from plateforme.audit import AuditQuery
from tests.functional.admin_ui.conftest import Console, open_console
from tests.functional.archivage.test_rules import REFERENTIEL


@pytest.fixture
def console(platform) -> Iterator[Callable[..., Console]]:
    opened: list[Console] = []

    def make(*roles: tuple[str, str]) -> Console:
        opened.append(open_console(platform, *roles))
        return opened[-1]

    yield make
    for c in opened:
        c.close()


def _import(console: Console, csv: str):  # type: ignore[no-untyped-def]
    return console.browser.request(
        "POST", console.platform.url + "/admin/archives/regles",
        data={"csrf_token": console.csrf},
        files=[("fichier", ("referentiel.csv", csv.encode(), "text/csv"))])


def test_share_a_unit_then_revoke_it(platform, as_org, console) -> None:
    tag = secrets.token_hex(3)
    unit_id = as_org("lamentin").deposit([("plan.txt", b"plan")], title=f"Plan {tag}"
                                         ).json()["units"][0]["id"]
    archivist = console(("lamentin", "archivist"))
    page = archivist.get(f"/admin/archives/unites/{unit_id}")
    assert "Partager cette unité" in page.text and "Aucun partage." in page.text
    reader = console(("schoelcher", "viewer"))
    assert reader.get(f"/admin/archives/unites/{unit_id}").status_code == 404

    missing = archivist.post(f"/admin/archives/unites/{unit_id}/partages",
                             {"organisation": "lamentin", "partenaire": "schoelcher"})
    assert missing.status_code == 422
    assert 'id="partage-fin-erreur"' in missing.text and 'aria-invalid="true"' in missing.text
    past = archivist.post(f"/admin/archives/unites/{unit_id}/partages", {
        "organisation": "lamentin", "partenaire": "schoelcher", "fin": "2020-01-01"})
    assert past.status_code == 422 and "dans le futur" in past.text
    unknown = archivist.post(f"/admin/archives/unites/{unit_id}/partages", {
        "organisation": "lamentin", "partenaire": "atlantide", "fin": "2030-01-01"})
    assert unknown.status_code == 422 and "inconnue" in unknown.text

    until = (date.today() + timedelta(days=30)).isoformat()
    shared = archivist.post(f"/admin/archives/unites/{unit_id}/partages", {
        "organisation": "lamentin", "partenaire": "schoelcher", "fin": until,
        "motif": "instruction commune"})
    assert shared.status_code == 303, shared.text[:500]
    page = archivist.get(shared.headers["location"])
    assert "Unité partagée avec « schoelcher »" in page.text
    assert until in page.text and "actif" in page.text
    share_id = platform.live.app.state.archives.units.shares(
        _owner(), unit_id)[0].id
    seen = reader.get(f"/admin/archives/unites/{unit_id}")
    assert seen.status_code == 200 and "lecture seule" in seen.text
    assert "Partager cette unité" not in seen.text  # no management for the grantee
    assert reader.post(f"/admin/archives/partages/{share_id}/revoquer",
                       {"organisation": "schoelcher"}).status_code == 403
    other = console(("schoelcher", "archivist"))  # may manage, but not this share
    assert other.post(f"/admin/archives/partages/{share_id}/revoquer",
                      {"organisation": "schoelcher"}).status_code == 404

    revoked = archivist.post(f"/admin/archives/partages/{share_id}/revoquer",
                             {"organisation": "lamentin"})
    assert revoked.status_code == 303
    assert "révoqué" in archivist.get(revoked.headers["location"]).text
    assert reader.get(f"/admin/archives/unites/{unit_id}").status_code == 404
    for action in ("archives.share", "archives.share.revoke"):
        events = platform.provider.journal.search(AuditQuery(action=action), limit=500)
        assert any(e.target == f"ark:/99999/{unit_id}" for e in events), action


def _owner():  # type: ignore[no-untyped-def]
    from archivage import Actor

    return Actor("test", "lamentin", frozenset({"archivist"}))


def test_referentiel_page_reports_every_error(platform, console) -> None:
    archivist = console(("lamentin", "archivist"))
    bad = _import(archivist, "RuleId,RuleType,RuleValue,RuleDescription,RuleDuration,"
                             "RuleMeasurement\n"
                             "X-1,AppraisalRule,Un,,5,decade\n"
                             "X-2,Inconnue,Deux,,5,year\n"
                             "X-3,AccessRule,Trois,,cinq,year\n"
                             "X-1,AppraisalRule,Encore,,1,year\n")
    assert bad.status_code == 422
    for expected in ("ligne 2 : RuleMeasurement « decade »", "ligne 3 : RuleType « Inconnue »",
                     "ligne 4 : RuleDuration « cinq »", "ligne 5 : RuleId « X-1 » en double"):
        assert expected in bad.text.replace("&#34;", '"'), expected
    assert "X-2" not in archivist.get("/admin/archives/regles").text  # nothing imported
    header = _import(archivist, "Id,Type\nA,B\n")
    assert header.status_code == 422 and "en-tête attendu" in header.text
    empty = archivist.post("/admin/archives/regles", {})
    assert empty.status_code == 422 and "choisissez un fichier CSV" in empty.text

    done = _import(archivist, REFERENTIEL)
    assert done.status_code == 303, done.text[:500]
    listing = archivist.get("/admin/archives/regles")
    assert "6 règle(s)" in listing.text and "ACC-25" in listing.text
    assert "Vingt-cinq ans" in listing.text and "illimitée" in listing.text
    viewer = console(("lamentin", "viewer"))
    seen = viewer.get("/admin/archives/regles")
    assert seen.status_code == 200 and "ACC-25" in seen.text
    assert "Importer un référentiel" not in seen.text
    assert _import(viewer, REFERENTIEL).status_code == 403
    authority = console(("ctm", "archival_authority"))
    assert _import(authority, REFERENTIEL).status_code == 303


def test_change_a_unit_s_rules_with_a_reason(platform, as_org, console) -> None:
    archivist = console(("lamentin", "archivist"))
    assert _import(archivist, REFERENTIEL).status_code == 303
    unit_id = as_org("lamentin").deposit([("m.txt", b"m")]).json()["units"][0]["id"]
    url = f"/admin/archives/unites/{unit_id}/regles"
    form = {"organisation": "lamentin", "dua": "APP-10", "dua_debut": "2020-01-01",
            "sort_final": "détruire", "communicabilite": "ACC-25",
            "communicabilite_debut": "2020-01-01"}
    no_reason = archivist.post(url, form)
    assert no_reason.status_code == 422 and 'id="regles-motif-erreur"' in no_reason.text
    bad_date = archivist.post(url, {**form, "dua_debut": "hier", "motif": "révision"})
    assert bad_date.status_code == 422 and 'id="regles-dua_debut-erreur"' in bad_date.text
    unknown = archivist.post(url, {**form, "dua": "APP-999", "motif": "révision"})
    assert unknown.status_code == 422 and "APP-999" in unknown.text
    changed = archivist.post(url, {**form, "motif": "révision du tableau de gestion"})
    assert changed.status_code == 303, changed.text[:500]
    page = archivist.get(changed.headers["location"])
    assert "Règles de l&#39;unité modifiées" in page.text
    assert "APP-10, échéance 2030-01-01" in page.text and "communicable le 2045-01-01" in page.text
    assert '<option value="APP-10" selected>' in page.text  # the form shows its own rules
    view = platform.live.app.state.archives.units.get(_owner(), unit_id).as_dict()
    assert view["rules"]["final_action"] == "détruire"
    assert console(("lamentin", "viewer")).post(
        url, {**form, "motif": "révision"}).status_code == 403


def test_ingest_contract_page(platform, as_org, console) -> None:
    series = as_org("lamentin").post("/units", json={"title": "Série contrat", "level": "series"})
    assert series.status_code == 201, series.text
    series_id = series.json()["id"]
    viewer = console(("lamentin", "viewer"))
    seen = viewer.get("/admin/archives/contrat")
    assert seen.status_code == 200 and "Contrat d'entrée" in seen.text
    assert "Modifier le contrat" not in seen.text
    assert viewer.post("/admin/archives/contrat", {"motif": "essai"}).status_code == 403

    admin = console(("lamentin", "org_admin"))
    bad = admin.post("/admin/archives/contrat", {"organisation": "lamentin",
                                                "taille_max": "-3", "fichiers_max": "beaucoup"})
    assert bad.status_code == 422
    for field in ("contrat-taille_max", "contrat-fichiers_max", "contrat-motif"):
        assert f'id="{field}-erreur"' in bad.text
    elsewhere = admin.post("/admin/archives/contrat", {
        "organisation": "lamentin", "rattachement": "inconnue", "motif": "essai"})
    assert elsewhere.status_code == 422 and 'id="contrat-rattachement-erreur"' in elsewhere.text
    saved = admin.post("/admin/archives/contrat", {
        "organisation": "lamentin", "formats": "text/plain\nfmt/276", "taille_max": "1000",
        "fichiers_max": "3", "rattachement": f"ark:/99999/{series_id}",
        "motif": "contrat de la GED"})
    assert saved.status_code == 303, saved.text[:500]
    contract = platform.live.app.state.archives.contracts.get("lamentin")
    assert contract["formats"] == ["fmt/276", "text/plain"]
    assert (contract["max_file_bytes"], contract["max_files"]) == (1000, 3)
    assert contract["attachment_unit"] == series_id
    page = admin.get(saved.headers["location"])
    assert "Contrat d&#39;entrée enregistré" in page.text and "fmt/276, text/plain" in page.text
    refused = as_org("lamentin").deposit([("big.txt", b"x" * 2000)])
    assert refused.status_code == 422 and "dépasse 1000 octets" in refused.text
    accepted = as_org("lamentin").deposit([("ok.txt", b"petit texte")])
    assert accepted.status_code == 201, accepted.text
    unit = platform.live.app.state.archives.units.get(
        _owner(), accepted.json()["units"][0]["id"])
    assert unit.unit.parent_id == series_id  # attached where the contract says
    cleared = admin.post("/admin/archives/contrat", {"organisation": "lamentin",
                                                    "motif": "fin du test"})
    assert cleared.status_code == 303  # the other tests deposit without a contract
    assert platform.live.app.state.archives.contracts.get("lamentin")["formats"] == []


def test_deposit_form_progress_path(platform, console) -> None:
    archivist = console(("lamentin", "archivist"))
    form = archivist.get("/admin/archives/versement").text
    assert '<progress id="versement-barre"' in form and "archives-upload.js" in form
    fields = {"csrf_token": archivist.csrf, "organisation": "lamentin", "titre": "Progression"}
    done = archivist.browser.request(
        "POST", platform.url + "/admin/archives/versement", data=fields,
        headers={"X-Progression": "xhr"},
        files=[("fichiers", ("p.txt", b"progression", "text/plain"))])
    assert done.status_code == 200, done.text[:500]
    location = done.json()["location"]
    assert location.startswith("/admin/archives/unites/")
    assert "Versement accepté" in archivist.get(location).text
