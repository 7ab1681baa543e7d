"""The audit journal: append-only, each entry carrying the hash of the previous one.

Every state change that matters to a person writes one :class:`AuditEvent`: who, what, when,
from where, outcome. :func:`verify_chain` recomputes the chain and names the first broken entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, DateTime, insert, text
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import configure_mappers
from sqlmodel import Field, Session, SQLModel, col, select

from plateforme import chain
from plateforme.chain import ChainReport
from plateforme.metrics import record_audit_failure

GENESIS = "0" * 64
_PENDING = "plateforme.audit.pending"
log = logging.getLogger("plateforme.audit")


class AuditEvent(SQLModel, table=True):
    """One entry of the journal. Never updated, never deleted."""

    __tablename__ = "plateforme_audit_event"

    seq: int = Field(primary_key=True)
    id: uuid.UUID = Field(default_factory=uuid.uuid4, unique=True)
    at: datetime = Field(sa_type=DateTime(timezone=True), index=True)  # type: ignore[call-overload]
    actor: str | None = Field(default=None, index=True, max_length=255)
    organisation: str | None = Field(default=None, index=True, max_length=100)
    action: str = Field(index=True, max_length=100)
    target: str | None = Field(default=None, max_length=255)
    outcome: str = Field(default="success", max_length=20)
    address: str | None = Field(default=None, max_length=64)
    request_id: str | None = Field(default=None, max_length=64)
    reason: str | None = None
    details: str = "{}"
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """A single row holding the chain's last sequence number and hash; its row lock
    serialises appends on every database."""

    __tablename__ = "plateforme_audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(default=GENESIS, max_length=64)


@dataclass(frozen=True)
class AuditRecord:
    """What a caller says about an event; the journal adds time, sequence and hashes."""

    action: str
    actor: str | None = None
    organisation: str | None = None
    target: str | None = None
    outcome: str = "success"
    address: str | None = None
    request_id: str | None = None
    reason: str | None = None
    details: dict[str, Any] | None = None


def _iso(at: datetime) -> str:
    """Naive-UTC ISO form: SQLite drops the zone on read, PostgreSQL keeps it."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.isoformat(timespec="milliseconds")


_DIGESTED = ("seq", "id", "at", "actor", "organisation", "action", "target", "outcome",
             "address", "request_id", "reason", "details")


def _digest_of(prev_hash: str, values: Mapping[str, Any]) -> str:
    body = {name: values[name] for name in _DIGESTED}
    body["id"] = str(body["id"])
    body["at"] = _iso(body["at"])
    body["prev_hash"] = prev_hash
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _digest(prev_hash: str, event: AuditEvent) -> str:
    return _digest_of(prev_hash, {name: getattr(event, name) for name in _DIGESTED})


def _now_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


# The three statements of an append, built once (SQLAlchemy then reuses their compiled form
# from the engine's cache): Core, not the ORM, because an ORM object costs more to build,
# validate and flush than the statements themselves (≈ 1 ms of CPU per event).
_NEXT = text("UPDATE plateforme_audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
_FIRST = text("SELECT seq, hash FROM plateforme_audit_head WHERE id = 1")
_INSERT = insert(AuditEvent.__table__)  # type: ignore[attr-defined]
_SET_HASH = text("UPDATE plateforme_audit_head SET hash = :h WHERE id = 1")


def append(session: Session, record: AuditRecord) -> AuditEvent:
    """Append ``record`` inside the caller's transaction (commit is the caller's).

    The head row is locked first (an UPDATE), so concurrent appends queue up and the chain
    never forks, on SQLite as on PostgreSQL. The same statement returns the new sequence
    number and the previous hash (``RETURNING``: SQLite 3.35+, PostgreSQL).
    """
    event = _append(session.connection(), record)
    session.info.setdefault(_PENDING, []).append(record)
    return event


def _append(connection: Connection, record: AuditRecord) -> AuditEvent:
    head = connection.execute(_NEXT).one_or_none()
    if head is None:
        connection.execute(insert(AuditHead.__table__).values(  # type: ignore[attr-defined]
            id=1, seq=1, hash=GENESIS))
        head = connection.execute(_FIRST).one()
    values: dict[str, Any] = {
        "seq": head.seq,
        "id": uuid.uuid4(),
        "at": _now_ms(),
        "actor": record.actor,
        "organisation": record.organisation,
        "action": record.action,
        "target": record.target,
        "outcome": record.outcome,
        "address": record.address,
        "request_id": record.request_id,
        "reason": record.reason,
        "details": json.dumps(record.details or {}, sort_keys=True, ensure_ascii=False),
        "prev_hash": head.hash,
    }
    values["hash"] = _digest_of(head.hash, values)
    connection.execute(_INSERT, values)
    connection.execute(_SET_HASH, {"h": values["hash"]})
    configure_mappers()  # model_construct needs them (≈ 2 µs once configured)
    # Built without validation: every value above is already of its column's type.
    return AuditEvent.model_construct(**values)


# Called with the records of a transaction once it is committed (metrics, notifications).
_listeners: list[Callable[[list[AuditRecord]], None]] = []


def add_listener(listener: Callable[[list[AuditRecord]], None]) -> None:
    """Call ``listener`` with the records of every committed transaction that appended some
    (never for a rolled-back one). Registering the same function twice has no effect."""
    if listener not in _listeners:
        _listeners.append(listener)


@sa_event.listens_for(OrmSession, "after_commit")
def _after_commit(session: OrmSession) -> None:
    records = session.info.pop(_PENDING, None)
    if records:
        _notify(records)


def _notify(records: list[AuditRecord]) -> None:
    for listener in _listeners:
        try:
            listener(records)
        except Exception:  # noqa: BLE001 - an observer never breaks the committed change
            log.exception("audit listener %r failed", listener)


@sa_event.listens_for(OrmSession, "after_rollback")
def _after_rollback(session: OrmSession) -> None:
    session.info.pop(_PENDING, None)


class AuditJournal:
    """Appends events in their own transaction, for callers that have none."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def record(self, record: AuditRecord) -> AuditEvent:
        # A connection, not an ORM session: nothing else is written, and a session costs
        # more to open and close than the append itself.
        with self._engine.begin() as connection:
            event = _append(connection, record)
        _notify([record])
        return event

    def search(self, query: AuditQuery, *, limit: int = 100, offset: int = 0
               ) -> list[AuditEvent]:
        """The consultation page's and CSV export's query (see :func:`search`)."""
        with Session(self._engine, expire_on_commit=False) as session:
            return search(session, query, limit=limit, offset=offset)

    def verify(self) -> ChainReport:
        """The hash chain recomputed from the first entry (see :func:`verify_chain`)."""
        with Session(self._engine) as session:
            return verify_chain(session)


def iter_events(session: Session, *, batch: int = 1000) -> Iterator[AuditEvent]:
    return chain.iter_rows(session, AuditEvent, batch=batch)


def verify_chain(session: Session) -> ChainReport:
    """Recompute every hash; report the first entry whose hash or link does not match (and
    count the failure in ``mc_audit_failures_total{check="journal"}``)."""
    report = _verify_chain(session)
    if not report.ok:
        record_audit_failure("journal")
    return report


def _verify_chain(session: Session) -> ChainReport:
    head = session.get(AuditHead, 1)
    return chain.check(iter_events(session), _digest, genesis=GENESIS,
                       head=None if head is None else (head.seq, head.hash))


@dataclass(frozen=True)
class AuditQuery:
    """Filters of the journal's consultation page and CSV export."""

    actor: str | None = None
    organisation: str | None = None
    action: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def search(session: Session, query: AuditQuery, *, limit: int = 100, offset: int = 0
           ) -> list[AuditEvent]:
    """Newest first. ``action`` matches a prefix (``client.`` finds every client action)."""
    statement = select(AuditEvent).order_by(col(AuditEvent.seq).desc())
    if query.actor:
        statement = statement.where(AuditEvent.actor == query.actor)
    if query.organisation:
        statement = statement.where(AuditEvent.organisation == query.organisation)
    if query.target:
        statement = statement.where(AuditEvent.target == query.target)
    if query.action:
        statement = statement.where(col(AuditEvent.action).startswith(query.action))
    if query.since:
        statement = statement.where(col(AuditEvent.at) >= query.since)
    if query.until:
        statement = statement.where(col(AuditEvent.at) < query.until)
    return list(session.exec(statement.offset(offset).limit(limit)).all())


CSV_COLUMNS = ("seq", "at", "actor", "organisation", "action", "target", "outcome", "address",
               "request_id", "reason", "details", "prev_hash", "hash")


def to_csv_rows(events: list[AuditEvent]) -> Iterator[list[str]]:
    """Rows for a CSV export (header first); cells that a spreadsheet would run as a formula
    are prefixed with a quote (CSV injection)."""
    yield list(CSV_COLUMNS)
    for event in events:
        row = []
        for column in CSV_COLUMNS:
            value = getattr(event, column)
            text_value = _iso(value) if isinstance(value, datetime) else (
                "" if value is None else str(value))
            if text_value[:1] in ("=", "+", "-", "@", "\t", "\r"):
                text_value = "'" + text_value
            row.append(text_value)
        yield row
