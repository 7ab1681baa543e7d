"""The derived full-text index: created once, even by workers starting at the same time;
rebuilt when it has an older shape; one unit's text replaced without reading the whole
index."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from archivage import fulltext
from martinique_connect.database import upgrade
from plateforme.db import make_engine

# The index as the versions before FTS5_TABLE created it: ``unit_id`` not indexed.
OLD_FTS5_TABLE = ("CREATE VIRTUAL TABLE arch_unit_fts USING fts5("
                  "unit_id UNINDEXED, body, tokenize = 'unicode61 remove_diacritics 2')")


def _database(path: Path, units: int) -> Engine:
    """A migrated SQLite database holding ``units`` units ``mc1``… whose text is
    « registre commun mcN », not indexed yet."""
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO arch_unit (id, organisation, path, level, title, keywords, status, "
            "on_hold, blocked, created_at) "
            "SELECT 'mc' || i, 'lamentin', '/mc' || i || '/', 'item', 'Unité ' || i, '[]', "
            "'active', 0, '[]', '2026-01-01 00:00:00.000000' FROM (WITH RECURSIVE n(i) AS "
            "(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :units) SELECT i FROM n)"),
            {"units": units})
        conn.execute(text("INSERT INTO arch_unit_text (unit_id, body) "
                          "SELECT id, 'registre commun ' || id FROM arch_unit"))
    return engine


def _found(engine: Engine, query: str) -> set[str]:
    with Session(engine) as session:
        clause = fulltext.match_clause(session, query)
        assert clause is not None
        return set(session.execute(text(f"SELECT id FROM arch_unit WHERE {clause[0]}"),  # noqa: S608
                                   clause[1]).scalars())


def _shape(engine: Engine) -> tuple[str | None, int, int]:
    """The index's statement, its rows and the texts' rows."""
    with engine.connect() as conn:
        return (conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'arch_unit_fts'"))
                .scalar(), conn.execute(text("SELECT count(*) FROM arch_unit_fts")).scalar_one(),
                conn.execute(text("SELECT count(*) FROM arch_unit_text")).scalar_one())


def _old_index(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text(OLD_FTS5_TABLE))
        conn.execute(text("INSERT INTO arch_unit_fts (unit_id, body) "
                          "SELECT unit_id, body FROM arch_unit_text"))


def _drops(*engines: Engine) -> list[str]:
    """The DROP statements the engines will run."""
    drops: list[str] = []
    for engine in engines:
        @event.listens_for(engine, "before_cursor_execute")
        def _drop(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if statement.lstrip().upper().startswith("DROP"):
                drops.append(statement)
    return drops


def test_a_worker_starting_with_another_tolerates_its_index(tmp_path: Path) -> None:
    """``serve --workers N`` forks its workers together: one may create the SQLite index
    between another's check and its creation. The second leaves it as the first made it."""
    url = f"sqlite:///{tmp_path / 'fts.db'}"
    first, second = make_engine(url), make_engine(url)
    upgrade(first)

    checks: list[str] = []

    @event.listens_for(first, "after_cursor_execute")
    def _other_worker_meanwhile(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "sqlite_master" in statement and not checks:  # after the check, before creating
            checks.append(statement)
            fulltext.ensure_index(second)

    fulltext.ensure_index(first)  # no « table arch_unit_fts already exists »
    with first.connect() as conn:
        assert conn.execute(text(
            "SELECT count(*) FROM sqlite_master WHERE name = 'arch_unit_fts'")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM arch_unit_fts")).scalar() == 0
    first.dispose()
    second.dispose()


def test_a_replaced_text_is_found_by_its_new_words_only(tmp_path: Path) -> None:
    engine = _database(tmp_path / "fts.db", 3)
    fulltext.ensure_index(engine)
    assert _found(engine, "registre") == {"mc1", "mc2", "mc3"}
    with Session(engine) as session:
        fulltext.set_text(session, "mc2", "Procès-verbal de la séance")
        session.commit()
    assert _found(engine, "proces verbal") == {"mc2"}  # diacritics removed, as before
    assert _found(engine, "registre") == {"mc1", "mc3"}
    # the identifier is indexed to find the row, but a search looks in the text only
    assert _found(engine, "mc2") == set()
    assert _found(engine, "mc3") == {"mc3"}
    assert _shape(engine)[1:] == (3, 3)
    engine.dispose()


def _steps_of_set_text(engine: Engine, unit_id: str) -> int:
    """The virtual machine instructions SQLite runs to replace one unit's text (the
    statements on the FTS5 shadow tables included): proportional to the rows read."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    with Session(engine) as session:
        raw = session.connection().connection.dbapi_connection
        assert raw is not None
        raw.set_progress_handler(count, 1)
        try:
            fulltext.set_text(session, unit_id, "texte remplacé")
        finally:
            raw.set_progress_handler(None, 1)
        session.commit()
    return steps


def test_replacing_a_text_does_not_read_the_whole_index(tmp_path: Path) -> None:
    """An elimination replaces the text of each destroyed unit: with ``unit_id`` left out of
    the index, SQLite read every row of the index to find the one to delete."""
    small = _database(tmp_path / "small.db", 100)
    large = _database(tmp_path / "large.db", 20_000)
    for engine in (small, large):
        fulltext.ensure_index(engine)
    in_small = _steps_of_set_text(small, "mc50")
    in_large = _steps_of_set_text(large, "mc10000")
    # reading 20,000 rows costs several instructions each: hundreds of thousands
    assert in_large < in_small + 500, (in_small, in_large)
    assert _found(large, "remplace") == {"mc10000"}
    assert "mc10000" not in _found(large, "registre")
    small.dispose()
    large.dispose()


def test_an_index_of_the_old_shape_is_rebuilt_at_start(tmp_path: Path) -> None:
    engine = _database(tmp_path / "fts.db", 5)
    _old_index(engine)
    fulltext.ensure_index(engine)
    assert _shape(engine) == (fulltext.FTS5_TABLE, 5, 5)
    assert _found(engine, "registre") == {f"mc{i}" for i in range(1, 6)}
    with Session(engine) as session:
        fulltext.set_text(session, "mc4", "Délibération")
        session.commit()
    assert _found(engine, "deliberation") == {"mc4"}
    assert _found(engine, "registre") == {"mc1", "mc2", "mc3", "mc5"}
    fulltext.ensure_index(engine)  # in shape: left as it is
    assert _shape(engine) == (fulltext.FTS5_TABLE, 5, 5)
    engine.dispose()


def test_workers_starting_together_rebuild_an_old_index_once(tmp_path: Path) -> None:
    """Both workers find the old index; the second rebuilds it between the first's check and
    its rebuild: the first then leaves it (no second rebuild, no row indexed twice)."""
    first = _database(tmp_path / "fts.db", 5)
    second = make_engine(f"sqlite:///{tmp_path / 'fts.db'}")
    _old_index(first)
    drops = _drops(first, second)
    checks: list[str] = []

    @event.listens_for(first, "after_cursor_execute")
    def _other_worker_meanwhile(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "sqlite_master" in statement and not checks:
            checks.append(statement)
            fulltext.ensure_index(second)

    fulltext.ensure_index(first)
    assert len(drops) == 1
    assert _shape(first) == (fulltext.FTS5_TABLE, 5, 5)
    first.dispose()
    second.dispose()


def test_a_worker_waits_for_a_rebuild_longer_than_the_busy_timeout(tmp_path: Path) -> None:
    """A large index takes a while to rebuild: a worker starting meanwhile is refused the
    writer lock (« database is locked ») until the rebuild commits, then finds it done."""
    path = tmp_path / "fts.db"
    engine = _database(path, 5)
    _old_index(engine)
    impatient = make_engine(f"sqlite:///{path}")

    @event.listens_for(impatient, "connect")
    def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=50")

    drops = _drops(impatient)
    attempts: list[str] = []

    @event.listens_for(impatient, "before_cursor_execute")
    def _attempt(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("SAVEPOINT"):
            attempts.append(statement)

    rebuilder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    rebuilder.execute("BEGIN IMMEDIATE")
    rebuilder.execute("DROP TABLE arch_unit_fts")
    rebuilder.execute(fulltext.FTS5_TABLE)
    rebuilder.execute("INSERT INTO arch_unit_fts (unit_id, body) "
                      "SELECT unit_id, body FROM arch_unit_text")
    committed = threading.Timer(0.5, lambda: rebuilder.execute("COMMIT"))
    committed.start()
    try:
        fulltext.ensure_index(impatient)
    finally:
        committed.join()
        rebuilder.close()
    assert len(attempts) > 1  # refused at least once, then found the index rebuilt
    assert drops == []
    assert _shape(engine) == (fulltext.FTS5_TABLE, 5, 5)
    engine.dispose()
    impatient.dispose()
