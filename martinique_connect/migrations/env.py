"""Alembic environment: one history for every domain's tables."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import archivage.models  # noqa: F401 - registers the archival tables
import idp.models  # noqa: F401 - registers the provider's tables
import plateforme.audit  # noqa: F401 - registers the audit journal
import plateforme.db  # noqa: F401 - naming conventions
import services_mutualises.models  # noqa: F401 - registers the catalogue's tables

target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    engine = context.config.attributes.get("engine")
    if engine is None:
        engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite", compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
