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
