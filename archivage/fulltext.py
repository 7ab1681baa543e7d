"""Full-text search over ``arch_unit_text``: SQLite FTS5 in the embedded default,
PostgreSQL's text search (a GIN index on ``to_tsvector('french', body)``) in production.

The index is derived data: :func:`ensure_index` creates it when missing and rebuilds it from
``arch_unit_text`` (so the schema comparison of migrations only sees the source table).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

_WORD = re.compile(r"\w+", re.UNICODE)


def ensure_index(engine: Engine) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            exists = conn.execute(text(
                "SELECT 1 FROM sqlite_master WHERE name = 'arch_unit_fts'")).first()
            if exists is None:
                try:
                    conn.execute(text(
                        "CREATE VIRTUAL TABLE arch_unit_fts USING fts5("
                        "unit_id UNINDEXED, body, tokenize = 'unicode61 remove_diacritics 2')"))
                except OperationalError as exc:
                    # Another worker starting at the same time created it (and fills it).
                    if "already exists" not in str(exc):
                        raise
                    return
                conn.execute(text(
                    "INSERT INTO arch_unit_fts (unit_id, body) "
                    "SELECT unit_id, body FROM arch_unit_text"))
        else:
            conn.execute(text(
                "CREATE INDEX IF NOT EXISTS ix_arch_unit_text_fts ON arch_unit_text "
                "USING gin (to_tsvector('french', body))"))


def set_text(session: Session, unit_id: str, body: str) -> None:
    """Index ``body`` for ``unit_id`` (replacing what was there), in the caller's
    transaction."""
    session.execute(text("DELETE FROM arch_unit_text WHERE unit_id = :u"), {"u": unit_id})
    session.execute(text("INSERT INTO arch_unit_text (unit_id, body) VALUES (:u, :b)"),
                    {"u": unit_id, "b": body})
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("DELETE FROM arch_unit_fts WHERE unit_id = :u"), {"u": unit_id})
        session.execute(text("INSERT INTO arch_unit_fts (unit_id, body) VALUES (:u, :b)"),
                        {"u": unit_id, "b": body})


def words(query: str) -> list[str]:
    """The words a search looks for (at most twenty)."""
    return _WORD.findall(query)[:20]


def add_texts(session: Session, items: Sequence[tuple[str, str]]) -> None:
    """Index units created in the caller's transaction (``(unit_id, body)`` pairs, none
    indexed yet), in one statement per table: no search for a previous text (FTS5 cannot find
    a row by ``unit_id`` without reading the whole index)."""
    if not items:
        return
    rows = [{"u": unit_id, "b": body} for unit_id, body in items]
    session.execute(text("INSERT INTO arch_unit_text (unit_id, body) VALUES (:u, :b)"), rows)
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("INSERT INTO arch_unit_fts (unit_id, body) VALUES (:u, :b)"),
                        rows)


def match_clause(session: Session, query: str) -> tuple[str, dict[str, str]] | None:
    """A SQL condition on ``arch_unit.id`` matching every word of ``query`` (None when the
    query has no word)."""
    found = words(query)
    if not found:
        return None
    if session.get_bind().dialect.name == "sqlite":
        expression = " ".join('"' + w.replace('"', "") + '"' for w in found)
        return ("arch_unit.id IN (SELECT unit_id FROM arch_unit_fts WHERE arch_unit_fts MATCH "
                ":fts)", {"fts": expression})
    return ("arch_unit.id IN (SELECT unit_id FROM arch_unit_text WHERE "
            "to_tsvector('french', body) @@ plainto_tsquery('french', :fts))",
            {"fts": " ".join(found)})
