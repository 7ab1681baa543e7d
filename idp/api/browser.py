"""The browser side of the provider: cookies, CSRF, pending authorization interactions."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from idp.services import Provider, SSOSession
from plateforme.web import CSRF_COOKIE, Csrf, client_address

SESSION_COOKIE = "mc_session"


@dataclass
class Interaction:
    """An authorization request waiting for the person (sign-in, consent)."""

    id: str
    query: str
    client_id: str
    browser: str
    login_done: bool = False
    consent_done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _browser_hash(value: str | None) -> str:
    return hashlib.sha256((value or "").encode()).hexdigest()


def browser_id(request: Request) -> str | None:
    return request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf_cookie", None)


def browser_binding(request: Request) -> str | None:
    """What binds server-side state to this browser (a hash of its CSRF cookie), or None."""
    value = browser_id(request)
    return _browser_hash(value) if value else None


def ensure_csrf_cookie(request: Request, csrf: Csrf) -> str:
    """The browser's CSRF cookie value, created (and remembered for the response) if absent."""
    value = browser_id(request)
    if not value:
        value = csrf.new_cookie_value()
        request.state.new_csrf_cookie = value
    return value


def finish(request: Request, response: Response, provider: Provider) -> Response:
    """Set the cookies decided during the request on the outgoing response."""
    secure = provider.settings.secure_cookies
    new_csrf = getattr(request.state, "new_csrf_cookie", None)
    if new_csrf:
        response.set_cookie(
            CSRF_COOKIE, new_csrf, httponly=True, samesite="lax", secure=secure, path="/"
        )
    sid = getattr(request.state, "set_session", None)
    if sid is not None:
        if sid == "":
            response.delete_cookie(SESSION_COOKIE, path="/", secure=secure, httponly=True,
                                   samesite="lax")
        else:
            response.set_cookie(
                SESSION_COOKIE, sid, httponly=True, samesite="lax", secure=secure, path="/",
                max_age=provider.settings.session_lifetime,
            )
    response.headers["Cache-Control"] = "no-store"
    return response


def current_session(request: Request, provider: Provider) -> SSOSession | None:
    return provider.sessions.get(request.cookies.get(SESSION_COOKIE))


def save_interaction(
    request: Request, provider: Provider, csrf: Csrf, *, query: str, client_id: str,
    existing: Interaction | None = None,
) -> Interaction:
    browser = ensure_csrf_cookie(request, csrf)
    interaction = existing or Interaction(
        id=secrets.token_urlsafe(24), query=query, client_id=client_id,
        browser=_browser_hash(browser),
    )
    provider.store.set(
        f"idp:interaction:{interaction.id}", json.dumps(asdict(interaction)),
        ttl=provider.settings.interaction_lifetime,
    )
    return interaction


def load_interaction(request: Request, provider: Provider, interaction_id: str | None
                     ) -> Interaction | None:
    """The pending interaction, only for the browser that started it."""
    if not interaction_id or len(interaction_id) > 64:
        return None
    raw = provider.store.get(f"idp:interaction:{interaction_id}")
    if raw is None:
        return None
    interaction = Interaction(**json.loads(raw))
    if interaction.browser != _browser_hash(browser_id(request)):
        return None
    return interaction


def drop_interaction(provider: Provider, interaction: Interaction) -> None:
    provider.store.delete(f"idp:interaction:{interaction.id}")


def address_of(request: Request) -> str:
    return client_address(request, request.app.state.trusted_proxies)


def render(
    request: Request, templates: Jinja2Templates, provider: Provider, name: str,
    context: dict[str, Any], status_code: int = 200,
) -> Response:
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    return finish(request, response, provider)


def error_page(
    request: Request, templates: Jinja2Templates, provider: Provider, *, heading: str,
    message: str, detail: str | None = None, status_code: int = 400,
) -> Response:
    return render(request, templates, provider, "error.html", {
        "title": heading, "heading": heading, "message": message, "detail": detail,
    }, status_code)
