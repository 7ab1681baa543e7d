"""People (accounts): search, view, lock/unlock, end sessions, resend the verification email,
reset the second factors, delete; their consents.

Each action carries a reason and is done by the provider (``Provider.lock_user``,
``Provider.reset_second_factors``, ``AccountService.resend_verification_for`` …), which keeps
the rules and writes the audit event.
"""

from __future__ import annotations

import uuid
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
from idp import ROLE_LABELS, Provider
from plateforme.errors import NotFound

router = APIRouter(route_class=ConsoleRoute)


def _user(provider: Provider, user_id: str) -> Any:
    try:
        uid = uuid.UUID(user_id)
    except ValueError:
        raise NotFound("compte introuvable") from None
    return provider.users.require(uid)


@router.get("/personnes", name="admin.people.search")
def search_people(request: Request, staff: StaffDep, provider: ProviderDep,
                  q: str = "") -> Response:
    staff.require_somewhere("people.view")
    query = q.strip()[:200]
    people = provider.users.list(query) if query else []
    return render(request, "admin/people.html", {
        "title": "Personnes", "section": "personnes", "q": query, "people": people,
    })


def _person_page(request: Request, staff: Staff, provider: Provider, user: Any,
                 errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    staff.require("people.view")
    roles = [(ROLE_LABELS.get(g.role, g.role), g.organisation_name)
             for g in provider.organisations.roles_of(user.id)]
    consents = provider.consents.list(user.id)
    factors = provider.factors.summary(user.id)
    names = {c.client_id: c.name for c in provider.clients.list()}
    return render(request, "admin/person.html", {
        "title": ("Erreur : " if errors else "") + user.email, "section": "personnes",
        "person": user, "roles": roles, "sessions": len(provider.sessions.for_user(user.id)),
        "consents": [(names.get(c.client_id, c.client_id), c) for c in consents],
        "factors": factors,
        "has_factors": bool(factors.has_second_factor or factors.recovery_remaining),
        "can_lock": staff.perms.can("people.lock"),
        "can_recover": staff.perms.can("people.recover"),
        "can_delete": staff.perms.can("people.delete"),
        "can_consents": staff.perms.can("consents.view"),
        "errors": errors or {},
    }, status_code=status_code)


@router.get("/personnes/{user_id}", name="admin.people.show")
def show_person(user_id: str, request: Request, staff: StaffDep, provider: ProviderDep
                ) -> Response:
    staff.require("people.view")
    return _person_page(request, staff, provider, _user(provider, user_id))


def _act(request: Request, staff: Staff, provider: Provider, user_id: str, action: str,
         field: str, motif: str) -> tuple[Any, Response | None]:
    staff.require(action)
    user = _user(provider, user_id)
    if message := reason_error(motif):
        return user, _person_page(request, staff, provider, user, {field: message}, 422)
    return user, None


Motif = Annotated[str, Form(max_length=1000)]


@router.post("/personnes/{user_id}/verrouiller", name="admin.people.lock")
def lock(user_id: str, request: Request, staff: FormStaffDep, provider: ProviderDep,
         motif: Motif = "") -> Response:
    user, page = _act(request, staff, provider, user_id, "people.lock", "motif-verrou", motif)
    if page:
        return page
    provider.lock_user(user.id, actor=staff.user_id, reason=motif.strip(),
                       address=staff.address)
    flash(request, "Le compte est verrouillé : ses sessions sont terminées et la connexion "
          "lui est refusée.")
    return redirect(f"/admin/personnes/{user.id}")


@router.post("/personnes/{user_id}/deverrouiller", name="admin.people.unlock")
def unlock(user_id: str, request: Request, staff: FormStaffDep, provider: ProviderDep,
           motif: Motif = "") -> Response:
    user, page = _act(request, staff, provider, user_id, "people.lock", "motif-verrou", motif)
    if page:
        return page
    provider.unlock_user(user.id, actor=staff.user_id, reason=motif.strip())
    flash(request, "Le compte est déverrouillé.")
    return redirect(f"/admin/personnes/{user.id}")


@router.post("/personnes/{user_id}/sessions", name="admin.people.end_sessions")
def end_sessions(user_id: str, request: Request, staff: FormStaffDep, provider: ProviderDep,
                 motif: Motif = "") -> Response:
    user, page = _act(request, staff, provider, user_id, "people.lock", "motif-sessions", motif)
    if page:
        return page
    ended = provider.end_sessions(user.id, actor=staff.user_id, reason=motif.strip(),
                                  address=staff.address)
    flash(request, f"Sessions terminées : {ended}. Les jetons de la personne sont révoqués.")
    return redirect(f"/admin/personnes/{user.id}")


@router.post("/personnes/{user_id}/verification", name="admin.people.resend_verification")
def resend_verification(user_id: str, request: Request, staff: FormStaffDep,
                        provider: ProviderDep, motif: Motif = "") -> Response:
    user, page = _act(request, staff, provider, user_id, "people.recover", "motif-verification",
                      motif)
    if page:
        return page
    provider.accounts.resend_verification_for(user.id, actor=staff.user_id,
                                              reason=motif.strip(), address=staff.address)
    flash(request, f"Un nouveau lien de confirmation est envoyé à {user.email} ; les liens "
          "envoyés avant ne fonctionnent plus.")
    return redirect(f"/admin/personnes/{user.id}")


@router.post("/personnes/{user_id}/facteurs", name="admin.people.reset_factors")
def reset_factors(user_id: str, request: Request, staff: FormStaffDep, provider: ProviderDep,
                  motif: Motif = "") -> Response:
    user, page = _act(request, staff, provider, user_id, "people.recover", "motif-facteurs",
                      motif)
    if page:
        return page
    provider.reset_second_factors(user.id, actor=staff.user_id, reason=motif.strip(),
                                  address=staff.address)
    flash(request, "Les seconds facteurs sont réinitialisés : les sessions de la personne sont "
          "terminées et un courriel lui explique comment en ajouter de nouveaux.")
    return redirect(f"/admin/personnes/{user.id}")


@router.post("/personnes/{user_id}/supprimer", name="admin.people.delete")
def delete(user_id: str, request: Request, staff: FormStaffDep, provider: ProviderDep,
           motif: Motif = "") -> Response:
    user, page = _act(request, staff, provider, user_id, "people.delete", "motif-suppression",
                      motif)
    if page:
        return page
    provider.delete_user(user.id, actor=staff.user_id, reason=motif.strip())
    flash(request, f"Le compte {user.email} a été supprimé.")
    return redirect("/admin/personnes")


def _consents_page(request: Request, staff: Staff, provider: Provider, user: Any,
                   errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    names = {c.client_id: c.name for c in provider.clients.list()}
    return render(request, "admin/consents.html", {
        "title": ("Erreur : " if errors else "") + f"Consentements de {user.email}",
        "section": "personnes", "person": user,
        "consents": [(names.get(c.client_id, c.client_id), c)
                     for c in provider.consents.list(user.id)],
        "can_revoke": staff.perms.can("consents.revoke"), "errors": errors or {},
    }, status_code=status_code)


@router.get("/personnes/{user_id}/consentements", name="admin.consents.list")
def consents(user_id: str, request: Request, staff: StaffDep, provider: ProviderDep
             ) -> Response:
    staff.require("consents.view")
    return _consents_page(request, staff, provider, _user(provider, user_id))


@router.post("/personnes/{user_id}/consentements/{client_id}/retirer",
             name="admin.consents.revoke")
def revoke_consent(user_id: str, client_id: str, request: Request, staff: FormStaffDep,
                   provider: ProviderDep, motif: Motif = "") -> Response:
    staff.require("consents.revoke")
    user = _user(provider, user_id)
    if message := reason_error(motif):
        return _consents_page(request, staff, provider, user,
                              {f"motif-{client_id}": message}, 422)
    provider.revoke_consent(user.id, client_id, actor=staff.user_id, reason=motif.strip())
    flash(request, "Le consentement est retiré et les jetons de ce service sont révoqués.")
    return redirect(f"/admin/personnes/{user.id}/consentements")
