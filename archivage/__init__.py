"""The archival service: deposits, management rules, integrity, elimination, sharing.

The public API (what ``admin_ui`` and the composition root may use) is listed in ``__all__``.
The service catalogue's contract is ``Archives.spaces``: ``set_quota(organisation,
quota_bytes, *, actor, reason)``, ``close_space(organisation, *, actor, reason)`` and
``usage(organisation) -> SpaceUsage``.
"""

from archivage.config import ArchivesSettings
from archivage.schemas import (
    Actor,
    ContractRequest,
    DepositMetadata,
    RuleAssignment,
    RuleChange,
    ShareRequest,
    UnitMetadata,
)
from archivage.services import Archives, IncomingFile, LineDecision, SpaceUsage
from archivage.services.rules import ReferentialRefused
from archivage.services.spaces import SpaceService

__all__ = [
    "Actor",
    "Archives",
    "ArchivesSettings",
    "ContractRequest",
    "DepositMetadata",
    "IncomingFile",
    "LineDecision",
    "ReferentialRefused",
    "RuleAssignment",
    "RuleChange",
    "ShareRequest",
    "SpaceService",
    "SpaceUsage",
    "UnitMetadata",
]
