"""Tables of the archival service (prefix ``arch_``).

Archive units form a tree (series → files → items) kept as a materialised path; each item
holds its data objects (the files), whose content lives in the replicated blob store under
its SHA-512. The logbook is append-only and hash-chained, like the platform's audit journal.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, Column, Date, DateTime, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from plateforme.clock import utcnow

GENESIS = "0" * 64


def _uuid() -> str:
    return uuid.uuid4().hex


class Space(SQLModel, table=True):
    """An organisation's archive space: its quota (set by the service catalogue), its usage,
    and whether it accepts deposits."""

    __tablename__ = "arch_space"

    organisation: str = Field(primary_key=True, max_length=100)
    quota_bytes: int | None = Field(default=None, sa_type=BigInteger)  # type: ignore[call-overload]
    used_bytes: int = Field(default=0, sa_type=BigInteger)  # type: ignore[call-overload]
    is_open: bool = True
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class Deposit(SQLModel, table=True):
    """One accepted deposit (versement). ``deposit_key`` (client-supplied or generated) is
    unique per organisation: a retried deposit finds the first one."""

    __tablename__ = "arch_deposit"
    __table_args__ = (UniqueConstraint("organisation", "deposit_key"),)

    id: str = Field(default_factory=_uuid, primary_key=True, max_length=32)
    organisation: str = Field(index=True, max_length=100)
    deposit_key: str = Field(max_length=200)
    actor: str = Field(max_length=255)
    total_bytes: int = Field(default=0, sa_type=BigInteger)  # type: ignore[call-overload]
    acknowledgement: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class Unit(SQLModel, table=True):
    """An archive unit. ``id`` is the name part of its ARK; ``path`` lists its ancestors and
    itself (``/a/b/c/``). Rule results are computed on change and stored."""

    __tablename__ = "arch_unit"

    id: str = Field(primary_key=True, max_length=40)
    organisation: str = Field(index=True, max_length=100)
    parent_id: str | None = Field(default=None, foreign_key="arch_unit.id", index=True,
                                  max_length=40)
    path: str = Field(index=True, max_length=1000)
    level: str = Field(default="item", max_length=10)
    title: str = Field(max_length=500)
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    producer: str | None = Field(default=None, max_length=255)
    start_date: date | None = Field(default=None, sa_type=Date)  # type: ignore[call-overload]
    end_date: date | None = Field(default=None, sa_type=Date)  # type: ignore[call-overload]
    keywords: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    classification: str | None = Field(default=None, index=True, max_length=100)
    language: str | None = Field(default=None, max_length=20)
    document_type: str | None = Field(default=None, index=True, max_length=100)
    deposit_id: str | None = Field(default=None, foreign_key="arch_deposit.id", index=True,
                                   max_length=32)
    status: str = Field(default="active", max_length=20)
    # Effective rules (own or inherited), recomputed when a rule changes on the unit or above.
    appraisal_rule: str | None = Field(default=None, max_length=100)
    appraisal_end: date | None = Field(default=None, sa_type=Date, index=True)  # type: ignore[call-overload]
    final_action: str | None = Field(default=None, max_length=20)
    access_rule: str | None = Field(default=None, max_length=100)
    access_end: date | None = Field(default=None, sa_type=Date)  # type: ignore[call-overload]
    on_hold: bool = False
    # Rule categories whose inheritance from above stops at this unit (JSON list).
    blocked: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    eliminated_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class DataObject(SQLModel, table=True):
    """A file of an item: its identity (format identified by content), size and digests."""

    __tablename__ = "arch_object"

    id: str = Field(default_factory=_uuid, primary_key=True, max_length=32)
    unit_id: str = Field(foreign_key="arch_unit.id", index=True, max_length=40)
    filename: str = Field(max_length=255)
    media_type: str = Field(default="application/octet-stream", max_length=100)
    format_id: str | None = Field(default=None, max_length=40)
    size: int = Field(sa_type=BigInteger)  # type: ignore[call-overload]
    sha512: str = Field(max_length=128)
    sha256: str = Field(max_length=64)
    blob_key: str = Field(index=True, max_length=200)
    locations: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    stored_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    destroyed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class BlobIntent(SQLModel, table=True):
    """Written (and committed) before a blob is stored, deleted in the transaction that
    records the deposit: an intent left behind by a crash names a blob to sweep."""

    __tablename__ = "arch_blob_intent"

    id: str = Field(default_factory=_uuid, primary_key=True, max_length=32)
    blob_key: str = Field(index=True, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class UnitText(SQLModel, table=True):
    """The searchable text of a unit (metadata and the text of its text documents); the
    full-text index (FTS5 or tsvector) is derived from it."""

    __tablename__ = "arch_unit_text"

    unit_id: str = Field(primary_key=True, foreign_key="arch_unit.id", max_length=40)
    body: str = Field(default="", sa_column=Column(Text, nullable=False))


class Share(SQLModel, table=True):
    """Read-only access to a unit (and what lies below it) for another organisation."""

    __tablename__ = "arch_share"

    id: str = Field(default_factory=_uuid, primary_key=True, max_length=32)
    unit_id: str = Field(foreign_key="arch_unit.id", index=True, max_length=40)
    owner: str = Field(max_length=100)
    grantee: str = Field(index=True, max_length=100)
    until: datetime = Field(sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    created_by: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    revoked_by: str | None = Field(default=None, max_length=255)


class Rule(SQLModel, table=True):
    """A management rule of the référentiel (Vitam's shape)."""

    __tablename__ = "arch_rule"

    rule_id: str = Field(primary_key=True, max_length=100)
    rule_type: str = Field(index=True, max_length=40)
    value: str = Field(max_length=255)
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    duration: int | None = None
    measurement: str | None = Field(default=None, max_length=10)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class UnitRule(SQLModel, table=True):
    """A rule set on a unit itself (inherited ones are computed, see ``Unit``)."""

    __tablename__ = "arch_unit_rule"
    __table_args__ = (UniqueConstraint("unit_id", "category"),)

    id: str = Field(default_factory=_uuid, primary_key=True, max_length=32)
    unit_id: str = Field(foreign_key="arch_unit.id", index=True, max_length=40)
    category: str = Field(max_length=40)
    rule_id: str = Field(foreign_key="arch_rule.rule_id", max_length=100)
    start_date: date = Field(sa_type=Date)  # type: ignore[call-overload]
    final_action: str | None = Field(default=None, max_length=20)


class LogbookEvent(SQLModel, table=True):
    """One PREMIS-style event of the logbook (operations and units' lives). Never updated,
    never deleted; each entry carries the hash of the previous one."""

    __tablename__ = "arch_logbook"

    seq: int = Field(primary_key=True)
    id: str = Field(default_factory=_uuid, unique=True, max_length=32)
    at: datetime = Field(sa_type=DateTime(timezone=True), index=True)  # type: ignore[call-overload]
    event_type: str = Field(index=True, max_length=60)
    outcome: str = Field(default="success", max_length=20)
    organisation: str | None = Field(default=None, index=True, max_length=100)
    unit_id: str | None = Field(default=None, index=True, max_length=40)
    object_id: str | None = Field(default=None, max_length=32)
    operation_id: str | None = Field(default=None, index=True, max_length=32)
    agent: str | None = Field(default=None, max_length=255)
    detail: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class LogbookHead(SQLModel, table=True):
    """The logbook's last sequence number and hash; its row lock serialises appends."""

    __tablename__ = "arch_logbook_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(default=GENESIS, max_length=64)


class Elimination(SQLModel, table=True):
    """A bordereau d'élimination: proposed by an archivist of the producing organisation,
    visaed line by line by the archival authority, kept forever with its certificate."""

    __tablename__ = "arch_elimination"

    id: str = Field(default_factory=_uuid, primary_key=True, max_length=32)
    organisation: str = Field(index=True, max_length=100)
    status: str = Field(default="proposed", max_length=20)  # proposed | executed
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    summary: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    proposed_by: str = Field(max_length=255)
    proposed_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    decided_by: str | None = Field(default=None, max_length=255)
    executed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    certificate: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class EliminationLine(SQLModel, table=True):
    """One unit of a bordereau and the authority's decision on it."""

    __tablename__ = "arch_elimination_line"
    __table_args__ = (UniqueConstraint("elimination_id", "unit_id"),)

    id: str = Field(default_factory=_uuid, primary_key=True, max_length=32)
    elimination_id: str = Field(foreign_key="arch_elimination.id", index=True, max_length=32)
    unit_id: str = Field(foreign_key="arch_unit.id", index=True, max_length=40)
    title: str = Field(max_length=500)
    size: int = Field(default=0, sa_type=BigInteger)  # type: ignore[call-overload]
    appraisal_rule: str | None = Field(default=None, max_length=100)
    appraisal_end: date | None = Field(default=None, sa_type=Date)  # type: ignore[call-overload]
    decision: str = Field(default="pending", max_length=20)  # pending|approved|refused|held
    decided_by: str | None = Field(default=None, max_length=255)
    decided_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class LogbookSeal(SQLModel, table=True):
    """A seal over logbook entries ``first_seq..last_seq``: their Merkle root, chained to
    the previous seal, signed (JWS) with the platform's key."""

    __tablename__ = "arch_logbook_seal"

    seq: int = Field(primary_key=True)
    at: datetime = Field(sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    first_seq: int
    last_seq: int
    merkle_root: str = Field(max_length=64)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    signature: str = Field(sa_column=Column(Text, nullable=False))


class AuditReport(SQLModel, table=True):
    """The outcome of one fixity audit (every copy of every file checked)."""

    __tablename__ = "arch_audit_report"

    id: str = Field(default_factory=_uuid, primary_key=True, max_length=32)
    trigger: str = Field(max_length=20)  # scheduled | on demand
    actor: str | None = Field(default=None, max_length=255)
    started_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)  # type: ignore[call-overload]
    finished_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    checked: int = 0
    copies_ok: int = 0
    missing: int = 0
    corrupt: int = 0
    unavailable: int = 0
    repaired: int = 0
    details: str = Field(default="[]", sa_column=Column(Text, nullable=False))


class IngestContract(SQLModel, table=True):
    """What an organisation may deposit: formats (PRONOM ids or media types, identified by
    content), size and file-count limits, the attachment point in its filing plan."""

    __tablename__ = "arch_ingest_contract"

    organisation: str = Field(primary_key=True, max_length=100)
    formats: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    max_file_bytes: int | None = Field(default=None, sa_type=BigInteger)  # type: ignore[call-overload]
    max_files: int | None = None
    attachment_unit: str | None = Field(default=None, foreign_key="arch_unit.id", max_length=40)
    updated_by: str = Field(max_length=255)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class Operation(SQLModel, table=True):
    """An asynchronous package ingest (BagIt or SEDA), persisted so that any worker can
    process it and answer the poll. ``claimed_until`` is the processing worker's lease."""

    __tablename__ = "arch_operation"

    id: str = Field(default_factory=_uuid, primary_key=True, max_length=32)
    organisation: str = Field(index=True, max_length=100)
    kind: str = Field(max_length=20)  # bagit | seda
    status: str = Field(default="received", index=True, max_length=20)
    actor: str = Field(max_length=255)
    roles: str = Field(default="[]", max_length=500)
    package_path: str = Field(max_length=1000)
    size: int = Field(default=0, sa_type=BigInteger)  # type: ignore[call-overload]
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    claimed_until: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    finished_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    attempts: int = 0
    result: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    reply: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
