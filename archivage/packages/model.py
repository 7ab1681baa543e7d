"""What a standard package (BagIt bag, SEDA transfer) holds once read and verified."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Literal

from plateforme.blobs import StagedFile
from plateforme.errors import InvalidInput

RuleKind = Literal["appraisal", "access", "hold", "storage", "dissemination", "reuse"]

#: SEDA management element of each rule kind, in the order the schema requires.
SEDA_RULE_ELEMENTS: dict[RuleKind, str] = {
    "storage": "StorageRule",
    "appraisal": "AppraisalRule",
    "access": "AccessRule",
    "dissemination": "DisseminationRule",
    "reuse": "ReuseRule",
    "hold": "HoldRule",
}


@dataclass(frozen=True)
class Reason:
    """Why a package is refused: a stable ``code`` (for programs) and a French ``message``."""

    code: str
    message: str
    path: str | None = None

    def __str__(self) -> str:
        return self.message


class PackageRefused(InvalidInput):
    """The package is refused; ``reasons`` lists every problem found, not just the first.

    When the SEDA manifest could be read, ``message_identifier`` and ``transferring_agency``
    hold its values, for the ``ArchiveTransferReply`` (``MessageRequestIdentifier``).
    """

    title = "Paquet refusé"

    def __init__(self, reasons: list[Reason], *, message_identifier: str | None = None,
                 transferring_agency: str | None = None) -> None:
        super().__init__("Paquet refusé : " + " ; ".join(r.message for r in reasons[:20])
                         + (" ; …" if len(reasons) > 20 else ""))
        self.reasons = reasons
        self.message_identifier = message_identifier
        self.transferring_agency = transferring_agency


@dataclass
class PackageFile:
    """One file of a package.

    Attributes:
        path: relative POSIX path inside the package (``data/…`` in a bag, the ``Uri`` in SEDA).
        size: size in bytes (verified).
        digests: lowercase hex digests by hashlib name (``sha512`` always; verified).
        source: where the bytes are on disk (None when describing a file for an export).
        declared_format: the format the package declares (PRONOM ``FormatId`` or MIME type).
        mime_type: the declared MIME type, when given.
        identifier: the SEDA ``BinaryDataObject`` id.
        filename: the original file name (SEDA ``FileInfo/Filename``, else the last path part).
    """

    path: str
    size: int
    digests: dict[str, str] = field(default_factory=dict)
    source: Path | None = None
    declared_format: str | None = None
    mime_type: str | None = None
    identifier: str | None = None
    filename: str | None = None

    @property
    def name(self) -> str:
        return self.filename or self.path.rsplit("/", 1)[-1]

    def staged(self) -> StagedFile:
        """The extracted file as a :class:`~plateforme.blobs.StagedFile`, ready for
        ``ReplicatedBlobs.put_file(f.digests["sha512"], f.source)`` or a deposit."""
        if self.source is None:
            raise ValueError(f"{self.path}: no extracted file")
        return StagedFile(self.source, self.size, dict(self.digests))


@dataclass
class PackageRule:
    """A management rule applied to a unit (SEDA ``Management``).

    ``final_action`` is the category's final action: ``Keep``/``Destroy`` for appraisal (sort
    final: conserver/détruire), ``RestrictAccess``/``Transfer``/``Copy`` for storage.
    ``rule_id`` is None for a category that only blocks inheritance.
    """

    kind: RuleKind
    rule_id: str | None
    start_date: date | None = None
    final_action: str | None = None
    prevent_inheritance: bool = False
    ref_non_rule_ids: list[str] = field(default_factory=list)
    hold_end_date: date | None = None
    hold_reason: str | None = None


@dataclass
class PackageUnit:
    """An archive unit (SEDA ``ArchiveUnit``): its description, rules, children and files."""

    identifier: str
    title: str
    description: str | None = None
    level: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    keywords: list[str] = field(default_factory=list)
    classification: str | None = None
    language: str | None = None
    document_type: str | None = None
    originating_agency: str | None = None
    system_id: str | None = None
    rules: list[PackageRule] = field(default_factory=list)
    children: list[PackageUnit] = field(default_factory=list)
    file_refs: list[str] = field(default_factory=list)

    def walk(self) -> Iterator[PackageUnit]:
        """This unit, then its descendants, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class Package:
    """A verified package.

    Attributes:
        kind: ``bagit`` or ``seda``.
        identifier: the transfer's ``MessageIdentifier``, or the bag's ``External-Identifier``.
        version: the standard followed, e.g. ``SEDA 2.2`` or ``BagIt 1.0``.
        files: every payload file, verified against its declared digest and size.
        units: the root archive units (a bag gives one unit holding every payload file).
        root: the folder holding the extracted package.
        metadata: header values (``Date``, ``Comment``, bag-info tags…).
        archival_agency / transferring_agency: the SEDA organisations' identifiers.
    """

    kind: Literal["bagit", "seda"]
    identifier: str | None
    version: str
    files: list[PackageFile]
    units: list[PackageUnit]
    root: Path
    metadata: dict[str, str] = field(default_factory=dict)
    archival_agency: str | None = None
    transferring_agency: str | None = None
    date: datetime | None = None
    owned_root: bool = False

    def file(self, path: str) -> PackageFile:
        for item in self.files:
            if item.path == path:
                return item
        raise KeyError(path)

    def all_units(self) -> Iterator[PackageUnit]:
        for unit in self.units:
            yield from unit.walk()

    def cleanup(self) -> None:
        """Delete the extracted files when this library created the folder."""
        if self.owned_root:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(self.root)
