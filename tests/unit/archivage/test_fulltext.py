"""The derived full-text index: created once, even by workers starting at the same time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from archivage import fulltext
from martinique_connect.database import upgrade
from plateforme.db import make_engine


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
