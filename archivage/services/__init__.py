"""The archival service's use cases, gathered by :class:`Archives`."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from archivage import fulltext
from archivage.config import ArchivesSettings
from archivage.interfaces import OrganisationDirectory, Signer
from archivage.services.deposits import DepositService, IncomingFile
from archivage.services.eliminations import EliminationService, LineDecision
from archivage.services.integrity import IntegrityService
from archivage.services.rules import RuleService
from archivage.services.spaces import SpaceService, SpaceUsage
from archivage.services.units import UnitService
from plateforme.blobs import ReplicatedBlobs

__all__ = ["Archives", "IncomingFile", "LineDecision", "SpaceUsage"]


class Archives:
    """Every use case of the archival service, built once by the composition root.

    ``spaces`` is the service catalogue's contract (``set_quota``, ``close_space``,
    ``usage``).
    """

    def __init__(self, *, engine: Engine, blobs: ReplicatedBlobs, data_dir: Path,
                 config: ArchivesSettings | None = None,
                 organisations: OrganisationDirectory | None = None,
                 signer: Signer | None = None) -> None:
        self.config = config or ArchivesSettings()
        self.engine = engine
        self.blobs = blobs
        self.spaces = SpaceService(engine, default_quota=self.config.default_quota_bytes)
        self.deposits = DepositService(engine, blobs, data_dir=data_dir, config=self.config)
        self.units = UnitService(engine, blobs, config=self.config, organisations=organisations)
        self.rules = RuleService(engine)
        self.eliminations = EliminationService(engine, blobs, config=self.config,
                                               signer=signer)
        self.integrity = IntegrityService(engine, blobs, signer=signer)

    def start(self) -> dict[str, int]:
        """At start-up: the derived full-text index, then crash leftovers swept."""
        fulltext.ensure_index(self.engine)
        return self.deposits.sweep()
