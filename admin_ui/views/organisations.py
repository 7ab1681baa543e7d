"""Organisations, their members and roles; invitations by email and their acceptance.

An ``org_admin`` manages the memberships of their organisation only, and never platform roles
(those need ``members.platform_roles``: CTM administrators).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from admin_ui.deps import (
    ConsoleRoute,
    FormMemberDep,
    FormStaffDep,
    MemberDep,
    ProviderDep,
    Staff,
    StaffDep,
    flash,
    get_templates,
    redirect,
    render,
)
from admin_ui.forms import reason_error
from idp import (
    ORGANISATION_ROLES,
    PLATFORM_ORGANISATION,
    PLATFORM_ROLES,
    ROLE_LABELS,
    Provider,
)
from plateforme.errors import InvalidInput, NotFound

router = APIRouter(route_class=ConsoleRoute)

KIND_LABELS = {"ctm": "Collectivité", "epci": "Intercommunalité (EPCI)", "commune": "Commune",
               "sdis": "Service d'incendie et de secours", "other": "Autre"}
Motif = Annotated[str, Form(max_length=1000)]


@router.get("/organisations", name="admin.orgs.list")
def list_organisations(request: Request, staff: StaffDep, provider: ProviderDep) -> Response:
    staff.require_somewhere("orgs.view")
    scope = staff.perms.scope("orgs.view")
    orgs = [o for o in provider.organisations.list() if scope is None or o.slug in scope]
    return render(request, "admin/organisations.html", {
        "title": "Organisations", "section": "organisations", "organisations": orgs,
        "kind_labels": KIND_LABELS,
    })


def _roles_offered(staff: Staff, slug: str) -> list[str]:
    roles = list(ORGANISATION_ROLES)
    if slug == PLATFORM_ORGANISATION and staff.perms.can("members.platform_roles"):
        roles = list(PLATFORM_ROLES) + roles
    return roles


def _org_page(request: Request, staff: Staff, provider: Provider, slug: str,
              errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
              status_code: int = 200) -> Response:
    org = provider.organisations.get(slug)
    staff.require("orgs.view", org.slug)
    members = provider.organisations.members(org.slug)
    can_manage = staff.perms.can("members.manage", org.slug)
    return render(request, "admin/organisation.html", {
        "title": ("Erreur : " if errors else "") + org.name, "section": "organisations",
        "org": org, "kind_label": KIND_LABELS.get(org.kind, org.kind),
        "members": [(u, role, ROLE_LABELS.get(role, role),
                     can_manage and (role not in PLATFORM_ROLES
                                     or staff.perms.can("members.platform_roles")))
                    for u, role in members],
        "can_manage": can_manage, "roles": _roles_offered(staff, org.slug),
        "role_labels": ROLE_LABELS, "errors": errors or {}, "values": values or {},
    }, status_code=status_code)


@router.get("/organisations/{slug}", name="admin.orgs.show")
def show_organisation(slug: str, request: Request, staff: StaffDep, provider: ProviderDep
                      ) -> Response:
    return _org_page(request, staff, provider, slug)


def _check_role_permission(staff: Staff, slug: str, role: str) -> None:
    staff.require("members.manage", slug)
    if role in PLATFORM_ROLES:
        staff.require("members.platform_roles")


@router.post("/organisations/{slug}/roles", name="admin.members.grant")
def grant_role(
    slug: str, request: Request, staff: FormStaffDep, provider: ProviderDep,
    email: Annotated[str, Form(max_length=320)] = "",
    role: Annotated[str, Form(max_length=30)] = "", motif: Motif = "",
) -> Response:
    org = provider.organisations.get(slug)
    _check_role_permission(staff, org.slug, role)
    values = {"grant-email": email, "grant-role": role, "grant-motif": motif}
    errors: dict[str, str] = {}
    user = provider.users.get_by_email(email) if email.strip() else None
    if user is None:
        errors["grant-email"] = ("Aucun compte n'a cette adresse : invitez plutôt la personne "
                                 "(formulaire « Inviter »).")
    if role not in _roles_offered(staff, org.slug):
        errors["grant-role"] = "Choisissez un rôle."
    if message := reason_error(motif):
        errors["grant-motif"] = message
    if errors or user is None:
        return _org_page(request, staff, provider, slug, errors, values, 422)
    provider.organisations.grant(user.id, org.slug, role, actor=staff.user_id,
                                 reason=motif.strip())
    flash(request, f"{user.email} est désormais {ROLE_LABELS.get(role, role)}.")
    return redirect(f"/admin/organisations/{org.slug}")


@router.post("/organisations/{slug}/roles/retirer", name="admin.members.revoke")
def revoke_role(
    slug: str, request: Request, staff: FormStaffDep, provider: ProviderDep,
    user_id: Annotated[str, Form(max_length=64)] = "",
    role: Annotated[str, Form(max_length=30)] = "", motif: Motif = "",
) -> Response:
    org = provider.organisations.get(slug)
    _check_role_permission(staff, org.slug, role)
    try:
        uid = uuid.UUID(user_id)
    except ValueError:
        raise NotFound("compte introuvable") from None
    if message := reason_error(motif):
        return _org_page(request, staff, provider, slug, {f"motif-{uid}-{role}": message},
                         status_code=422)
    provider.organisations.revoke(uid, org.slug, role, actor=staff.user_id,
                                  reason=motif.strip())
    flash(request, f"Le rôle {ROLE_LABELS.get(role, role)} est retiré.")
    return redirect(f"/admin/organisations/{org.slug}")


@router.post("/organisations/{slug}/invitations", name="admin.members.invite")
def invite(
    slug: str, request: Request, staff: FormStaffDep, provider: ProviderDep,
    email: Annotated[str, Form(max_length=320)] = "",
    role: Annotated[str, Form(max_length=30)] = "",
) -> Response:
    org = provider.organisations.get(slug)
    _check_role_permission(staff, org.slug, role)
    values = {"invite-email": email, "invite-role": role}
    errors: dict[str, str] = {}
    address = email.strip().lower()
    if "@" not in address or " " in address or len(address) < 3:
        errors["invite-email"] = "Indiquez une adresse électronique (nom@domaine.fr)."
    if role not in _roles_offered(staff, org.slug):
        errors["invite-role"] = "Choisissez un rôle."
    if errors:
        return _org_page(request, staff, provider, slug, errors, values, 422)
    _, token = provider.organisations.invite(address, org.slug, role, actor=staff.user_id)
    link = f"{provider.issuer}/admin/invitation/{token}"
    context = {"org": org, "role_label": ROLE_LABELS.get(role, role), "link": link,
               "inviter": staff.name}
    templates = get_templates(request)
    provider.mailer.send(
        to=address, subject=f"Invitation : {ROLE_LABELS.get(role, role)} — {org.name}",
        text=templates.get_template("admin/mail_invitation.txt").render(context),
        html=templates.get_template("admin/mail_invitation.html").render(context),
    )
    flash(request, f"Invitation envoyée à {address}.")
    return redirect(f"/admin/organisations/{org.slug}")


@router.get("/invitation/{token}", name="admin.invitation.show")
def invitation(token: str, request: Request, staff: MemberDep) -> Response:
    return render(request, "admin/invitation.html", {
        "title": "Invitation", "section": "", "token": token,
    })


@router.post("/invitation/{token}", name="admin.invitation.accept")
def accept_invitation(token: str, request: Request, staff: FormMemberDep,
                      provider: ProviderDep) -> Response:
    if len(token) > 100:
        raise NotFound("invitation inconnue, déjà utilisée ou expirée")
    try:
        grant = provider.organisations.accept(token, uuid.UUID(staff.user_id))
    except InvalidInput as exc:
        return render(request, "admin/message.html", {
            "title": "Invitation refusée", "heading": "Invitation refusée",
            "message": exc.message + " Connectez-vous avec le compte de l'adresse invitée.",
            "detail": None, "retry": False,
        }, status_code=403)
    flash(request, f"Vous êtes désormais {ROLE_LABELS.get(grant.role, grant.role)} "
          f"({grant.organisation_name}).")
    return redirect("/admin/")

