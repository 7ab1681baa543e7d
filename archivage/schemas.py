"""What callers send and receive; who is acting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

LEVELS = ("series", "file", "item")
WRITER_ROLES = ("archivist", "org_admin")
AUTHORITY_ROLE = "archival_authority"


@dataclass(frozen=True)
class Actor:
    """Who acts: a person of an organisation, or a client acting for it. Built by the API
    from the access token (the services never see the web framework)."""

    subject: str
    organisation: str | None
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    is_client: bool = False
    address: str | None = None

    @property
    def label(self) -> str:
        return f"client:{self.subject}" if self.is_client else self.subject

    @property
    def may_write(self) -> bool:
        """Depositing and sharing: a client acting for the organisation, or an archivist or
        an administrator of it."""
        return self.is_client or bool(self.roles & set(WRITER_ROLES))

    @property
    def is_authority(self) -> bool:
        return AUTHORITY_ROLE in self.roles


class FileMetadata(BaseModel):
    """Per-file details of a deposit, in the order of the file parts."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=500)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    sha512: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{128}$")


class RuleAssignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule_id: str = Field(max_length=100)
    start_date: date | None = None
    final_action: Literal["conserver", "détruire", "trier"] | None = None


class UnitMetadata(BaseModel):
    """Descriptive metadata of an archive unit."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=20000)
    producer: str | None = Field(default=None, max_length=255)
    start_date: date | None = None
    end_date: date | None = None
    keywords: list[str] = Field(default_factory=list, max_length=50)
    classification: str | None = Field(default=None, max_length=100)
    language: str | None = Field(default=None, max_length=20)
    document_type: str | None = Field(default=None, max_length=100)
    level: Literal["series", "file", "item"] | None = None
    parent: str | None = Field(default=None, max_length=40)
    rules: list[RuleAssignment] = Field(default_factory=list, max_length=10)

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        return [k.strip()[:100] for k in value if k.strip()]

    @field_validator("end_date")
    @classmethod
    def _dates(cls, value: date | None, info) -> date | None:  # type: ignore[no-untyped-def]
        start = info.data.get("start_date")
        if value and start and value < start:
            raise ValueError("la date de fin précède la date de début")
        return value


class DepositMetadata(UnitMetadata):
    """A deposit: the unit's metadata, the optional per-file details and the client's
    deposit identifier (retries with the same identifier give the same deposit)."""

    deposit_id: str | None = Field(default=None, min_length=1, max_length=200,
                                   pattern=r"^[\x21-\x7e]+$")
    files: list[FileMetadata] = Field(default_factory=list, max_length=10000)


class ShareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organisation: str = Field(min_length=1, max_length=100)
    until: datetime
    reason: str | None = Field(default=None, max_length=500)


class RuleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[RuleAssignment] = Field(default_factory=list, max_length=10)
    block: list[str] = Field(default_factory=list, max_length=3)
    reason: str = Field(min_length=3, max_length=1000)


class EliminationProposal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    units: list[str] = Field(min_length=1, max_length=5000)
    reason: str | None = Field(default=None, max_length=2000)


class VisaLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit_id: str = Field(max_length=40)
    decision: Literal["approved", "refused"]
    comment: str | None = Field(default=None, max_length=2000)


class Visa(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: list[VisaLine] = Field(min_length=1, max_length=5000)


class ContractRequest(BaseModel):
    """An ingest contract; an empty ``formats`` list accepts every format."""

    model_config = ConfigDict(extra="forbid")

    formats: list[str] = Field(default_factory=list, max_length=200)
    max_file_bytes: int | None = Field(default=None, ge=1)
    max_files: int | None = Field(default=None, ge=1, le=100000)
    attachment_unit: str | None = Field(default=None, max_length=40)
    reason: str | None = Field(default=None, max_length=1000)
