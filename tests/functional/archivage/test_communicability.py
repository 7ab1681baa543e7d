"""Communicability (Code du patrimoine L213-2): a unit under an access rule whose delay
has not run out can be found and described by an organisation it is shared with, but its
content can be neither downloaded nor exported by them; the producer keeps access to its
own records, whatever its staff's archive role. Once the delay is over, the content is
communicable to them too."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from plateforme.audit import AuditQuery
from tests.functional.admin_ui.conftest import open_console
from tests.functional.archivage.test_rules import REFERENTIEL


def _until() -> str:
    return (datetime.now(UTC) + timedelta(days=30)).isoformat()


def test_restricted_content_stays_with_the_producer(platform, as_org, as_staff) -> None:
    as_staff(("lamentin", "archivist")).post("/rules/import", content=REFERENTIEL.encode())
    owner, other = as_org("lamentin"), as_org("schoelcher")
    tag = secrets.token_hex(3)
    closed = owner.deposit([("deliberation.txt", b"huis clos")], title=f"Huis clos {tag}",
                           rules=[{"rule_id": "ACC-25", "start_date": "2020-01-01"}]).json()
    opened = owner.deposit([("ancien.txt", b"ancien")], title=f"Ancien {tag}",
                           rules=[{"rule_id": "ACC-25", "start_date": "1990-01-01"}]).json()
    unit_id, object_id = closed["units"][0]["id"], closed["files"][0]["object_id"]
    old_id, old_object = opened["units"][0]["id"], opened["files"][0]["object_id"]
    for shared in (unit_id, old_id):
        assert owner.post(f"/units/{shared}/shares", json={
            "organisation": "schoelcher", "until": _until()}).status_code == 201

    # the grantee finds and reads the description...
    listed = [u["id"] for u in other.get("/units", params={"q": tag}).json()["items"]]
    assert unit_id in listed and old_id in listed
    described = other.get(f"/units/{unit_id}").json()
    assert described["rules"]["access_end"] == "2045-01-01"
    assert described["communicable"] is False
    # ...but not the content before 2045, neither the file nor an export
    refused = other.get(f"/units/{unit_id}/objects/{object_id}/content")
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "01/01/2045" in refused.json()["detail"] and "L213-2" in refused.json()["detail"]
    assert other.get(f"/units/{unit_id}/export").status_code == 403
    events = platform.provider.journal.search(AuditQuery(action="archives.download"), limit=500)
    assert any(e.outcome == "refused" and e.target == f"ark:/99999/{unit_id}"
               and e.organisation == "schoelcher" for e in events)
    # a delay run out (1990 + 25 years): communicable to the grantee
    assert other.get(f"/units/{old_id}").json()["communicable"] is True
    assert other.get(f"/units/{old_id}/objects/{old_object}/content").content == b"ancien"
    assert other.get(f"/units/{old_id}/export").status_code == 200

    # the producer: its client and every archive role of its staff
    assert owner.get(f"/units/{unit_id}/objects/{object_id}/content").content == b"huis clos"
    assert owner.get(f"/units/{unit_id}").json()["communicable"] is True
    viewer = as_staff(("lamentin", "viewer"), scopes=["archives:read"])
    assert viewer.get(f"/units/{unit_id}/objects/{object_id}/content").status_code == 200
    assert owner.get(f"/units/{unit_id}/export").status_code == 200

    # the console: no download link for the grantee, the reason instead
    reader = open_console(platform, ("schoelcher", "viewer"))
    try:
        page = reader.get(f"/admin/archives/unites/{unit_id}")
        assert page.status_code == 200
        assert "non communicable à votre organisation avant le 2045-01-01" in page.text
        assert f"/fichiers/{object_id}" not in page.text
        assert reader.get(f"/admin/archives/unites/{unit_id}/fichiers/{object_id}"
                          ).status_code == 403
    finally:
        reader.close()


def test_a_restriction_on_a_child_closes_the_export_of_its_parent(as_org, as_staff) -> None:
    as_staff(("lamentin", "archivist")).post("/rules/import", content=REFERENTIEL.encode())
    owner, other = as_org("lamentin"), as_org("schoelcher")
    series = owner.post("/units", json={"title": "Série " + secrets.token_hex(3),
                                        "level": "series"}).json()["id"]
    child = owner.deposit([("pv.txt", b"proces-verbal")], parent=series,
                          rules=[{"rule_id": "ACC-25", "start_date": "2020-01-01"}]).json()
    assert child["units"][0]["id"]
    assert owner.post(f"/units/{series}/shares", json={
        "organisation": "schoelcher", "until": _until()}).status_code == 201
    assert other.get(f"/units/{series}").json()["communicable"] is True
    assert other.get(f"/units/{series}/export").status_code == 403
    assert owner.get(f"/units/{series}/export").status_code == 200


def test_full_text_does_not_reveal_what_a_closed_document_says(as_org, as_staff) -> None:
    """A grantee finds a unit still under its delay by its description (which it may read),
    never by a word that only its closed content holds; the producer, and the grantee once
    the delay is over, find units by their content."""
    as_staff(("lamentin", "archivist")).post("/rules/import", content=REFERENTIEL.encode())
    owner, other = as_org("lamentin"), as_org("schoelcher")
    tag, secret_word, old_word = (secrets.token_hex(4) for _ in range(3))
    closed = owner.deposit([("pv.txt", f"le conseil a vote {secret_word}".encode())],
                           title=f"Huis clos {tag}", keywords=["conseil"],
                           rules=[{"rule_id": "ACC-25", "start_date": "2020-01-01"}]).json()
    opened = owner.deposit([("ancien.txt", f"registre {old_word}".encode())],
                           title=f"Ancien {tag}",
                           rules=[{"rule_id": "ACC-25", "start_date": "1990-01-01"}]).json()
    closed_id, opened_id = closed["units"][0]["id"], opened["units"][0]["id"]
    for unit_id in (closed_id, opened_id):
        assert owner.post(f"/units/{unit_id}/shares", json={
            "organisation": "schoelcher", "until": _until()}).status_code == 201

    def found(client: Any, query: str) -> set[str]:
        response = client.get("/units", params={"q": query})
        assert response.status_code == 200, response.text
        return {u["id"] for u in response.json()["items"]}

    assert found(owner, secret_word) == {closed_id}  # the producer searches its own content
    assert found(other, secret_word) == set()  # the grantee learns nothing of it
    assert found(other, f"huis clos {tag}") == {closed_id}  # but finds it by its description
    assert found(other, f"conseil {tag}") == {closed_id}
    assert found(other, f"{tag} {secret_word}") == set()
    assert found(other, old_word) == {opened_id}  # a delay run out: content is searchable
