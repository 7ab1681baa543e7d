"""The audit journal's hash chain: appends link, any alteration is located."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text
from sqlmodel import Session

from martinique_connect.database import upgrade
from plateforme.audit import AuditJournal, AuditRecord, verify_chain
from plateforme.db import make_engine


def _journal(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    upgrade(engine)
    return engine, AuditJournal(engine)


def test_chain_verifies_and_links(tmp_path: Path) -> None:
    engine, journal = _journal(tmp_path)
    first = journal.record(AuditRecord(action="login.success", actor="u1", address="10.0.0.1"))
    second = journal.record(AuditRecord(action="logout", actor="u1", details={"x": "é"}))
    assert second.prev_hash == first.hash
    with Session(engine) as session:
        report = verify_chain(session)
    assert report.ok
    assert report.checked == 2


def test_modified_entry_is_located(tmp_path: Path) -> None:
    engine, journal = _journal(tmp_path)
    for i in range(5):
        journal.record(AuditRecord(action="client.create", target=f"c{i}"))
    with Session(engine) as session:
        session.execute(text("UPDATE plateforme_audit_event SET target = 'evil' WHERE seq = 3"))
        session.commit()
        report = verify_chain(session)
    assert not report.ok
    assert report.first_broken == 3
    assert report.reason == "contenu modifié"


def test_deleted_entry_is_located(tmp_path: Path) -> None:
    engine, journal = _journal(tmp_path)
    for i in range(4):
        journal.record(AuditRecord(action="a", target=str(i)))
    with Session(engine) as session:
        session.execute(text("DELETE FROM plateforme_audit_event WHERE seq = 2"))
        session.commit()
        report = verify_chain(session)
    assert not report.ok
    assert report.first_broken == 2


def test_truncated_tail_is_detected(tmp_path: Path) -> None:
    engine, journal = _journal(tmp_path)
    for i in range(3):
        journal.record(AuditRecord(action="a", target=str(i)))
    with Session(engine) as session:
        session.execute(text("DELETE FROM plateforme_audit_event WHERE seq = 3"))
        session.commit()
        report = verify_chain(session)
    assert not report.ok


def test_concurrent_appends_never_fork_the_chain(tmp_path: Path) -> None:
    engine, journal = _journal(tmp_path)

    def writer(n: int) -> None:
        for i in range(10):
            journal.record(AuditRecord(action="concurrent", target=f"{n}-{i}"))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with Session(engine) as session:
        report = verify_chain(session)
    assert report.ok
    assert report.checked == 40
