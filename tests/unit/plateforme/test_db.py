"""The SQLite engine: writers of one process queue instead of failing with « database is
locked », and a commit is durable (``synchronous=FULL``)."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text
from sqlmodel import Session

from plateforme.db import make_engine


def _engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER)"))
        conn.execute(text("INSERT INTO counter (id, n) VALUES (1, 0)"))
        conn.execute(text("CREATE TABLE item (id INTEGER PRIMARY KEY, seen INTEGER)"))
    return engine


def test_synchronous_full_and_wal(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 30000


def test_concurrent_read_then_write_transactions_all_commit(tmp_path: Path) -> None:
    """Each transaction reads, then writes what it read (the pattern SQLite refuses at once
    to a deferred transaction whose snapshot is stale): none fails, no update is lost."""
    engine = _engine(tmp_path)
    threads, errors = 8, []
    rounds = 15
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        for _ in range(rounds):
            try:
                with engine.begin() as conn:
                    conn.execute(text("INSERT INTO item (seen) VALUES (0)"))
                    n = conn.execute(text("SELECT n FROM counter WHERE id = 1")).scalar()
                    conn.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar() == threads * rounds
        assert conn.execute(text("SELECT count(*) FROM item")).scalar() == threads * rounds


def test_rollback_and_autocommit_release_the_writer_turn(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO item (seen) VALUES (1)"))
        conn.rollback()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("INSERT INTO item (seen) VALUES (2)"))
    done = threading.Event()

    def other() -> None:  # another thread gets the turn at once
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO item (seen) VALUES (3)"))
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(timeout=20)
    assert done.is_set()
    with engine.connect() as conn:
        assert sorted(conn.execute(text("SELECT seen FROM item")).scalars()) == [2, 3]


def test_a_second_engine_on_the_same_file_shares_the_queue(tmp_path: Path) -> None:
    first = _engine(tmp_path)
    second = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    errors: list[Exception] = []

    def work(engine) -> None:  # type: ignore[no-untyped-def]
        for _ in range(20):
            try:
                with engine.begin() as conn:
                    conn.execute(text("INSERT INTO item (seen) VALUES (0)"))
                    n = conn.execute(text("SELECT n FROM counter WHERE id = 1")).scalar()
                    conn.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

    pool = [threading.Thread(target=work, args=(e,)) for e in (first, second) * 3]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    with first.connect() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar() == 120


def test_a_transaction_that_reads_before_writing_is_not_refused(tmp_path: Path) -> None:
    """A transaction opened by a savepoint reads, another writer commits, then it writes:
    SQLite refuses such a stale transaction at once (« database is locked »); queued, the other
    writer waits for its turn instead."""
    engine = _engine(tmp_path)
    other_done = threading.Event()
    reading = threading.Event()

    def other() -> None:
        reading.wait(timeout=20)
        with engine.begin() as conn:
            conn.execute(text("UPDATE counter SET n = n + 100 WHERE id = 1"))
        other_done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with Session(engine) as session:
        with session.begin_nested():
            n = session.execute(text("SELECT n FROM counter WHERE id = 1")).scalar()
            reading.set()
            other_done.wait(timeout=2)  # queued: the other writer waits for this commit
            session.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})
        session.commit()
    thread.join(timeout=30)
    assert other_done.is_set()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar() == 101


def test_insert_rows_on_both_engines(backend, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``insert_rows`` (COPY on PostgreSQL) keeps every value as an ORM insert would: aware
    datetimes, dates, None, large integers, text with tabs, newlines and backslashes; inside
    the session's transaction (rolled back with it)."""
    from datetime import UTC, date, datetime

    from sqlalchemy import BigInteger, Column, Date, DateTime, MetaData, String, Table, Text

    from plateforme.db import insert_rows

    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if backend.name == "embedded" else \
        backend.database_url.replace("postgresql://", "postgresql+psycopg://")
    engine = make_engine(url)
    metadata = MetaData()
    name = f"insert_rows_{tmp_path.name[-8:].replace('-', '_')}"
    parent = Table(name + "_p", metadata, Column("id", String(10), primary_key=True))
    table = Table(name, metadata, Column("id", String(10), primary_key=True),
                  Column("parent", String(10), nullable=False),
                  Column("at", DateTime(timezone=True), nullable=False),
                  Column("day", Date), Column("size", BigInteger), Column("body", Text))
    from sqlalchemy import ForeignKeyConstraint

    table.append_constraint(ForeignKeyConstraint(["parent"], [parent.c.id]))
    metadata.create_all(engine)
    at = datetime(2026, 11, 29, 19, 50, 1, 123000, tzinfo=UTC)
    rows = [{"id": "a", "parent": "p", "at": at, "day": date(2025, 3, 3), "size": 2**40,
             "body": "tab\there\nnew line \\ back\\slash « é »"},
            {"id": "b", "parent": "p", "at": at, "day": None, "size": None, "body": None}]
    try:
        with Session(engine) as session:
            session.execute(parent.insert(), [{"id": "p"}])
            insert_rows(session, table, rows)
            session.rollback()
        with Session(engine) as session:
            assert session.execute(table.select()).all() == []
            session.execute(parent.insert(), [{"id": "p"}])
            insert_rows(session, table, rows)
            insert_rows(session, table, [])
            session.commit()
        with Session(engine) as session:
            found = [row._asdict() for row in session.execute(
                table.select().order_by(table.c.id))]
        for row in found:
            if row["at"].tzinfo is None:  # SQLite gives back the naive UTC time
                row["at"] = row["at"].replace(tzinfo=UTC)
        assert found == rows
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def test_reader_is_autocommit_on_postgresql_only(tmp_path: Path) -> None:
    """One-statement reads skip BEGIN/ROLLBACK on PostgreSQL; SQLite keeps its engine."""
    from sqlalchemy import create_engine

    from plateforme.db import reader

    sqlite = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    assert reader(sqlite) is sqlite
    postgres = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert reader(postgres).get_execution_options()["isolation_level"] == "AUTOCOMMIT"
