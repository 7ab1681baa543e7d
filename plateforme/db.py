"""The SQL database: engine factory, naming conventions, session dependency.

SQLite (the embedded default) takes one writer at a time. Left to itself, a second writer
polls for the lock (``busy_timeout``), waking up late, and a deferred transaction that read
before writing fails at once with ``database is locked`` if another one committed meanwhile.
So the engine queues the writers of the process itself: the first INSERT, UPDATE, DELETE or
SAVEPOINT of a transaction waits for the database's writer lock (a Python lock, handed over
as soon as the previous writer commits or rolls back), then opens the transaction with
``BEGIN IMMEDIATE``; other processes on the same file still wait through ``busy_timeout``.
Readers are never queued (WAL). And ``synchronous=FULL``: a commit is on disk when it
returns (in WAL mode, ``NORMAL`` may lose the last commits on a power cut; an acknowledged
deposit must not be lost).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event, insert
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.sql.expression import TableClause
from sqlmodel import Session, SQLModel, create_engine

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION


# How long a writer waits for the database before failing with « database is locked ».
SQLITE_WRITE_TIMEOUT = 60.0
# Statements that start a writing transaction (Python's sqlite3 opens one before the first
# four; a SAVEPOINT outside a transaction opens one too, which may read before it writes).
_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|SAVEPOINT)\b", re.IGNORECASE)


class WriterLock:
    """The queue of one SQLite database's writers in this process."""

    def __init__(self, timeout: float = SQLITE_WRITE_TIMEOUT) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._owner: int | None = None

    def acquire(self) -> bool:
        """Wait for the turn of this thread; False (and no wait) when this thread already
        writes through another connection: SQLite itself then decides, as without the queue,
        rather than a thread waiting for itself."""
        me = threading.get_ident()
        if self._owner == me:
            return False
        if not self._lock.acquire(timeout=self.timeout):
            raise sqlite3.OperationalError("database is locked")
        self._owner = me
        return True

    def release(self) -> None:
        self._owner = None
        self._lock.release()


_writer_locks: dict[str, WriterLock] = {}
_writer_locks_guard = threading.Lock()


def writer_lock(database: str) -> WriterLock:
    """One queue per database file, shared by every engine of the process on that file."""
    with _writer_locks_guard:
        return _writer_locks.setdefault(database, WriterLock())


def _queued_connection(lock: WriterLock) -> type[sqlite3.Connection]:
    class Cursor(sqlite3.Cursor):
        def execute(self, sql: str, parameters: Any = (), /) -> Any:
            return self.connection._write(  # type: ignore[attr-defined]
                sql, super().execute, sql, parameters)

        def executemany(self, sql: str, parameters: Any, /) -> Any:
            return self.connection._write(  # type: ignore[attr-defined]
                sql, super().executemany, sql, parameters)

    class Connection(sqlite3.Connection):
        _holds = False

        def cursor(self, factory: Any = Cursor) -> Any:
            return super().cursor(factory)

        def _write(self, sql: str, run: Any, *args: Any) -> Any:
            if self._holds or not _WRITE.match(sql):
                return run(*args)
            if self.isolation_level is None:  # autocommit: the statement is its transaction
                held = lock.acquire()
                try:
                    return run(*args)
                finally:
                    if held:
                        lock.release()
            self._holds = lock.acquire()
            if self._holds and not self.in_transaction:
                try:
                    super().execute("BEGIN IMMEDIATE")
                except BaseException:
                    self._release()
                    raise
            return run(*args)

        def _release(self) -> None:
            if self._holds:
                self._holds = False
                lock.release()

        def commit(self) -> None:
            try:
                super().commit()
            finally:
                self._release()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                self._release()

        def close(self) -> None:
            try:
                super().close()
            finally:
                self._release()

    return Connection


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for SQLite (embedded default) or PostgreSQL."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        connect_args: dict[str, Any] = {"check_same_thread": False,
                                        "timeout": SQLITE_WRITE_TIMEOUT}
        if database and database != ":memory:" and not database.startswith("file:"):
            connect_args["factory"] = _queued_connection(writer_lock(
                str(Path(database).resolve())))
        engine = create_engine(url, connect_args=connect_args, pool_size=pool_size,
                               max_overflow=20)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_WRITE_TIMEOUT * 1000)}")
            cursor.close()

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True)


def reader(engine: Engine) -> Engine:
    """The engine for reads made of one statement: on PostgreSQL in autocommit, which saves
    the ``BEGIN`` and ``ROLLBACK`` round trips around the ``SELECT`` (≈ 0.3 ms of CPU per
    read; a single statement sees one snapshot anyway). SQLite's engine as it is: changing
    its isolation level costs a ``PRAGMA`` at each checkout, more than it saves. Shares the
    engine's pool; build it once."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return engine


def insert_rows(session: Session, table: TableClause,
                rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (mappings with the same keys: every column they need, no column
    default is applied) into ``table`` in the session's transaction, at once.

    On PostgreSQL through ``COPY … FROM STDIN`` (psycopg adapts and sends the rows in C): an
    ``executemany`` of a hundred rows cost about 75 µs of Python per row, and the logbook's
    rows are inserted while its head is locked for every writer. Elsewhere an
    ``executemany`` (SQLite's is already in C)."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        session.execute(insert(table), rows)
        return
    from psycopg import sql  # PostgreSQL only

    session.flush()  # what session.execute would do first: pending ORM rows go before
    columns = list(rows[0])
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns)))
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([row[column] for column in columns])


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, from the engine the lifespan put on ``app.state``."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
