"""The authorization endpoint (OIDC Core §3.1.2) and the interactions it starts.

``GET /authorize`` validates the request with Authlib; an unknown client or an unregistered
redirect URI gets an error page, never a redirect (RFC 6749 §4.1.2.1). Then, in order: sign-in
(no session, ``prompt=login``, ``max_age`` exceeded), step-up (the session's ``acr`` is below
what ``acr_values`` or the client's minimum ``default_acr`` asks: only the missing factor is
asked), consent (not yet given, ``prompt=consent``; implied and recorded for first-party
clients), and finally the code, with ``iss`` (RFC 9207).
"""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import AccessDeniedError, InvalidRequestError
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from fastapi import APIRouter, Form, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import RedirectResponse, Response

from idp.api.browser import (
    Interaction,
    address_of,
    current_session,
    drop_interaction,
    ensure_csrf_cookie,
    error_page,
    finish,
    load_interaction,
    render,
    save_interaction,
)
from idp.api.delegation import delegation_step
from idp.api.deps import CsrfDep, OAuth2RequestDep, ProviderDep, ServerDep, TemplatesDep
from idp.i18n import N_
from idp.oauth2.integration import StarletteOAuth2Request, StarletteServer, from_query
from idp.oauth2.models import AuthContext
from idp.services import Provider
from idp.services.factors import ACR_VALUES, required_acr, satisfies
from plateforme.web import CSRF_COOKIE, Csrf, request_id

router = APIRouter(include_in_schema=False)

SUPPORTED_ACR = ACR_VALUES


class UnmetAuthenticationRequirements(OAuth2Error):  # type: ignore[misc]
    """OpenID Connect Unmet Authentication Requirements 1.0: the requested level cannot be
    reached (the person has no second factor)."""

    error = "unmet_authentication_requirements"


def _with_iss(response: Response, issuer: str) -> Response:
    """RFC 9207: add ``iss`` to every authorization response redirect."""
    location = response.headers.get("location")
    if response.status_code in (302, 303) and location:
        parts = urlsplit(location)
        query = parse_qsl(parts.query, keep_blank_values=True)
        if ("code" in dict(query) or "error" in dict(query)) and "iss" not in dict(query):
            query.append(("iss", issuer))
            response.headers["location"] = urlunsplit(parts._replace(query=urlencode(query)))
    return response


def _redirect_error(server: StarletteServer, error: OAuth2Error) -> Response:
    return _with_iss(server.handle_response(*error()), server.provider.issuer)


def process_authorization(
    request: Request, oauth_req: StarletteOAuth2Request, *, provider: Provider,
    server: StarletteServer, templates: Jinja2Templates, csrf: Csrf,
    interaction: Interaction | None = None,
) -> Response:
    data = oauth_req.payload.data
    sso = current_session(request, provider)
    client_id = data.get("client_id")
    client = server.query_client(client_id) if isinstance(client_id, str) else None
    end_user: AuthContext | None = None
    if sso is not None and client is not None:
        user = provider.users.get(sso.user_id)
        if user is not None and not user.locked:
            end_user = AuthContext(
                user=user, sub=provider.subject_for(user.id, client.record), sid=sso.sid,
                auth_time=sso.auth_time, acr=sso.acr, amr=sso.amr,
            )
    try:
        grant = server.get_consent_grant(oauth_req, end_user=end_user)
    except OAuth2Error as error:
        if error.redirect_uri:
            return finish(request, _redirect_error(server, error), provider)
        return error_page(
            request, templates, provider, heading=N_("Demande de connexion invalide"),
            message=(
                N_("Le service qui vous a envoyé ici n'est pas reconnu ou a fourni une adresse "
                "de retour non enregistrée. Par sécurité, vous n'avez pas été redirigé.")
            ),
            detail=f"{error.error}: {error.description or ''}".strip(": "),
        )
    redirect_uri = oauth_req.payload.redirect_uri
    state = data.get("state")

    def fail(error: OAuth2Error) -> Response:
        error.redirect_uri = redirect_uri
        error.state = state
        return finish(request, _redirect_error(server, error), provider)

    if "request" in data or "request_uri" in data:
        err = InvalidRequestError("Request objects are not supported.")
        err.error = "request_not_supported" if "request" in data else "request_uri_not_supported"
        return fail(err)
    if data.get("response_mode") not in (None, "", "query"):
        return fail(InvalidRequestError("Only response_mode=query is supported."))

    prompts = set((data.get("prompt") or "").split())
    just_logged_in = interaction is not None and interaction.login_done
    login_needed = end_user is None or ("login" in prompts and not just_logged_in)
    max_age = data.get("max_age")
    if end_user is not None and max_age not in (None, "") and not just_logged_in:
        try:
            if time.time() - end_user.auth_time > int(max_age):
                login_needed = True
        except ValueError:
            return fail(InvalidRequestError("Invalid 'max_age'."))
    if login_needed:
        if "none" in prompts:
            return fail(LoginRequiredError())
        interaction = save_interaction(
            request, provider, csrf, query=urlencode(oauth_req.payload.data) if interaction is None
            else interaction.query, client_id=client.client_id if client else "",
            existing=interaction,
        )
        target = "/connexion?" + urlencode({"interaction": interaction.id})
        return finish(request, RedirectResponse(target, status_code=303), provider)

    assert end_user is not None
    assert client is not None
    assert sso is not None
    required = required_acr(data.get("acr_values"), client.record.default_acr)
    if not satisfies(sso.acr, required):
        can_step_up = provider.factors.has_second_factor(end_user.user.id)
        if "none" in prompts:
            return fail(LoginRequiredError() if can_step_up else UnmetAuthenticationRequirements(
                description="The End-User has no second factor."))
        interaction = save_interaction(
            request, provider, csrf, query=urlencode(oauth_req.payload.data) if interaction is None
            else interaction.query, client_id=client.client_id, existing=interaction,
        )
        if not can_step_up:
            return _factor_required(request, provider, templates, csrf, interaction)
        target = "/connexion/facteur?" + urlencode({"interaction": interaction.id})
        return finish(request, RedirectResponse(target, status_code=303), provider)

    if client.record.delegation_allowed:
        # « pour moi » / « pour <nom> » (idp.api.delegation): a mandate stands for consent.
        try:
            step = delegation_step(request, provider, csrf, client=client, end_user=end_user,
                                   oauth_req=oauth_req, interaction=interaction,
                                   prompts=prompts)
        except OAuth2Error as error:
            return fail(error)
        if isinstance(step, Response):
            return step
        if step is not None:
            # Authlib resolves the scope from the request's parameter again: cut it there.
            oauth_req.payload.data["scope"] = step.scope
            oauth_req.scope = step.scope
            response = server.create_authorization_response(oauth_req, grant_user=step.ctx,
                                                            grant=grant)
            if interaction is not None:
                drop_interaction(provider, interaction)
            return finish(request, _with_iss(response, provider.issuer), provider)

    scope = client.get_allowed_scope(oauth_req.payload.scope)
    oauth_req.scope = scope
    consent_given = interaction is not None and interaction.consent_done
    if client.record.first_party:
        if not provider.consents.covers(end_user.user.id, client.client_id, scope):
            provider.consents.record(
                end_user.user.id, client.client_id, scope, implied=True,
                address=address_of(request), request_id=request_id(request),
            )
    elif not consent_given and (
        "consent" in prompts
        or not provider.consents.covers(end_user.user.id, client.client_id, scope)
    ):
        if "none" in prompts:
            return fail(ConsentRequiredError())
        interaction = save_interaction(
            request, provider, csrf, query=urlencode(oauth_req.payload.data) if interaction is None
            else interaction.query, client_id=client.client_id, existing=interaction,
        )
        target = "/connexion/consentement?" + urlencode({"interaction": interaction.id})
        return finish(request, RedirectResponse(target, status_code=303), provider)

    provider.sessions.add_client(sso, client.client_id)
    response = server.create_authorization_response(oauth_req, grant_user=end_user, grant=grant)
    if interaction is not None:
        drop_interaction(provider, interaction)
    return finish(request, _with_iss(response, provider.issuer), provider)


def deny(request: Request, interaction: Interaction, provider: Provider,
         server: StarletteServer, error: OAuth2Error | None = None) -> Response:
    """The person refused: ``access_denied`` to the client (RFC 6749 §4.1.2.1), or the
    given error."""
    oauth_req = from_query(provider, interaction.query)
    drop_interaction(provider, interaction)
    error = error or AccessDeniedError()
    error.redirect_uri = oauth_req.payload.redirect_uri
    error.state = oauth_req.payload.data.get("state")
    return finish(request, _redirect_error(server, error), provider)


def _factor_required(request: Request, provider: Provider, templates: Jinja2Templates,
                     csrf: Csrf, interaction: Interaction) -> Response:
    """The service asks for two factors and the account has only a password: explain how to
    add one, and offer to go back to the service."""
    cookie = ensure_csrf_cookie(request, csrf)
    return render(request, templates, provider, "login_factor_required.html", {
        "title": N_("Connexion renforcée demandée"), "interaction": interaction.id,
        "csrf_token": csrf.token(cookie, "factor-required"),
        **interaction_context(provider, interaction),
    }, status_code=403)


@router.post("/connexion/renforcement/abandon")
def factor_required_give_up(
    request: Request, provider: ProviderDep, server: ServerDep, templates: TemplatesDep,
    csrf: CsrfDep, interaction: Annotated[str, Form(max_length=64)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Back to the service without the requested level: ``unmet_authentication_requirements``."""
    if not csrf.check(request.cookies.get(CSRF_COOKIE), csrf_token, "factor-required"):
        return error_page(
            request, templates, provider, heading=N_("Formulaire expiré"),
            message=N_("Le formulaire a expiré. Rechargez la page et recommencez."),
            status_code=403,
        )
    pending = load_interaction(request, provider, interaction)
    if pending is None:
        return error_page(
            request, templates, provider, heading=N_("Demande expirée"),
            message=N_("Cette demande de connexion a expiré. Revenez au service et recommencez."),
        )
    return deny(request, pending, provider, server, UnmetAuthenticationRequirements(
        description="The End-User has no second factor."))


@router.get("/authorize")
@router.post("/authorize")
def authorize(
    request: Request, oauth_req: OAuth2RequestDep, provider: ProviderDep, server: ServerDep,
    templates: TemplatesDep, csrf: CsrfDep,
) -> Response:
    """OIDC Core §3.1.2.1 (GET and POST)."""
    return process_authorization(
        request, oauth_req, provider=provider, server=server, templates=templates, csrf=csrf
    )


@router.get("/authorize/continue")
def authorize_continue(
    request: Request, interaction: str, provider: ProviderDep, server: ServerDep,
    templates: TemplatesDep, csrf: CsrfDep,
) -> Response:
    """Resume an authorization request after sign-in or consent."""
    pending = load_interaction(request, provider, interaction)
    if pending is None:
        return error_page(
            request, templates, provider, heading=N_("Demande expirée"),
            message=N_("Cette demande de connexion a expiré. Revenez au service et recommencez."),
        )
    oauth_req = from_query(provider, pending.query)
    return process_authorization(
        request, oauth_req, provider=provider, server=server, templates=templates, csrf=csrf,
        interaction=pending,
    )


def interaction_context(provider: Provider, pending: Interaction | None) -> dict[str, Any]:
    if pending is None:
        return {"client_name": None}
    client = provider.clients.get(pending.client_id)
    return {"client_name": client.name if client else None}
