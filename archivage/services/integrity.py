"""Integrity: fixity audits of every copy, and seals over the logbook.

A **seal** covers the logbook entries written since the previous seal: the Merkle root of
their hashes (RFC 6962-style: leaves and nodes hashed with distinct prefixes), chained to the
previous seal's hash, and signed (JWS) with the platform's key. :meth:`verify` recomputes
the entry chain, every seal's root, link, hash and signature, and names the first broken
entry or seal.

A **fixity audit** recomputes the SHA-512 of every copy of every live file, repairs missing
or corrupt copies from a healthy one, logs each finding in the logbook, and stores a report.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from archivage import logbook
from archivage.interfaces import Signer
from archivage.models import GENESIS, AuditReport, DataObject, LogbookEvent, LogbookSeal
from plateforme import metrics
from plateforme.audit import AuditRecord, append
from plateforme.blobs import NoHealthyCopy, ReplicatedBlobs
from plateforme.clock import utcnow

log = logging.getLogger("archivage.integrity")


def merkle_root(leaves: list[str]) -> str:
    """Merkle tree hash (RFC 6962 §2.1) over hex leaves; the empty tree is SHA-256("")."""
    if not leaves:
        return hashlib.sha256(b"").hexdigest()
    level = [hashlib.sha256(b"\x00" + bytes.fromhex(h)).digest() for h in leaves]
    while len(level) > 1:
        nxt = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
               for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0].hex()


def _seal_body(seal: LogbookSeal) -> bytes:
    at = seal.at if seal.at.tzinfo else seal.at.replace(tzinfo=UTC)
    body = {"seq": seal.seq, "at": at.astimezone(UTC).replace(tzinfo=None)
            .isoformat(timespec="milliseconds"), "first_seq": seal.first_seq,
            "last_seq": seal.last_seq, "merkle_root": seal.merkle_root,
            "prev_hash": seal.prev_hash}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class VerificationReport:
    ok: bool
    entries: int
    seals: int
    first_broken_entry: int | None = None
    first_broken_seal: int | None = None
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)


class IntegrityService:
    def __init__(self, engine: Engine, blobs: ReplicatedBlobs, *,
                 signer: Signer | None = None) -> None:
        self._engine = engine
        self._blobs = blobs
        self._signer = signer

    # -- seals ---------------------------------------------------------------------------

    def seal(self, *, agent: str = "système") -> LogbookSeal | None:
        """Seal the entries written since the last seal (None when there are none)."""
        with Session(self._engine, expire_on_commit=False) as session:
            last = session.exec(select(LogbookSeal).order_by(
                col(LogbookSeal.seq).desc())).first()
            first_seq = (last.last_seq + 1) if last else 1
            hashes = list(session.exec(select(LogbookEvent.hash).where(
                col(LogbookEvent.seq) >= first_seq).order_by(col(LogbookEvent.seq))).all())
            if not hashes:
                return None
            now = utcnow()
            seal = LogbookSeal(seq=(last.seq + 1) if last else 1,
                               at=now.replace(microsecond=(now.microsecond // 1000) * 1000),
                               first_seq=first_seq, last_seq=first_seq + len(hashes) - 1,
                               merkle_root=merkle_root(hashes),
                               prev_hash=last.hash if last else GENESIS, hash="", signature="")
            body = _seal_body(seal)
            seal.hash = hashlib.sha256(body).hexdigest()
            seal.signature = self._signer.sign(body) if self._signer else ""
            session.add(seal)
            session.commit()
            return seal

    def verify(self) -> VerificationReport:
        with Session(self._engine, expire_on_commit=False) as session:
            chain = logbook.verify(session)
            seals = list(session.exec(select(LogbookSeal).order_by(col(LogbookSeal.seq))).all())
            report = VerificationReport(chain.ok, chain.checked, len(seals),
                                        first_broken_entry=chain.first_broken,
                                        reason=chain.reason)
            prev = GENESIS
            expected_first = 1
            for seal in seals:
                problem = None
                if seal.prev_hash != prev:
                    problem = "lien vers le scellement précédent rompu"
                elif seal.first_seq != expected_first:
                    problem = "entrées non couvertes entre deux scellements"
                elif hashlib.sha256(_seal_body(seal)).hexdigest() != seal.hash:
                    problem = "scellement modifié"
                else:
                    hashes = list(session.exec(select(LogbookEvent.hash).where(
                        col(LogbookEvent.seq) >= seal.first_seq,
                        col(LogbookEvent.seq) <= seal.last_seq)
                        .order_by(col(LogbookEvent.seq))).all())
                    if merkle_root(hashes) != seal.merkle_root:
                        problem = "racine de Merkle différente : entrées scellées modifiées"
                        if report.first_broken_entry is None:
                            report.first_broken_entry = self._first_changed(session, seal)
                    elif self._signer is not None:
                        if not seal.signature:
                            report.warnings.append(f"scellement {seal.seq} non signé")
                        elif self._signer.verify(seal.signature) != _seal_body(seal):
                            if self._signer.key_published(seal.signature):
                                problem = "signature invalide"
                            else:  # keys rotate: the chain and the root still hold
                                report.warnings.append(
                                    f"scellement {seal.seq} signé par une clé retirée depuis : "
                                    "signature non vérifiable avec les clés publiées")
                if problem:
                    report.ok = False
                    report.first_broken_seal = seal.seq
                    report.reason = report.reason or problem
                    break
                prev = seal.hash
                expected_first = seal.last_seq + 1
        if not report.ok:
            metrics.record_audit_failure("archive_logbook")
        return report

    @staticmethod
    def _first_changed(session: Session, seal: LogbookSeal) -> int | None:
        for event in session.exec(select(LogbookEvent).where(
                col(LogbookEvent.seq) >= seal.first_seq, col(LogbookEvent.seq) <= seal.last_seq)
                .order_by(col(LogbookEvent.seq))).all():
            if logbook.digest(event.prev_hash, event) != event.hash:
                return event.seq
        return seal.first_seq

    # -- fixity audit --------------------------------------------------------------------

    def audit(self, *, trigger: str = "on demand", actor: str | None = None,
              repair: bool = True) -> AuditReport:
        started = utcnow()
        with Session(self._engine, expire_on_commit=False) as session:
            keys = list(session.exec(select(DataObject.blob_key).where(
                col(DataObject.destroyed_at).is_(None)).distinct()).all())
        counts = {"ok": 0, "missing": 0, "corrupt": 0, "unavailable": 0}
        findings: list[dict[str, Any]] = []
        repaired = 0
        for key in keys:
            statuses = self._blobs.check(key, "sha512", key)
            for status in statuses:
                counts[status.state] += 1
            bad = [s for s in statuses if s.state in ("missing", "corrupt")]
            if not bad and not any(s.state == "unavailable" for s in statuses):
                continue
            finding: dict[str, Any] = {"blob": key, "copies": {
                s.location: s.state for s in statuses}}
            if bad and repair:
                try:
                    done = self._blobs.repair(key, "sha512", key)
                    finding["repaired"] = done
                    repaired += len(done)
                except NoHealthyCopy:
                    finding["repaired"] = []
                    finding["error"] = "aucune copie saine"
            findings.append(finding)
        report = AuditReport(trigger=trigger, actor=actor, started_at=started,
                             finished_at=utcnow(), checked=len(keys), copies_ok=counts["ok"],
                             missing=counts["missing"], corrupt=counts["corrupt"],
                             unavailable=counts["unavailable"], repaired=repaired,
                             details=json.dumps(findings))
        with Session(self._engine, expire_on_commit=False) as session:
            session.add(report)
            session.flush()
            affected = {f["blob"] for f in findings}
            units = session.exec(select(DataObject).where(
                col(DataObject.blob_key).in_(affected))).all() if affected else []
            for obj in units:
                finding = next(f for f in findings if f["blob"] == obj.blob_key)
                logbook.append(session, "fixity check", unit_id=obj.unit_id, object_id=obj.id,
                               operation_id=report.id, agent=actor or "système",
                               outcome="failure" if finding.get("error") else "success",
                               detail=finding)
                if finding.get("repaired"):
                    logbook.append(session, "replication", unit_id=obj.unit_id,
                                   object_id=obj.id, operation_id=report.id,
                                   agent=actor or "système",
                                   detail={"repaired": finding["repaired"]})
            logbook.append(session, "fixity check", operation_id=report.id,
                           agent=actor or "système",
                           outcome="success" if not findings else "warning",
                           detail={"checked": len(keys), "missing": counts["missing"],
                                   "corrupt": counts["corrupt"], "repaired": repaired})
            append(session, AuditRecord(
                action="archives.audit", actor=actor, target=report.id,
                outcome="success" if not findings else "failure",
                details={"checked": len(keys), "missing": counts["missing"],
                         "corrupt": counts["corrupt"], "repaired": repaired}))
            session.commit()
        if counts["missing"] or counts["corrupt"]:
            metrics.record_audit_failure("archive_fixity")
        return report

    def reports(self, limit: int = 50) -> list[AuditReport]:
        with Session(self._engine, expire_on_commit=False) as session:
            return list(session.exec(select(AuditReport).order_by(
                col(AuditReport.started_at).desc()).limit(limit)).all())

    def last_run(self) -> datetime | None:
        reports = self.reports(1)
        return reports[0].started_at if reports else None
