"""Readiness checks, trusted proxies and metric labels: the parts with no HTTP in them."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from plateforme import metrics
from plateforme.health import Readiness
from plateforme.web import TrustedProxies


def test_readiness_bounds_each_check_and_names_the_failing_ones() -> None:
    release = threading.Event()
    readiness = Readiness(timeout=0.3)
    readiness.add("database", lambda: True)
    readiness.add("kv", lambda: False)
    readiness.add("blobs", lambda: release.wait(10))

    def broken() -> bool:
        raise ConnectionError("refused")

    readiness.add("search", broken)
    start = time.monotonic()
    report = readiness.run()
    assert time.monotonic() - start < 1.5
    release.set()
    assert not report.ready
    assert report.checks == {"database": "ok", "kv": "unreachable", "blobs": "timeout",
                             "search": "unreachable"}
    assert report.failing == ["kv", "blobs", "search"]
    with pytest.raises(ValueError, match="already registered"):
        readiness.add("kv", lambda: True)
    readiness.close()


def test_trusted_proxies_take_addresses_and_networks() -> None:
    trusted = TrustedProxies("127.0.0.1, 10.0.0.0/8,::1")
    assert "127.0.0.1" in trusted and "10.42.7.1" in trusted and "::1" in trusted
    assert "192.0.2.1" not in trusted and "not-an-ip" not in trusted
    assert not TrustedProxies("") and "127.0.0.1" not in TrustedProxies("")
    with pytest.raises(ValueError, match="MC_TRUSTED_PROXIES"):
        TrustedProxies("10.0.0.0/33")


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_domain_counters_keep_their_labels_bounded() -> None:
    before_other = _value("mc_service_orders_total", state="other")
    before_active = _value("mc_service_orders_total", state="inProgress")
    metrics.record_order("inProgress")
    metrics.record_order("'; DROP TABLE --")
    assert _value("mc_service_orders_total", state="inProgress") == before_active + 1
    assert _value("mc_service_orders_total", state="other") == before_other + 1

    bytes_before = _value("mc_archive_bytes_stored_total")
    metrics.record_deposit("accepted", 1234)
    metrics.record_deposit("rejected", 99)
    assert _value("mc_archive_bytes_stored_total") == bytes_before + 1234

    before = _value("mc_sign_ins_total", outcome="success", acr="none")
    metrics.record_sign_in("success", None)
    assert _value("mc_sign_ins_total", outcome="success", acr="none") == before + 1
    before = _value("mc_tokens_issued_total", grant_type="other")
    metrics.record_token("password")
    assert _value("mc_tokens_issued_total", grant_type="other") == before + 1


def test_audit_listeners_hear_committed_records_only(tmp_path: Path) -> None:
    from sqlmodel import Session

    from martinique_connect.app import count_audit_events
    from martinique_connect.database import upgrade
    from plateforme import audit
    from plateforme.audit import AuditJournal, AuditRecord, add_listener, append
    from plateforme.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    upgrade(engine)
    heard: list[str] = []

    def listener(records: list[AuditRecord]) -> None:
        heard.extend(r.action for r in records)

    add_listener(listener)
    add_listener(count_audit_events)
    with Session(engine) as session:
        append(session, AuditRecord(action="test.rolled_back"))
        session.rollback()
    before = _value("mc_sign_ins_total", outcome="success", acr="eidas2")
    AuditJournal(engine).record(AuditRecord(action="login.success", details={"acr": "eidas2"}))
    assert heard == ["login.success"]
    assert _value("mc_sign_ins_total", outcome="success", acr="eidas2") == before + 1
    audit._listeners.remove(listener)  # noqa: SLF001 - the test's own listener
    engine.dispose()
