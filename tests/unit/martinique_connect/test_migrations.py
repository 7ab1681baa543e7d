"""Migrations and models describe the same schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import archivage.models  # noqa: F401
import idp.models  # noqa: F401
import plateforme.audit  # noqa: F401
from martinique_connect.database import upgrade
from plateforme.db import make_engine

PG_ADMIN_URL = os.environ.get("MC_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _diff(engine) -> list:  # type: ignore[no-untyped-def]
    upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def test_sqlite_schema_matches_models(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    assert _diff(engine) == []


def test_postgres_schema_matches_models() -> None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2, autocommit=True) as conn:
            name = f"mc_mig_{secrets.token_hex(5)}"
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception:  # noqa: BLE001
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("PostgreSQL not reachable")
    engine = make_engine(PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://",
                         "postgresql+psycopg://") + f"/{name}")
    try:
        assert _diff(engine) == []
    finally:
        engine.dispose()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrations_are_idempotent(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'i.db'}")
    upgrade(engine)
    upgrade(engine)
