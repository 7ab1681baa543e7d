"""Web helpers shared by every package: security headers, CSRF tokens, the caller's address,
request ids. Raw ASGI where it sits on the hot path."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import Request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSRF_COOKIE = "mc_csrf"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
_BASE_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_HTML_HEADERS = [(b"content-security-policy", CSP.encode())]


class SecurityHeadersMiddleware:
    """Adds DESIGN.md's headers to every response; HSTS under https; a request id."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id" and 0 < len(value) <= 64:
                request_id = value.decode("latin-1")
                break
        scope.setdefault("state", {})["request_id"] = request_id or uuid.uuid4().hex

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for key, value in _BASE_HEADERS:
                    if key not in present:
                        headers.append((key, value))
                if b"content-security-policy" not in present:
                    headers.extend(_HTML_HEADERS)
                if self.https:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)


def client_address(request: Request, trusted_proxies: frozenset[str] = frozenset()) -> str:
    """The caller's address; ``X-Forwarded-For`` is believed only from a trusted proxy."""
    peer = request.client.host if request.client else "unknown"
    if peer in trusted_proxies:
        forwarded = request.headers.get("x-forwarded-for", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        while hops:
            candidate = hops.pop()
            if candidate not in trusted_proxies:
                try:
                    return str(ipaddress.ip_address(candidate))
                except ValueError:
                    return peer
    return peer


def request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


class Csrf:
    """Synchroniser tokens bound to a random, HttpOnly cookie (OWASP "signed double submit")."""

    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(("csrf:" + secret_key).encode()).digest()

    def new_cookie_value(self) -> str:
        return secrets.token_urlsafe(32)

    def token(self, cookie_value: str, purpose: str = "form") -> str:
        return hmac.new(self._key, f"{purpose}|{cookie_value}".encode(), hashlib.sha256).hexdigest()

    def check(self, cookie_value: str | None, token: str | None, purpose: str = "form") -> bool:
        if not cookie_value or not token:
            return False
        return hmac.compare_digest(self.token(cookie_value, purpose), token)
