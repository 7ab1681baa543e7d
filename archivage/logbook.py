"""The archival logbook: PREMIS-style events, hash-chained.

Event types follow the PREMIS event type vocabulary (id.loc.gov/vocabulary/preservation/
eventType): ``ingestion``, ``accession``, ``access``, ``modification`` (metadata or rules),
``policy assignment`` (rules applied), ``fixity check``, ``replication`` (repair),
``deletion`` (elimination), and ours for sharing (``share``, ``share revocation``).
:func:`verify` recomputes the chain and names the first broken entry.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from archivage.models import GENESIS, LogbookEvent, LogbookHead
from plateforme import chain
from plateforme.chain import ChainReport
from plateforme.db import insert_rows


def _iso(at: datetime) -> str:
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.isoformat(timespec="milliseconds")


def digest(prev_hash: str, event: LogbookEvent) -> str:
    body = {
        "seq": event.seq, "id": event.id, "at": _iso(event.at), "event_type": event.event_type,
        "outcome": event.outcome, "organisation": event.organisation, "unit_id": event.unit_id,
        "object_id": event.object_id, "operation_id": event.operation_id, "agent": event.agent,
        "detail": event.detail, "prev_hash": prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _now_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


@dataclass(frozen=True)
class Entry:
    """An event to append with :func:`append_many`."""

    event_type: str
    organisation: str | None = None
    unit_id: str | None = None
    object_id: str | None = None
    operation_id: str | None = None
    agent: str | None = None
    outcome: str = "success"
    detail: dict[str, Any] | None = None


def append(session: Session, event_type: str, *, organisation: str | None = None,
           unit_id: str | None = None, object_id: str | None = None,
           operation_id: str | None = None, agent: str | None = None, outcome: str = "success",
           detail: dict[str, Any] | None = None) -> None:
    """Append an event inside the caller's transaction; the head row's lock (an UPDATE)
    serialises concurrent appends on SQLite as on PostgreSQL."""
    append_many(session, [Entry(event_type, organisation, unit_id, object_id,
                                operation_id, agent, outcome, detail)])


@dataclass
class _Row:
    """The columns of a logbook row (what :func:`digest` reads), without an ORM object."""

    seq: int
    id: str
    at: datetime
    event_type: str
    outcome: str
    organisation: str | None
    unit_id: str | None
    object_id: str | None
    operation_id: str | None
    agent: str | None
    detail: str
    prev_hash: str
    hash: str = ""


@dataclass(frozen=True)
class Prepared:
    """Entries made ready to append (:func:`prepare`): identifiers and serialised details."""

    rows: list[tuple[str, Entry, str]]


def prepare(entries: Sequence[Entry]) -> Prepared:
    """What appending ``entries`` needs that does not depend on the chain's head: done before
    a transaction takes the locks it keeps until its commit."""
    return Prepared([(uuid.uuid4().hex, entry, json.dumps(
        entry.detail or {}, sort_keys=True, ensure_ascii=False)) for entry in entries])


def append_many(session: Session, entries: Sequence[Entry] | Prepared) -> None:
    """Append ``entries`` (or entries already :func:`prepare`-d), chained in order, inside the
    caller's transaction.

    The head row's lock (an ``UPDATE``, held until the caller commits) serialises every
    writer of the logbook, on SQLite as on PostgreSQL: one ``UPDATE … RETURNING`` reserves
    the whole range of sequence numbers and reads the previous hash, the events are chained
    and inserted by one statement (Core rows, not ORM objects: a deposit of a hundred files
    writes two hundred events) and the head's hash is written once."""
    prepared = entries.rows if isinstance(entries, Prepared) else prepare(entries).rows
    if not prepared:
        return
    count = len(prepared)
    head = session.execute(text(
        "UPDATE arch_logbook_head SET seq = seq + :n WHERE id = 1 RETURNING seq, hash"),
        {"n": count}).one_or_none()
    if head is None:
        session.add(LogbookHead(id=1, seq=count, hash=GENESIS))
        session.flush()
        head = session.execute(text("SELECT seq, hash FROM arch_logbook_head WHERE id = 1")
                               ).one()
    seq = head.seq - count
    prev = head.hash
    at = _now_ms()
    rows: list[dict[str, Any]] = []
    for event_id, entry, detail in prepared:
        seq += 1
        row = _Row(seq=seq, id=event_id, at=at, event_type=entry.event_type,
                   outcome=entry.outcome, organisation=entry.organisation,
                   unit_id=entry.unit_id, object_id=entry.object_id,
                   operation_id=entry.operation_id, agent=entry.agent, detail=detail,
                   prev_hash=prev)
        row.hash = prev = digest(prev, row)  # type: ignore[arg-type]
        rows.append(vars(row))
    insert_rows(session, LogbookEvent.__table__, rows)  # type: ignore[attr-defined]
    session.execute(text("UPDATE arch_logbook_head SET hash = :h WHERE id = 1"), {"h": prev})


def iter_events(session: Session, *, batch: int = 1000) -> Iterator[LogbookEvent]:
    return chain.iter_rows(session, LogbookEvent, batch=batch)


LogbookReport = ChainReport


def verify(session: Session) -> LogbookReport:
    """Recompute every hash; report the first entry whose content or link does not match."""
    head = session.get(LogbookHead, 1)
    return chain.check(iter_events(session), digest, genesis=GENESIS,
                       head=None if head is None else (head.seq, head.hash))


def unit_events(session: Session, unit_id: str, *, limit: int = 500) -> list[LogbookEvent]:
    return list(session.exec(select(LogbookEvent).where(LogbookEvent.unit_id == unit_id)
                             .order_by(col(LogbookEvent.seq)).limit(limit)).all())
