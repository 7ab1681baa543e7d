"""Archive pages: search, unit detail with its logbook and files, elimination proposals and
the archival authority's visa, integrity audit reports. Every rule is the archival
service's (``archivage``'s public API); the page builds the acting person from the console
session's roles in the chosen organisation."""

from __future__ import annotations

import json
import shutil
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, Response, StreamingResponse

from admin_ui.deps import (
    ConsoleRoute,
    FormStaffDep,
    Staff,
    StaffDep,
    check_csrf,
    flash,
    get_csrf,
    redirect,
    render,
)
from admin_ui.permissions import MATRIX
from archivage import Actor, Archives, DepositMetadata, IncomingFile, LineDecision
from idp import PLATFORM_ROLES
from plateforme.blobs import receive
from plateforme.errors import Forbidden, InvalidInput

router = APIRouter(route_class=ConsoleRoute)

EVENT_LABELS = {
    "ingestion": "versement", "accession": "prise en charge", "access": "consultation",
    "message digest calculation": "calcul d'empreinte", "policy assignment": "règles appliquées",
    "modification": "modification", "share": "partage", "share revocation": "fin de partage",
    "fixity check": "contrôle d'intégrité", "replication": "réparation de copie",
    "elimination visa": "visa d'élimination", "deletion": "destruction",
    "dissemination": "export",
}
DECISIONS = {"pending": "en attente", "approved": "visa accordé", "refused": "visa refusé",
             "held": "non détruit (gel ou règle modifiée)"}


def _archives(request: Request) -> Archives:
    return request.app.state.archives  # type: ignore[no-any-return]


def _organisations(staff: Staff, action: str) -> list[str]:
    """The organisations where the person may do ``action`` (their own memberships)."""
    return sorted({g.organisation for g in staff.perms.roles
                   if action in MATRIX.get(g.role, frozenset())})


def _actor(staff: Staff, organisation: str) -> Actor:
    roles = {g.role for g in staff.perms.roles
             if g.organisation == organisation or g.role in PLATFORM_ROLES}
    return Actor(subject=staff.user_id, organisation=organisation, roles=frozenset(roles),
                 address=staff.address)


def _chosen(staff: Staff, action: str, requested: str | None) -> str:
    staff.require_somewhere(action)
    allowed = _organisations(staff, action)
    if requested and requested in allowed:
        return requested
    if requested or not allowed:
        raise Forbidden("organisation non autorisée")
    return allowed[0]


@router.get("/archives", name="admin.archives.search")
def search(request: Request, staff: StaffDep, organisation: str | None = None,
           q: str = "") -> Response:
    org = _chosen(staff, "archives.view", organisation)
    archives = _archives(request)
    query = q.strip()[:500]
    units = archives.units.search(_actor(staff, org), query=query or None, limit=100)
    return render(request, "archives/search.html", {
        "title": "Archives", "section": "archives", "organisation": org,
        "organisations": _organisations(staff, "archives.view"), "q": query, "units": units,
        "usage": archives.spaces.usage(org),
        "can_eliminate": staff.perms.can("archives.eliminate", org),
        "can_deposit": staff.perms.can("archives.deposit", org),
    })


@router.get("/archives/unites/{unit_id}", name="admin.archives.unit")
def unit(unit_id: str, request: Request, staff: StaffDep, organisation: str | None = None
         ) -> Response:
    org = _chosen(staff, "archives.view", organisation)
    archives = _archives(request)
    actor = _actor(staff, org)
    view = archives.units.get(actor, unit_id)
    events = archives.units.logbook(actor, unit_id) if view.access == "owner" else []
    return render(request, "archives/unit.html", {
        "title": view.unit.title, "section": "archives", "organisation": org,
        "unit": view.as_dict(), "children": archives.units.children(actor, unit_id),
        "events": [{"at": e.at, "type": EVENT_LABELS.get(e.event_type, e.event_type),
                    "outcome": e.outcome, "agent": e.agent, "seq": e.seq} for e in events],
    })


@router.get("/archives/unites/{unit_id}/fichiers/{object_id}", name="admin.archives.download")
async def download(unit_id: str, object_id: str, request: Request, staff: StaffDep,
                   organisation: str | None = None) -> Response:
    org = _chosen(staff, "archives.view", organisation)
    found = await run_in_threadpool(_archives(request).units.open_content,
                                    _actor(staff, org), unit_id, object_id)

    def chunks() -> Any:
        with found.stream as stream:
            while block := stream.read(1024 * 1024):
                yield block

    return StreamingResponse(chunks(), media_type=found.obj.media_type, headers={
        "Content-Disposition": "attachment; filename*=UTF-8''" + quote(found.obj.filename),
        "Content-Length": str(found.obj.size), "Cache-Control": "no-store"})


# --- deposit --------------------------------------------------------------------------------

DEPOSIT_FIELDS = {"titre": "title", "description": "description", "producteur": "producer",
                  "date_debut": "start_date", "date_fin": "end_date",
                  "classement": "classification", "type": "document_type", "langue": "language"}


def _deposit_page(request: Request, organisation: str, values: dict[str, str],
                  errors: dict[str, str], status_code: int = 200) -> Response:
    return render(request, "archives/deposit.html", {
        "title": ("Erreur : " if errors else "") + "Verser des documents",
        "section": "archives", "organisation": organisation, "values": values,
        "errors": errors}, status_code=status_code)


@router.get("/archives/versement", name="admin.archives.deposit_form")
def deposit_form(request: Request, staff: StaffDep, organisation: str | None = None
                 ) -> Response:
    org = _chosen(staff, "archives.deposit", organisation)
    return _deposit_page(request, org, {}, {})


@router.post("/archives/versement", name="admin.archives.deposit")
async def deposit(request: Request, staff: StaffDep) -> Response:
    """The deposit form (``multipart/form-data``): files are streamed to the staging folder
    with their digests, then deposited through the archival service like an API deposit."""
    archives = _archives(request)
    declared = request.headers.get("content-length")
    form = await request.form(max_files=1000)
    check_csrf(staff, get_csrf(request), str(form.get("csrf_token", "")))
    org = _chosen(staff, "archives.deposit", str(form.get("organisation", "")) or None)
    actor = _actor(staff, org)
    await run_in_threadpool(archives.deposits.precheck, actor,
                            int(declared) if declared and declared.isdigit() else None)
    values = {k: str(form.get(k, "")).strip() for k in (*DEPOSIT_FIELDS, "mots_cles")}
    errors: dict[str, str] = {}
    fields: dict[str, Any] = {DEPOSIT_FIELDS[k]: v for k, v in values.items()
                              if k in DEPOSIT_FIELDS and v}
    fields["keywords"] = [k for k in values["mots_cles"].split(",") if k.strip()]
    try:
        metadata = DepositMetadata.model_validate(fields)
    except ValidationError as exc:
        ids = {v: f"versement-{k}" for k, v in DEPOSIT_FIELDS.items()}
        for error in exc.errors():
            name = str(error["loc"][0]) if error.get("loc") else "title"
            errors[ids.get(name, "versement-titre")] = str(error["msg"]).removeprefix(
                "Value error, ")
    uploads = [f for f in form.getlist("fichiers") if isinstance(f, UploadFile) and f.filename]
    if not uploads:
        errors["versement-fichiers"] = "Choisissez au moins un fichier."
    if errors:
        await form.close()
        return _deposit_page(request, org, values, errors, 422)
    staging = archives.deposits.staging_dir()
    try:
        incoming = []
        for upload in uploads:
            async def chunks(upload: UploadFile = upload) -> Any:
                while block := await upload.read(1024 * 1024):
                    yield block

            staged = await receive(chunks(), staging,
                                   max_bytes=archives.config.max_deposit_bytes)
            incoming.append(IncomingFile(upload.filename, staged))
        ack, _ = await run_in_threadpool(archives.deposits.deposit, actor, metadata, incoming)
    finally:
        await form.close()
        await run_in_threadpool(shutil.rmtree, staging, True)
    flash(request, f"Versement accepté : {len(ack['files'])} fichier(s), identifiant "
                   f"{ack['units'][0]['ark']}.")
    return redirect(f"/admin/archives/unites/{ack['units'][0]['id']}?organisation={org}")


# --- elimination ----------------------------------------------------------------------------


@router.get("/archives/eliminations", name="admin.archives.eliminations")
def eliminations(request: Request, staff: StaffDep, organisation: str | None = None
                 ) -> Response:
    archives = _archives(request)
    proposer_orgs = _organisations(staff, "archives.eliminate")
    visa = staff.perms.can("archives.visa")
    if not proposer_orgs and not visa:
        raise Forbidden("action non autorisée")
    org = organisation if organisation in proposer_orgs else (
        proposer_orgs[0] if proposer_orgs else None)
    eligible = archives.eliminations.eligible(_actor(staff, org)) if org else []
    listing_actor = _actor(staff, org or _organisations(staff, "archives.visa")[0])
    return render(request, "archives/eliminations.html", {
        "title": "Éliminations", "section": "eliminations" if visa else "archives",
        "organisation": org, "organisations": proposer_orgs, "eligible": eligible,
        "bordereaux": archives.eliminations.list(listing_actor), "visa": visa,
    })


@router.post("/archives/eliminations", name="admin.archives.propose")
def propose(request: Request, staff: FormStaffDep,
            organisation: Annotated[str, Form(max_length=100)],
            unites: Annotated[list[str] | None, Form()] = None,
            motif: Annotated[str, Form(max_length=2000)] = "") -> Response:
    staff.require("archives.eliminate", organisation)
    if not unites:
        raise InvalidInput("Cochez au moins une unité à proposer à l'élimination.")
    elimination = _archives(request).eliminations.propose(
        _actor(staff, organisation), unites, reason=motif.strip() or None)
    flash(request, f"Bordereau proposé ({len(unites)} unité(s)) : il attend le visa de "
                   "l'autorité d'archives.")
    return redirect(f"/admin/archives/eliminations/{elimination.id}")


def _viewer(staff: Staff) -> Actor:
    for action in ("archives.visa", "archives.eliminate", "archives.view"):
        orgs = _organisations(staff, action)
        if orgs:
            return _actor(staff, orgs[0])
    raise Forbidden("action non autorisée")


@router.get("/archives/eliminations/{elimination_id}", name="admin.archives.elimination")
def elimination(elimination_id: str, request: Request, staff: StaffDep) -> Response:
    bordereau, lines = _archives(request).eliminations.get(_viewer(staff), elimination_id)
    return render(request, "archives/elimination.html", {
        "title": "Bordereau d'élimination", "section": "archives", "bordereau": bordereau,
        "summary": json.loads(bordereau.summary), "lines": lines, "labels": DECISIONS,
        "visa": staff.perms.can("archives.visa") and bordereau.status == "proposed",
    })


@router.post("/archives/eliminations/{elimination_id}/visa", name="admin.archives.visa")
async def give_visa(elimination_id: str, request: Request, staff: FormStaffDep) -> Response:
    staff.require("archives.visa")
    form = await request.form()
    decisions = []
    for key, value in form.multi_items():
        if key.startswith("decision-") and value in ("approved", "refused"):
            unit_id = key.removeprefix("decision-")
            comment = str(form.get(f"commentaire-{unit_id}", "")).strip()[:2000] or None
            decisions.append(LineDecision(unit_id, str(value), comment))
    if not decisions:
        raise InvalidInput("Choisissez une décision pour au moins une ligne.")
    result = await run_in_threadpool(_archives(request).eliminations.decide,
                                     _viewer(staff), elimination_id, decisions)
    flash(request, "Visa enregistré." + (" Le bordereau est exécuté : le certificat de "
                                         "destruction est disponible."
                                         if result.status == "executed" else ""))
    return redirect(f"/admin/archives/eliminations/{elimination_id}")


@router.get("/archives/eliminations/{elimination_id}/certificat",
            name="admin.archives.certificate")
def certificate(elimination_id: str, request: Request, staff: StaffDep) -> Response:
    body = _archives(request).eliminations.certificate(_viewer(staff), elimination_id)
    return JSONResponse(body, headers={
        "Content-Disposition": f'attachment; filename="certificat-{elimination_id}.json"'})


# --- integrity ------------------------------------------------------------------------------


@router.get("/archives/audits", name="admin.archives.audits")
def audits(request: Request, staff: StaffDep) -> Response:
    staff.require("archives.audit")
    archives = _archives(request)
    return render(request, "archives/audits.html", {
        "title": "Audits d'intégrité", "section": "eliminations",
        "reports": archives.integrity.reports(), "logbook": archives.integrity.verify(),
    })


@router.post("/archives/audits", name="admin.archives.audit")
async def run_audit(request: Request, staff: FormStaffDep) -> Response:
    staff.require("archives.audit")
    report = await run_in_threadpool(_archives(request).integrity.audit,
                                     trigger="on demand", actor=staff.user_id)
    flash(request, f"Audit terminé : {report.checked} fichiers, {report.missing} copies "
                   f"manquantes, {report.corrupt} altérées, {report.repaired} réparées.")
    return redirect("/admin/archives/audits")
