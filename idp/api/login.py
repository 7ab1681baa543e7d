"""Sign-in and consent pages (``/connexion``): French, server-rendered. The only script
(``passkeys.js``) adds the passkey buttons; everything else works without JavaScript."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Form, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from idp.api.authorize import deny, interaction_context
from idp.api.browser import (
    Interaction,
    address_of,
    browser_binding,
    current_session,
    ensure_csrf_cookie,
    error_page,
    finish,
    load_interaction,
    render,
    save_interaction,
    text,
)
from idp.api.deps import CsrfDep, ProviderDep, ServerDep, TemplatesDep
from idp.api.signin import ask_second_factor, complete_sign_in, origin_of, safe_return
from idp.i18n import N_
from idp.oauth2.integration import from_query
from idp.services import LoginFailed, Provider
from idp.services.factors import FactorFailed
from plateforme.errors import TooManyRequests
from plateforme.web import CSRF_COOKIE, Csrf, request_id

router = APIRouter(include_in_schema=False)

SCOPE_LABELS = {
    "openid": N_("vous identifier avec votre compte Martinique Connect"),
    "profile": N_("connaître vos nom, prénom, date de naissance et langue"),
    "email": N_("connaître votre adresse électronique"),
    "phone": N_("connaître votre numéro de téléphone"),
    "address": N_("connaître votre adresse postale"),
    "offline_access": N_("rester connecté à votre compte quand vous n'utilisez pas le service"),
    "archives:read": N_("consulter les archives de votre organisation"),
    "archives:write": N_("déposer des archives pour votre organisation"),
    "archives:admin": N_("administrer les archives de votre organisation"),
    "services:read": N_("consulter le catalogue de services et vos abonnements"),
    "services:order": N_("commander des services pour votre organisation"),
    "services:admin": N_("administrer le catalogue de services"),
}

EXPIRED = (
    N_("Cette demande de connexion a expiré ou n'est plus valide. "
    "Revenez au service et recommencez.")
)
CSRF_FAILED = N_("Le formulaire a expiré. Rechargez la page et recommencez.")
EXPIRED_TITLE = N_("Demande expirée")
CSRF_TITLE = N_("Formulaire expiré")
# A WebAuthn credential as JSON (attestation objects stay well under this).
CREDENTIAL_MAX = 32_000


@router.get("/connexion")
def login_form(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    interaction: str | None = None, retour: str | None = None,
) -> Response:
    pending = load_interaction(request, provider, interaction)
    if interaction and pending is None:
        return error_page(request, templates, provider, heading=EXPIRED_TITLE, message=EXPIRED)
    cookie = ensure_csrf_cookie(request, csrf)
    login_hint = ""
    if pending is not None:
        hint = parse_qs(pending.query).get("login_hint", [""])[0]
        login_hint = hint if "@" in hint and len(hint) <= 320 else ""
    back = safe_return(retour) if pending is None else ""
    reauth = False
    if back and not login_hint:
        sso = current_session(request, provider)
        user = provider.users.get(sso.user_id) if sso is not None else None
        if user is not None:
            login_hint, reauth = user.email, True
    return render(request, templates, provider, "login.html", {
        "title": N_("Se connecter"), "csrf_token": csrf.token(cookie, "login"),
        "interaction": interaction or "", "retour": back, "email": login_hint, "error": None,
        "reauth": reauth, **interaction_context(provider, pending),
    })


def _login_context(request: Request, provider: Provider, csrf: Csrf, *, interaction: str,
                   retour: str, email: str, pending: Interaction | None) -> dict[str, Any]:
    return {
        "title": N_("Se connecter"),
        "csrf_token": csrf.token(request.cookies.get(CSRF_COOKIE) or "", "login"),
        "interaction": interaction, "retour": retour, "email": email, "reauth": False,
        **interaction_context(provider, pending),
    }


@router.post("/connexion")
def login_submit(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    interaction: Annotated[str, Form(max_length=64)] = "",
    retour: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not csrf.check(cookie, csrf_token, "login"):
        return error_page(
            request, templates, provider, heading=CSRF_TITLE, message=CSRF_FAILED,
            status_code=403,
        )
    pending = load_interaction(request, provider, interaction) if interaction else None
    if interaction and pending is None:
        return error_page(request, templates, provider, heading=EXPIRED_TITLE, message=EXPIRED)
    back = safe_return(retour) if pending is None else ""
    context = _login_context(request, provider, csrf, interaction=interaction, retour=back,
                             email=email, pending=pending)
    try:
        signin = provider.users.authenticate_password(
            email, password, address=address_of(request), request_id=request_id(request)
        )
    except TooManyRequests as exc:
        response = render(request, templates, provider, "login.html",
                          {**context, "error": exc.message}, status_code=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except LoginFailed as exc:
        return render(request, templates, provider, "login.html",
                      {**context, "error": exc.message}, status_code=401)
    if provider.factors.has_second_factor(signin.user.id):
        return ask_second_factor(request, provider, user=signin.user, amr=signin.amr,
                                 interaction=pending, retour=back)
    return complete_sign_in(request, provider, csrf, user=signin.user, amr=signin.amr,
                            interaction=pending, retour=back)


@router.post("/connexion/cle/options")
def passkey_login_options(
    request: Request, provider: ProviderDep, csrf: CsrfDep,
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Options of a passwordless sign-in (``navigator.credentials.get()``), as JSON."""
    binding = browser_binding(request)
    if binding is None or not csrf.check(request.cookies.get(CSRF_COOKIE), csrf_token, "login"):
        return JSONResponse({"error": text(request, provider, CSRF_FAILED)}, status_code=403,
                            headers={"Cache-Control": "no-store"})
    options = provider.factors.passkeys.authentication_options(binding)
    return Response(options, media_type="application/json", headers={"Cache-Control": "no-store"})


@router.post("/connexion/cle")
def passkey_login(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    credential: Annotated[str, Form(max_length=CREDENTIAL_MAX)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    interaction: Annotated[str, Form(max_length=64)] = "",
    retour: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """A passwordless sign-in with a passkey: ``eidas2`` when the authenticator verified the
    person (PIN, biometrics), else ``eidas1``."""
    if not csrf.check(request.cookies.get(CSRF_COOKIE), csrf_token, "login"):
        return error_page(
            request, templates, provider, heading=CSRF_TITLE, message=CSRF_FAILED,
            status_code=403,
        )
    pending = load_interaction(request, provider, interaction) if interaction else None
    if interaction and pending is None:
        return error_page(request, templates, provider, heading=EXPIRED_TITLE, message=EXPIRED)
    back = safe_return(retour) if pending is None else ""
    context = _login_context(request, provider, csrf, interaction=interaction, retour=back,
                             email="", pending=pending)
    try:
        user, use = provider.factors.passwordless(
            credential, origin=origin_of(request), binding=browser_binding(request) or "")
    except TooManyRequests as exc:
        response = render(request, templates, provider, "login.html",
                          {**context, "error": exc.message}, status_code=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except FactorFailed as exc:
        return render(request, templates, provider, "login.html",
                      {**context, "error": exc.message}, status_code=401)
    return complete_sign_in(request, provider, csrf, user=user, amr=use.amr,
                            interaction=pending, retour=back)


@router.get("/connexion/termine")
def login_done(request: Request, provider: ProviderDep, templates: TemplatesDep) -> Response:
    sso = current_session(request, provider)
    if sso is None:
        return finish(request, RedirectResponse("/connexion", status_code=303), provider)
    return error_page(
        request, templates, provider, heading=N_("Vous êtes connecté"),
        message=N_("Votre session Martinique Connect est ouverte. Vous pouvez revenir au service."),
        status_code=200,
    )


@router.get("/connexion/consentement")
def consent_form(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    interaction: str | None = None,
) -> Response:
    pending = load_interaction(request, provider, interaction)
    sso = current_session(request, provider)
    if pending is None or sso is None or not pending.login_done and sso is None:
        return error_page(request, templates, provider, heading=EXPIRED_TITLE, message=EXPIRED)
    oauth_req = from_query(provider, pending.query)
    client = provider.clients.get(pending.client_id)
    if client is None:
        return error_page(request, templates, provider, heading=EXPIRED_TITLE, message=EXPIRED)
    requested = (oauth_req.payload.scope or "").split()
    allowed = set(client.scope.split())
    labels = [SCOPE_LABELS[s] for s in dict.fromkeys(requested)
              if s in allowed and s in SCOPE_LABELS]
    cookie = ensure_csrf_cookie(request, csrf)
    return render(request, templates, provider, "consent.html", {
        "title": f"Autoriser {client.name}", "client_name": client.name, "scopes": labels,
        "csrf_token": csrf.token(cookie, "consent"), "interaction": pending.id,
    })


@router.post("/connexion/consentement")
def consent_submit(
    request: Request, provider: ProviderDep, server: ServerDep, templates: TemplatesDep,
    csrf: CsrfDep,
    decision: Annotated[str, Form(max_length=10)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    interaction: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    if not csrf.check(request.cookies.get(CSRF_COOKIE), csrf_token, "consent"):
        return error_page(
            request, templates, provider, heading=CSRF_TITLE, message=CSRF_FAILED,
            status_code=403,
        )
    pending = load_interaction(request, provider, interaction)
    sso = current_session(request, provider)
    if pending is None or sso is None:
        return error_page(request, templates, provider, heading=EXPIRED_TITLE, message=EXPIRED)
    if decision != "accept":
        return deny(request, pending, provider, server)
    oauth_req = from_query(provider, pending.query)
    client = provider.clients.get(pending.client_id)
    if client is None:
        return error_page(request, templates, provider, heading=EXPIRED_TITLE, message=EXPIRED)
    allowed_scopes = client.scope.split()
    scope = " ".join(s for s in (oauth_req.payload.scope or "").split() if s in allowed_scopes)
    provider.consents.record(
        sso.uid, client.client_id, scope, implied=False, address=address_of(request),
        request_id=request_id(request),
    )
    pending.consent_done = True
    save_interaction(request, provider, csrf, query=pending.query, client_id=pending.client_id,
                     existing=pending)
    target = "/authorize/continue?" + urlencode({"interaction": pending.id})
    return finish(request, RedirectResponse(target, status_code=303), provider)
