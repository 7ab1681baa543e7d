"""Archive pages: search, unit detail with its logbook and files, elimination proposals and
the archival authority's visa, integrity audit reports. Every rule is the archival
service's (``archivage``'s public API); the page builds the acting person from the console
session's roles in the chosen organisation."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, time
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
    get_provider,
    redirect,
    render,
)
from admin_ui.permissions import MATRIX
from archivage import (
    Actor,
    Archives,
    ContractRequest,
    DepositMetadata,
    IncomingFile,
    LineDecision,
    ReferentialRefused,
    RuleAssignment,
    RuleChange,
    ShareRequest,
)
from idp import PLATFORM_ROLES
from plateforme.blobs import receive
from plateforme.clock import utcnow
from plateforme.errors import Forbidden, InvalidInput, NotFound

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


RULE_CATEGORIES = {"AppraisalRule": "DUA", "AccessRule": "communicabilité",
                   "HoldRule": "gel"}
RULE_FIELDS = {"AppraisalRule": "dua", "AccessRule": "communicabilite", "HoldRule": "gel"}


def _unit_page(request: Request, staff: Staff, org: str, unit_id: str, *,
               errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
               status_code: int = 200) -> Response:
    archives = _archives(request)
    actor = _actor(staff, org)
    view = archives.units.get(actor, unit_id)
    owner = view.access == "owner"
    events = archives.units.logbook(actor, unit_id) if owner else []
    manage = owner and staff.perms.can("archives.manage", org)
    context: dict[str, Any] = {
        "title": ("Erreur : " if errors else "") + view.unit.title, "section": "archives",
        "organisation": org, "unit": view.as_dict(),
        "children": archives.units.children(actor, unit_id),
        "events": [{"at": e.at, "type": EVENT_LABELS.get(e.event_type, e.event_type),
                    "outcome": e.outcome, "agent": e.agent, "seq": e.seq} for e in events],
        "manage": manage, "errors": errors or {}, "values": values or {},
    }
    if manage:
        provider = get_provider(request)
        context["shares"] = [share_view(s) for s in archives.units.shares(actor, unit_id)]
        context["partners"] = [o for o in provider.organisations.list() if o.slug != org]
        own = {r.category: r for r in archives.units.own_rules(actor, unit_id)}
        context["own_rules"] = own
        context["rule_choices"] = {c: [r for r in archives.rules.list() if r.rule_type == c]
                                   for c in RULE_CATEGORIES}
        context["rule_labels"] = RULE_CATEGORIES
        context["rule_fields"] = RULE_FIELDS
        if not values:
            context["values"] = {
                **{f"{RULE_FIELDS[c]}": r.rule_id for c, r in own.items()},
                **{f"{RULE_FIELDS[c]}_debut": r.start_date.isoformat() for c, r in own.items()},
                "sort_final": own["AppraisalRule"].final_action or ""
                if "AppraisalRule" in own else "",
                **{f"bloquer_{RULE_FIELDS[c]}": "on"
                   for c in view.as_dict()["rules"]["blocked"] if c in RULE_FIELDS},
            }
    return render(request, "archives/unit.html", context, status_code=status_code)


def share_view(share: Any) -> dict[str, Any]:
    until = share.until if share.until.tzinfo else share.until.replace(tzinfo=UTC)
    active = share.revoked_at is None and until > utcnow()
    return {"id": share.id, "organisation": share.grantee, "until": until.date().isoformat(),
            "created_by": share.created_by, "active": active,
            "state": "actif" if active else ("révoqué" if share.revoked_at else "échu")}


@router.get("/archives/unites/{unit_id}", name="admin.archives.unit")
def unit(unit_id: str, request: Request, staff: StaffDep, organisation: str | None = None
         ) -> Response:
    org = _chosen(staff, "archives.view", organisation)
    return _unit_page(request, staff, org, unit_id)


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
    target = f"/admin/archives/unites/{ack['units'][0]['id']}?organisation={org}"
    if request.headers.get("x-progression") == "xhr":  # the progress script navigates itself
        return JSONResponse({"location": target})
    return redirect(target)


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
            organisation: Annotated[str, Form(max_length=100)] = "",
            unites: Annotated[list[str] | None, Form()] = None,
            motif: Annotated[str, Form(max_length=2000)] = "") -> Response:
    organisation = _chosen(staff, "archives.eliminate", organisation or None)
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


# --- sharing --------------------------------------------------------------------------------

MAX_CSV_BYTES = 2 * 1024 * 1024


def _field_errors(exc: InvalidInput, fields: dict[str, str], default: str) -> dict[str, str]:
    return {fields.get(exc.field or "", default): exc.message}


@router.post("/archives/unites/{unit_id}/partages", name="admin.archives.share")
def share(unit_id: str, request: Request, staff: FormStaffDep,
          organisation: Annotated[str, Form(max_length=100)] = "",
          partenaire: Annotated[str, Form(max_length=100)] = "",
          fin: Annotated[str, Form(max_length=20)] = "",
          motif: Annotated[str, Form(max_length=500)] = "") -> Response:
    """Share the unit (read only, with what lies below it) until the end of ``fin``."""
    org = _chosen(staff, "archives.manage", organisation or None)
    values = {"partenaire": partenaire, "fin": fin, "motif_partage": motif}
    errors: dict[str, str] = {}
    if not partenaire.strip():
        errors["partage-organisation"] = "Choisissez l'organisation destinataire."
    until: date | None = None
    try:
        until = date.fromisoformat(fin.strip())
    except ValueError:
        errors["partage-fin"] = "Indiquez la date de fin du partage (AAAA-MM-JJ)."
    if errors or until is None:
        return _unit_page(request, staff, org, unit_id, errors=errors, values=values,
                          status_code=422)
    try:
        _archives(request).units.share(_actor(staff, org), unit_id, ShareRequest(
            organisation=partenaire.strip(), reason=motif.strip() or None,
            until=datetime.combine(until, time(23, 59, 59), tzinfo=UTC)))
    except InvalidInput as exc:
        return _unit_page(request, staff, org, unit_id, values=values, status_code=422,
                          errors=_field_errors(exc, {"organisation": "partage-organisation",
                                                     "until": "partage-fin"},
                                               "partage-organisation"))
    flash(request, f"Unité partagée avec « {partenaire.strip()} » jusqu'au "
                   f"{until.strftime('%d/%m/%Y')} (lecture seule).")
    return redirect(f"/admin/archives/unites/{unit_id}?organisation={org}")


@router.post("/archives/partages/{share_id}/revoquer", name="admin.archives.revoke_share")
def revoke_share(share_id: str, request: Request, staff: FormStaffDep,
                 organisation: Annotated[str, Form(max_length=100)] = "") -> Response:
    org = _chosen(staff, "archives.manage", organisation or None)
    revoked = _archives(request).units.revoke_share(_actor(staff, org), share_id,
                                                    reason="révoqué depuis la console")
    flash(request, f"Partage avec « {revoked.grantee} » révoqué.")
    return redirect(f"/admin/archives/unites/{revoked.unit_id}?organisation={org}")


# --- management rules -----------------------------------------------------------------------


@router.post("/archives/unites/{unit_id}/regles", name="admin.archives.unit_rules")
async def change_unit_rules(unit_id: str, request: Request, staff: FormStaffDep) -> Response:
    """Set the unit's own rules (one per category, or none: inherited) with a reason."""
    form = await request.form()
    values = {k: str(v).strip()[:200] for k, v in form.multi_items()
              if k != "csrf_token" and isinstance(v, str)}
    org = _chosen(staff, "archives.manage", values.get("organisation") or None)
    errors: dict[str, str] = {}
    assignments: list[RuleAssignment] = []
    for category, name in RULE_FIELDS.items():
        rule_id = values.get(name, "")
        if not rule_id:
            continue
        start: date | None = None
        if values.get(f"{name}_debut"):
            try:
                start = date.fromisoformat(values[f"{name}_debut"])
            except ValueError:
                errors[f"regles-{name}_debut"] = "Date invalide (AAAA-MM-JJ)."
                continue
        final = values.get("sort_final") or None if category == "AppraisalRule" else None
        if final not in (None, "conserver", "détruire", "trier"):
            errors["regles-sort_final"] = "Sort final inconnu."
            continue
        assignments.append(RuleAssignment.model_validate(
            {"rule_id": rule_id, "start_date": start, "final_action": final}))
    motif = values.get("motif", "")
    if len(motif) < 3:
        errors["regles-motif"] = "Indiquez le motif du changement (3 caractères au moins)."
    if errors:
        return _unit_page(request, staff, org, unit_id, errors=errors, values=values,
                          status_code=422)
    blocked = [c for c, name in RULE_FIELDS.items() if values.get(f"bloquer_{name}")]
    try:
        await run_in_threadpool(_archives(request).units.change_rules, _actor(staff, org),
                                unit_id, RuleChange(rules=assignments, block=blocked,
                                                    reason=motif[:1000]))
    except InvalidInput as exc:
        return _unit_page(request, staff, org, unit_id, values=values, status_code=422,
                          errors={"regles-dua": exc.message})
    flash(request, "Règles de l'unité modifiées ; les échéances de sa descendance sont "
                   "recalculées.")
    return redirect(f"/admin/archives/unites/{unit_id}?organisation={org}")


def _rules_page(request: Request, staff: Staff, reasons: list[str] | None = None,
                status_code: int = 200) -> Response:
    return render(request, "archives/rules.html", {
        "title": ("Erreur : " if reasons else "") + "Référentiel des règles de gestion",
        "section": "archives", "rules": _archives(request).rules.list(),
        "labels": RULE_CATEGORIES, "can_import": staff.perms.can_somewhere("archives.rules"),
        "reasons": reasons or [], "errors": {
            "regles-fichier": f"référentiel refusé ({len(reasons)} erreur(s), détaillées "
                              "sous le champ)"} if reasons else {},
    }, status_code=status_code)


@router.get("/archives/regles", name="admin.archives.rules")
def rules(request: Request, staff: StaffDep) -> Response:
    if not (staff.perms.can_somewhere("archives.view")
            or staff.perms.can_somewhere("archives.rules")):
        raise Forbidden("action non autorisée")
    return _rules_page(request, staff)


@router.post("/archives/regles", name="admin.archives.rules_import")
async def import_rules(request: Request, staff: FormStaffDep) -> Response:
    """Import a référentiel in Vitam's CSV shape: all of it, or nothing with every error."""
    org = _chosen(staff, "archives.rules", None)
    form = await request.form()
    upload = form.get("fichier")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _rules_page(request, staff, ["choisissez un fichier CSV"], 422)
    data = await upload.read(MAX_CSV_BYTES + 1)
    if len(data) > MAX_CSV_BYTES:
        return _rules_page(request, staff, ["le fichier dépasse 2 Mio"], 422)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _rules_page(request, staff, ["le fichier n'est pas encodé en UTF-8"], 422)
    try:
        count = await run_in_threadpool(_archives(request).rules.import_csv, text,
                                        actor=_actor(staff, org))
    except ReferentialRefused as exc:
        return _rules_page(request, staff, exc.reasons, 422)
    flash(request, f"Référentiel importé : {count} règle(s) créée(s) ou mise(s) à jour.")
    return redirect("/admin/archives/regles")


# --- ingest contract ------------------------------------------------------------------------


def _contract_page(request: Request, staff: Staff, org: str, values: dict[str, str] | None,
                   errors: dict[str, str], status_code: int = 200) -> Response:
    contract = _archives(request).contracts.get(org)
    if values is None:
        size = contract["max_file_bytes"]
        values = {"formats": "\n".join(contract["formats"]),
                  "taille_max": str(size) if size else "",
                  "fichiers_max": str(contract["max_files"] or ""),
                  "rattachement": contract["attachment_unit"] or ""}
    return render(request, "archives/contract.html", {
        "title": ("Erreur : " if errors else "") + "Contrat d'entrée", "section": "archives",
        "organisation": org, "organisations": _organisations(staff, "archives.view"),
        "contract": contract, "values": values, "errors": errors,
        "manage": staff.perms.can("archives.manage", org)}, status_code=status_code)


@router.get("/archives/contrat", name="admin.archives.contract")
def contract(request: Request, staff: StaffDep, organisation: str | None = None) -> Response:
    org = _chosen(staff, "archives.view", organisation)
    return _contract_page(request, staff, org, None, {})


def _positive(value: str, field: str, errors: dict[str, str]) -> int | None:
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        errors[field] = "Indiquez un nombre entier positif, ou laissez vide (pas de limite)."
        return None
    return int(value)


@router.post("/archives/contrat", name="admin.archives.contract_set")
def set_contract(request: Request, staff: FormStaffDep,
                 organisation: Annotated[str, Form(max_length=100)] = "",
                 formats: Annotated[str, Form(max_length=10000)] = "",
                 taille_max: Annotated[str, Form(max_length=20)] = "",
                 fichiers_max: Annotated[str, Form(max_length=10)] = "",
                 rattachement: Annotated[str, Form(max_length=100)] = "",
                 motif: Annotated[str, Form(max_length=1000)] = "") -> Response:
    org = _chosen(staff, "archives.manage", organisation or None)
    values = {"formats": formats, "taille_max": taille_max.strip(),
              "fichiers_max": fichiers_max.strip(), "rattachement": rattachement.strip(),
              "motif": motif}
    errors: dict[str, str] = {}
    max_bytes = _positive(values["taille_max"], "contrat-taille_max", errors)
    max_files = _positive(values["fichiers_max"], "contrat-fichiers_max", errors)
    if max_files is not None and max_files > 100000:
        errors["contrat-fichiers_max"] = "100 000 fichiers au plus."
    listed = [f.strip() for f in formats.replace(",", "\n").splitlines() if f.strip()]
    if len(listed) > 200:
        errors["contrat-formats"] = "200 formats au plus."
    if len(motif.strip()) < 3:
        errors["contrat-motif"] = "Indiquez le motif du changement (3 caractères au moins)."
    if errors:
        return _contract_page(request, staff, org, values, errors, 422)
    attachment = values["rattachement"].rsplit("/", 1)[-1] or None  # an id or its ARK
    try:
        _archives(request).contracts.set(_actor(staff, org), ContractRequest(
            formats=listed, max_file_bytes=max_bytes, max_files=max_files,
            attachment_unit=attachment, reason=motif.strip()))
    except (InvalidInput, NotFound) as exc:
        return _contract_page(request, staff, org, values, {"contrat-rattachement": exc.message}
                              if exc.field == "attachment_unit" else
                              {"contrat-formats": exc.message}, 422)
    flash(request, "Contrat d'entrée enregistré : il s'applique aux prochains versements.")
    return redirect(f"/admin/archives/contrat?organisation={org}")
