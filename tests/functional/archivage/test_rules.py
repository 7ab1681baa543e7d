"""Management rules: the référentiel (Vitam CSV), application at deposit, inheritance down
the tree with override and block, computed end dates, change with a reason."""

from __future__ import annotations

import secrets

REFERENTIEL = """RuleId,RuleType,RuleValue,RuleDescription,RuleDuration,RuleMeasurement
APP-5D,AppraisalRule,Cinq ans,Pièces comptables,5,year
APP-10,AppraisalRule,Dix ans,Marchés publics,10,year
APP-6M,AppraisalRule,Six mois,Brouillons,6,month
ACC-25,AccessRule,Vingt-cinq ans,Secret des délibérations (L213-2),25,year
ACC-0,AccessRule,Immédiat,Communicable,0,year
HOLD-1,HoldRule,Gel contentieux,Contentieux en cours,unlimited,
"""


def test_referentiel_import_and_errors(as_org, as_staff) -> None:
    archivist = as_staff(("lamentin", "archivist"))
    imported = archivist.post("/rules/import", content=REFERENTIEL.encode())
    assert imported.status_code == 200, imported.text
    assert imported.json() == {"imported": 6}
    rules = {r["rule_id"]: r for r in archivist.get("/rules").json()["items"]}
    assert rules["APP-10"]["duration"] == 10 and rules["APP-10"]["measurement"] == "Year"
    assert rules["HOLD-1"]["duration"] is None
    assert archivist.get("/rules", params={"format": "csv"}).text.startswith(
        "RuleId,RuleType,RuleValue,RuleDescription,RuleDuration,RuleMeasurement")
    bad = archivist.post("/rules/import", content=(
        b"RuleId,RuleType,RuleValue,RuleDescription,RuleDuration,RuleMeasurement\n"
        b"X-1,NoSuchRule,x,,3,year\nX-2,AppraisalRule,x,,trois,year\n"))
    assert bad.status_code == 422
    assert "ligne 2" in bad.json()["detail"] and "ligne 3" in bad.json()["detail"]
    viewer = as_staff(("lamentin", "viewer"))
    assert viewer.post("/rules/import", content=REFERENTIEL.encode()).status_code == 403
    machine = as_org("lamentin")  # a client holds no role: the référentiel is for people
    assert machine.post("/rules/import", content=REFERENTIEL.encode()).status_code == 403


def test_rules_at_deposit_inheritance_block_and_change(as_org, as_staff) -> None:
    as_staff(("lamentin", "archivist")).post("/rules/import", content=REFERENTIEL.encode())
    lamentin = as_org("lamentin")
    series = lamentin.post("/units", json={
        "title": "Marchés " + secrets.token_hex(3), "level": "series",
        "rules": [{"rule_id": "APP-10", "start_date": "2015-06-30",
                   "final_action": "détruire"},
                  {"rule_id": "ACC-25", "start_date": "2015-06-30"}]})
    assert series.status_code == 201, series.text
    assert series.json()["rules"]["appraisal_end"] == "2025-06-30"
    assert series.json()["rules"]["access_end"] == "2040-06-30"
    series_id = series.json()["id"]

    ack = lamentin.deposit([("a.txt", b"offre A"), ("b.txt", b"offre B")], level="file",
                           parent=series_id, title="Marché de voirie")
    assert ack.status_code == 201, ack.text
    top, item, _ = (u["id"] for u in ack.json()["units"])
    assert ack.json()["effective_rules"]["final_action"] == "détruire"
    inherited = lamentin.get(f"/units/{item}").json()["rules"]
    assert inherited["appraisal_rule"] == "APP-10" and inherited["appraisal_end"] == "2025-06-30"

    # override on the file: its items follow it, the series keeps its rule
    changed = lamentin.put(f"/units/{top}/rules", json={
        "rules": [{"rule_id": "APP-5D", "start_date": "2024-01-31", "final_action": "conserver"}],
        "reason": "Marché reconduit : pièces à conserver"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["rules"]["appraisal_end"] == "2029-01-31"
    assert lamentin.get(f"/units/{item}").json()["rules"]["final_action"] == "conserver"
    assert lamentin.get(f"/units/{series_id}").json()["rules"]["appraisal_rule"] == "APP-10"
    log = lamentin.get(f"/units/{top}/logbook").json()["items"]
    modification = [e for e in log if e["event_type"] == "modification"][-1]
    assert modification["detail"]["reason"] == "Marché reconduit : pièces à conserver"
    assert modification["detail"]["before"]["appraisal_rule"] == "APP-10"

    # block access inheritance on the file; a hold on the series reaches every item
    lamentin.put(f"/units/{top}/rules", json={"rules": [], "block": ["AccessRule"],
                                              "reason": "communicable immédiatement"})
    assert lamentin.get(f"/units/{item}").json()["rules"]["access_rule"] is None
    assert lamentin.get(f"/units/{item}").json()["rules"]["appraisal_rule"] == "APP-10"
    lamentin.put(f"/units/{series_id}/rules", json={
        "rules": [{"rule_id": "APP-10", "start_date": "2015-06-30", "final_action": "détruire"},
                  {"rule_id": "HOLD-1"}], "reason": "contentieux"})
    assert lamentin.get(f"/units/{item}").json()["rules"]["on_hold"] is True

    no_reason = lamentin.put(f"/units/{top}/rules", json={"rules": []})
    assert no_reason.status_code == 422
    missing_action = lamentin.put(f"/units/{top}/rules", json={
        "rules": [{"rule_id": "APP-5D"}], "reason": "sans sort final"})
    assert missing_action.status_code == 422 and "sort final" in missing_action.json()["detail"]
    unknown = lamentin.deposit([("c.txt", b"c")], rules=[{"rule_id": "NOPE",
                                                        "final_action": "conserver"}])
    assert unknown.status_code == 422


def test_items_of_a_deposit_inherit_the_deposit_s_rules_and_description(as_org, as_staff
                                                                       ) -> None:
    """The items of a deposit of several files (inserted as rows, not computed one by one)
    carry the top unit's description and its effective rules, own (access) or inherited from
    the series (appraisal, hold); their files, texts and logbook are those of each file."""
    as_staff(("lamentin", "archivist")).post("/rules/import", content=REFERENTIEL.encode())
    lamentin = as_org("lamentin")
    series = lamentin.post("/units", json={
        "title": "Contentieux " + secrets.token_hex(3), "level": "series",
        "rules": [{"rule_id": "APP-10", "start_date": "2015-06-30", "final_action": "trier"},
                  {"rule_id": "HOLD-1", "start_date": "2024-01-01"}]})
    assert series.status_code == 201, series.text
    word = "zqx" + secrets.token_hex(4)
    files = [("memoire.txt", f"mémoire en défense {word}".encode()),
             ("piece.bin", b"\x00\x01binaire"), ("note.txt", b"note interne")]
    ack = lamentin.deposit(files, level="file", parent=series.json()["id"],
                           title="Recours " + secrets.token_hex(3), producer="Service juridique",
                           classification="4.1", document_type="recours", language="fr",
                           start_date="2023-02-01", end_date="2024-05-31",
                           rules=[{"rule_id": "ACC-25", "start_date": "2024-05-31"}],
                           files=[{"title": "Mémoire en défense"}])
    assert ack.status_code == 201, ack.text
    body = ack.json()
    top, *items = body["units"]
    assert [i["title"] for i in items] == ["Mémoire en défense", "piece.bin", "note.txt"]
    expected_rules = lamentin.get(f"/units/{top['id']}").json()["rules"]
    assert expected_rules["appraisal_rule"] == "APP-10" and expected_rules["on_hold"] is True
    assert expected_rules["access_rule"] == "ACC-25"
    assert expected_rules["access_end"] == "2049-05-31"
    for item, (name, data), stored in zip(items, files, body["files"], strict=True):
        detail = lamentin.get(f"/units/{item['id']}").json()
        assert detail["rules"] == expected_rules
        assert detail["level"] == "item" and detail["status"] == "active"
        assert detail["parent"] == top["id"] and detail["keywords"] == []
        assert (detail["producer"], detail["classification"], detail["document_type"],
                detail["language"], detail["start_date"], detail["end_date"]) == (
            "Service juridique", "4.1", "recours", "fr", "2023-02-01", "2024-05-31")
        [obj] = detail["objects"]
        assert (obj["id"], obj["filename"], obj["size"]) == (stored["object_id"], name,
                                                             len(data))
        assert stored["unit_id"] == item["id"]
        content = lamentin.get(f"/units/{item['id']}/objects/{obj['id']}/content")
        assert content.content == data
        events = [e["event_type"] for e in lamentin.get(f"/units/{item['id']}/logbook")
                  .json()["items"]]
        assert events[:2] == ["accession", "message digest calculation"]
    found = lamentin.get("/units", params={"q": word}).json()["items"]
    assert [u["id"] for u in found] == [items[0]["id"]]
