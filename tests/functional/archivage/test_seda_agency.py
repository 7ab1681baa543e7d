"""A SEDA transfer's TransferringAgency must be the organisation sending it: a commune can't
deposit a transfer in another's name (refused with the reason, among every other one)."""

from __future__ import annotations

import secrets
from datetime import date

from archivage.packages import PackageRule, PackageUnit, build_seda_zip
from tests.functional.archivage.test_packages_ingest import _poll, _submit
from tests.functional.archivage.test_rules import REFERENTIEL


def _transfer(tmp_path, agency: str, rule: str = "APP-10"):  # type: ignore[no-untyped-def]
    units = [PackageUnit(identifier="AU1", title="Arrêtés " + secrets.token_hex(3),
                         level="Item", file_refs=["content/arrete.txt"],
                         rules=[PackageRule("appraisal", rule, date(2025, 1, 1), "Keep")])]
    return build_seda_zip(tmp_path / f"{agency}.zip", {"content/arrete.txt": b"arrete"}, units,
                          message_identifier="MSG-" + secrets.token_hex(4),
                          transferring_agency=agency)


def test_a_transfer_in_another_organisation_s_name_is_refused(as_org, as_staff,
                                                               tmp_path) -> None:
    as_staff(("lamentin", "archivist")).post("/rules/import", content=REFERENTIEL.encode())
    lamentin = as_org("lamentin")
    forged = _poll(lamentin, _submit(lamentin, "seda", _transfer(tmp_path, "schoelcher")
                                     ).headers["location"])
    assert forged["status"] == "refused", forged
    [reason] = forged["result"]["reasons"]
    assert reason["code"] == "transferring_agency.mismatch"
    assert "« schoelcher »" in reason["message"] and "« lamentin »" in reason["message"]
    reply = lamentin.get(f"/operations/{forged['id']}/reply").content
    assert b"<ReplyCode>KO</ReplyCode>" in reply

    both = _poll(lamentin, _submit(lamentin, "seda", _transfer(
        tmp_path, "robert", rule="APP-INCONNUE")).headers["location"])
    assert {r["code"] for r in both["result"]["reasons"]} == {
        "transferring_agency.mismatch", "rules.unknown"}  # every reason at once

    own = _poll(lamentin, _submit(lamentin, "seda", _transfer(tmp_path, "lamentin")
                                  ).headers["location"])
    assert own["status"] == "accepted", own
