"""``/api/archives/…``: deposits, units, downloads, search, sharing, rules, space usage."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from python_multipart.exceptions import MultipartParseError
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response, StreamingResponse

from archivage.api.deps import Administrator, ArchivesDep, Reader, Writer
from archivage.api.multipart import read_deposit
from archivage.schemas import (
    ContractRequest,
    DepositMetadata,
    EliminationProposal,
    RuleChange,
    ShareRequest,
    UnitMetadata,
    Visa,
)
from archivage.services import LineDecision
from archivage.services.rules import to_csv
from archivage.services.spaces import QuotaExceeded
from archivage.services.units import UnitView, share_dict
from plateforme import metrics
from plateforme.blobs import TooLarge, receive
from plateforme.errors import Forbidden, InvalidInput, NotFound

PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
# What every operation may answer besides its success (RFC 9457 problem documents).
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Requête mal formée", **PROBLEM},
    401: {"description": "Jeton absent ou invalide (RFC 6750)", **PROBLEM},
    403: {"description": "Portée ou rôle insuffisant, espace fermé, document non communicable",
          **PROBLEM},
    404: {"description": "Introuvable (ou d'une autre organisation)", **PROBLEM},
    409: {"description": "Conflit (identifiant de versement réutilisé autrement, état)",
          **PROBLEM},
    413: {"description": "Fichier trop volumineux ou quota dépassé", **PROBLEM},
    422: {"description": "Données invalides, empreinte différente, hors contrat", **PROBLEM},
    503: {"description": "Stockage ou antivirus indisponible (réessayer)", **PROBLEM},
}

router = APIRouter(prefix="/api/archives", tags=["archives"], responses=ERRORS)
CHUNK = 1024 * 1024
MAX_OFFSET = 1_000_000_000


def _invalid(exc: ValidationError) -> InvalidInput:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ()))
    return InvalidInput(f"Métadonnées invalides ({field or 'corps'} : {first.get('msg')}).",
                        field=field or None)


def _unit_summary(archives: ArchivesDep, unit: Any) -> dict[str, Any]:
    return {"id": unit.id, "ark": archives.units.ark(unit.id), "title": unit.title,
            "level": unit.level, "organisation": unit.organisation, "parent": unit.parent_id,
            "producer": unit.producer, "classification": unit.classification,
            "document_type": unit.document_type, "status": unit.status,
            "start_date": unit.start_date.isoformat() if unit.start_date else None,
            "end_date": unit.end_date.isoformat() if unit.end_date else None,
            "final_action": unit.final_action,
            "appraisal_end": unit.appraisal_end.isoformat() if unit.appraisal_end else None}


# The deposit's body is read by hand (streamed to disk, never whole in memory): FastAPI cannot
# infer it, so it is described here for /openapi.json (and its clients, and schemathesis).
DEPOSIT_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {
        "schema": {
            "type": "object", "required": ["metadata", "file"],
            "properties": {
                "metadata": {"type": "string", "description": "JSON : title, description, "
                             "producer, start_date, end_date, keywords, classification, "
                             "language, document_type, parent, rules, deposit_id, "
                             "files[i].sha256|sha512 (voir docs/archivage.md)"},
                "file": {"type": "array", "minItems": 1,
                         "items": {"type": "string", "format": "binary"}},
            },
        },
        "encoding": {"metadata": {"contentType": "application/json"}},
    }}}}


@router.post("/deposits", status_code=201, summary="Verser un ou plusieurs fichiers",
             openapi_extra=DEPOSIT_BODY)
async def deposit(request: Request, actor: Writer, archives: ArchivesDep) -> Response:
    """``multipart/form-data``: a ``metadata`` field (JSON: title, description, producer,
    dates, keywords, classification, language, document_type, parent, rules, deposit_id,
    files[i].sha256|sha512) and one or more ``file`` parts. ``Idempotency-Key`` (or
    ``deposit_id``) makes retries safe. Answers the acknowledgement: 201, or 200 for a replay."""
    declared = request.headers.get("content-length")
    size = int(declared) if declared and declared.isdigit() else None
    room = await run_in_threadpool(archives.deposits.precheck, actor, size)
    limit = archives.config.max_deposit_bytes
    staging = archives.deposits.staging_dir()
    try:
        try:
            raw, files = await read_deposit(request, staging, max_bytes=min(
                limit, room if room is not None else limit))
        except MultipartParseError as exc:
            raise InvalidInput("Corps multipart mal formé.") from exc
        except TooLarge:
            if room is not None and room < limit:  # the quota, not the size limit, was hit
                await run_in_threadpool(archives.deposits.precheck, actor, None)
                metrics.record_deposit("rejected")
                raise QuotaExceeded(
                    f"Quota dépassé : l'espace ne peut plus recevoir que {room} octets.") from None
            raise
        try:
            metadata = DepositMetadata.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            raise _invalid(exc) from exc
        key = request.headers.get("idempotency-key")
        if key is not None and not (0 < len(key) <= 200 and key.isprintable()):
            raise InvalidInput("En-tête Idempotency-Key invalide.", field="Idempotency-Key")
        ack, replayed = await run_in_threadpool(archives.deposits.deposit, actor, metadata,
                                                files, deposit_key=key)
    finally:
        await run_in_threadpool(shutil.rmtree, staging, True)
    top = ack["units"][0]["id"]
    return JSONResponse(ack, status_code=200 if replayed else 201,
                        headers={"Location": f"/api/archives/units/{top}"})


@router.post("/units", status_code=201, summary="Créer une unité sans fichier (série, dossier)")
def create_unit(metadata: UnitMetadata, actor: Writer, archives: ArchivesDep
                ) -> dict[str, Any]:
    unit = archives.deposits.create_unit(actor, metadata)
    return archives.units.get(actor, unit.id).as_dict()


@router.get("/units", summary="Rechercher (métadonnées et texte intégral)")
def search(
    actor: Reader, archives: ArchivesDep,
    q: str | None = Query(default=None, max_length=500),
    producer: str | None = Query(default=None, max_length=255),
    classification: str | None = Query(default=None, max_length=100),
    document_type: str | None = Query(default=None, max_length=100),
    level: str | None = Query(default=None, pattern="^(series|file|item)$"),
    since: date | None = None, until: date | None = None,
    final_action: str | None = Query(default=None, max_length=20),
    limit: int = Query(default=50, ge=1, le=500),
    # bounded: past a 64-bit integer the database refuses it (a 500, found by schemathesis)
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
) -> dict[str, Any]:
    units = archives.units.search(actor, query=q, producer=producer,
                                  classification=classification, document_type=document_type,
                                  level=level, since=since, until=until,
                                  final_action=final_action, limit=limit, offset=offset)
    return {"items": [_unit_summary(archives, u) for u in units], "limit": limit,
            "offset": offset}


@router.get("/units/{unit_id}", summary="Une unité, ses fichiers et ses règles")
def get_unit(unit_id: str, actor: Reader, archives: ArchivesDep) -> dict[str, Any]:
    return archives.units.get(actor, unit_id).as_dict()


@router.get("/units/{unit_id}/children", summary="Les unités rattachées")
def get_children(unit_id: str, actor: Reader, archives: ArchivesDep) -> dict[str, Any]:
    return {"items": [_unit_summary(archives, u)
                      for u in archives.units.children(actor, unit_id)]}


@router.get("/units/{unit_id}/logbook", summary="Journal du cycle de vie de l'unité")
def get_logbook(unit_id: str, actor: Reader, archives: ArchivesDep) -> dict[str, Any]:
    return {"items": [
        {"seq": e.seq, "id": e.id, "at": e.at.isoformat(), "event_type": e.event_type,
         "outcome": e.outcome, "agent": e.agent, "object_id": e.object_id,
         "operation_id": e.operation_id, "detail": json.loads(e.detail), "hash": e.hash}
        for e in archives.units.logbook(actor, unit_id)]}


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


@router.get("/units/{unit_id}/objects/{object_id}/content", summary="Télécharger un fichier",
            response_class=StreamingResponse)
async def download(unit_id: str, object_id: str, actor: Reader, archives: ArchivesDep
                   ) -> Response:
    """Streams the file; ``Repr-Digest`` (RFC 9530) carries its SHA-512 and SHA-256."""
    found = await run_in_threadpool(archives.units.open_content, actor, unit_id, object_id)
    stream = found.stream

    def chunks() -> Iterator[bytes]:
        try:
            while block := stream.read(CHUNK):
                yield block
        finally:
            stream.close()

    obj = found.obj
    ascii_name = obj.filename.encode("ascii", "replace").decode().replace('"', "_")
    headers = {
        "Content-Length": str(obj.size),
        "Repr-Digest": f"sha-512=:{_b64(obj.sha512)}:, sha-256=:{_b64(obj.sha256)}:",
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; "
                               f"filename*=UTF-8''{quote(obj.filename)}",
        "Cache-Control": "no-store",
    }
    return StreamingResponse(chunks(), media_type=obj.media_type, headers=headers)


@router.post("/units/{unit_id}/shares", status_code=201, summary="Partager (lecture seule)")
def share(unit_id: str, request: ShareRequest, actor: Writer, archives: ArchivesDep
          ) -> dict[str, Any]:
    return share_dict(archives.units.share(actor, unit_id, request))


@router.get("/units/{unit_id}/shares", summary="Partages d'une unité")
def shares(unit_id: str, actor: Reader, archives: ArchivesDep) -> dict[str, Any]:
    return {"items": [share_dict(s) for s in archives.units.shares(actor, unit_id)]}


@router.delete("/shares/{share_id}", summary="Révoquer un partage")
def revoke(share_id: str, actor: Writer, archives: ArchivesDep,
           reason: str | None = Query(default=None, max_length=500)) -> dict[str, Any]:
    return share_dict(archives.units.revoke_share(actor, share_id, reason=reason))


@router.put("/units/{unit_id}/rules", summary="Changer les règles d'une unité (motif requis)")
def change_rules(unit_id: str, change: RuleChange, actor: Writer, archives: ArchivesDep
                 ) -> dict[str, Any]:
    view: UnitView = archives.units.change_rules(actor, unit_id, change)
    return view.as_dict()


@router.get("/rules", summary="Référentiel des règles de gestion")
def list_rules(actor: Reader, archives: ArchivesDep, format: str = "json") -> Response:
    rules = archives.rules.list()
    if format == "csv":
        return Response(to_csv(rules), media_type="text/csv; charset=utf-8")
    return JSONResponse({"items": [
        {"rule_id": r.rule_id, "rule_type": r.rule_type, "value": r.value,
         "description": r.description, "duration": r.duration, "measurement": r.measurement}
        for r in rules]})


@router.post("/rules/import", summary="Importer le référentiel (CSV au format Vitam)")
async def import_rules(request: Request, actor: Administrator, archives: ArchivesDep
                       ) -> dict[str, Any]:
    body = await request.body()
    if len(body) > 5 * 1024 * 1024:
        raise InvalidInput("Référentiel trop volumineux (5 Mio au plus).")
    try:
        data = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("Le référentiel doit être en UTF-8.") from exc
    count = await run_in_threadpool(archives.rules.import_csv, data, actor=actor)
    return {"imported": count}


@router.get("/space", summary="Quota et usage de l'espace de l'organisation")
def space(actor: Reader, archives: ArchivesDep) -> dict[str, Any]:
    if not actor.organisation:
        raise InvalidInput("Ce jeton n'agit pour aucune organisation.")
    usage = archives.spaces.usage(actor.organisation)
    return {"organisation": actor.organisation, "used_bytes": usage.used_bytes,
            "quota_bytes": usage.quota_bytes, "is_open": usage.is_open}


# --- elimination --------------------------------------------------------------------------


def _elimination(archives: ArchivesDep, elimination: Any, lines: list[Any] | None = None
                 ) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": elimination.id, "organisation": elimination.organisation,
        "status": elimination.status, "reason": elimination.reason,
        "summary": json.loads(elimination.summary), "proposed_by": elimination.proposed_by,
        "proposed_at": elimination.proposed_at.isoformat(),
        "decided_by": elimination.decided_by,
        "executed_at": elimination.executed_at.isoformat() if elimination.executed_at else None,
    }
    if lines is not None:
        body["lines"] = [{"unit_id": line.unit_id, "ark": archives.units.ark(line.unit_id),
                          "title": line.title, "size": line.size,
                          "appraisal_rule": line.appraisal_rule,
                          "appraisal_end": line.appraisal_end.isoformat()
                          if line.appraisal_end else None,
                          "decision": line.decision, "decided_by": line.decided_by,
                          "comment": line.comment} for line in lines]
    return body


@router.get("/eliminations/eligible", summary="Unités dont la DUA est échue (sort final : "
            "détruire, sans gel)")
def eligible(actor: Reader, archives: ArchivesDep) -> dict[str, Any]:
    return {"items": [_unit_summary(archives, u)
                      for u in archives.eliminations.eligible(actor)]}


@router.post("/eliminations", status_code=201, summary="Proposer un bordereau d'élimination")
def propose(proposal: EliminationProposal, actor: Writer, archives: ArchivesDep
            ) -> dict[str, Any]:
    elimination = archives.eliminations.propose(actor, proposal.units, reason=proposal.reason)
    return _elimination(archives, *archives.eliminations.get(actor, elimination.id))


@router.get("/eliminations", summary="Bordereaux d'élimination")
def eliminations(actor: Reader, archives: ArchivesDep) -> dict[str, Any]:
    return {"items": [_elimination(archives, e) for e in archives.eliminations.list(actor)]}


@router.get("/eliminations/{elimination_id}", summary="Un bordereau et ses lignes")
def elimination(elimination_id: str, actor: Reader, archives: ArchivesDep) -> dict[str, Any]:
    return _elimination(archives, *archives.eliminations.get(actor, elimination_id))


@router.post("/eliminations/{elimination_id}/visa",
             summary="Visa de l'autorité d'archives, ligne par ligne")
def visa(elimination_id: str, body: Visa, actor: Writer, archives: ArchivesDep
         ) -> dict[str, Any]:
    decisions = [LineDecision(line.unit_id, line.decision, line.comment) for line in body.lines]
    archives.eliminations.decide(actor, elimination_id, decisions)
    return _elimination(archives, *archives.eliminations.get(actor, elimination_id))


@router.get("/eliminations/{elimination_id}/certificate",
            summary="Certificat de destruction signé (JSON + JWS)")
def certificate(elimination_id: str, actor: Reader, archives: ArchivesDep) -> Response:
    body = archives.eliminations.certificate(actor, elimination_id)
    return JSONResponse(body, headers={
        "Content-Disposition": f'attachment; filename="certificat-{elimination_id}.json"'})


# --- integrity ----------------------------------------------------------------------------


def _platform_operator(actor: Any) -> None:
    if actor.is_client or not (actor.is_authority or "ctm_admin" in actor.roles):
        raise Forbidden("Réservé à l'autorité d'archives et aux administrateurs de la CTM.")


def _report(report: Any) -> dict[str, Any]:
    return {"id": report.id, "trigger": report.trigger, "actor": report.actor,
            "started_at": report.started_at.isoformat(),
            "finished_at": report.finished_at.isoformat() if report.finished_at else None,
            "checked": report.checked, "copies_ok": report.copies_ok,
            "missing": report.missing, "corrupt": report.corrupt,
            "unavailable": report.unavailable, "repaired": report.repaired,
            "details": json.loads(report.details)}


@router.post("/audits", status_code=201, summary="Lancer un audit d'intégrité")
async def run_audit(actor: Administrator, archives: ArchivesDep) -> dict[str, Any]:
    _platform_operator(actor)
    report = await run_in_threadpool(archives.integrity.audit, trigger="on demand",
                                     actor=actor.label)
    return _report(report)


@router.get("/audits", summary="Rapports d'audit d'intégrité")
def audits(actor: Administrator, archives: ArchivesDep) -> dict[str, Any]:
    _platform_operator(actor)
    return {"items": [_report(r) for r in archives.integrity.reports()]}


@router.get("/logbook/verification", summary="Vérifier la chaîne et les scellements du journal")
async def verify_logbook(actor: Administrator, archives: ArchivesDep) -> dict[str, Any]:
    _platform_operator(actor)
    report = await run_in_threadpool(archives.integrity.verify)
    return {"ok": report.ok, "entries": report.entries, "seals": report.seals,
            "first_broken_entry": report.first_broken_entry,
            "first_broken_seal": report.first_broken_seal, "reason": report.reason,
            "warnings": report.warnings}


# --- ingest contract ----------------------------------------------------------------------


@router.get("/contract", summary="Contrat d'entrée de l'organisation")
def get_contract(actor: Reader, archives: ArchivesDep) -> dict[str, Any]:
    if not actor.organisation:
        raise InvalidInput("Ce jeton n'agit pour aucune organisation.")
    return archives.contracts.get(actor.organisation)


@router.put("/contract", summary="Fixer le contrat d'entrée (formats, limites, rattachement)")
def put_contract(request: ContractRequest, actor: Administrator, archives: ArchivesDep
                 ) -> dict[str, Any]:
    return archives.contracts.set(actor, request)


# --- packages (asynchronous ingest) and export ----------------------------------------------


def _operation(archives: ArchivesDep, operation: Any) -> dict[str, Any]:
    return {"id": operation.id, "kind": operation.kind, "status": operation.status,
            "organisation": operation.organisation, "size": operation.size,
            "created_at": operation.created_at.isoformat(),
            "finished_at": operation.finished_at.isoformat() if operation.finished_at else None,
            "result": json.loads(operation.result) if operation.finished_at else None,
            "reply": f"/api/archives/operations/{operation.id}/reply"
            if operation.reply else None}


@router.post("/packages", status_code=202,
             summary="Verser un paquet BagIt ou SEDA (traitement asynchrone)")
async def submit_package(request: Request, actor: Writer, archives: ArchivesDep,
                         format: str = Query(pattern="^(bagit|seda)$")) -> Response:
    """The body is the ZIP (``application/zip``). Answers 202 with the operation to poll;
    its outcome is an ``ArchiveTransferReply`` (accepted, or refused with every reason)."""
    declared = request.headers.get("content-length")
    size = int(declared) if declared and declared.isdigit() else None
    await run_in_threadpool(archives.deposits.precheck, actor, size)
    staging = archives.deposits.staging_dir()
    try:
        staged = await receive(request.stream(), staging,
                               max_bytes=archives.config.max_deposit_bytes)
        operation = await run_in_threadpool(archives.operations.submit, actor, format, staged)
    finally:
        await run_in_threadpool(shutil.rmtree, staging, True)
    location = f"/api/archives/operations/{operation.id}"
    return JSONResponse(_operation(archives, operation), status_code=202,
                        headers={"Location": location, "Retry-After": "1"})


@router.get("/operations/{operation_id}", summary="État d'une opération d'entrée")
def get_operation(operation_id: str, actor: Reader, archives: ArchivesDep) -> Response:
    operation = archives.operations.get(actor, operation_id)
    headers = {} if operation.finished_at else {"Retry-After": "1"}
    return JSONResponse(_operation(archives, operation), headers=headers)


@router.get("/operations/{operation_id}/reply", summary="ArchiveTransferReply (SEDA 2.2)")
def get_reply(operation_id: str, actor: Reader, archives: ArchivesDep) -> Response:
    operation = archives.operations.get(actor, operation_id)
    if operation.reply is None:
        raise NotFound("Opération en cours : pas encore de réponse.")
    return Response(operation.reply, media_type="application/xml")


@router.get("/units/{unit_id}/export", summary="Exporter une unité (sac BagIt zippé)",
            response_class=StreamingResponse)
async def export(unit_id: str, actor: Reader, archives: ArchivesDep) -> Response:
    staging = archives.deposits.staging_dir()
    try:
        path = await run_in_threadpool(archives.export, actor, unit_id, staging / "export.zip")
    except BaseException:
        await run_in_threadpool(shutil.rmtree, staging, True)
        raise

    def chunks() -> Iterator[bytes]:
        try:
            with path.open("rb") as fh:
                while block := fh.read(CHUNK):
                    yield block
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    return StreamingResponse(chunks(), media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{unit_id}.bagit.zip"',
        "Content-Length": str(path.stat().st_size)})
