"""The second step of a sign-in (``/connexion/facteur``): a code from an authenticator app, a
recovery code or a passkey.

Two cases lead here: a password was accepted for an account that has a second factor
(nothing is open yet), or a signed-in person must *step up* because a service asks for a
stronger level (``acr_values`` or the client's minimum) than the session's: only the missing
factor is asked, then the session's ``acr``/``amr`` are upgraded in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from idp.api.authorize import interaction_context
from idp.api.browser import (
    Interaction,
    browser_binding,
    current_session,
    ensure_csrf_cookie,
    error_page,
    finish,
    load_interaction,
    render,
    text,
)
from idp.api.deps import CsrfDep, ProviderDep, TemplatesDep
from idp.api.login import CREDENTIAL_MAX, CSRF_FAILED, CSRF_TITLE, EXPIRED, EXPIRED_TITLE
from idp.api.signin import complete_sign_in, drop_pending, load_pending, origin_of, safe_return
from idp.i18n import N_
from idp.models import User
from idp.services import Provider, SSOSession
from idp.services.factors import FactorFailed, acr_for, combine
from plateforme.audit import AuditRecord
from plateforme.errors import TooManyRequests
from plateforme.web import CSRF_COOKIE, Csrf

router = APIRouter(include_in_schema=False)

NOT_ENOUGH = (
    N_("Cette méthode ne suffit pas pour une connexion renforcée : utilisez une autre méthode "
    "que celle de votre connexion.")
)


@dataclass
class FactorStep:
    mode: Literal["signin", "stepup"]
    user: User
    interaction: Interaction | None
    retour: str
    amr: list[str]
    sso: SSOSession | None = None


def factor_step(request: Request, provider: Provider, interaction_id: str | None,
                retour: str | None) -> FactorStep | None:
    """What this browser is doing here, or None (expired, another browser, nothing to do)."""
    wanted = interaction_id or ""
    pending = load_pending(request, provider)
    if pending is not None and pending.interaction == wanted:
        interaction = load_interaction(request, provider, wanted) if wanted else None
        user = provider.users.get(pending.user_id)
        if (wanted and interaction is None) or user is None or user.locked:
            return None
        return FactorStep("signin", user, interaction, pending.retour, pending.amr)
    sso = current_session(request, provider)
    if sso is None:
        return None
    interaction = load_interaction(request, provider, wanted) if wanted else None
    user = provider.users.get(sso.user_id)
    if (wanted and interaction is None) or user is None or user.locked:
        return None
    return FactorStep("stepup", user, interaction, safe_return(retour) if not wanted else "",
                      list(sso.amr), sso)


def _render(request: Request, templates: Any, provider: Provider, csrf: Csrf, step: FactorStep,
            *, error: str | None = None, failed: str | None = None,
            status_code: int = 200) -> Response:
    cookie = ensure_csrf_cookie(request, csrf)
    summary = provider.factors.summary(step.user.id)
    return render(request, templates, provider, "login_factor.html", {
        "title": N_("Confirmer votre identité"), "csrf_token": csrf.token(cookie, "factor"),
        "interaction": step.interaction.id if step.interaction else "", "retour": step.retour,
        "methods": summary.methods, "recovery_remaining": summary.recovery_remaining,
        "stepup": step.mode == "stepup", "error": error, "failed": failed,
        **interaction_context(provider, step.interaction),
    }, status_code)


@router.get("/connexion/facteur")
def factor_form(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    interaction: str | None = None, retour: str | None = None,
) -> Response:
    step = factor_step(request, provider, interaction, retour)
    if step is None:
        return error_page(request, templates, provider, heading=EXPIRED_TITLE, message=EXPIRED)
    if not provider.factors.summary(step.user.id).methods:
        return finish(request, RedirectResponse("/connexion", status_code=303), provider)
    return _render(request, templates, provider, csrf, step)


@router.post("/connexion/facteur")
def factor_submit(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    method: Annotated[str, Form(max_length=20)] = "",
    code: Annotated[str, Form(max_length=64)] = "",
    credential: Annotated[str, Form(max_length=CREDENTIAL_MAX)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    interaction: Annotated[str, Form(max_length=64)] = "",
    retour: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    if not csrf.check(request.cookies.get(CSRF_COOKIE), csrf_token, "factor"):
        return error_page(
            request, templates, provider, heading=CSRF_TITLE, message=CSRF_FAILED,
            status_code=403,
        )
    step = factor_step(request, provider, interaction, retour)
    if step is None:
        return error_page(request, templates, provider, heading=EXPIRED_TITLE, message=EXPIRED)
    try:
        factor_amr = provider.factors.verify(
            step.user, method, credential if method == "passkey" else code,
            origin=origin_of(request), binding=browser_binding(request) or "",
        )
    except TooManyRequests as exc:
        response = _render(request, templates, provider, csrf, step, error=exc.message,
                           failed=method, status_code=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except FactorFailed as exc:
        return _render(request, templates, provider, csrf, step, error=exc.message,
                       failed=method, status_code=401)
    amr = combine(step.amr, factor_amr)
    if step.mode == "signin":
        drop_pending(request, provider)
        return complete_sign_in(request, provider, csrf, user=step.user, amr=amr,
                                interaction=step.interaction, retour=step.retour)
    assert step.sso is not None
    acr = acr_for(amr)
    if acr == step.sso.acr == "eidas1":
        return _render(request, templates, provider, csrf, step, error=NOT_ENOUGH,
                       failed=method, status_code=401)
    previous = {"acr": step.sso.acr, "amr": step.sso.amr}
    provider.sessions.reauthenticate(step.sso, acr=acr, amr=amr)
    origin = origin_of(request)
    provider.journal.record(AuditRecord(
        action="login.stepup", actor=str(step.user.id), address=origin.address,
        request_id=origin.request_id,
        details={"from": previous, "acr": acr, "amr": amr, "factor": method},
    ))
    if step.interaction is not None:
        target = "/authorize/continue?" + urlencode({"interaction": step.interaction.id})
    else:
        target = step.retour or "/connexion/termine"
    return finish(request, RedirectResponse(target, status_code=303), provider)


@router.post("/connexion/facteur/cle/options")
def factor_passkey_options(
    request: Request, provider: ProviderDep, csrf: CsrfDep,
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    interaction: Annotated[str, Form(max_length=64)] = "",
    retour: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """Options for ``navigator.credentials.get()`` limited to the person's passkeys."""
    binding = browser_binding(request)
    headers = {"Cache-Control": "no-store"}
    if binding is None or not csrf.check(request.cookies.get(CSRF_COOKIE), csrf_token, "factor"):
        return JSONResponse({"error": text(request, provider, CSRF_FAILED)},
                            status_code=403, headers=headers)
    step = factor_step(request, provider, interaction, retour)
    if step is None:
        return JSONResponse({"error": text(request, provider, EXPIRED)},
                            status_code=400, headers=headers)
    options = provider.factors.passkeys.authentication_options(binding, user_id=step.user.id)
    return Response(options, media_type="application/json", headers=headers)
