"""Mandates recorded by the collectivity: a parent for a minor child (who needs no account) or
for an account, a legal guardian — on a verified document whose reference is journaled. The
operators (``mandates.manage``: support, CTM administrators) list every mandate and revoke
one; revoking ends the delegated sessions at once (``Provider.revoke_mandate``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from admin_ui.deps import (
    ConsoleRoute,
    FormStaffDep,
    ProviderDep,
    Staff,
    StaffDep,
    flash,
    redirect,
    render,
)
from admin_ui.forms import reason_error
from idp import Provider
from idp.services.mandates import RELATIONSHIPS, MandateTerms
from plateforme.errors import InvalidInput, NotFound

router = APIRouter(route_class=ConsoleRoute)

ACTION = "mandates.manage"
RELATIONSHIP_LABELS = {"parent": "Parent (autorité parentale)", "guardian": "Tuteur légal"}
ORIGIN_LABELS = {"self": "donnée par la personne", "relationship": "lien vérifié",
                 "mediator": "médiateur numérique"}
STATUS_LABELS = {"active": "active", "pending": "en attente", "revoked": "retirée",
                 "cancelled": "annulée"}
FIELDS = {"mandatary": "mandataire", "mandator": "mandant", "name": "enfant-prenom",
          "relationship": "lien", "ends_at": "fin", "scopes": "fin"}
Text = Annotated[str, Form(max_length=300)]


def _label(user: Any) -> str:
    if user is None:
        return "compte supprimé"
    name = f"{user.given_name or ''} {user.family_name or ''}".strip()
    return name if user.email.endswith("@mineur.invalid") else (
        f"{name} ({user.email})" if name else user.email)


def _list_page(request: Request, staff: Staff, provider: Provider,
               errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    rows = []
    for mandate in provider.mandates.recent():
        rows.append({
            "id": mandate.id, "mandator": _label(provider.users.get(mandate.mandator_id)),
            "mandatary": _label(provider.users.get(mandate.mandatary_id)),
            "origin": ORIGIN_LABELS.get(mandate.origin, mandate.origin),
            "relationship": RELATIONSHIP_LABELS.get(mandate.relationship or "", ""),
            "ends_at": mandate.ends_at, "status": STATUS_LABELS.get(mandate.status,
                                                                    mandate.status),
            "revocable": mandate.status in ("active", "pending"),
        })
    return render(request, "admin/mandates.html", {
        "title": ("Erreur : " if errors else "") + "Procurations", "section": "procurations",
        "mandates": rows, "errors": errors or {}}, status_code=status_code)


@router.get("/procurations", name="admin.mandates.list")
def list_mandates(request: Request, staff: StaffDep, provider: ProviderDep) -> Response:
    staff.require(ACTION)
    return _list_page(request, staff, provider)


def _form(request: Request, provider: Provider, values: dict[str, Any],
          errors: dict[str, str], status_code: int = 200) -> Response:
    clients = [c for c in provider.clients.list() if c.delegation_allowed]
    return render(request, "admin/mandate_new.html", {
        "title": ("Erreur : " if errors else "") + "Enregistrer une procuration",
        "section": "procurations", "values": values, "errors": errors, "clients": clients,
        "relationships": RELATIONSHIP_LABELS}, status_code=status_code)


@router.get("/procurations/nouvelle", name="admin.mandates.new")
def new_mandate(request: Request, staff: StaffDep, provider: ProviderDep) -> Response:
    staff.require(ACTION)
    return _form(request, provider, {"pour": "mineur", "lien": "parent", "clients": []}, {})


@router.post("/procurations/nouvelle", name="admin.mandates.create")
def create_mandate(
    request: Request, staff: FormStaffDep, provider: ProviderDep,
    mandataire: Text = "", lien: Text = "", pour: Text = "", mandant: Text = "",
    prenom: Text = "", nom: Text = "", naissance: Text = "", fin: Text = "",
    piece: Text = "", motif: Annotated[str, Form(max_length=1000)] = "",
    clients: Annotated[list[str] | None, Form()] = None,
) -> Response:
    staff.require(ACTION)
    values = {"mandataire": mandataire, "lien": lien, "pour": pour, "mandant": mandant,
              "prenom": prenom, "nom": nom, "naissance": naissance, "fin": fin,
              "piece": piece, "motif": motif, "clients": clients or []}
    errors: dict[str, str] = {}
    mandatary = provider.users.get_by_email(mandataire.strip().lower()) \
        if mandataire.strip() else None
    if mandatary is None or mandatary.locked:
        errors["mandataire"] = "Aucun compte Martinique Connect n'utilise cette adresse."
    if lien not in RELATIONSHIPS:
        errors["lien"] = "Choisissez le lien."
    mandator = None
    if pour == "compte":
        mandator = provider.users.get_by_email(mandant.strip().lower()) \
            if mandant.strip() else None
        if mandator is None:
            errors["mandant"] = "Aucun compte Martinique Connect n'utilise cette adresse."
    elif pour != "mineur":
        errors["pour"] = "Indiquez pour qui la procuration est donnée."
    try:
        ends_at = datetime.combine(datetime.strptime(fin, "%Y-%m-%d").date(), time.max,
                                   tzinfo=UTC).replace(microsecond=0)
    except ValueError:
        errors["fin"] = "Indiquez la date de fin (jj/mm/aaaa)."
    if len(piece.strip()) < 3:
        errors["piece"] = "Indiquez la référence de la pièce vérifiée."
    if message := reason_error(motif):
        errors["motif"] = message
    known = {c.client_id for c in provider.clients.list() if c.delegation_allowed}
    if any(c not in known for c in clients or []):
        errors["applications"] = "Application inconnue ou sans procuration."
    if not errors and mandatary is not None:
        try:
            provider.mandates.record_relationship(
                mandator.id if mandator is not None else None, mandatary.id, lien,
                MandateTerms(clients=tuple(clients or ()), scopes=(), ends_at=ends_at),
                actor=staff.user_id, reason=motif.strip(), document=piece.strip(),
                minor={"given_name": prenom, "family_name": nom,
                       "birthdate": naissance.strip() or None} if pour == "mineur" else None)
        except InvalidInput as exc:
            errors[FIELDS.get(exc.field or "", "motif")] = exc.message
    if errors:
        return _form(request, provider, values, errors, status_code=422)
    flash(request, "La procuration est enregistrée et active.")
    return redirect("/admin/procurations")


@router.post("/procurations/{mandate_id}/retirer", name="admin.mandates.revoke")
def revoke_mandate(mandate_id: str, request: Request, staff: FormStaffDep,
                   provider: ProviderDep,
                   motif: Annotated[str, Form(max_length=1000)] = "") -> Response:
    staff.require(ACTION)
    try:
        mandate = provider.mandates.get(uuid.UUID(mandate_id))
    except ValueError:
        mandate = None
    if mandate is None:
        raise NotFound("procuration introuvable")
    if message := reason_error(motif):
        return _list_page(request, staff, provider, {f"motif-{mandate.id}": message}, 422)
    provider.revoke_mandate(mandate.id, staff.user_id or "", as_operator=True,
                            address=staff.address, reason=motif.strip())
    flash(request, "La procuration est retirée : les sessions ouvertes par procuration sont "
          "terminées et leurs jetons révoqués.")
    return redirect("/admin/procurations")
