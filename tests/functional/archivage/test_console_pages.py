"""The archive pages of the console: search, unit detail with its logbook, elimination
proposal by the archivist and visa by the archival authority, audit reports."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator

import pytest

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


def test_search_unit_and_elimination_through_the_pages(platform, as_org, as_staff,
                                                        console) -> None:
    as_staff(("lamentin", "archivist")).post("/rules/import", content=REFERENTIEL.encode())
    tag = secrets.token_hex(3)
    ack = as_org("lamentin").deposit(
        [("mandat.txt", b"mandat de paiement")], title=f"Mandats console {tag}",
        rules=[{"rule_id": "APP-6M", "start_date": "2020-01-01", "final_action": "détruire"}]
    ).json()
    unit_id = ack["units"][0]["id"]
    archivist = console(("lamentin", "archivist"))

    found = archivist.get(f"/admin/archives?q={tag}")
    assert found.status_code == 200
    assert f"Mandats console {tag}" in found.text and 'aria-current="page"' in found.text
    page = archivist.get(f"/admin/archives/unites/{unit_id}")
    assert page.status_code == 200
    assert f"ark:/99999/{unit_id}" in page.text and "prise en charge" in page.text
    download = archivist.get(f"/admin/archives/unites/{unit_id}/fichiers/"
                             f"{ack['files'][0]['object_id']}")
    assert download.content == b"mandat de paiement"

    listing = archivist.get("/admin/archives/eliminations")
    assert f'value="{unit_id}"' in listing.text
    proposed = archivist.post("/admin/archives/eliminations", {
        "organisation": "lamentin", "unites": unit_id, "motif": "DUA échue"})
    assert proposed.status_code == 303, proposed.text
    location = proposed.headers["location"]
    elimination_id = location.rsplit("/", 1)[1]
    assert archivist.post(f"{location}/visa", {f"decision-{unit_id}": "approved"}
                          ).status_code == 403
    assert console(("ctm", "ctm_admin")).post(
        f"{location}/visa", {f"decision-{unit_id}": "approved"}).status_code == 403

    authority = console(("ctm", "archival_authority"))
    bordereau = authority.get(location)
    assert bordereau.status_code == 200 and f'name="decision-{unit_id}"' in bordereau.text
    visa = authority.post(f"{location}/visa", {f"decision-{unit_id}": "approved"})
    assert visa.status_code == 303, visa.text
    done = authority.get(location)
    assert "certificat de destruction" in done.text and "visa accordé" in done.text
    certificate = authority.get(f"{location}/certificat")
    assert certificate.json()["certificate"]["elimination"] == elimination_id
    assert "détruit le" in archivist.get(f"/admin/archives/unites/{unit_id}").text

    audits = authority.get("/admin/archives/audits")
    assert audits.status_code == 200 and "Journal des archives intègre" in audits.text
    ran = authority.post("/admin/archives/audits", {})
    assert ran.status_code == 303
    assert re.search(r"à la demande", authority.get("/admin/archives/audits").text)


def test_pages_respect_organisations_and_roles(platform, as_org, console) -> None:
    unit_id = as_org("lamentin").deposit([("a.txt", b"a")]).json()["units"][0]["id"]
    other = console(("schoelcher", "viewer"))
    assert other.get(f"/admin/archives/unites/{unit_id}").status_code == 404
    assert other.get(f"/admin/archives/unites/{unit_id}?organisation=lamentin"
                     ).status_code == 403
    assert other.get("/admin/archives/eliminations").status_code == 403
    assert other.get("/admin/archives/audits").status_code == 403
    assert other.post("/admin/archives/eliminations", {
        "organisation": "lamentin", "unites": unit_id}).status_code == 403
    nav = other.get("/admin/").text
    assert 'href="/admin/archives"' in nav and "/admin/archives/eliminations" not in nav


def test_deposit_through_the_form(platform, console) -> None:
    archivist = console(("lamentin", "archivist"))
    form = archivist.get("/admin/archives/versement")
    assert form.status_code == 200 and 'enctype="multipart/form-data"' in form.text
    tag = secrets.token_hex(3)
    fields = {"csrf_token": archivist.csrf, "organisation": "lamentin",
              "titre": f"Arrêtés du maire {tag}", "producteur": "Cabinet du maire",
              "date_debut": "2026-01-01", "date_fin": "2026-02-01", "mots_cles": "arrêté, voirie"}
    url = platform.url + "/admin/archives/versement"
    done = archivist.browser.request("POST", url, data=fields, files=[
        ("fichiers", ("arrete-1.txt", b"arrete numero 1", "text/plain")),
        ("fichiers", ("../arrete-2.txt", b"arrete numero 2", "text/plain"))])
    assert done.status_code == 303, done.text[:500]
    unit = archivist.get(done.headers["location"])
    assert f"Arrêtés du maire {tag}" in unit.text and "Versement accepté" in unit.text
    assert "arrete-1.txt" in unit.text and "arrete-2.txt" in unit.text  # its items
    assert f"Arrêtés du maire {tag}" in archivist.get(f"/admin/archives?q={tag}").text
    bad = archivist.browser.request("POST", url, data={**fields, "date_fin": "2025-01-01"},
                                    files=[("fichiers", ("a.txt", b"a", "text/plain"))])
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text
    forged = archivist.browser.request("POST", url, data={**fields, "csrf_token": "x"},
                                       files=[("fichiers", ("a.txt", b"a", "text/plain"))])
    assert forged.status_code == 403
    viewer = console(("lamentin", "viewer"))
    assert viewer.get("/admin/archives/versement").status_code == 403
