"""Elimination with the archival authority's visa, line by line; the certificate; no other
destruction path."""

from __future__ import annotations

import json
import secrets

import httpx
from jose import jws as jose_jws

from tests.functional.archivage.conftest import blob_paths
from tests.functional.archivage.test_rules import REFERENTIEL

EXPIRED = [{"rule_id": "APP-6M", "start_date": "2020-01-01", "final_action": "détruire"}]


def _deposit(client, title: str, rules: list[dict]) -> dict:
    response = client.deposit([("piece.txt", secrets.token_bytes(64))], title=title,
                              rules=rules, producer="Service des finances",
                              document_type="pièce comptable", start_date="2019-03-01",
                              end_date="2019-12-31")
    assert response.status_code == 201, response.text
    ack = response.json()
    return {"unit": ack["units"][0]["id"], "object": ack["files"][0]["object_id"],
            "sha512": ack["files"][0]["sha512"], "size": ack["files"][0]["size"]}


def test_elimination_with_visa_line_by_line(as_org, as_staff, platform) -> None:
    archivist = as_staff(("lamentin", "archivist"))
    authority = as_staff(("ctm", "archival_authority"))
    machine = as_org("lamentin")
    assert archivist.post("/rules/import", content=REFERENTIEL.encode()).status_code == 200
    tag = secrets.token_hex(3)
    first = _deposit(machine, f"Mandats 2019 A {tag}", EXPIRED)
    second = _deposit(machine, f"Mandats 2019 B {tag}", EXPIRED)
    third = _deposit(machine, f"Mandats 2019 C {tag}", EXPIRED)
    held = _deposit(machine, f"Mandats 2019 gelés {tag}", EXPIRED + [{"rule_id": "HOLD-1"}])
    kept = _deposit(machine, f"Budget 2019 {tag}", [
        {"rule_id": "APP-6M", "start_date": "2020-01-01", "final_action": "conserver"}])

    eligible = {u["id"] for u in archivist.get("/eliminations/eligible").json()["items"]}
    assert {first["unit"], second["unit"], third["unit"]} <= eligible
    assert held["unit"] not in eligible and kept["unit"] not in eligible

    units = [first["unit"], second["unit"], third["unit"]]
    assert machine.post("/eliminations", json={"units": units}).status_code == 403
    other = as_staff(("schoelcher", "archivist"))
    assert other.post("/eliminations", json={"units": units}).status_code == 404
    refused = archivist.post("/eliminations", json={"units": [held["unit"]]})
    assert refused.status_code == 422 and "gel" in refused.json()["detail"]

    proposed = archivist.post("/eliminations", json={"units": units,
                                                     "reason": "DUA échue"})
    assert proposed.status_code == 201, proposed.text
    bordereau = proposed.json()
    assert bordereau["status"] == "proposed"
    assert bordereau["summary"]["producers"] == ["Service des finances"]
    assert bordereau["summary"]["extreme_dates"] == ["2019-03-01", "2019-12-31"]
    assert bordereau["summary"]["units"] == 3 and bordereau["summary"]["bytes"] == 192
    assert bordereau["summary"]["rules"] == ["APP-6M"]
    again = archivist.post("/eliminations", json={"units": [first["unit"]]})
    assert again.status_code == 409  # already on a pending bordereau
    visa_url = f"/eliminations/{bordereau['id']}/visa"

    assert archivist.post(visa_url, json={"lines": [
        {"unit_id": first["unit"], "decision": "approved"}]}).status_code == 403
    assert other.get(f"/eliminations/{bordereau['id']}").status_code == 404
    unmotivated = authority.post(visa_url, json={"lines": [
        {"unit_id": second["unit"], "decision": "refused"}]})
    assert unmotivated.status_code == 422

    step = authority.post(visa_url, json={"lines": [
        {"unit_id": first["unit"], "decision": "approved"},
        {"unit_id": second["unit"], "decision": "refused",
         "comment": "pièces utiles à un contrôle en cours"}]})
    assert step.status_code == 200, step.text
    assert step.json()["status"] == "proposed"  # a line is still pending: nothing destroyed
    assert all(p.exists() for p in blob_paths(platform, first["sha512"]))
    assert archivist.get(f"/eliminations/{bordereau['id']}/certificate").status_code == 404
    used_before = machine.get("/space").json()["used_bytes"]

    done = authority.post(visa_url, json={"lines": [
        {"unit_id": third["unit"], "decision": "approved"}]})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "executed"
    decisions = {line["unit_id"]: line["decision"] for line in done.json()["lines"]}
    assert decisions == {first["unit"]: "approved", second["unit"]: "refused",
                         third["unit"]: "approved"}

    for gone in (first, third):
        assert not any(p.exists() for p in blob_paths(platform, gone["sha512"]))
        unit = archivist.get(f"/units/{gone['unit']}").json()  # metadata kept
        assert unit["status"] == "eliminated" and unit["objects"][0]["destroyed_at"]
        assert archivist.get(f"/units/{gone['unit']}/objects/{gone['object']}/content"
                             ).status_code == 404
        events = [e["event_type"] for e in
                  archivist.get(f"/units/{gone['unit']}/logbook").json()["items"]]
        assert "elimination visa" in events and events[-1] == "deletion"
    assert all(p.exists() for p in blob_paths(platform, second["sha512"]))
    assert archivist.get(f"/units/{second['unit']}/objects/{second['object']}/content"
                         ).status_code == 200
    assert machine.get("/space").json()["used_bytes"] == used_before - 128
    assert second["unit"] in {u["id"] for u in
                              archivist.get("/eliminations/eligible").json()["items"]}

    certificate = archivist.get(f"/eliminations/{bordereau['id']}/certificate")
    assert certificate.status_code == 200
    assert "attachment" in certificate.headers["content-disposition"]
    body = certificate.json()
    assert {d["sha512"] for d in body["certificate"]["destroyed"]} == {
        first["sha512"], third["sha512"]}
    assert body["certificate"]["legal_basis"].endswith("L212-2")
    # signed with the platform's published key; checked by an independent implementation
    jwks = httpx.get(f"{platform.url}/jwks.json").json()
    payload = jose_jws.verify(body["jws"], jwks, algorithms=["ES256", "RS256"])
    assert json.loads(payload) == body["certificate"]
    # the visaed bordereau is kept, visible to its organisation and to the authority
    assert bordereau["id"] in {e["id"] for e in authority.get("/eliminations").json()["items"]}
    assert bordereau["id"] in {e["id"] for e in archivist.get("/eliminations").json()["items"]}
    assert bordereau["id"] not in {e["id"] for e in other.get("/eliminations").json()["items"]}
    assert authority.post(visa_url, json={"lines": [
        {"unit_id": second["unit"], "decision": "approved"}]}).status_code == 409


def test_no_other_destruction_path(platform, as_org) -> None:
    """No route of the archive API deletes a unit or a file, whatever the scope; the only
    DELETE revokes a share."""
    admin = as_org("lamentin")
    unit = admin.deposit([("a.txt", b"a")]).json()
    unit_id, object_id = unit["units"][0]["id"], unit["files"][0]["object_id"]
    for path in (f"/units/{unit_id}", f"/units/{unit_id}/objects/{object_id}",
                 f"/units/{unit_id}/objects/{object_id}/content"):
        assert admin.delete(path).status_code in (404, 405)  # no such route
    paths = httpx.get(f"{platform.url}/openapi.json").json()["paths"]
    deletes = sorted(path for path, operations in paths.items()
                     if path.startswith("/api/archives") and "delete" in operations)
    assert deletes == ["/api/archives/shares/{share_id}"]
    assert admin.get(f"/units/{unit_id}").json()["status"] == "active"
    assert admin.get(f"/units/{unit_id}/objects/{object_id}/content").content == b"a"


def test_an_eliminated_unit_is_no_longer_found_by_its_destroyed_text(as_org, as_staff) -> None:
    """Its metadata stay searchable (its title), the text of its destroyed documents not; the
    units eliminated with it and those kept are found as before."""
    archivist = as_staff(("lamentin", "archivist"))
    authority = as_staff(("ctm", "archival_authority"))
    machine = as_org("lamentin")
    assert archivist.post("/rules/import", content=REFERENTIEL.encode()).status_code == 200
    tag = secrets.token_hex(3)
    word = "mandatement" + tag
    units = {}
    for name in ("détruit", "aussi", "gardé"):
        response = machine.deposit(
            [("piece.txt", f"Pièce {name} : {word} du budget annexe.".encode())],
            title=f"Mandats {name} {tag}", rules=EXPIRED)
        assert response.status_code == 201, response.text
        units[name] = response.json()["units"][0]["id"]

    def found(query: str) -> set[str]:
        return {u["id"] for u in archivist.get("/units", params={"q": query}).json()["items"]}

    assert found(word) == set(units.values())
    proposed = archivist.post("/eliminations", json={
        "units": [units["détruit"], units["aussi"]], "reason": "DUA échue"})
    assert proposed.status_code == 201, proposed.text
    done = authority.post(f"/eliminations/{proposed.json()['id']}/visa", json={"lines": [
        {"unit_id": units["détruit"], "decision": "approved"},
        {"unit_id": units["aussi"], "decision": "approved"}]})
    assert done.status_code == 200 and done.json()["status"] == "executed", done.text

    assert found(word) == {units["gardé"]}
    assert found("budget annexe") == {units["gardé"]}
    assert found(f"mandats détruit {tag}") == {units["détruit"]}  # its title, still indexed
    assert found(tag) == set(units.values())
