"""Package ingest (BagIt, SEDA), asynchronous as in Vitam: the upload is stored and an
operation recorded (202); a worker of any process claims it (a lease in the database),
reads and verifies the package, records it as one deposit, and stores the outcome — an
``ArchiveTransferReply`` accepting it, or refusing it with every reason. Also the export of
a unit as a BagIt bag (files, SEDA manifest, logbook extract)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import delete, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from archivage import fulltext, logbook, packages
from archivage.clamav import ScanFailed, VirusFound
from archivage.config import ArchivesSettings
from archivage.formats import identify
from archivage.identifiers import ark, mint, neutral_filename
from archivage.models import BlobIntent, DataObject, Deposit, Operation, Rule, Unit
from archivage.packages import Package, PackageRefused, PackageUnit, Reason
from archivage.repository import get_deposit_by_key, objects_of, subtree
from archivage.schemas import Actor, RuleAssignment
from archivage.services import contracts
from archivage.services import rules as rules_service
from archivage.services.deposits import SEDA_VERSION, DepositService, IncomingFile, require_writer
from archivage.services.spaces import charge, check_can_deposit, ensure_space
from plateforme import metrics
from plateforme.audit import AuditRecord, append
from plateforme.blobs import StagedFile
from plateforme.clock import utcnow
from plateforme.errors import DomainError, InvalidInput, NotFound

log = logging.getLogger("archivage.operations")

KINDS = ("bagit", "seda")
LEASE = timedelta(minutes=30)
MAX_ATTEMPTS = 3
CATEGORY = {"appraisal": "AppraisalRule", "access": "AccessRule", "hold": "HoldRule"}
FINAL: dict[str, Literal["conserver", "détruire", "trier"]] = {"Keep": "conserver",
                                                                "Destroy": "détruire"}
LEVELS = {"series": "series", "file": "file", "recordgrp": "file", "subgrp": "file",
          "subfonds": "series", "fonds": "series", "collection": "series", "item": "item"}
ARCHIVAL_AGENCY = "CTM"


class OperationService:
    def __init__(self, engine: Engine, deposits: DepositService, *, data_dir: Path,
                 config: ArchivesSettings, schema_dir: Path | None = None) -> None:
        self._engine = engine
        self._deposits = deposits
        self._config = config
        self._schema_dir = schema_dir
        self.root = Path(data_dir) / "archives" / "operations"

    # -- submission and polling ------------------------------------------------------------

    def submit(self, actor: Actor, kind: str, staged: StagedFile) -> Operation:
        organisation = require_writer(actor)
        if kind not in KINDS:
            raise InvalidInput("Format de paquet : bagit ou seda.", field="format")
        self.root.mkdir(parents=True, exist_ok=True)
        operation = Operation(organisation=organisation, kind=kind, actor=actor.label,
                              roles=json.dumps(sorted(actor.roles)), package_path="",
                              size=staged.size)
        target = self.root / f"{operation.id}.zip"
        os.replace(staged.path, target)
        operation.package_path = str(target)
        with Session(self._engine, expire_on_commit=False) as session:
            session.add(operation)
            logbook.append(session, "ingestion", organisation=organisation,
                           operation_id=operation.id, agent=actor.label, outcome="received",
                           detail={"kind": kind, "bytes": staged.size})
            session.commit()
        return operation

    def get(self, actor: Actor, operation_id: str) -> Operation:
        with Session(self._engine, expire_on_commit=False) as session:
            operation = session.get(Operation, operation_id)
            if operation is None or operation.organisation != actor.organisation:
                raise NotFound("Opération introuvable.")
            return operation

    # -- the worker ----------------------------------------------------------------------

    def claim(self) -> Operation | None:
        now = utcnow()
        with Session(self._engine, expire_on_commit=False) as session:
            candidates = session.exec(select(Operation.id).where(or_(
                col(Operation.status) == "received",
                (col(Operation.status) == "running") & (col(Operation.claimed_until) < now)))
                .order_by(col(Operation.created_at)).limit(5)).all()
            for operation_id in candidates:
                claimed = session.execute(update(Operation).where(
                    col(Operation.id) == operation_id, or_(
                        col(Operation.status) == "received",
                        (col(Operation.status) == "running")
                        & (col(Operation.claimed_until) < now)))
                    .values(status="running", claimed_until=now + LEASE,
                            attempts=Operation.attempts + 1))
                session.commit()
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    return session.get(Operation, operation_id)
        return None

    def process_pending(self, limit: int = 10) -> int:
        """Process claimable operations (called by each worker's loop); returns how many."""
        done = 0
        while done < limit:
            operation = self.claim()
            if operation is None:
                break
            self.process(operation)
            done += 1
        return done

    def process(self, operation: Operation) -> None:
        actor = Actor(subject=operation.actor.removeprefix("client:"),
                      organisation=operation.organisation,
                      roles=frozenset(json.loads(operation.roles)),
                      is_client=operation.actor.startswith("client:"))
        work = Path(tempfile.mkdtemp(prefix=f"op-{operation.id}-", dir=self.root))
        package: Package | None = None
        try:
            if operation.attempts > MAX_ATTEMPTS:
                raise PackageRefused([Reason("operation.attempts",
                                             "Traitement interrompu trop de fois.")])
            path = Path(operation.package_path)
            package = (packages.read_bagit(path, workdir=work) if operation.kind == "bagit"
                       else packages.read_seda_zip(path, self._schema_dir, workdir=work))
            ack, mapping = self._ingest(actor, operation, package)
            reply = packages.seda_reply(
                package.identifier or operation.id, archival_agency=ARCHIVAL_AGENCY,
                transferring_agency=package.transferring_agency or operation.organisation,
                accepted=True, unit_ids=mapping)
            self._finish(operation, "accepted", ack, reply)
        except PackageRefused as refused:
            metrics.record_deposit("rejected")
            self._refuse(operation, package, refused.reasons)
        except DomainError as invalid:  # contract, quota, closed space, rules: refusals too
            metrics.record_deposit("rejected")
            self._refuse(operation, package, [Reason("ingest.refused", invalid.message)])
        except Exception:
            log.exception("operation %s failed", operation.id)
            self._refuse(operation, package, [Reason(
                "ingest.error", "Erreur interne pendant le traitement ; le paquet n'a pas été "
                "versé.")], status="failed")
        finally:
            if package is not None:
                with contextlib.suppress(Exception):
                    package.cleanup()
            shutil.rmtree(work, ignore_errors=True)

    def _refuse(self, operation: Operation, package: Package | None, reasons: list[Reason],
                status: str = "refused") -> None:
        reply = packages.seda_reply(
            (package.identifier if package else None) or operation.id,
            archival_agency=ARCHIVAL_AGENCY,
            transferring_agency=(package.transferring_agency if package else None)
            or operation.organisation, accepted=False, reasons=reasons)
        self._finish(operation, status, {"reasons": [
            {"code": r.code, "message": r.message, "path": r.path} for r in reasons]}, reply)

    def _finish(self, operation: Operation, status: str, result: dict[str, Any],
                reply: bytes) -> None:
        with Session(self._engine, expire_on_commit=False) as session:
            current = session.get(Operation, operation.id)
            assert current is not None
            current.status = status
            current.result = json.dumps(result, ensure_ascii=False)
            current.reply = reply.decode("utf-8")
            current.finished_at = utcnow()
            session.add(current)
            logbook.append(session, "ingestion", organisation=current.organisation,
                           operation_id=current.id, agent=current.actor,
                           outcome="success" if status == "accepted" else "failure",
                           detail={"status": status, "kind": current.kind})
            session.commit()
        with contextlib.suppress(FileNotFoundError):
            Path(operation.package_path).unlink()

    # -- recording a package -------------------------------------------------------------

    def _ingest(self, actor: Actor, operation: Operation, package: Package
                ) -> tuple[dict[str, Any], dict[str, str]]:
        organisation = operation.organisation
        key = f"{package.kind}:{package.identifier}" if package.identifier else operation.id
        with Session(self._engine, expire_on_commit=False) as session:
            existing = get_deposit_by_key(session=session, organisation=organisation,
                                          deposit_key=key)
            if existing is not None:  # the same transfer sent again: the first outcome
                ack = json.loads(existing.acknowledgement)
                return ack, ack.get("package_units", {})
        files = {f.path: f for f in package.files}
        incoming = {path: IncomingFile(f.name, f.staged()) for path, f in files.items()}
        formats = {path: identify(f.staged.path) for path, f in incoming.items()}
        total = sum(f.size for f in package.files)
        reasons: list[Reason] = []
        agency = (package.transferring_agency or "").strip()
        if package.kind == "seda" and agency != organisation:
            # a SEDA transfer is sent by the organisation it names, none other
            reasons.append(Reason(
                "transferring_agency.mismatch",
                f"Service versant « {agency or '(absent)'} » différent de l'organisation "
                f"qui transmet le paquet (« {organisation} ») : un transfert SEDA est "
                "versé par le service versant qu'il désigne."))
        with Session(self._engine, expire_on_commit=False) as session:
            space = ensure_space(session, organisation, self._config.default_quota_bytes)
            session.commit()
            check_can_deposit(space, total)
            parent = contracts.check(session, organisation, None, [
                (neutral_filename(incoming[p].filename), files[p].size, formats[p])
                for p in files])
            known = {r.rule_id for r in session.exec(select(Rule)).all()}
            for unit in package.all_units():
                for rule in unit.rules:
                    if rule.kind in CATEGORY and rule.rule_id and rule.rule_id not in known:
                        reasons.append(Reason("rules.unknown", f"Unité « {unit.title} » : règle "
                                              f"« {rule.rule_id} » absente du référentiel."))
                    if rule.kind == "appraisal" and rule.rule_id and \
                            rule.final_action not in FINAL:
                        reasons.append(Reason("rules.final_action", f"Unité « {unit.title} » : "
                                              "sort final (Keep ou Destroy) manquant."))
        if reasons:
            raise PackageRefused(reasons)
        if self._deposits.antivirus is not None:  # every file, before anything is stored
            try:
                self._deposits.antivirus.check(actor, organisation, [
                    (f.filename, f.staged) for f in incoming.values()])
            except (VirusFound, ScanFailed) as refused:
                raise PackageRefused([Reason(
                    "file.virus" if isinstance(refused, VirusFound) else "antivirus.error",
                    refused.message)]) from refused
        intents = self._deposits._store(list(incoming.values()))
        try:
            return self._record(actor, operation, package, key, incoming, formats, parent,
                                total, intents)
        except BaseException:
            self._deposits._abandon(intents)
            raise

    def _record(self, actor: Actor, operation: Operation, package: Package, key: str,
                incoming: dict[str, IncomingFile], formats: dict[str, Any],
                parent: Unit | None, total: int, intents: list[Any]
                ) -> tuple[dict[str, Any], dict[str, str]]:
        organisation = operation.organisation
        naan = self._config.naan
        today = utcnow().date()
        mapping: dict[str, str] = {}
        with Session(self._engine, expire_on_commit=False) as session:
            deposit = Deposit(organisation=organisation, deposit_key=key, actor=actor.label,
                              total_bytes=total)
            session.add(deposit)
            session.flush()
            created: list[Unit] = []
            objects: list[DataObject] = []
            roots: list[Unit] = []

            def add(node: PackageUnit, above: Unit | None) -> None:
                level = LEVELS.get((node.level or "").lower()) or (
                    "item" if node.file_refs and not node.children else "file")
                unit_id = mint()
                unit = Unit(
                    id=unit_id, organisation=organisation,
                    parent_id=above.id if above else None,
                    path=(above.path if above else "/") + unit_id + "/", level=level,
                    title=node.title[:500], description=node.description,
                    producer=node.originating_agency, start_date=node.start_date,
                    end_date=node.end_date,
                    keywords=json.dumps(node.keywords, ensure_ascii=False),
                    classification=node.classification, language=node.language,
                    document_type=node.document_type, deposit_id=deposit.id,
                    blocked=json.dumps(sorted({CATEGORY[r.kind] for r in node.rules
                                               if r.kind in CATEGORY
                                               and r.prevent_inheritance})))
                session.add(unit)
                session.flush()
                created.append(unit)
                if above is None or above is parent:
                    roots.append(unit)
                mapping[node.identifier] = ark(naan, unit.id)
                text = []
                for ref in node.file_refs:
                    source = incoming[ref]
                    fmt = formats[ref]
                    obj = DataObject(
                        unit_id=unit.id, filename=neutral_filename(source.filename),
                        media_type=fmt.media_type, format_id=fmt.puid,
                        size=source.staged.size, sha512=source.staged.digests["sha512"],
                        sha256=source.staged.digests["sha256"],
                        blob_key=source.staged.digests["sha512"],
                        locations=json.dumps(self._deposits._blobs.locations))
                    session.add(obj)
                    objects.append(obj)
                    text.append(obj.filename + "\n" + self._deposits._text_of(source, fmt))
                fulltext.add_texts(session, [(unit.id, "\n".join(  # a new unit: insert only
                    [unit.title, unit.description or "", " ".join(node.keywords),
                     unit.producer or "", *text]))])
                assignments = [RuleAssignment(
                    rule_id=r.rule_id, start_date=r.start_date,
                    final_action=FINAL.get(r.final_action or "") if r.kind == "appraisal"
                    else None) for r in node.rules if r.kind in CATEGORY and r.rule_id]
                rules_service.assign(session, unit, assignments, today)
                for child in node.children:
                    add(child, unit)

            for node in package.units:
                add(node, parent)
            session.flush()
            for root in roots:
                rules_service.recompute(session, root)
            charge(session, organisation, total)
            removed = session.execute(delete(BlobIntent).where(
                col(BlobIntent.id).in_([i.id for i in intents])))
            if removed.rowcount != len(intents):  # type: ignore[attr-defined]
                raise RuntimeError("blob intents swept during the ingest")
            ack = {
                "deposit_id": key, "operation_id": operation.id, "organisation": organisation,
                "received_at": deposit.created_at.astimezone(UTC).isoformat(),
                "seda_version": SEDA_VERSION, "package": {
                    "kind": package.kind, "version": package.version,
                    "identifier": package.identifier,
                    "transferring_agency": package.transferring_agency},
                "total_bytes": total, "package_units": mapping,
                "units": [{"id": u.id, "ark": ark(naan, u.id), "title": u.title,
                           "level": u.level, "parent": u.parent_id} for u in created],
                "files": [{"unit_id": o.unit_id, "object_id": o.id, "filename": o.filename,
                           "size": o.size, "media_type": o.media_type,
                           "format_id": o.format_id, "sha512": o.sha512, "sha256": o.sha256}
                          for o in objects],
            }
            deposit.acknowledgement = json.dumps(ack, ensure_ascii=False)
            session.add(deposit)
            for unit in created:
                logbook.append(session, "accession", organisation=organisation,
                               unit_id=unit.id, operation_id=operation.id, agent=actor.label,
                               detail={"title": unit.title, "package": package.kind})
            for obj in objects:
                logbook.append(session, "message digest calculation", organisation=organisation,
                               unit_id=obj.unit_id, object_id=obj.id,
                               operation_id=operation.id, agent=actor.label,
                               detail={"sha512": obj.sha512, "size": obj.size,
                                       "format": obj.format_id})
            append(session, AuditRecord(
                action="archives.package", actor=actor.label, organisation=organisation,
                target=operation.id, details={"kind": package.kind, "units": len(created),
                                              "files": len(objects), "bytes": total}))
            session.commit()
        metrics.record_deposit("accepted", total)
        return ack, mapping

    # -- export --------------------------------------------------------------------------

    def export(self, unit: Unit, session: Session, dest: Path, *, agent: str) -> Path:
        """Write ``unit`` and what lies below it as a zipped BagIt bag at ``dest`` (a
        ``.zip`` path): payload files, SEDA manifest, logbook extract."""
        members = list(subtree(session=session, unit=unit))
        pkg_files: list[packages.PackageFile] = []
        sources: list[tuple[str, Any]] = []
        nodes: dict[str, PackageUnit] = {}
        blobs = self._deposits._blobs
        for member in members:
            refs = []
            for obj in objects_of(session=session, unit_id=member.id):
                if obj.destroyed_at is not None:
                    continue
                path = f"data/{member.id}/{obj.filename}"
                refs.append(path)
                pkg_files.append(packages.PackageFile(
                    path=path, size=obj.size, digests={"sha512": obj.sha512,
                                                       "sha256": obj.sha256},
                    mime_type=obj.media_type, declared_format=obj.format_id,
                    filename=obj.filename))
                sources.append((f"{member.id}/{obj.filename}",
                                lambda key=obj.blob_key: blobs.open(key)))
            nodes[member.id] = PackageUnit(
                identifier=member.id, title=member.title, description=member.description,
                level={"series": "Series", "file": "File", "item": "Item"}[member.level],
                start_date=member.start_date, end_date=member.end_date,
                keywords=json.loads(member.keywords), language=member.language,
                document_type=member.document_type, originating_agency=member.producer,
                system_id=ark(self._config.naan, member.id), file_refs=refs)
            if member.parent_id in nodes and member.id != unit.id:
                nodes[member.parent_id].children.append(nodes[member.id])
        events = [{"seq": e.seq, "at": e.at.isoformat(), "event_type": e.event_type,
                   "outcome": e.outcome, "unit": e.unit_id, "agent": e.agent,
                   "detail": json.loads(e.detail), "hash": e.hash}
                  for m in members for e in logbook.unit_events(session, m.id)]
        manifest = packages.seda_manifest_for_export(
            [nodes[unit.id]], pkg_files, message_identifier=f"export-{uuid.uuid4().hex}",
            archival_agency=ARCHIVAL_AGENCY, transferring_agency=ARCHIVAL_AGENCY,
            originating_agency=unit.organisation)
        work = Path(tempfile.mkdtemp(prefix="export-", dir=dest.parent))
        try:
            bag = packages.write_bagit(
                work / "bag", sources,
                {"External-Identifier": ark(self._config.naan, unit.id), "Title": unit.title,
                 "Source-Organization": unit.organisation},
                {"metadata/manifest.xml": manifest,
                 "metadata/logbook.json": json.dumps(events, ensure_ascii=False,
                                                     indent=1).encode()})
            packages.zip_bag(bag, dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        logbook.append(session, "dissemination", organisation=unit.organisation,
                       unit_id=unit.id, agent=agent,
                       detail={"format": "BagIt", "units": len(members)})
        session.commit()
        return dest
