"""Elimination (Code du patrimoine, L212-2): no public record is destroyed without the visa
of the archives authority, and this is the only path that destroys anything.

1. :meth:`EliminationService.eligible` lists the organisation's units whose DUA has expired
   with sort final ``détruire`` and no hold;
2. an archivist of the producing organisation proposes a bordereau (:meth:`propose`);
3. a person holding ``archival_authority`` approves or refuses each line (:meth:`decide`);
   when no line is pending, the bordereau is carried out: every copy of every file of the
   approved units is destroyed, their metadata is kept, and a signed destruction
   certificate is attached to the bordereau, which is kept forever. Refused lines stay.
"""

from __future__ import annotations

import builtins
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from archivage import fulltext, logbook
from archivage.config import ArchivesSettings
from archivage.identifiers import ark
from archivage.interfaces import Signer
from archivage.models import DataObject, Elimination, EliminationLine, Unit
from archivage.repository import live_references, subtree
from archivage.schemas import Actor
from archivage.services.spaces import release
from plateforme.audit import AuditRecord, append
from plateforme.blobs import ReplicatedBlobs
from plateforme.clock import utcnow
from plateforme.errors import Conflict, Forbidden, InvalidInput, NotFound

log = logging.getLogger("archivage.eliminations")

DECISIONS = ("approved", "refused")


@dataclass(frozen=True)
class LineDecision:
    unit_id: str
    decision: str
    comment: str | None = None


def _eligible(unit: Unit, today: date) -> bool:
    return (unit.status == "active" and unit.final_action == "détruire"
            and unit.appraisal_end is not None and unit.appraisal_end < today
            and not unit.on_hold)


def _iso(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "tzinfo") and hasattr(value, "hour"):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return value.isoformat()


class EliminationService:
    def __init__(self, engine: Engine, blobs: ReplicatedBlobs, *, config: ArchivesSettings,
                 signer: Signer | None = None) -> None:
        self._engine = engine
        self._blobs = blobs
        self._config = config
        self._signer = signer

    def _archivist(self, actor: Actor) -> str:
        if not actor.organisation:
            raise Forbidden("Ce jeton n'agit pour aucune organisation.")
        if actor.is_client or "archivist" not in actor.roles:
            raise Forbidden("Seul un archiviste de l'organisation productrice propose une "
                            "élimination.")
        return actor.organisation

    def eligible(self, actor: Actor, *, limit: int = 500) -> list[Unit]:
        """Units of the caller's organisation whose elimination may be proposed (items and
        files alike), not already on a pending bordereau."""
        if not actor.organisation:
            raise Forbidden("Ce jeton n'agit pour aucune organisation.")
        today = utcnow().date()
        with Session(self._engine, expire_on_commit=False) as session:
            pending = select(EliminationLine.unit_id).where(
                EliminationLine.decision == "pending")
            rows = session.exec(select(Unit).where(
                Unit.organisation == actor.organisation, Unit.status == "active",
                Unit.final_action == "détruire", col(Unit.appraisal_end) < today,
                col(Unit.on_hold).is_(False), col(Unit.id).notin_(pending))
                .order_by(col(Unit.appraisal_end), col(Unit.id)).limit(limit)).all()
            return list(rows)

    def propose(self, actor: Actor, unit_ids: Sequence[str], *, reason: str | None = None
                ) -> Elimination:
        organisation = self._archivist(actor)
        ids = list(dict.fromkeys(unit_ids))
        if not ids:
            raise InvalidInput("Un bordereau contient au moins une unité.", field="units")
        if len(ids) > 5000:
            raise InvalidInput("5000 unités au plus par bordereau.", field="units")
        today = utcnow().date()
        with Session(self._engine, expire_on_commit=False) as session:
            units: list[Unit] = []
            for unit_id in ids:
                unit = session.get(Unit, unit_id)
                if unit is None or unit.organisation != organisation:
                    raise NotFound(f"Unité {unit_id} introuvable.", field="units")
                if not _eligible(unit, today):
                    raise InvalidInput(
                        f"L'unité « {unit.title} » n'est pas éliminable : DUA non échue, sort "
                        "final autre que « détruire » ou gel en cours.", field="units")
                units.append(unit)
            on_pending = session.exec(select(EliminationLine.unit_id).where(
                col(EliminationLine.unit_id).in_(ids),
                EliminationLine.decision == "pending")).first()
            if on_pending:
                raise Conflict(f"L'unité {on_pending} figure déjà sur un bordereau en cours.")
            elimination = Elimination(organisation=organisation, reason=reason,
                                      proposed_by=actor.label)
            session.add(elimination)
            session.flush()
            lines = []
            for unit in units:
                size = self._size(session, unit)
                line = EliminationLine(elimination_id=elimination.id, unit_id=unit.id,
                                       title=unit.title, size=size,
                                       appraisal_rule=unit.appraisal_rule,
                                       appraisal_end=unit.appraisal_end)
                session.add(line)
                lines.append(line)
            elimination.summary = json.dumps(self._summary(units, lines), ensure_ascii=False)
            session.add(elimination)
            logbook.append(session, "elimination proposal", organisation=organisation,
                           operation_id=elimination.id, agent=actor.label,
                           detail={"units": ids, "reason": reason})
            append(session, AuditRecord(
                action="archives.elimination.propose", actor=actor.label,
                organisation=organisation, target=elimination.id, address=actor.address,
                reason=reason, details={"units": len(ids)}))
            session.commit()
            return elimination

    @staticmethod
    def _size(session: Session, unit: Unit) -> int:
        ids = [u.id for u in subtree(session=session, unit=unit)]
        total = session.exec(select(func.coalesce(func.sum(DataObject.size), 0)).where(
            col(DataObject.unit_id).in_(ids), col(DataObject.destroyed_at).is_(None))).one()
        return int(total)

    @staticmethod
    def _summary(units: Sequence[Unit], lines: Sequence[EliminationLine]) -> dict[str, Any]:
        starts = [u.start_date for u in units if u.start_date]
        ends = [u.end_date for u in units if u.end_date]
        return {
            "producers": sorted({u.producer for u in units if u.producer}),
            "typology": sorted({u.document_type for u in units if u.document_type}),
            "extreme_dates": [min(starts).isoformat() if starts else None,
                              max(ends).isoformat() if ends else None],
            "units": len(units), "bytes": sum(line.size for line in lines),
            "rules": sorted({u.appraisal_rule for u in units if u.appraisal_rule}),
        }

    def _visible(self, session: Session, actor: Actor, elimination_id: str) -> Elimination:
        elimination = session.get(Elimination, elimination_id)
        if elimination is None or not (actor.is_authority
                                       or elimination.organisation == actor.organisation):
            raise NotFound("Bordereau d'élimination introuvable.")
        return elimination

    def list(self, actor: Actor) -> builtins.list[Elimination]:
        """The caller's organisation's bordereaux; every bordereau for the authority."""
        with Session(self._engine, expire_on_commit=False) as session:
            statement = select(Elimination).order_by(col(Elimination.proposed_at).desc())
            if not actor.is_authority:
                statement = statement.where(Elimination.organisation == actor.organisation)
            return list(session.exec(statement.limit(500)).all())

    def get(self, actor: Actor, elimination_id: str
            ) -> tuple[Elimination, builtins.list[EliminationLine]]:
        with Session(self._engine, expire_on_commit=False) as session:
            elimination = self._visible(session, actor, elimination_id)
            lines = session.exec(select(EliminationLine).where(
                EliminationLine.elimination_id == elimination.id)
                .order_by(col(EliminationLine.title), col(EliminationLine.id))).all()
            return elimination, list(lines)

    def decide(self, actor: Actor, elimination_id: str, decisions: Sequence[LineDecision]
               ) -> Elimination:
        """The visa, line by line. Once no line is pending, the bordereau is carried out."""
        if actor.is_client or not actor.is_authority:
            raise Forbidden("Seule l'autorité d'archives donne ou refuse le visa.")
        now = utcnow()
        with Session(self._engine, expire_on_commit=False) as session:
            elimination = self._visible(session, actor, elimination_id)
            if elimination.status != "proposed":
                raise Conflict("Ce bordereau est déjà exécuté.")
            lines = {line.unit_id: line for line in session.exec(select(EliminationLine).where(
                EliminationLine.elimination_id == elimination.id)).all()}
            for item in decisions:
                line = lines.get(item.unit_id)
                if line is None:
                    raise InvalidInput(f"L'unité {item.unit_id} n'est pas sur ce bordereau.",
                                       field="lines")
                if item.decision not in DECISIONS:
                    raise InvalidInput("Décision : approved ou refused.", field="lines")
                if line.decision != "pending":
                    raise Conflict(f"La ligne {item.unit_id} a déjà reçu une décision.")
                if item.decision == "refused" and not (item.comment or "").strip():
                    raise InvalidInput("Un refus de visa est motivé.", field="lines")
                line.decision = item.decision
                line.decided_by = actor.label
                line.decided_at = now
                line.comment = item.comment
                session.add(line)
                logbook.append(session, "elimination visa", organisation=elimination.organisation,
                               unit_id=line.unit_id, operation_id=elimination.id,
                               agent=actor.label, outcome=item.decision,
                               detail={"comment": item.comment})
            append(session, AuditRecord(
                action="archives.elimination.visa", actor=actor.label,
                organisation=elimination.organisation, target=elimination.id,
                address=actor.address,
                details={d.unit_id: d.decision for d in decisions}))
            elimination.decided_by = actor.label
            session.add(elimination)
            session.commit()
            if any(line.decision == "pending" for line in lines.values()):
                return elimination
        return self._execute(actor, elimination_id)

    def _execute(self, actor: Actor, elimination_id: str) -> Elimination:
        """Destroy every copy of the approved units' files, keep their metadata, sign the
        certificate. Idempotent: a crash half-way is finished by calling it again."""
        today = utcnow().date()
        with Session(self._engine, expire_on_commit=False) as session:
            elimination = session.get(Elimination, elimination_id)
            assert elimination is not None
            lines = session.exec(select(EliminationLine).where(
                EliminationLine.elimination_id == elimination.id)).all()
            destroyed: list[dict[str, Any]] = []
            freed = 0
            for line in lines:
                if line.decision != "approved":
                    continue
                unit = session.get(Unit, line.unit_id)
                assert unit is not None
                if unit.status == "eliminated":
                    continue  # done by an earlier, interrupted run
                if not _eligible(unit, today):  # a hold or a rule change after the visa wins
                    line.decision = "held"
                    line.comment = ((line.comment or "") + " (gel ou règle modifiée après "
                                    "le visa : non détruit)").strip()
                    session.add(line)
                    continue
                for member in subtree(session=session, unit=unit):
                    if member.on_hold and member.id != unit.id:
                        continue
                    for obj in session.exec(select(DataObject).where(
                            DataObject.unit_id == member.id,
                            col(DataObject.destroyed_at).is_(None))).all():
                        obj.destroyed_at = utcnow()
                        session.add(obj)
                        session.flush()
                        if not live_references(session=session, blob_key=obj.blob_key):
                            self._blobs.delete_everywhere(obj.blob_key)
                        freed += obj.size
                        destroyed.append({"unit": member.id, "ark": ark(self._config.naan,
                                                                         member.id),
                                          "object": obj.id, "filename": obj.filename,
                                          "size": obj.size, "sha512": obj.sha512,
                                          "copies": json.loads(obj.locations)})
                    member.status = "eliminated"
                    member.eliminated_at = utcnow()
                    session.add(member)
                    fulltext.set_text(session, member.id, member.title)
                    logbook.append(session, "deletion", organisation=member.organisation,
                                   unit_id=member.id, operation_id=elimination.id,
                                   agent=actor.label, detail={"elimination": elimination.id})
            release(session, elimination.organisation, freed)
            elimination.status = "executed"
            elimination.executed_at = utcnow()
            certificate = {
                "type": "certificat de destruction",
                "elimination": elimination.id, "organisation": elimination.organisation,
                "proposed_by": elimination.proposed_by,
                "proposed_at": _iso(elimination.proposed_at),
                "visa_by": elimination.decided_by, "executed_at": _iso(elimination.executed_at),
                "legal_basis": "Code du patrimoine, article L212-2",
                "summary": json.loads(elimination.summary),
                "lines": [{"unit": line.unit_id, "title": line.title,
                           "decision": line.decision, "decided_by": line.decided_by,
                           "comment": line.comment, "appraisal_rule": line.appraisal_rule,
                           "appraisal_end": _iso(line.appraisal_end)} for line in lines],
                "destroyed": destroyed, "bytes": freed, "date": today.isoformat(),
            }
            payload = json.dumps(certificate, ensure_ascii=False, sort_keys=True)
            signature = self._signer.sign(payload.encode()) if self._signer else None
            elimination.certificate = json.dumps({"certificate": certificate,
                                                  "jws": signature}, ensure_ascii=False)
            session.add(elimination)
            logbook.append(session, "elimination", organisation=elimination.organisation,
                           operation_id=elimination.id, agent=actor.label,
                           detail={"files": len(destroyed), "bytes": freed})
            append(session, AuditRecord(
                action="archives.elimination.execute", actor=actor.label,
                organisation=elimination.organisation, target=elimination.id,
                address=actor.address, details={"files": len(destroyed), "bytes": freed}))
            session.commit()
            return elimination

    def certificate(self, actor: Actor, elimination_id: str) -> dict[str, Any]:
        with Session(self._engine, expire_on_commit=False) as session:
            elimination = self._visible(session, actor, elimination_id)
            if elimination.certificate is None:
                raise NotFound("Ce bordereau n'est pas encore exécuté : pas de certificat.")
            return dict(json.loads(elimination.certificate))
