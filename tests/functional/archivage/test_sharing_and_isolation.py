"""Sharing (read-only, end date, revocable, audited) and strict organisation isolation on
every endpoint of the archive API."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from plateforme.audit import AuditQuery


def _future(days: int = 30) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def _deposit(client, **metadata) -> tuple[str, str]:
    response = client.deposit([("note.txt", b"note de service " + secrets.token_bytes(8))],
                              **metadata)
    assert response.status_code == 201, response.text
    ack = response.json()
    return ack["units"][0]["id"], ack["files"][0]["object_id"]


def test_share_gives_read_only_access_until_revoked(as_org, platform) -> None:
    owner, other = as_org("lamentin"), as_org("schoelcher")
    unit_id, object_id = _deposit(owner, title="Plan local d'urbanisme " + secrets.token_hex(3))
    assert other.get(f"/units/{unit_id}").status_code == 404

    created = owner.post(f"/units/{unit_id}/shares",
                         json={"organisation": "schoelcher", "until": _future(),
                               "reason": "instruction commune"})
    assert created.status_code == 201, created.text
    share = created.json()
    assert share["active"] and share["organisation"] == "schoelcher"

    seen = other.get(f"/units/{unit_id}")
    assert seen.status_code == 200 and seen.json()["access"] == "shared"
    content = other.get(f"/units/{unit_id}/objects/{object_id}/content")
    assert content.status_code == 200 and content.content.startswith(b"note de service")
    listed = other.get("/units", params={"q": "urbanisme"}).json()["items"]
    assert unit_id in [u["id"] for u in listed]
    # read-only: the grantee can neither re-share, nor change rules, nor read the logbook
    assert other.post(f"/units/{unit_id}/shares", json={
        "organisation": "robert", "until": _future()}).status_code == 404
    assert other.get(f"/units/{unit_id}/logbook").status_code == 404
    assert other.get(f"/units/{unit_id}/shares").status_code == 404
    assert other.delete(f"/shares/{share['id']}").status_code == 404

    events = platform.provider.journal.search(AuditQuery(action="archives.share"))
    assert any(e.details and share["id"] in e.details for e in events)
    revoked = owner.delete(f"/shares/{share['id']}", params={"reason": "fin d'instruction"})
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert other.get(f"/units/{unit_id}").status_code == 404
    assert other.get(f"/units/{unit_id}/objects/{object_id}/content").status_code == 404
    types = [e["event_type"] for e in owner.get(f"/units/{unit_id}/logbook").json()["items"]]
    assert "share" in types and "share revocation" in types
    # the grantee's download is logged in the owner's logbook
    access = [e for e in owner.get(f"/units/{unit_id}/logbook").json()["items"]
              if e["event_type"] == "access"]
    assert access and access[0]["detail"]["by_organisation"] == "schoelcher"


def test_share_ends_at_its_end_date(as_org, platform) -> None:
    owner, other = as_org("lamentin"), as_org("schoelcher")
    unit_id, _ = _deposit(owner)
    share = owner.post(f"/units/{unit_id}/shares",
                       json={"organisation": "schoelcher", "until": _future(1)}).json()
    assert other.get(f"/units/{unit_id}").status_code == 200
    with platform.live.app.state.engine.begin() as conn:  # time passes
        conn.execute(text("UPDATE arch_share SET until = :t WHERE id = :i"),
                     {"t": datetime.now(UTC) - timedelta(seconds=1), "i": share["id"]})
    assert other.get(f"/units/{unit_id}").status_code == 404


def test_a_share_covers_what_lies_below(as_org) -> None:
    owner, other = as_org("lamentin"), as_org("schoelcher")
    files = [("a.txt", b"premier"), ("b.txt", b"second")]
    ack = owner.deposit(files, title="Dossier partagé", level="file").json()
    top, item = ack["units"][0]["id"], ack["units"][1]["id"]
    assert owner.post(f"/units/{top}/shares", json={
        "organisation": "schoelcher", "until": _future()}).status_code == 201
    assert other.get(f"/units/{item}").json()["access"] == "shared"
    assert len(other.get(f"/units/{top}/children").json()["items"]) == 2


def test_bad_shares_are_refused(as_org) -> None:
    owner = as_org("lamentin")
    unit_id, _ = _deposit(owner)
    past = owner.post(f"/units/{unit_id}/shares", json={
        "organisation": "schoelcher", "until": _future(-1)})
    assert past.status_code == 422
    self_share = owner.post(f"/units/{unit_id}/shares", json={
        "organisation": "lamentin", "until": _future()})
    assert self_share.status_code == 422
    unknown = owner.post(f"/units/{unit_id}/shares", json={
        "organisation": "atlantide", "until": _future()})
    assert unknown.status_code == 422 and "inconnue" in unknown.json()["detail"]


def test_no_endpoint_reveals_another_organisations_units(as_org) -> None:
    """Every endpoint, called by another organisation about Le Lamentin's unit, answers as
    if the unit did not exist — with every scope, including archives:admin."""
    owner, intruder = as_org("lamentin"), as_org("schoelcher")
    word = "confidentiel" + secrets.token_hex(3)
    unit_id, object_id = _deposit(owner, title=f"Dossier {word}")
    series = owner.post("/units", json={"title": "Série " + word, "level": "series"}).json()
    share = owner.post(f"/units/{unit_id}/shares", json={
        "organisation": "robert", "until": _future()}).json()

    attempts = {
        "get": intruder.get(f"/units/{unit_id}"),
        "children": intruder.get(f"/units/{series['id']}/children"),
        "logbook": intruder.get(f"/units/{unit_id}/logbook"),
        "content": intruder.get(f"/units/{unit_id}/objects/{object_id}/content"),
        "shares": intruder.get(f"/units/{unit_id}/shares"),
        "share": intruder.post(f"/units/{unit_id}/shares", json={
            "organisation": "schoelcher", "until": _future()}),
        "revoke": intruder.delete(f"/shares/{share['id']}"),
        "rules": intruder.put(f"/units/{unit_id}/rules", json={
            "rules": [], "reason": "tentative"}),
        "deposit under": intruder.deposit([("x.txt", b"x")], parent=series["id"]),
        "create under": intruder.post("/units", json={"title": "x", "parent": series["id"]}),
    }
    assert {name: r.status_code for name, r in attempts.items()} == dict.fromkeys(attempts, 404)
    assert intruder.get("/units", params={"q": word}).json()["items"] == []
    listed = {u["id"] for u in intruder.get("/units", params={"limit": 500}).json()["items"]}
    assert unit_id not in listed and series["id"] not in listed
    for other_unit in intruder.get("/units", params={"limit": 500}).json()["items"]:
        if other_unit["organisation"] != "schoelcher":  # only what was shared with it
            assert intruder.get(f"/units/{other_unit['id']}").json()["access"] == "shared"
    # the owner still sees everything, and the share is intact
    assert owner.get(f"/units/{unit_id}").status_code == 200
    assert owner.get(f"/units/{unit_id}/shares").json()["items"][0]["active"]
