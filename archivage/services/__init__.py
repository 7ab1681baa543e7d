"""The archival service's use cases, gathered by :class:`Archives`."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from archivage import fulltext
from archivage.config import ArchivesSettings
from archivage.interfaces import OrganisationDirectory, Signer
from archivage.repository import subtree
from archivage.schemas import Actor
from archivage.services.contracts import ContractService
from archivage.services.deposits import DepositService, IncomingFile
from archivage.services.eliminations import EliminationService, LineDecision
from archivage.services.integrity import IntegrityService
from archivage.services.operations import OperationService
from archivage.services.rules import RuleService
from archivage.services.spaces import SpaceService, SpaceUsage
from archivage.services.units import UnitService
from plateforme.audit import AuditRecord, append
from plateforme.blobs import ReplicatedBlobs
from plateforme.clock import utcnow
from plateforme.kv import KeyValueStore

__all__ = ["Archives", "IncomingFile", "LineDecision", "SpaceUsage"]


class Archives:
    """Every use case of the archival service, built once by the composition root.

    ``spaces`` is the service catalogue's contract (``set_quota``, ``close_space``,
    ``usage``).
    """

    def __init__(self, *, engine: Engine, blobs: ReplicatedBlobs, data_dir: Path,
                 config: ArchivesSettings | None = None,
                 organisations: OrganisationDirectory | None = None,
                 signer: Signer | None = None, schema_dir: Path | None = None) -> None:
        self.config = config or ArchivesSettings()
        self.engine = engine
        self.blobs = blobs
        self.spaces = SpaceService(engine, default_quota=self.config.default_quota_bytes)
        self.deposits = DepositService(engine, blobs, data_dir=data_dir, config=self.config)
        self.units = UnitService(engine, blobs, config=self.config, organisations=organisations)
        self.rules = RuleService(engine)
        self.contracts = ContractService(engine)
        self.eliminations = EliminationService(engine, blobs, config=self.config,
                                               signer=signer)
        self.integrity = IntegrityService(engine, blobs, signer=signer)
        self.operations = OperationService(engine, self.deposits, data_dir=data_dir,
                                           config=self.config, schema_dir=schema_dir)

    def export(self, actor: Actor, unit_id: str, dest: Path) -> Path:
        """A unit and what lies below it as a zipped BagIt bag (reversibility); the owner
        and the organisations it is shared with may export it. Logged."""
        with Session(self.engine, expire_on_commit=False) as session:
            unit, access = self.units._visible(session, actor, unit_id)
            for below in subtree(session=session, unit=unit):  # the bag holds every file
                self.units.require_communicable(session, actor, below, access)
            path = self.operations.export(unit, session, dest, agent=actor.label)
            append(session, AuditRecord(
                action="archives.export", actor=actor.label, organisation=actor.organisation,
                target=self.units.ark(unit.id), address=actor.address))
            session.commit()
            return path

    def periodic(self, *, lock: KeyValueStore | None = None) -> dict[str, object]:
        """The scheduled work, run by the maintenance task of every worker: seal the logbook
        when a seal is due, and run the fixity audit when the last one is older than the
        audit interval. ``lock`` (the shared key-value store) lets one worker do it at a
        time."""
        done: dict[str, object] = {}
        if lock is not None and not lock.set("archives:periodic", "1", ttl=600, nx=True):
            return done
        try:
            if self.config.seal_interval_seconds:
                sealed = self.integrity.seal(agent="planificateur")
                done["seal"] = sealed.seq if sealed else None
            interval = self.config.audit_interval_seconds
            last = self.integrity.last_run()
            if interval and (last is None or (utcnow() - (
                    last if last.tzinfo else last.replace(tzinfo=UTC))).total_seconds()
                    >= interval):
                done["audit"] = self.integrity.audit(trigger="scheduled",
                                                     actor="planificateur").id
        finally:
            if lock is not None:
                lock.delete("archives:periodic")
        return done

    def start(self) -> dict[str, int]:
        """At start-up: the derived full-text index, then crash leftovers swept."""
        fulltext.ensure_index(self.engine)
        return self.deposits.sweep()
