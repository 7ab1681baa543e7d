"""Full-text search over ``arch_unit_text``: SQLite FTS5 in the embedded default,
PostgreSQL's text search (a GIN index on ``to_tsvector('french', body)``) in production.

The index is derived data: :func:`ensure_index` creates it when missing, or rebuilds it when
it has another shape than :data:`FTS5_TABLE`, from ``arch_unit_text`` (so the schema
comparison of migrations only sees the source table).

The FTS5 table indexes ``unit_id`` as well as ``body``: replacing a unit's text finds its row
through the index (``unit_id : "…"``) instead of reading every row, as a filter on an
``UNINDEXED`` column does; searches look in ``body`` only. It does not rely on the rowid of
``arch_unit_text`` (a text primary key: its rowid is not stable, VACUUM may renumber it, and
``set_text`` gives the row a new one).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence

from sqlalchemy import column, table, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from plateforme.db import insert_rows

log = logging.getLogger("archivage.fulltext")

_UNIT_TEXT = table("arch_unit_text", column("unit_id"), column("body"))
_WORD = re.compile(r"\w+", re.UNICODE)
_TOKEN_CHAR = re.compile(r"[^\W_]")  # a letter or digit: FTS5's unicode61 makes a token of it

# The statement creating the SQLite index, as ``sqlite_master`` keeps it: an index created by
# another statement (an older version) is rebuilt at start.
FTS5_TABLE = ("CREATE VIRTUAL TABLE arch_unit_fts USING fts5("
              "unit_id, body, tokenize = 'unicode61 remove_diacritics 2')")
# How long a starting worker waits for another one rebuilding the index (each attempt waits
# for the database's busy timeout).
REBUILD_WAIT_SECONDS = 30 * 60.0


def _fts5_statement(conn: Connection) -> str | None:
    found = conn.execute(text(
        "SELECT sql FROM sqlite_master WHERE name = 'arch_unit_fts'")).scalar()
    return None if found is None else str(found)


def ensure_index(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            conn.execute(text(
                "CREATE INDEX IF NOT EXISTS ix_arch_unit_text_fts ON arch_unit_text "
                "USING gin (to_tsvector('french', body))"))
        return
    deadline = time.monotonic() + REBUILD_WAIT_SECONDS
    while True:
        with engine.connect() as conn:
            if _fts5_statement(conn) == FTS5_TABLE:
                return
        try:
            _build(engine)
            return
        except OperationalError as exc:
            # another worker rebuilds a large index (longer than the busy timeout): once it
            # has committed, the check above finds the index in shape
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise


def _build(engine: Engine) -> None:
    """Create (or re-create) and fill the SQLite index, holding the database's writer lock
    from the check on: workers starting together (``serve --workers N``) build it once."""
    with engine.begin() as conn, conn.begin_nested():  # SAVEPOINT: BEGIN IMMEDIATE (plateforme.db)
        found = _fts5_statement(conn)
        if found == FTS5_TABLE:
            return  # built meanwhile by another worker
        if found is not None:
            conn.execute(text("DROP TABLE arch_unit_fts"))
        conn.execute(text(FTS5_TABLE))
        started = time.monotonic()
        filled = conn.execute(text("INSERT INTO arch_unit_fts (unit_id, body) "
                                   "SELECT unit_id, body FROM arch_unit_text"))
        if found is not None:
            log.warning("full-text index of an older shape rebuilt: %d text(s) in %.1f s",
                        filled.rowcount, time.monotonic() - started)


def _unit_phrase(unit_id: str) -> str:
    """The FTS5 query finding the row of ``unit_id``."""
    return 'unit_id : "' + unit_id.replace('"', '""') + '"'


def set_text(session: Session, unit_id: str, body: str) -> None:
    """Index ``body`` for ``unit_id`` (replacing what was there), in the caller's
    transaction."""
    session.execute(text("DELETE FROM arch_unit_text WHERE unit_id = :u"), {"u": unit_id})
    session.execute(text("INSERT INTO arch_unit_text (unit_id, body) VALUES (:u, :b)"),
                    {"u": unit_id, "b": body})
    if session.get_bind().dialect.name == "sqlite":
        if _TOKEN_CHAR.search(unit_id):  # found through the index, then checked exactly
            session.execute(text("DELETE FROM arch_unit_fts WHERE arch_unit_fts MATCH :m "
                                 "AND unit_id = :u"), {"m": _unit_phrase(unit_id), "u": unit_id})
        else:  # an identifier without any token (never minted so): read every row
            session.execute(text("DELETE FROM arch_unit_fts WHERE unit_id = :u"), {"u": unit_id})
        session.execute(text("INSERT INTO arch_unit_fts (unit_id, body) VALUES (:u, :b)"),
                        {"u": unit_id, "b": body})


def words(query: str) -> list[str]:
    """The words a search looks for (at most twenty)."""
    return _WORD.findall(query)[:20]


def add_texts(session: Session, items: Sequence[tuple[str, str]]) -> None:
    """Index units created in the caller's transaction (``(unit_id, body)`` pairs, none
    indexed yet), in one statement per table: new units have no previous text to remove."""
    if not items:
        return
    rows = [{"unit_id": unit_id, "body": body} for unit_id, body in items]
    insert_rows(session, _UNIT_TEXT, rows)  # COPY on PostgreSQL
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("INSERT INTO arch_unit_fts (unit_id, body) "
                             "VALUES (:unit_id, :body)"), rows)


def match_clause(session: Session, query: str) -> tuple[str, dict[str, str]] | None:
    """A SQL condition on ``arch_unit.id`` matching every word of ``query`` (None when the
    query has no word)."""
    found = words(query)
    if not found:
        return None
    if session.get_bind().dialect.name == "sqlite":
        # every word in the text (``body``), not in the indexed identifier
        expression = " ".join('body : "' + w.replace('"', "") + '"' for w in found)
        return ("arch_unit.id IN (SELECT unit_id FROM arch_unit_fts WHERE arch_unit_fts MATCH "
                ":fts)", {"fts": expression})
    return ("arch_unit.id IN (SELECT unit_id FROM arch_unit_text WHERE "
            "to_tsvector('french', body) @@ plainto_tsquery('french', :fts))",
            {"fts": " ".join(found)})
