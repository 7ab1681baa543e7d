"""What the sign-in pages share: opening (or renewing) the SSO session once every factor was
given, the password-checked sign-in waiting for its second factor, and safe return paths."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlencode

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from idp.api.browser import (
    Interaction,
    address_of,
    browser_binding,
    current_session,
    finish,
    save_interaction,
)
from idp.models import User
from idp.services import Provider
from idp.services.factors import Origin, acr_for
from plateforme.audit import AuditRecord
from plateforme.web import Csrf, request_id

PENDING_LIFETIME = 300


def safe_return(value: str | None) -> str:
    """A path of this site to go back to after signing in, or "" (never another site)."""
    if (not value or len(value) > 300 or not value.startswith("/") or value.startswith("//")
            or "\\" in value or not value.isprintable()):
        return ""
    return value


def origin_of(request: Request) -> Origin:
    return Origin(address=address_of(request), request_id=request_id(request))


@dataclass
class PendingSignIn:
    """A password accepted for an account that has a second factor: nothing is open until
    the second factor is given, from the same browser, within five minutes."""

    user_id: str
    amr: list[str]
    interaction: str = ""
    retour: str = ""
    created: int = field(default_factory=lambda: int(time.time()))


def _pending_key(binding: str) -> str:
    return f"idp:signin-pending:{binding}"


def save_pending(request: Request, provider: Provider, pending: PendingSignIn) -> None:
    binding = browser_binding(request)
    assert binding is not None  # the sign-in form's CSRF check needs the cookie
    provider.store.set(_pending_key(binding), json.dumps(asdict(pending)), ttl=PENDING_LIFETIME)


def load_pending(request: Request, provider: Provider) -> PendingSignIn | None:
    binding = browser_binding(request)
    raw = provider.store.get(_pending_key(binding)) if binding else None
    return PendingSignIn(**json.loads(raw)) if raw else None


def drop_pending(request: Request, provider: Provider) -> None:
    binding = browser_binding(request)
    if binding:
        provider.store.delete(_pending_key(binding))


def ask_second_factor(request: Request, provider: Provider, *, user: User, amr: list[str],
                      interaction: Interaction | None, retour: str) -> Response:
    save_pending(request, provider, PendingSignIn(
        user_id=str(user.id), amr=amr, interaction=interaction.id if interaction else "",
        retour=retour,
    ))
    query = {"interaction": interaction.id} if interaction else {}
    target = "/connexion/facteur" + ("?" + urlencode(query) if query else "")
    return finish(request, RedirectResponse(target, status_code=303), provider)


def complete_sign_in(
    request: Request, provider: Provider, csrf: Csrf, *, user: User, amr: list[str],
    interaction: Interaction | None, retour: str,
) -> Response:
    """Every factor was given: open the SSO session (or renew the person's own session in
    place, keeping its ``sid`` and clients), then resume the authorization request or go
    back where the person came from."""
    acr = acr_for(amr)
    address = address_of(request)
    previous = current_session(request, provider)
    if previous is not None and previous.user_id == str(user.id):
        provider.sessions.reauthenticate(previous, acr=acr, amr=amr)
        sso = previous
    else:
        if previous is not None:
            provider.end_session(previous, reason="new_login", address=address)
        sso = provider.sessions.create(
            user_id=user.id, acr=acr, amr=amr, address=address,
            user_agent=request.headers.get("user-agent"),
        )
    request.state.set_session = sso.sid
    provider.journal.record(AuditRecord(
        action="login.success", actor=str(user.id), address=address,
        request_id=request_id(request), details={"acr": acr, "amr": amr},
    ))
    if interaction is not None:
        interaction.login_done = True
        save_interaction(request, provider, csrf, query=interaction.query,
                         client_id=interaction.client_id, existing=interaction)
        target = "/authorize/continue?" + urlencode({"interaction": interaction.id})
    else:
        target = retour or "/connexion/termine"
    return finish(request, RedirectResponse(target, status_code=303), provider)
