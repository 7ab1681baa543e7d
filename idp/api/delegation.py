"""Acting for someone else at sign-in: « pour moi » or « pour <nom> ».

Only for a client that opted in (``delegation_allowed``) and a person who holds an active
mandate covering it. The chosen mandate turns the authorization into a delegated one: the
tokens carry the mandator's subject in ``sub`` and the mandatary in ``act`` (RFC 8693 §4.1),
the ``acr`` is the mandatary's, the scopes are cut down to the mandate's. The mandate stands
for the mandator's consent; the choice is journaled (``delegation.login``) for both people.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from authlib.oauth2.rfc6749.errors import AccessDeniedError
from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from idp.api.browser import (
    Interaction,
    address_of,
    current_session,
    ensure_csrf_cookie,
    error_page,
    finish,
    load_interaction,
    render,
    save_interaction,
)
from idp.api.deps import CsrfDep, ProviderDep, TemplatesDep
from idp.models import Mandate
from idp.oauth2.integration import StarletteOAuth2Request
from idp.oauth2.models import AuthContext
from idp.services import Provider
from idp.services.mandates import limit_scope
from plateforme.web import CSRF_COOKIE, Csrf, request_id

router = APIRouter(include_in_schema=False)

CHOICE_PATH = "/connexion/pour-qui"
SELF = "self"
EXPIRED = ("Cette demande de connexion a expiré ou n'est plus valide. "
           "Revenez au service et recommencez.")


@dataclass(frozen=True)
class Delegated:
    """The authorization continues for the mandator, with the mandatary in ``act``."""

    ctx: AuthContext
    scope: str
    mandate: Mandate


def delegation_step(
    request: Request, provider: Provider, csrf: Csrf, *, client: Any, end_user: AuthContext,
    oauth_req: StarletteOAuth2Request, interaction: Interaction | None, prompts: set[str],
) -> Response | Delegated | None:
    """Called by ``/authorize`` once the person is signed in at the right level, for a
    client that accepts delegation. Returns the redirect to the choice page, the delegated
    context, or None (the person acts for themself).

    Raises:
        AccessDeniedError: the chosen mandate is no longer usable.
    """
    choice = interaction.extra.get("on_behalf") if interaction is not None else None
    if choice is None:
        # prompt=none cannot ask: the person acts for themself.
        if "none" in prompts or not provider.mandates.usable(end_user.user.id,
                                                              client.client_id):
            return None
        pending = save_interaction(
            request, provider, csrf,
            query=urlencode(oauth_req.payload.data) if interaction is None else interaction.query,
            client_id=client.client_id, existing=interaction)
        target = CHOICE_PATH + "?" + urlencode({"interaction": pending.id})
        return finish(request, RedirectResponse(target, status_code=303), provider)
    if choice == SELF:
        return None
    mandate = provider.mandates.usable_mandate(str(choice), end_user.user.id, client.client_id)
    mandator = provider.users.get(mandate.mandator_id) if mandate is not None else None
    if mandate is None or mandator is None or mandator.locked:
        raise AccessDeniedError("The mandate is no longer valid.")
    scope = limit_scope(mandate, client.get_allowed_scope(oauth_req.payload.scope))
    sso = current_session(request, provider)
    if sso is None:
        raise AccessDeniedError("The session ended.")
    # A delegated session of its own (its own ``sid``), so that a back-channel logout for
    # the mandate never names the mandatary's own session at this client.
    sid = provider.sessions.delegate(sso, client_id=client.client_id,
                                     mandate_id=str(mandate.id), mandator_id=str(mandator.id))
    ctx = AuthContext(
        user=mandator, sub=provider.subject_for(mandator.id, client.record), sid=sid,
        auth_time=end_user.auth_time, acr=end_user.acr, amr=end_user.amr,
        act={"sub": end_user.sub}, actor_id=str(end_user.user.id), mandate_id=str(mandate.id),
    )
    provider.mandates.record_use(mandate, client.client_id, address=address_of(request),
                                 request_id=request_id(request))
    return Delegated(ctx=ctx, scope=scope, mandate=mandate)


def _choices(provider: Provider, user_id: Any, client_id: str) -> list[tuple[str, str]]:
    choices = []
    for mandate in provider.mandates.usable(user_id, client_id):
        mandator = provider.users.get(mandate.mandator_id)
        if mandator is not None and not mandator.locked:
            choices.append((str(mandate.id), mandator.name if (
                mandator.given_name or mandator.family_name) else mandator.email))
    return choices


@router.get(CHOICE_PATH)
def choice_form(request: Request, provider: ProviderDep, templates: TemplatesDep,
                csrf: CsrfDep, interaction: str | None = None) -> Response:
    pending = load_interaction(request, provider, interaction)
    sso = current_session(request, provider)
    client = provider.clients.get(pending.client_id) if pending is not None else None
    if pending is None or sso is None or client is None:
        return error_page(request, templates, provider, heading="Demande expirée",
                          message=EXPIRED)
    me = provider.users.require(sso.user_id)
    cookie = ensure_csrf_cookie(request, csrf)
    return render(request, templates, provider, "delegation_choice.html", {
        "title": "Pour qui agissez-vous ?", "client_name": client.name, "me": me.name,
        "choices": _choices(provider, sso.user_id, client.client_id),
        "interaction": pending.id, "csrf_token": csrf.token(cookie, "on-behalf"),
    })


@router.post(CHOICE_PATH)
def choice_submit(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    pour: Annotated[str, Form(max_length=64)] = "",
    interaction: Annotated[str, Form(max_length=64)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    if not csrf.check(request.cookies.get(CSRF_COOKIE), csrf_token, "on-behalf"):
        return error_page(request, templates, provider, heading="Formulaire expiré",
                          message="Le formulaire a expiré. Rechargez la page et recommencez.",
                          status_code=403)
    pending = load_interaction(request, provider, interaction)
    sso = current_session(request, provider)
    if pending is None or sso is None:
        return error_page(request, templates, provider, heading="Demande expirée",
                          message=EXPIRED)
    allowed = {SELF} | {mid for mid, _ in _choices(provider, sso.user_id, pending.client_id)}
    if pour not in allowed:
        return error_page(request, templates, provider, heading="Choix impossible",
                          message="Cette procuration n'est plus valable pour ce service.",
                          status_code=400)
    pending.extra["on_behalf"] = pour
    save_interaction(request, provider, csrf, query=pending.query, client_id=pending.client_id,
                     existing=pending)
    target = "/authorize/continue?" + urlencode({"interaction": pending.id})
    return finish(request, RedirectResponse(target, status_code=303), provider)
