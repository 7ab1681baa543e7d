"""Relying parties: list, guided creation, integration sheet, URIs, secret, state, deletion.

An organisation's ``org_admin`` manages the clients registered for that organisation; clients
of no organisation are the platform's (CTM administrators only).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from admin_ui.auth import CONSOLE_CLIENT_ID
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
from admin_ui.forms import field_errors, lines, reason_error
from idp import AUTH_METHODS, ClientCreate, ClientPublic, Provider
from plateforme.errors import Conflict

router = APIRouter(route_class=ConsoleRoute)

GRANT_LABELS = {
    "authorization_code": "code d'autorisation (connexion des personnes, avec PKCE)",
    "refresh_token": "jeton de rafraîchissement",
    "client_credentials": "identifiants du client (l'application agit pour son organisation)",
}
AUTH_LABELS = {
    "client_secret_basic": "secret, en-tête Authorization (recommandé)",
    "client_secret_post": "secret, dans le corps de la requête",
    "none": "aucun : client public (application mobile ou page web), PKCE seul",
}
SCOPE_LABELS = {
    "openid": "openid : identifier la personne (obligatoire pour OpenID Connect)",
    "profile": "profile : nom, prénom",
    "email": "email : adresse électronique",
    "phone": "phone : téléphone",
    "address": "address : adresse postale",
    "offline_access": "offline_access : accès hors connexion (jeton de rafraîchissement)",
    "archives:read": "archives:read : consulter les archives de l'organisation",
    "archives:write": "archives:write : déposer des archives",
    "archives:admin": "archives:admin : administrer les archives",
    "services:read": "services:read : consulter le catalogue de services",
    "services:order": "services:order : commander des services",
}
FORM_AUTH_METHODS = [m for m in AUTH_METHODS if m in AUTH_LABELS]
FORM_FIELDS = {
    "name": "nom", "organisation": "organisation", "redirect_uris": "redirections",
    "post_logout_redirect_uris": "deconnexions", "backchannel_logout_uri": "backchannel",
    "grant_types": "grant-types", "scopes": "scopes",
    "token_endpoint_auth_method": "methode", "first_party": "premiere-partie",
}


def _visible(staff: Staff, client: ClientPublic) -> None:
    staff.require("clients.view", client.organisation)


def _manageable(staff: Staff, client: ClientPublic) -> None:
    staff.require("clients.manage", client.organisation)
    if client.client_id == CONSOLE_CLIENT_ID:
        raise Conflict("La console d'administration est enregistrée par la plateforme à son "
                       "initialisation : elle ne se modifie pas ici.")


def _organisations(staff: Staff, provider: Provider, action: str) -> list[Any]:
    scope = staff.perms.scope(action)
    return [o for o in provider.organisations.list() if scope is None or o.slug in scope]


@router.get("/clients", name="admin.clients.list")
def list_clients(request: Request, staff: StaffDep, provider: ProviderDep) -> Response:
    staff.require_somewhere("clients.view")
    scope = staff.perms.scope("clients.view")
    clients = [c for c in provider.clients.list()
               if scope is None or (c.organisation is not None and c.organisation in scope)]
    names = {o.slug: o.name for o in provider.organisations.list()}
    return render(request, "admin/clients.html", {
        "title": "Applications clientes", "section": "clients", "clients": clients,
        "org_names": names, "can_create": staff.perms.can_somewhere("clients.manage"),
    })


def _form_context(staff: Staff, provider: Provider, values: dict[str, Any],
                  errors: dict[str, str]) -> dict[str, Any]:
    return {
        "title": ("Erreur : " if errors else "") + "Nouvelle application", "section": "clients",
        "organisations": _organisations(staff, provider, "clients.manage"),
        "platform_allowed": staff.perms.can("clients.manage"),
        "first_party_allowed": staff.perms.can("clients.first_party"),
        "grant_labels": GRANT_LABELS, "auth_labels": AUTH_LABELS,
        "auth_methods": FORM_AUTH_METHODS, "scope_labels": SCOPE_LABELS,
        "values": values, "errors": errors,
    }


@router.get("/clients/nouveau", name="admin.clients.new")
def new_client(request: Request, staff: StaffDep, provider: ProviderDep) -> Response:
    staff.require_somewhere("clients.manage")
    values = {"grant_types": ["authorization_code", "refresh_token"],
              "scopes": ["openid", "profile", "email"],
              "token_endpoint_auth_method": "client_secret_basic"}
    return render(request, "admin/client_new.html", _form_context(staff, provider, values, {}))


@router.post("/clients/nouveau", name="admin.clients.create")
def create_client(
    request: Request, staff: FormStaffDep, provider: ProviderDep,
    name: Annotated[str, Form(max_length=200)] = "",
    organisation: Annotated[str, Form(max_length=64)] = "",
    redirect_uris: Annotated[str, Form(max_length=10_000)] = "",
    post_logout_redirect_uris: Annotated[str, Form(max_length=10_000)] = "",
    backchannel_logout_uri: Annotated[str, Form(max_length=2000)] = "",
    grant_types: Annotated[list[str] | None, Form()] = None,
    scopes: Annotated[list[str] | None, Form()] = None,
    token_endpoint_auth_method: Annotated[str, Form(max_length=40)] = "client_secret_basic",  # noqa: S107 - a method name
    first_party: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    org = organisation or None
    staff.require("clients.manage", org)
    if first_party:
        staff.require("clients.first_party")
    values: dict[str, Any] = {
        "name": name, "organisation": organisation, "redirect_uris": redirect_uris,
        "post_logout_redirect_uris": post_logout_redirect_uris,
        "backchannel_logout_uri": backchannel_logout_uri, "grant_types": grant_types or [],
        "scopes": scopes or [], "token_endpoint_auth_method": token_endpoint_auth_method,
        "first_party": bool(first_party),
    }
    errors: dict[str, str] = {}
    if org is not None and org not in {o.slug for o in provider.organisations.list()}:
        errors["organisation"] = "Organisation inconnue."
    if not grant_types:
        errors["grant-types"] = "Choisissez au moins un type d'autorisation."
    if not scopes:
        errors["scopes"] = "Choisissez au moins une portée."
    data: ClientCreate | None = None
    try:
        data = ClientCreate(
            name=name.strip(), organisation=org, redirect_uris=lines(redirect_uris),
            post_logout_redirect_uris=lines(post_logout_redirect_uris),
            backchannel_logout_uri=backchannel_logout_uri.strip() or None,
            grant_types=grant_types or [], scopes=scopes or [],  # type: ignore[arg-type]
            token_endpoint_auth_method=token_endpoint_auth_method,  # type: ignore[arg-type]
            first_party=bool(first_party),
        )
    except ValidationError as exc:
        errors = {**field_errors(exc, FORM_FIELDS, "redirections"), **errors}
    if errors or data is None:
        return render(request, "admin/client_new.html",
                      _form_context(staff, provider, values, errors), status_code=422)
    created = provider.clients.create(data, actor=staff.user_id, address=staff.address)
    return render(request, "admin/client_secret.html", {
        "title": "Application enregistrée", "section": "clients", "client": created,
        "secret": created.client_secret, "created": True,
    })


def _client_page(request: Request, staff: Staff, provider: Provider, client: ClientPublic,
                 errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
                 status_code: int = 200) -> Response:
    org_name = None
    if client.organisation:
        org_name = provider.organisations.get(client.organisation).name
    return render(request, "admin/client.html", {
        "title": ("Erreur : " if errors else "") + client.name, "section": "clients",
        "client": client, "org_name": org_name,
        "can_manage": staff.perms.can("clients.manage", client.organisation)
        and client.client_id != CONSOLE_CLIENT_ID,
        "has_secret": client.token_endpoint_auth_method in ("client_secret_basic",
                                                            "client_secret_post"),
        "errors": errors or {}, "values": values or {},
    }, status_code=status_code)


@router.get("/clients/{client_id}", name="admin.clients.show")
def show_client(client_id: str, request: Request, staff: StaffDep, provider: ProviderDep
                ) -> Response:
    client = provider.clients.show(client_id)
    _visible(staff, client)
    return _client_page(request, staff, provider, client)


@router.get("/clients/{client_id}/integration", name="admin.clients.integration")
def integration_sheet(client_id: str, request: Request, staff: StaffDep, provider: ProviderDep
                      ) -> Response:
    client = provider.clients.show(client_id)
    _visible(staff, client)
    return render(request, "admin/client_integration.html", {
        "title": f"Fiche d'intégration : {client.name}", "section": "clients", "client": client,
        "issuer": provider.issuer,
        "discovery_url": f"{provider.issuer}/.well-known/openid-configuration",
    })


def _edit_context(client: ClientPublic, values: dict[str, str], errors: dict[str, str]
                  ) -> dict[str, Any]:
    return {"title": ("Erreur : " if errors else "") + f"Modifier {client.name}",
            "section": "clients", "client": client, "values": values, "errors": errors}


@router.get("/clients/{client_id}/modifier", name="admin.clients.edit")
def edit_client(client_id: str, request: Request, staff: StaffDep, provider: ProviderDep
                ) -> Response:
    client = provider.clients.show(client_id)
    _manageable(staff, client)
    values = {
        "name": client.name, "redirect_uris": "\n".join(client.redirect_uris),
        "post_logout_redirect_uris": "\n".join(client.post_logout_redirect_uris),
        "backchannel_logout_uri": client.backchannel_logout_uri or "", "motif": "",
        "delegation_allowed": "on" if client.delegation_allowed else "",
    }
    return render(request, "admin/client_edit.html", _edit_context(client, values, {}))


@router.post("/clients/{client_id}/modifier", name="admin.clients.update")
def update_client(
    client_id: str, request: Request, staff: FormStaffDep, provider: ProviderDep,
    name: Annotated[str, Form(max_length=200)] = "",
    redirect_uris: Annotated[str, Form(max_length=10_000)] = "",
    post_logout_redirect_uris: Annotated[str, Form(max_length=10_000)] = "",
    backchannel_logout_uri: Annotated[str, Form(max_length=2000)] = "",
    motif: Annotated[str, Form(max_length=1000)] = "",
    delegation_allowed: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    client = provider.clients.show(client_id)
    _manageable(staff, client)
    values = {"name": name, "redirect_uris": redirect_uris,
              "post_logout_redirect_uris": post_logout_redirect_uris,
              "backchannel_logout_uri": backchannel_logout_uri, "motif": motif,
              "delegation_allowed": delegation_allowed}
    errors: dict[str, str] = {}
    if not name.strip():
        errors["nom"] = "Ce champ est obligatoire."
    if message := reason_error(motif):
        errors["motif"] = message
    if not errors:
        try:
            provider.clients.update(
                client_id, name=name.strip(), redirect_uris=lines(redirect_uris),
                post_logout_redirect_uris=lines(post_logout_redirect_uris),
                backchannel_logout_uri=backchannel_logout_uri.strip() or None,
                actor=staff.user_id, reason=motif.strip(),
                delegation_allowed=bool(delegation_allowed),
            )
        except ValidationError as exc:
            errors = field_errors(exc, FORM_FIELDS, "redirections")
    if errors:
        return render(request, "admin/client_edit.html", _edit_context(client, values, errors),
                      status_code=422)
    flash(request, "Les adresses de l'application ont été enregistrées.")
    return redirect(f"/admin/clients/{client_id}")


def _reason_or_page(request: Request, staff: Staff, provider: Provider, client: ClientPublic,
                    field: str, motif: str) -> Response | None:
    if message := reason_error(motif):
        return _client_page(request, staff, provider, client, errors={field: message},
                            status_code=422)
    return None


@router.post("/clients/{client_id}/secret", name="admin.clients.rotate_secret")
def rotate_secret(client_id: str, request: Request, staff: FormStaffDep, provider: ProviderDep,
                  motif: Annotated[str, Form(max_length=1000)] = "") -> Response:
    client = provider.clients.show(client_id)
    _manageable(staff, client)
    if page := _reason_or_page(request, staff, provider, client, "motif-secret", motif):
        return page
    secret = provider.clients.rotate_secret(client_id, actor=staff.user_id, reason=motif.strip())
    return render(request, "admin/client_secret.html", {
        "title": "Nouveau secret", "section": "clients", "client": client, "secret": secret,
        "created": False,
    })


def _set_disabled(client_id: str, disabled: bool, request: Request, staff: Staff,
                  provider: Provider, motif: str) -> Response:
    client = provider.clients.show(client_id)
    _manageable(staff, client)
    if page := _reason_or_page(request, staff, provider, client, "motif-etat", motif):
        return page
    provider.clients.set_disabled(client_id, disabled, actor=staff.user_id, reason=motif.strip())
    flash(request, "L'application est désactivée : plus aucun jeton ne lui est délivré."
          if disabled else "L'application est réactivée.")
    return redirect(f"/admin/clients/{client_id}")


@router.post("/clients/{client_id}/desactiver", name="admin.clients.disable")
def disable_client(client_id: str, request: Request, staff: FormStaffDep, provider: ProviderDep,
                   motif: Annotated[str, Form(max_length=1000)] = "") -> Response:
    return _set_disabled(client_id, True, request, staff, provider, motif)


@router.post("/clients/{client_id}/activer", name="admin.clients.enable")
def enable_client(client_id: str, request: Request, staff: FormStaffDep, provider: ProviderDep,
                  motif: Annotated[str, Form(max_length=1000)] = "") -> Response:
    return _set_disabled(client_id, False, request, staff, provider, motif)


@router.post("/clients/{client_id}/supprimer", name="admin.clients.delete")
def delete_client(client_id: str, request: Request, staff: FormStaffDep, provider: ProviderDep,
                  motif: Annotated[str, Form(max_length=1000)] = "") -> Response:
    client = provider.clients.show(client_id)
    _manageable(staff, client)
    if page := _reason_or_page(request, staff, provider, client, "motif-suppression", motif):
        return page
    provider.clients.delete(client_id, actor=staff.user_id, reason=motif.strip())
    flash(request, f"L'application « {client.name} » a été supprimée.")
    return redirect("/admin/clients")
