"""« Sécurité » of the account console (``/compte/securite``): second factors.

Listing needs a session; every change (adding, renaming or removing an authenticator app or
a passkey, new recovery codes) needs a sign-in less than ten minutes old, else the person is
sent to confirm their identity first and comes back here. Every change is audited.

``suite`` carries a pending authorization request that asked for a stronger sign-in than
the account allowed (see ``login_factor_required.html``): once a factor is added, the page
offers to continue to that service.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import JSONResponse, RedirectResponse, Response

from idp import i18n
from idp.api.account import NAVIGATION, local
from idp.api.browser import (
    browser_binding,
    current_session,
    ensure_csrf_cookie,
    error_page,
    finish,
    load_interaction,
    page_locale,
    render,
    text,
)
from idp.api.deps import CsrfDep, ProviderDep, TemplatesDep
from idp.api.login import CREDENTIAL_MAX, CSRF_FAILED
from idp.api.signin import origin_of
from idp.i18n import N_
from idp.models import User
from idp.services import Provider, SSOSession
from idp.services.factors import FactorFailed, TotpEnrolment
from plateforme.errors import Conflict, NotFound, TooManyRequests
from plateforme.web import CSRF_COOKIE, Csrf

router = APIRouter(include_in_schema=False)

BASE = "/compte/securite"
RECENT_AUTH = 600  # seconds: changes need a sign-in younger than this
LOCAL_TIME = ZoneInfo("America/Martinique")
PURPOSE = "security"
REAUTH_FIRST = N_("Confirmez d'abord votre identité.")
DONE = {
    "totp-ajoute": N_("L'application d'authentification est ajoutée."),
    "totp-renomme": N_("L'application d'authentification est renommée."),
    "totp-supprime": N_("L'application d'authentification est supprimée."),
    "cle-ajoutee": N_("La clé d'accès est ajoutée."),
    "cle-renommee": N_("La clé d'accès est renommée."),
    "cle-supprimee": N_("La clé d'accès est supprimée."),
}


def when(value: datetime | None, locale: str = "fr") -> str:
    if value is None:
        return i18n.translate(locale, N_("jamais"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo("UTC"))
    return local(value, locale)


def _path(path: str, suite: str, **params: str) -> str:
    query = {**params, **({"suite": suite} if suite else {})}
    return path + ("?" + urlencode(query) if query else "")


def _signed_in(request: Request, provider: Provider) -> tuple[SSOSession, User] | None:
    sso = current_session(request, provider)
    user = provider.users.get(sso.user_id) if sso is not None else None
    if sso is None or user is None or user.locked:
        return None
    return sso, user


def _recent(sso: SSOSession) -> bool:
    return time.time() - sso.auth_time < RECENT_AUTH


def _to_sign_in(request: Request, provider: Provider, back: str) -> Response:
    target = "/connexion?" + urlencode({"retour": back})
    return finish(request, RedirectResponse(target, status_code=303), provider)


def _guard(request: Request, provider: Provider, csrf: Csrf, csrf_token: str | None,
           templates: Jinja2Templates, suite: str) -> tuple[SSOSession, User] | Response:
    """A form's checks: CSRF, a session, a recent sign-in (else: confirm identity first)."""
    if csrf_token is not None and not csrf.check(
            request.cookies.get(CSRF_COOKIE), csrf_token, PURPOSE):
        return error_page(request, templates, provider, heading=N_("Formulaire expiré"),
                          message=CSRF_FAILED, status_code=403)
    found = _signed_in(request, provider)
    if found is None or not _recent(found[0]):
        return _to_sign_in(request, provider, _path(BASE, suite))
    return found


def _change_factor(request: Request, provider: Provider, csrf: Csrf, csrf_token: str,
                   templates: Jinja2Templates, suite: str, change: Callable[[User], object],
                   done: str) -> Response:
    """Rename or remove one factor: the form's checks, the change, then back to the page
    (404 when the factor is not the person's)."""
    found = _guard(request, provider, csrf, csrf_token, templates, suite)
    if isinstance(found, Response):
        return found
    try:
        change(found[1])
    except NotFound as exc:
        return error_page(request, templates, provider, heading=N_("Introuvable"),
                          message=exc.message, status_code=404)
    return finish(request, RedirectResponse(_path(BASE, suite, fait=done), status_code=303),
                  provider)


def _suite(request: Request, provider: Provider, suite: str | None) -> tuple[str, str | None]:
    """The pending authorization request to continue, if it is this browser's."""
    pending = load_interaction(request, provider, suite) if suite else None
    if pending is None:
        return "", None
    client = provider.clients.get(pending.client_id)
    return pending.id, client.name if client else i18n.translate(
        page_locale(request, provider), N_("le service"))


def _base_context(request: Request, provider: Provider, csrf: Csrf, user: User,
                  suite: str | None, *, error: str | None = None) -> dict[str, Any]:
    """The account console's frame (``account_base.html``) and this page's CSRF token."""
    cookie = ensure_csrf_cookie(request, csrf)
    suite_id, suite_client = _suite(request, provider, suite)
    return {"csrf_token": csrf.token(cookie, PURPOSE), "suite": suite_id,
            "suite_client": suite_client, "navigation": NAVIGATION, "current_path": BASE,
            "user": user, "error": error, "errors": [error] if error else []}


def _overview(request: Request, provider: Provider, templates: Jinja2Templates, csrf: Csrf,
              sso: SSOSession, user: User, suite: str | None, *, done: str | None = None,
              error: str | None = None, status_code: int = 200) -> Response:
    summary = provider.factors.summary(user.id)
    locale = page_locale(request, provider)
    context = _base_context(request, provider, csrf, user, suite, error=error)
    return render(request, templates, provider, "security_overview.html", {
        **context, "title": N_("Sécurité de votre compte"), "email": user.email,
        "recent": _recent(sso), "acr": sso.acr, "done": DONE.get(done or ""),
        "reauth_url": "/connexion?" + urlencode({"retour": _path(BASE, context["suite"])}),
        "totp": [{"id": f.id, "name": f.name, "created": when(f.created_at, locale),
                  "used": when(f.last_used_at, locale)} for f in summary.totp],
        "passkeys": [{"id": p.id, "name": p.name, "created": when(p.created_at, locale),
                      "used": when(p.last_used_at, locale), "synced": p.backed_up}
                     for p in summary.passkeys],
        "recovery_remaining": summary.recovery_remaining,
        "has_second_factor": summary.has_second_factor,
    }, status_code)


@router.get(BASE)
def security_overview(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    suite: str | None = None, fait: str | None = None,
) -> Response:
    found = _signed_in(request, provider)
    if found is None:
        return _to_sign_in(request, provider, _path(BASE, _suite(request, provider, suite)[0]))
    return _overview(request, provider, templates, csrf, *found, suite, done=fait)


def _codes_page(request: Request, provider: Provider, templates: Jinja2Templates, csrf: Csrf,
                user: User, codes: list[str], suite: str, done: str) -> Response:
    return render(request, templates, provider, "security_recovery_codes.html", {
        **_base_context(request, provider, csrf, user, suite), "title": N_("Vos codes de secours"),
        "codes": codes, "next": _path(BASE, suite, fait=done) if done else _path(BASE, suite),
    })


# --- TOTP ----------------------------------------------------------------------------------------


def _totp_page(request: Request, provider: Provider, templates: Jinja2Templates, csrf: Csrf,
               user: User, enrolment: TotpEnrolment, suite: str, *, error: str | None = None,
               name: str = "", status_code: int = 200) -> Response:
    return render(request, templates, provider, "security_totp.html", {
        **_base_context(request, provider, csrf, user, suite, error=error),
        "title": N_("Ajouter une application d'authentification"), "factor_id": enrolment.factor_id,
        "qr": enrolment.qr_data_uri(), "secret": enrolment.grouped_secret, "name": name,
    }, status_code)


@router.get(BASE + "/totp")
def totp_start(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    suite: str = "",
) -> Response:
    found = _guard(request, provider, csrf, None, templates, suite)
    if isinstance(found, Response):
        return found
    sso, user = found
    try:
        enrolment = provider.factors.begin_totp(user)
    except Conflict as exc:
        return _overview(request, provider, templates, csrf, sso, user, suite, error=exc.message,
                         status_code=409)
    return _totp_page(request, provider, templates, csrf, user, enrolment, suite)


@router.post(BASE + "/totp")
def totp_confirm(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    factor_id: Annotated[str, Form(max_length=64)] = "",
    code: Annotated[str, Form(max_length=64)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    suite: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    found = _guard(request, provider, csrf, csrf_token, templates, suite)
    if isinstance(found, Response):
        return found
    _, user = found
    try:
        codes = provider.factors.confirm_totp(user, factor_id, code, name,
                                              origin=origin_of(request))
    except NotFound:
        return error_page(request, templates, provider, heading=N_("Ajout expiré"),
                          message=N_("Cet ajout n'est plus valide. Recommencez."), status_code=404)
    except (FactorFailed, TooManyRequests) as exc:
        status = 429 if isinstance(exc, TooManyRequests) else 400
        try:
            enrolment = provider.factors.totp.pending(user, factor_id)
        except NotFound:
            return error_page(request, templates, provider, heading=N_("Ajout expiré"),
                              message=N_("Cet ajout n'est plus valide. Recommencez."),
                              status_code=404)
        return _totp_page(request, provider, templates, csrf, user, enrolment, suite,
                          error=exc.message, name=name, status_code=status)
    if codes:
        return _codes_page(request, provider, templates, csrf, user, codes, suite,
                          "totp-ajoute")
    return finish(request, RedirectResponse(_path(BASE, suite, fait="totp-ajoute"),
                                            status_code=303), provider)


@router.post(BASE + "/totp/{factor_id}/nom")
def totp_rename(
    request: Request, factor_id: str, provider: ProviderDep, templates: TemplatesDep,
    csrf: CsrfDep, name: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    suite: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    return _change_factor(
        request, provider, csrf, csrf_token, templates, suite,
        lambda user: provider.factors.rename_totp(user, factor_id, name, origin=origin_of(request)),
        "totp-renomme",
    )


@router.post(BASE + "/totp/{factor_id}/supprimer")
def totp_remove(
    request: Request, factor_id: str, provider: ProviderDep, templates: TemplatesDep,
    csrf: CsrfDep, csrf_token: Annotated[str, Form(max_length=128)] = "",
    suite: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    return _change_factor(
        request, provider, csrf, csrf_token, templates, suite,
        lambda user: provider.factors.remove_totp(user, factor_id, origin=origin_of(request)),
        "totp-supprime",
    )


# --- recovery codes ------------------------------------------------------------------------------


@router.post(BASE + "/codes")
def recovery_regenerate(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    suite: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    found = _guard(request, provider, csrf, csrf_token, templates, suite)
    if isinstance(found, Response):
        return found
    sso, user = found
    try:
        codes = provider.factors.regenerate_recovery_codes(user, origin=origin_of(request))
    except Conflict as exc:
        return _overview(request, provider, templates, csrf, sso, user, suite, error=exc.message,
                         status_code=409)
    return _codes_page(request, provider, templates, csrf, user, codes, suite, "")


# --- passkeys ------------------------------------------------------------------------------------


def _passkey_page(request: Request, provider: Provider, templates: Jinja2Templates, csrf: Csrf,
                  user: User, suite: str, *, error: str | None = None,
                  status_code: int = 200) -> Response:
    return render(request, templates, provider, "security_passkey.html", {
        **_base_context(request, provider, csrf, user, suite, error=error),
        "title": N_("Ajouter une clé d'accès"),
    }, status_code)


@router.get(BASE + "/cles")
def passkey_start(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    suite: str = "",
) -> Response:
    found = _guard(request, provider, csrf, None, templates, suite)
    if isinstance(found, Response):
        return found
    return _passkey_page(request, provider, templates, csrf, found[1], suite)


@router.post(BASE + "/cles/options")
def passkey_options(
    request: Request, provider: ProviderDep, csrf: CsrfDep,
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    headers = {"Cache-Control": "no-store"}
    binding = browser_binding(request)
    if binding is None or not csrf.check(request.cookies.get(CSRF_COOKIE), csrf_token, PURPOSE):
        return JSONResponse({"error": text(request, provider, CSRF_FAILED)},
                            status_code=403, headers=headers)
    found = _signed_in(request, provider)
    if found is None or not _recent(found[0]):
        return JSONResponse({"error": text(request, provider, REAUTH_FIRST)},
                            status_code=401, headers=headers)
    try:
        options = provider.factors.passkey_registration_options(found[1], binding)
    except Conflict as exc:
        return JSONResponse({"error": text(request, provider, exc.message)},
                            status_code=409, headers=headers)
    return Response(options, media_type="application/json", headers=headers)


@router.post(BASE + "/cles")
def passkey_register(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    credential: Annotated[str, Form(max_length=CREDENTIAL_MAX)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    suite: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    found = _guard(request, provider, csrf, csrf_token, templates, suite)
    if isinstance(found, Response):
        return found
    try:
        codes = provider.factors.register_passkey(
            found[1], credential, name, origin=origin_of(request),
            binding=browser_binding(request) or "")
    except FactorFailed as exc:
        return _passkey_page(request, provider, templates, csrf, found[1], suite,
                             error=exc.message, status_code=400)
    if codes:
        return _codes_page(request, provider, templates, csrf, found[1], codes, suite,
                          "cle-ajoutee")
    return finish(request, RedirectResponse(_path(BASE, suite, fait="cle-ajoutee"),
                                            status_code=303), provider)


@router.post(BASE + "/cles/{passkey_id}/nom")
def passkey_rename(
    request: Request, passkey_id: str, provider: ProviderDep, templates: TemplatesDep,
    csrf: CsrfDep, name: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    suite: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    return _change_factor(
        request, provider, csrf, csrf_token, templates, suite,
        lambda user: provider.factors.rename_passkey(user, passkey_id, name,
                                                     origin=origin_of(request)),
        "cle-renommee",
    )


@router.post(BASE + "/cles/{passkey_id}/supprimer")
def passkey_remove(
    request: Request, passkey_id: str, provider: ProviderDep, templates: TemplatesDep,
    csrf: CsrfDep, csrf_token: Annotated[str, Form(max_length=128)] = "",
    suite: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    return _change_factor(
        request, provider, csrf, csrf_token, templates, suite,
        lambda user: provider.factors.remove_passkey(user, passkey_id, origin=origin_of(request)),
        "cle-supprimee",
    )
