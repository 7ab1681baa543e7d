"""Deposits (versements): staged files verified, stored in every location, then recorded
in one transaction.

Crash safety: before a blob is written, a ``BlobIntent`` naming it is committed; the
transaction that records the deposit deletes the intents. A process killed in between
leaves intents behind, and :meth:`DepositService.sweep` (run at start-up) destroys the
blobs they name unless a recorded file refers to them. Units and files appear only with
the commit, so no partial unit is ever visible.

Idempotency: the deposit identifier (``Idempotency-Key`` header or ``deposit_id``) is unique
per organisation (a database constraint): of concurrent retries one commits, the others find
its acknowledgement.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import delete, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from archivage import fulltext, logbook
from archivage.clamav import ClamdClient
from archivage.config import ArchivesSettings
from archivage.formats import FileFormat, identify, is_text
from archivage.identifiers import ark, mint, mint_many, neutral_filename, uuid4_hex_many
from archivage.models import BlobIntent, DataObject, Deposit, Rule, Unit
from archivage.repository import get_deposit_by_key, live_references
from archivage.schemas import Actor, DepositMetadata, UnitMetadata
from archivage.services import contracts
from archivage.services import rules as rules_service
from archivage.services.antivirus import Antivirus
from archivage.services.spaces import charge, check_can_deposit, ensure_space
from plateforme import metrics
from plateforme.audit import AuditRecord, append
from plateforme.blobs import ReplicatedBlobs, StagedFile
from plateforme.clock import utcnow
from plateforme.db import insert_rows
from plateforme.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound

log = logging.getLogger("archivage.deposits")

SEDA_VERSION = "2.2"


class _Intent(NamedTuple):
    """A committed ``BlobIntent`` row: the blob it names may be written."""

    id: str
    blob_key: str


@dataclass
class IncomingFile:
    """A file of a deposit, staged with its digests; ``filename`` as the client sent it;
    ``format`` when it was identified as it arrived (else read from the staged file)."""

    filename: str | None
    staged: StagedFile
    format: FileFormat | None = None


def _fingerprint(files: Sequence[IncomingFile], metadata: UnitMetadata) -> str:
    body = json.dumps({"files": [f.staged.digests["sha512"] for f in files],
                       "title": metadata.title}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def _delete_intents(session: Session, ids: Sequence[str]) -> int:
    """Delete these intents (a Core statement: no ORM synchronisation of the session); how
    many there were. On PostgreSQL the identifiers go as one array (``= ANY``) rather than
    a parameter each, a statement psycopg would parse again for every length."""
    if session.get_bind().dialect.name == "postgresql":
        result = session.execute(text("DELETE FROM arch_blob_intent WHERE id = ANY(:ids)"),
                                 {"ids": list(ids)})
    else:
        table = BlobIntent.__table__  # type: ignore[attr-defined]
        result = session.execute(delete(table).where(table.c.id.in_(list(ids))))
    return int(result.rowcount)  # type: ignore[attr-defined]


def require_writer(actor: Actor) -> str:
    if not actor.organisation:
        raise Forbidden("Ce jeton n'agit pour aucune organisation.")
    if not actor.may_write:
        raise Forbidden("Seuls un archiviste ou un administrateur de l'organisation, ou une "
                        "application agissant pour elle, peuvent verser.")
    return actor.organisation


def _search_body(unit: Unit, extra: str = "") -> str:
    parts = [unit.title, unit.description or "", " ".join(json.loads(unit.keywords)),
             unit.producer or "", unit.classification or "", unit.document_type or "", extra]
    return "\n".join(p for p in parts if p)


def _search_body_of(row: dict[str, Any], extra: str = "") -> str:
    """:func:`_search_body` of a unit given as a row of :meth:`DepositService._item_row`."""
    parts = [row["title"], row["description"] or "", " ".join(json.loads(row["keywords"])),
             row["producer"] or "", row["classification"] or "", row["document_type"] or "",
             extra]
    return "\n".join(p for p in parts if p)


class DepositService:
    def __init__(self, engine: Engine, blobs: ReplicatedBlobs, *, data_dir: Path,
                 config: ArchivesSettings) -> None:
        self._engine = engine
        self._blobs = blobs
        self._config = config
        self.staging_root = Path(data_dir) / "archives" / "staging"
        self.antivirus = (Antivirus(engine, ClamdClient(config.clamav_socket))
                          if config.clamav_socket else None)

    # -- before the body is read -----------------------------------------------------------

    def precheck(self, actor: Actor, declared_size: int | None) -> int | None:
        """Refuse, before anything is stored: a caller who may not deposit, a closed or full
        space, a body over the size limit. Returns the bytes the space can still take
        (None: no quota), the limit the upload is streamed against."""
        try:
            return self._precheck(actor, declared_size)
        except DomainError:
            metrics.record_deposit("rejected")
            raise

    def _precheck(self, actor: Actor, declared_size: int | None) -> int | None:
        from plateforme.blobs import TooLarge

        organisation = require_writer(actor)
        if declared_size is not None and declared_size > self._config.max_deposit_bytes:
            raise TooLarge(self._config.max_deposit_bytes)
        with Session(self._engine, expire_on_commit=False) as session:
            space = ensure_space(session, organisation, self._config.default_quota_bytes)
            session.commit()
            check_can_deposit(space, 1)
            if space.quota_bytes is None:
                return None
            return space.quota_bytes - space.used_bytes

    def staging_dir(self) -> Path:
        path = self.staging_root / uuid.uuid4().hex
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- the deposit ------------------------------------------------------------------------

    def deposit(self, actor: Actor, metadata: DepositMetadata, files: Sequence[IncomingFile],
                *, deposit_key: str | None = None) -> tuple[dict[str, Any], bool]:
        """Record a deposit; returns its acknowledgement and whether it is a replay of an
        earlier deposit with the same identifier."""
        try:
            return self._deposit(actor, metadata, files, deposit_key=deposit_key)
        except DomainError:
            metrics.record_deposit("rejected")
            raise

    def _deposit(self, actor: Actor, metadata: DepositMetadata, files: Sequence[IncomingFile],
                 *, deposit_key: str | None = None) -> tuple[dict[str, Any], bool]:
        organisation = require_writer(actor)
        if not files:
            raise InvalidInput("Un versement contient au moins un fichier.", field="file")
        if len(metadata.files) > len(files):
            raise InvalidInput("Plus de descriptions de fichiers que de fichiers reçus.",
                               field="files")
        key = deposit_key or metadata.deposit_id or uuid.uuid4().hex
        fingerprint = _fingerprint(files, metadata)
        with Session(self._engine, expire_on_commit=False) as session:
            existing = get_deposit_by_key(session=session, organisation=organisation,
                                          deposit_key=key)
            if existing is not None:
                return self._replay(existing, fingerprint), True
        formats = self._verify(metadata, files)
        total = sum(f.staged.size for f in files)
        today = utcnow().date()
        with Session(self._engine, expire_on_commit=False) as session:
            space = ensure_space(session, organisation, self._config.default_quota_bytes)
            session.commit()
            check_can_deposit(space, total)
            parent = self._parent(session, organisation, metadata.parent)
            parent = contracts.check(session, organisation, parent, [
                (neutral_filename(f.filename), f.staged.size, fmt)
                for f, fmt in zip(files, formats, strict=True)])
            for assignment in metadata.rules:
                if session.get(Rule, assignment.rule_id) is None:
                    raise InvalidInput(f"Règle « {assignment.rule_id} » absente du "
                                       "référentiel.", field="rules")
        if self.antivirus is not None:  # before anything is stored
            self.antivirus.check(actor, organisation, [(f.filename, f.staged) for f in files])
        intents = self._store(files)
        try:
            ack = self._record(actor, organisation, key, fingerprint, metadata, files,
                               formats, intents, parent, total, today)
        except IntegrityError:
            self._abandon(intents)
            with Session(self._engine, expire_on_commit=False) as session:
                winner = get_deposit_by_key(session=session, organisation=organisation,
                                            deposit_key=key)
            if winner is None:
                raise
            return self._replay(winner, fingerprint), True
        except BaseException:
            self._abandon(intents)
            raise
        self._retain(ack)
        return ack, False

    def _replay(self, deposit: Deposit, fingerprint: str) -> dict[str, Any]:
        ack = json.loads(deposit.acknowledgement)
        if ack.get("fingerprint") != fingerprint:
            raise Conflict("Cet identifiant de versement a déjà servi pour un autre contenu.",
                           field="deposit_id")
        return dict(ack)

    def _verify(self, metadata: DepositMetadata, files: Sequence[IncomingFile]
                ) -> list[FileFormat]:
        for index, incoming in enumerate(files):
            declared = metadata.files[index] if index < len(metadata.files) else None
            name = neutral_filename(incoming.filename)
            if declared is None:
                continue
            for algorithm in ("sha256", "sha512"):
                expected = getattr(declared, algorithm)
                if expected and expected.lower() != incoming.staged.digests[algorithm]:
                    raise InvalidInput(
                        f"Empreinte {algorithm.upper()} du fichier « {name} » différente de "
                        "celle annoncée : le fichier a été altéré pendant le transfert.",
                        field=f"files.{index}.{algorithm}")
        return [f.format or identify(f.staged.path) for f in files]

    def _parent(self, session: Session, organisation: str, parent_id: str | None
                ) -> Unit | None:
        if parent_id is None:
            return None
        parent = session.get(Unit, parent_id)
        if parent is None or parent.organisation != organisation:
            raise NotFound("Unité de rattachement introuvable.", field="parent")
        if parent.status != "active":
            raise InvalidInput("L'unité de rattachement a été éliminée.", field="parent")
        if parent.level == "item":
            raise InvalidInput("Une pièce (item) ne peut pas recevoir d'unités.",
                               field="parent")
        return parent

    def _store(self, files: Sequence[IncomingFile]) -> list[_Intent]:
        # Plain rows in one INSERT: building an ORM object per file cost more than the rest.
        now = utcnow()
        intents = [_Intent(intent_id, f.staged.digests["sha512"])
                   for intent_id, f in zip(uuid4_hex_many(len(files)), files, strict=True)]
        with Session(self._engine, expire_on_commit=False) as session:
            insert_rows(session, BlobIntent.__table__, [  # type: ignore[attr-defined]
                {"id": i.id, "blob_key": i.blob_key, "created_at": now} for i in intents])
            session.commit()
        unique = {f.staged.digests["sha512"]: f.staged.path for f in files}
        try:
            # The staged files are ours and only deleted after the deposit: the first
            # location on their file system keeps them by a hard link (no new inode, none
            # freed); every other location gets its own copy. Each location takes the whole
            # batch (its folders synced once for it), the locations in parallel.
            self._blobs.put_files(list(unique.items()), adopt=True)
        except BaseException:
            self._abandon(intents)
            raise
        return intents

    def _abandon(self, intents: Sequence[_Intent]) -> None:
        """Remove the blobs these intents named, unless a recorded file refers to them."""
        with Session(self._engine, expire_on_commit=False) as session:
            for intent in intents:
                self._sweep_one(session, intent.id, intent.blob_key)

    def _sweep_one(self, session: Session, intent_id: str, blob_key: str) -> bool:
        claimed = session.execute(delete(BlobIntent).where(col(BlobIntent.id) == intent_id))
        session.commit()
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return False
        others = session.exec(select(BlobIntent.id).where(
            BlobIntent.blob_key == blob_key)).first()
        if live_references(session=session, blob_key=blob_key) or others:
            return False
        try:
            self._blobs.delete_everywhere(blob_key)
        except Exception:  # noqa: BLE001 - the blob stays; it is unreferenced, hence invisible
            log.exception("could not remove orphan blob %s", blob_key)
            return False
        return True

    def _record(self, actor: Actor, organisation: str, key: str, fingerprint: str,
                metadata: DepositMetadata, files: Sequence[IncomingFile],
                formats: Sequence[FileFormat], intents: Sequence[_Intent],
                parent: Unit | None, total: int, today: Any) -> dict[str, Any]:
        naan = self._config.naan
        locations = self._blobs.locations
        with Session(self._engine, expire_on_commit=False) as session:
            deposit = Deposit(organisation=organisation, deposit_key=key, actor=actor.label,
                              total_bytes=total)
            session.add(deposit)
            session.flush()  # the unique (organisation, deposit_key) decides concurrent retries
            single = len(files) == 1 and metadata.level in (None, "item")
            top = self._new_unit(metadata, organisation, parent, deposit.id,
                                 "item" if single else (metadata.level or "file"))
            session.add(top)
            session.flush()
            # The top unit is the only one that may carry rules of its own: its effective
            # rules are computed as for any unit; its items (new, without rules of their own,
            # blocking nothing) inherit them as they stand. Without rules of its own nor a
            # parent, a new unit has none, as it was created: nothing to compute.
            applied = rules_service.assign(session, top, metadata.rules, today)
            if applied or parent is not None:
                rules_service.recompute(session, top, units=[top])
            # Items and files are inserted as plain rows, one statement per table: an ORM
            # object per file (pydantic defaults, instrumentation, unit of work) was the
            # largest cost of a deposit of small documents.
            now = utcnow()
            copies = json.dumps(locations)
            units: list[dict[str, Any]] = [{
                "id": top.id, "title": top.title, "level": top.level,
                "parent_id": top.parent_id}]
            items: list[dict[str, Any]] = []
            objects: list[dict[str, Any]] = []
            texts: dict[str, str] = {}
            # identifiers drawn at once: one system call, not one per character or per id
            item_ids = iter(mint_many(0 if single else len(files)))
            object_ids = iter(uuid4_hex_many(len(files)))
            for index, incoming in enumerate(files):
                described = metadata.files[index] if index < len(metadata.files) else None
                filename = neutral_filename(incoming.filename, f"document-{index + 1}")
                if single:
                    holder_id = top.id
                else:
                    holder_id = next(item_ids)
                    item = {**self._item_row(top, now), "id": holder_id,
                            "path": f"{top.path}{holder_id}/",
                            "title": (described.title if described and described.title
                                      else filename)}
                    items.append(item)
                    units.append({"id": holder_id, "title": item["title"], "level": "item",
                                  "parent_id": top.id})
                fmt = formats[index]
                digests = incoming.staged.digests
                objects.append({
                    "id": next(object_ids), "unit_id": holder_id, "filename": filename,
                    "media_type": fmt.media_type, "format_id": fmt.puid,
                    "size": incoming.staged.size, "sha512": digests["sha512"],
                    "sha256": digests["sha256"], "blob_key": digests["sha512"],
                    "locations": copies, "stored_at": now, "destroyed_at": None})
                content = self._text_of(incoming, fmt)
                texts[holder_id] = texts.get(holder_id, "") + "\n" + filename + "\n" + content
            insert_rows(session, Unit.__table__, items)  # type: ignore[attr-defined]
            insert_rows(session, DataObject.__table__, objects)  # type: ignore[attr-defined]
            fulltext.add_texts(session, [(top.id, _search_body(top, texts.get(top.id, "")))] + [
                (item["id"], _search_body_of(item, texts.get(item["id"], "")))
                for item in items])
            if _delete_intents(session, [i.id for i in intents]) != len(intents):
                raise Conflict("Le versement a dépassé le délai de stockage ; réessayez.")
            ack = {
                "deposit_id": key, "operation_id": deposit.id, "organisation": organisation,
                "received_at": deposit.created_at.astimezone(UTC).isoformat(),
                "seda_version": SEDA_VERSION, "fingerprint": fingerprint,
                "total_bytes": total, "locations": locations,
                "units": [{"id": u["id"], "ark": ark(naan, u["id"]), "title": u["title"],
                           "level": u["level"], "parent": u["parent_id"]} for u in units],
                "files": [{"unit_id": o["unit_id"], "object_id": o["id"],
                           "filename": o["filename"], "size": o["size"],
                           "media_type": o["media_type"], "format_id": o["format_id"],
                           "sha512": o["sha512"], "sha256": o["sha256"]}
                          for o in objects],
                "rules": applied,
                "effective_rules": {"appraisal_rule": top.appraisal_rule,
                                    "appraisal_end": top.appraisal_end.isoformat()
                                    if top.appraisal_end else None,
                                    "final_action": top.final_action,
                                    "access_rule": top.access_rule,
                                    "access_end": top.access_end.isoformat()
                                    if top.access_end else None,
                                    "on_hold": top.on_hold},
            }
            deposit.acknowledgement = json.dumps(ack, ensure_ascii=False)
            session.add(deposit)
            # One append for the whole deposit: the head's lock is taken once.
            entries = [logbook.Entry("ingestion", organisation=organisation,
                                     operation_id=deposit.id, agent=actor.label,
                                     detail={"deposit_id": key, "units": len(units),
                                             "files": len(objects), "bytes": total})]
            entries += [logbook.Entry("accession", organisation=organisation,
                                      unit_id=unit["id"], operation_id=deposit.id,
                                      agent=actor.label,
                                      detail={"title": unit["title"], "level": unit["level"]})
                        for unit in units]
            entries += [logbook.Entry("message digest calculation", organisation=organisation,
                                      unit_id=obj["unit_id"], object_id=obj["id"],
                                      operation_id=deposit.id, agent=actor.label,
                                      detail={"sha512": obj["sha512"], "size": obj["size"],
                                              "format": obj["format_id"], "copies": locations})
                        for obj in objects]
            if applied:
                entries.append(logbook.Entry("policy assignment", organisation=organisation,
                                             unit_id=top.id, operation_id=deposit.id,
                                             agent=actor.label, detail={"rules": applied}))
            # Last, the writes that take locks every deposit of this organisation, or every
            # writer of the logbook and of the audit journal, waits for until this commit:
            # all the rest is done before, outside them.
            prepared = logbook.prepare(entries)
            charge(session, organisation, total)
            logbook.append_many(session, prepared)
            append(session, AuditRecord(
                action="archives.deposit", actor=actor.label, organisation=organisation,
                target=ark(naan, top.id), address=actor.address,
                details={"deposit_id": key, "units": len(units), "files": len(objects),
                         "bytes": total}))
            session.commit()
        metrics.record_deposit("accepted", total)
        return ack

    @staticmethod
    def _item_row(top: Unit, now: datetime) -> dict[str, Any]:
        """The columns of a new item under ``top`` but its id, path and title: descriptive
        metadata copied from ``top``, effective rules inherited from it."""
        return {
            "organisation": top.organisation, "parent_id": top.id, "level": "item",
            "description": None, "producer": top.producer, "start_date": top.start_date,
            "end_date": top.end_date, "keywords": "[]", "classification": top.classification,
            "language": top.language, "document_type": top.document_type,
            "deposit_id": top.deposit_id, "status": "active",
            "appraisal_rule": top.appraisal_rule, "appraisal_end": top.appraisal_end,
            "final_action": top.final_action, "access_rule": top.access_rule,
            "access_end": top.access_end, "on_hold": top.on_hold, "blocked": "[]",
            "created_at": now, "eliminated_at": None}

    def _new_unit(self, metadata: UnitMetadata, organisation: str, parent: Unit | None,
                  deposit_id: str | None, level: str) -> Unit:
        unit_id = mint()
        return Unit(
            id=unit_id, organisation=organisation, parent_id=parent.id if parent else None,
            path=(parent.path if parent else "/") + unit_id + "/", level=level,
            title=metadata.title, description=metadata.description,
            producer=metadata.producer, start_date=metadata.start_date,
            end_date=metadata.end_date,
            keywords=json.dumps(metadata.keywords, ensure_ascii=False),
            classification=metadata.classification, language=metadata.language,
            document_type=metadata.document_type, deposit_id=deposit_id)

    def _text_of(self, incoming: IncomingFile, fmt: FileFormat) -> str:
        if not is_text(fmt) or incoming.staged.size > self._config.fulltext_max_bytes:
            return ""
        return incoming.staged.path.read_bytes().decode("utf-8", errors="replace")

    def _retain(self, ack: dict[str, Any]) -> None:
        """Object Lock retention until the DUA's end, where a location supports it."""
        end = (ack.get("effective_rules") or {}).get("appraisal_end")
        if not end:
            return
        until = datetime.fromisoformat(end).replace(tzinfo=UTC)
        for item in ack["files"]:
            try:
                self._blobs.set_retention(item["sha512"], until)
            except Exception:  # noqa: BLE001 - the rules still protect the file
                log.exception("retention not set on %s", item["sha512"])

    # -- units without files (series, files of the filing plan) ----------------------------

    def create_unit(self, actor: Actor, metadata: UnitMetadata) -> Unit:
        organisation = require_writer(actor)
        with Session(self._engine, expire_on_commit=False) as session:
            parent = self._parent(session, organisation, metadata.parent)
            unit = self._new_unit(metadata, organisation, parent, None,
                                  metadata.level or "series")
            session.add(unit)
            session.flush()
            fulltext.add_texts(session, [(unit.id, _search_body(unit))])
            applied = rules_service.assign(session, unit, metadata.rules, utcnow().date())
            rules_service.recompute(session, unit)
            logbook.append(session, "accession", organisation=organisation, unit_id=unit.id,
                           agent=actor.label, detail={"title": unit.title,
                                                      "level": unit.level, "rules": applied})
            append(session, AuditRecord(
                action="archives.unit.create", actor=actor.label, organisation=organisation,
                target=ark(self._config.naan, unit.id), address=actor.address))
            session.commit()
            return unit

    # -- crash leftovers ----------------------------------------------------------------------

    def sweep(self, *, grace_seconds: int | None = None) -> dict[str, int]:
        """Destroy blobs named by intents older than the grace period that no recorded file
        refers to, and staging folders of the same age. Run at start-up."""
        grace = self._config.orphan_grace_seconds if grace_seconds is None else grace_seconds
        limit = utcnow() - timedelta(seconds=grace)
        removed = 0
        with Session(self._engine, expire_on_commit=False) as session:
            stale = session.exec(select(BlobIntent)).all()
            for intent in stale:
                created = intent.created_at if intent.created_at.tzinfo else \
                    intent.created_at.replace(tzinfo=UTC)
                if created <= limit and self._sweep_one(session, intent.id, intent.blob_key):
                    removed += 1
        folders = 0
        if self.staging_root.is_dir():
            cutoff = time.time() - grace
            for entry in self.staging_root.iterdir():
                try:
                    old = entry.stat().st_mtime <= cutoff
                except FileNotFoundError:
                    continue
                if old:
                    shutil.rmtree(entry, ignore_errors=True)
                    folders += 1
        if removed or folders:
            log.warning("swept %d orphan blob(s) and %d staging folder(s)", removed, folders)
        return {"blobs": removed, "staging": folders}
