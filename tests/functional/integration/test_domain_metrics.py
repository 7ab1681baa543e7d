"""The domains count through ``plateforme.metrics``, read back on ``/metrics``: archive
deposits (accepted, rejected) and bytes stored, package ingests, order transitions (only
committed ones), and the integrity checks that found a problem."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx

from archivage.packages import write_bagit, zip_bag
from tests.conftest import Platform
from tests.functional.archivage.conftest import ArchiveClient, blob_paths
from tests.functional.archivage.test_integrity import tampered
from tests.functional.archivage.test_packages_ingest import _poll, _submit
from tests.functional.platform.conftest import metric_value
from tests.functional.services_mutualises.conftest import person_api


def metric(platform: Platform, name: str, **labels: str) -> float:
    """The value of one sample on ``/metrics`` (0 when it was never counted)."""
    response = httpx.get(platform.url + "/metrics", timeout=30)
    assert response.status_code == 200, response.text
    return metric_value(response.text, name, **labels)


def test_deposits_and_bytes_stored_are_counted(platform: Platform, as_org: Any) -> None:
    depositor: ArchiveClient = as_org("carbet")
    accepted = metric(platform, "mc_archive_deposits_total", outcome="accepted")
    rejected = metric(platform, "mc_archive_deposits_total", outcome="rejected")
    stored = metric(platform, "mc_archive_bytes_stored_total")

    data = [secrets.token_bytes(3000), secrets.token_bytes(1234)]
    done = depositor.deposit([("a.bin", data[0]), ("b.bin", data[1])])
    assert done.status_code == 201, done.text
    assert metric(platform, "mc_archive_deposits_total", outcome="accepted") == accepted + 1
    assert metric(platform, "mc_archive_bytes_stored_total") == stored + 4234

    # a declared digest that does not match: refused, nothing stored
    wrong = depositor.deposit([("c.bin", b"contenu")], files=[{"sha256": "0" * 64}])
    assert 400 <= wrong.status_code < 500, wrong.text
    assert metric(platform, "mc_archive_deposits_total", outcome="rejected") == rejected + 1
    assert metric(platform, "mc_archive_bytes_stored_total") == stored + 4234

    # a replay of the same deposit is neither a new deposit nor new bytes
    replay = depositor.deposit([("a.bin", data[0]), ("b.bin", data[1])],
                               deposit_id=done.json()["deposit_id"], title="rejoué")
    assert replay.status_code in (200, 409), replay.text
    assert metric(platform, "mc_archive_deposits_total", outcome="accepted") == accepted + 1
    assert metric(platform, "mc_archive_bytes_stored_total") == stored + 4234


def test_a_package_ingest_is_counted(platform: Platform, as_org: Any, tmp_path: Path) -> None:
    depositor: ArchiveClient = as_org("carbet")
    accepted = metric(platform, "mc_archive_deposits_total", outcome="accepted")
    rejected = metric(platform, "mc_archive_deposits_total", outcome="rejected")
    stored = metric(platform, "mc_archive_bytes_stored_total")
    source = tmp_path / "doc.bin"
    source.write_bytes(secrets.token_bytes(2048))
    bag = write_bagit(tmp_path / "bag", [("doc.bin", source)],
                      {"Title": "Sac compté", "External-Identifier": secrets.token_hex(6)})
    operation = _poll(depositor, _submit(depositor, "bagit", zip_bag(
        bag, tmp_path / "bag.zip")).headers["location"])
    assert operation["status"] == "accepted", operation
    assert metric(platform, "mc_archive_deposits_total", outcome="accepted") == accepted + 1
    assert metric(platform, "mc_archive_bytes_stored_total") == stored + 2048

    (bag / "data" / "doc.bin").write_bytes(b"altere")
    refused = _poll(depositor, _submit(depositor, "bagit", zip_bag(
        bag, tmp_path / "bad.zip")).headers["location"])
    assert refused["status"] == "refused", refused
    assert metric(platform, "mc_archive_deposits_total", outcome="rejected") == rejected + 1
    assert metric(platform, "mc_archive_bytes_stored_total") == stored + 2048


def test_order_transitions_are_counted_once_committed(platform: Platform) -> None:
    buyer = person_api(platform, ("diamant", "buyer"))
    approver = person_api(platform, ("ctm", "approver"))

    def counts() -> dict[str, float]:
        return {state: metric(platform, "mc_service_orders_total", state=state)
                for state in ("acknowledged", "held", "inProgress", "completed", "cancelled")}

    before = counts()
    item = {"action": "add", "offering": "archivage", "characteristics": {"quota_gb": "50"}}
    first = buyer.post("/orders", {"items": [item]})
    assert first.status_code == 201, first.text
    assert buyer.post(f"/orders/{first.json()['id']}/cancel").status_code == 200
    second = buyer.post("/orders", {"items": [item]})
    assert second.status_code == 201, second.text
    approved = approver.post(f"/orders/{second.json()['id']}/approve")
    assert approved.json()["state"] == "completed", approved.text
    # a refused transition (a completed order cannot be cancelled) counts nothing
    assert buyer.post(f"/orders/{second.json()['id']}/cancel").status_code == 409
    after = counts()
    assert {k: after[k] - before[k] for k in after} == {
        "acknowledged": 2, "held": 2, "inProgress": 1, "completed": 1, "cancelled": 1}


def test_integrity_problems_are_counted(platform: Platform, as_org: Any, as_staff: Any
                                        ) -> None:
    depositor: ArchiveClient = as_org("carbet")
    authority = as_staff(("ctm", "archival_authority"))
    fixity = metric(platform, "mc_audit_failures_total", check="archive_fixity")
    logbook = metric(platform, "mc_audit_failures_total", check="archive_logbook")

    clean = authority.post("/audits")
    assert clean.status_code == 201, clean.text
    assert authority.get("/logbook/verification").json()["ok"]
    assert metric(platform, "mc_audit_failures_total", check="archive_fixity") == fixity
    assert metric(platform, "mc_audit_failures_total", check="archive_logbook") == logbook

    data = secrets.token_bytes(2500)
    done = depositor.deposit([("d.bin", data)]).json()
    copy = blob_paths(platform, done["files"][0]["sha512"])[1]
    copy.write_bytes(b"alteration" + data[10:])
    report = authority.post("/audits").json()
    assert report["corrupt"] == 1 and report["repaired"] == 1
    assert metric(platform, "mc_audit_failures_total", check="archive_fixity") == fixity + 1

    seq = platform.live.app.state.archives.integrity.verify().entries
    with tampered(platform, seq):
        assert not authority.get("/logbook/verification").json()["ok"]
        assert metric(platform, "mc_audit_failures_total", check="archive_logbook") == \
            logbook + 1
    assert authority.get("/logbook/verification").json()["ok"]
