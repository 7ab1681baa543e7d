"""Standard archival packages: BagIt bags (RFC 8493) and SEDA 2.2 transfers.

A pure library (no database, no web framework): read and verify an incoming package into a
:class:`Package`, refuse it with every reason (:class:`PackageRefused`), write the
``ArchiveTransferReply``, and write exports (a BagIt bag carrying a SEDA manifest).

Example::

    try:
        package = read_seda_zip(upload, schema_dir=settings.seda_schema_dir, workdir=tmp)
    except PackageRefused as refused:
        reply = seda_reply(message_id, archival_agency="CTM", transferring_agency=org,
                           accepted=False, reasons=refused.reasons)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from archivage.packages.model import (
    Package,
    PackageFile,
    PackageRefused,
    PackageRule,
    PackageUnit,
    Reason,
    RuleKind,
)
from archivage.packages.safezip import ExtractedFile, ZipLimits, safe_extract

if TYPE_CHECKING:
    from archivage.packages.bags import (
        BAGIT_VERSION,
        DigestMismatch,
        read_bagit,
        write_bagit,
        zip_bag,
    )
    from archivage.packages.seda import (
        SEDA_TAG_FILE,
        SEDA_VERSION,
        build_seda_zip,
        load_schema,
        read_seda_zip,
        seda_manifest_for_export,
        seda_reply,
        validate_seda,
    )

# The BagIt and SEDA modules (with bagit and lxml: ~6.5 MB per process) are imported the
# first time one of their names is used (a deposit, an export), not when a worker starts.
_LAZY = {
    **dict.fromkeys(["BAGIT_VERSION", "DigestMismatch", "read_bagit", "write_bagit",
                     "zip_bag"], "bags"),
    **dict.fromkeys(["SEDA_TAG_FILE", "SEDA_VERSION", "build_seda_zip", "load_schema",
                     "read_seda_zip", "seda_manifest_for_export", "seda_reply",
                     "validate_seda"], "seda")
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "BAGIT_VERSION",
    "DigestMismatch",
    "ExtractedFile",
    "Package",
    "PackageFile",
    "PackageRefused",
    "PackageRule",
    "PackageUnit",
    "Reason",
    "RuleKind",
    "SEDA_TAG_FILE",
    "SEDA_VERSION",
    "ZipLimits",
    "build_seda_zip",
    "load_schema",
    "read_bagit",
    "read_seda_zip",
    "safe_extract",
    "seda_manifest_for_export",
    "seda_reply",
    "validate_seda",
    "write_bagit",
    "zip_bag",
]
