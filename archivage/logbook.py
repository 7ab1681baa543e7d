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
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring  # type: ignore[attr-defined]
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


@dataclass(frozen=True)
class _Ready:
    """An entry ready to append: its row's columns but the chain's (``seq``, ``at``,
    ``prev_hash``, ``hash``), and its canonical JSON for :func:`digest` cut around those."""

    columns: dict[str, Any]
    before_at: str  # '{"agent":…,"at":'
    before_prev: str  # ',"detail":…,"outcome":…,"prev_hash":'
    after_seq: str  # ',"unit_id":…}'


@dataclass(frozen=True)
class Prepared:
    """Entries made ready to append (:func:`prepare`): identifiers, serialised details and
    the parts of their canonical JSON that do not depend on the chain's head."""

    rows: list[_Ready]


# What json.dumps(..., ensure_ascii=False) does for a string, without building an encoder
# per call (json.dumps builds one whenever an option is not the default).
_DETAIL = json.JSONEncoder(ensure_ascii=False, sort_keys=True)


def _json(value: str | None) -> str:
    """``json.dumps(value, ensure_ascii=False)`` of a string or None."""
    return "null" if value is None else encode_basestring(value)


def prepare(entries: Sequence[Entry]) -> Prepared:
    """What appending ``entries`` needs that does not depend on the chain's head: done before
    a transaction takes the locks it keeps until its commit. The canonical JSON that
    :func:`digest` hashes (keys sorted, compact) is built here but for ``at``, ``prev_hash``
    and ``seq``, so the head's lock is held for a string join and a SHA-256 per event."""
    raw = os.urandom(16 * len(entries))  # the identifiers in one system call
    ready: list[_Ready] = []
    for index, entry in enumerate(entries):
        event_id = uuid.UUID(bytes=raw[16 * index:16 * index + 16], version=4).hex
        detail = _DETAIL.encode(entry.detail or {})
        ready.append(_Ready(
            {"id": event_id, "event_type": entry.event_type, "outcome": entry.outcome,
             "organisation": entry.organisation, "unit_id": entry.unit_id,
             "object_id": entry.object_id, "operation_id": entry.operation_id,
             "agent": entry.agent, "detail": detail},
            '{"agent":' + _json(entry.agent) + ',"at":',
            ',"detail":' + _json(detail) + ',"event_type":' + _json(entry.event_type)
            + ',"id":' + _json(event_id) + ',"object_id":' + _json(entry.object_id)
            + ',"operation_id":' + _json(entry.operation_id) + ',"organisation":'
            + _json(entry.organisation) + ',"outcome":' + _json(entry.outcome)
            + ',"prev_hash":',
            ',"unit_id":' + _json(entry.unit_id) + "}"))
    return Prepared(ready)


def append_many(session: Session, entries: Sequence[Entry] | Prepared) -> None:
    """Append ``entries`` (or entries already :func:`prepare`-d), chained in order, inside the
    caller's transaction.

    The head row's lock (an ``UPDATE``, held until the caller commits) serialises every
    writer of the logbook, on SQLite as on PostgreSQL: one ``UPDATE … RETURNING`` reserves
    the whole range of sequence numbers and reads the previous hash, the events are chained
    and inserted by one statement (Core rows, not ORM objects: a deposit of a hundred files
    writes two hundred events) and the head's hash is written once. Each hash is the one
    :func:`digest` computes (tested), from the JSON :func:`prepare` built."""
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
    at_json = _json(_iso(at))
    rows: list[dict[str, Any]] = []
    for ready in prepared:
        seq += 1
        canonical = (ready.before_at + at_json + ready.before_prev + _json(prev) + ',"seq":'
                     + str(seq) + ready.after_seq)
        row_hash = hashlib.sha256(canonical.encode()).hexdigest()
        rows.append({**ready.columns, "seq": seq, "at": at, "prev_hash": prev,
                     "hash": row_hash})
        prev = row_hash
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
