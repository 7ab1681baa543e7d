"""Web helpers shared by every package: security headers, CSRF tokens, the caller's address,
request ids. Raw ASGI where it sits on the hot path."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable, Container, MutableMapping
from typing import Any

from starlette.requests import Request

from plateforme.errors import ServiceUnavailable
from plateforme.logs import request_id_var

log = logging.getLogger("plateforme.web")

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
    """Adds DESIGN.md's headers to every response; HSTS under https. The request id comes from
    :class:`ProxyHeadersMiddleware` (outermost); one is generated if that middleware is absent."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {}).setdefault("request_id", uuid.uuid4().hex)

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


class TrustedProxies:
    """The proxies whose ``X-Forwarded-*`` and ``X-Request-ID`` headers are believed:
    addresses or networks (``10.0.0.0/8``), comma-separated, as in ``MC_TRUSTED_PROXIES``."""

    def __init__(self, spec: str = "") -> None:
        networks = []
        for item in spec.split(","):
            item = item.strip()
            if item:
                try:
                    networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError as exc:
                    raise ValueError(f"MC_TRUSTED_PROXIES : adresse invalide {item!r}") from exc
        self._networks = tuple(networks)
        self._exact = frozenset(str(n.network_address) for n in networks
                                if n.num_addresses == 1)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str) or not self._networks:
            return False
        if address in self._exact:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)


_FORWARDED = (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,64}")
_HOST = re.compile(r"(?:[A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{1,63}(?::[0-9]{1,5})?"
                   r"|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?")
REQUEST_ID_HEADER = b"x-request-id"


def _last(value: bytes) -> str:
    """The last hop's value of a comma-separated forwarded header (the one our proxy set)."""
    return value.decode("latin-1").rsplit(",", 1)[-1].strip()


class ProxyHeadersMiddleware:
    """The outermost middleware: who is calling, over what, and which request this is.

    From a peer in ``trusted`` (the reverse proxy or ingress), ``X-Forwarded-For`` gives the
    client address (the last hop that is not itself a trusted proxy), ``X-Forwarded-Proto``
    the scheme, ``X-Forwarded-Host`` the host, and ``X-Request-ID`` the request id. From any
    other peer these headers are removed before the application sees them, so nothing
    downstream can be fooled by a spoofed header. The issuer never comes from these headers:
    it is ``MC_ISSUER``. The request id (generated when absent or untrusted) is put in
    ``request.state.request_id``, bound for the logs, and echoed in the response.
    """

    def __init__(self, app: ASGIApp, *, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        peer = client[0] if client else None
        trusted = peer is not None and peer in self.trusted
        incoming_id: str | None = None
        kept: list[tuple[bytes, bytes]] = []
        forwarded: dict[bytes, bytes] = {}
        for name, value in scope.get("headers", ()):
            if name in _FORWARDED:
                if trusted:
                    # Several headers of one name: a proxy appends, so join them in order.
                    forwarded[name] = forwarded[name] + b"," + value if name in forwarded \
                        else value
                continue
            if name == REQUEST_ID_HEADER:
                if trusted and _REQUEST_ID.fullmatch(value.decode("latin-1")):
                    incoming_id = value.decode("latin-1")
                continue
            kept.append((name, value))
        if trusted:
            kept = self._apply(scope, forwarded, kept)
        scope["headers"] = kept
        rid = incoming_id or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        state["client_resolved"] = True
        token = request_id_var.set(rid)
        raw_id = rid.encode()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, raw_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            request_id_var.reset(token)

    def _apply(self, scope: Scope, forwarded: dict[bytes, bytes],
               headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        hops = [h.strip() for h in forwarded.get(b"x-forwarded-for", b"").decode(
            "latin-1").split(",") if h.strip()]
        while hops:
            candidate = hops.pop()
            try:
                address = str(ipaddress.ip_address(candidate))
            except ValueError:
                break  # garbage from the proxy: keep the peer
            if address not in self.trusted or not hops:
                scope["client"] = (address, 0)
                break
        proto = forwarded.get(b"x-forwarded-proto")
        if proto is not None and _last(proto).lower() in ("http", "https"):
            scope["scheme"] = _last(proto).lower()
        host = forwarded.get(b"x-forwarded-host")
        if host is not None and _HOST.fullmatch(_last(host)):
            headers = [(k, v) for k, v in headers if k != b"host"]
            headers.append((b"host", _last(host).encode("latin-1")))
        return headers


class UnavailableMiddleware:
    """A :class:`plateforme.errors.ServiceUnavailable` raised outside FastAPI's routes (the
    raw token endpoint, the console sessions) becomes the same 503 problem document as inside
    them, with ``Retry-After``, instead of an internal error."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except ServiceUnavailable as exc:
            if started:
                raise
            log.warning("dependency unavailable (%s) on %s", exc.dependency, scope.get("path"))
            body = json.dumps({
                "type": "about:blank", "title": exc.title, "status": exc.status,
                "detail": exc.message,
            }, ensure_ascii=False).encode()
            await send({"type": "http.response.start", "status": exc.status, "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(exc.retry_after).encode()),
                (b"cache-control", b"no-store"),
            ]})
            await send({"type": "http.response.body", "body": body})


def client_address(request: Request, trusted_proxies: Container[str] = frozenset()) -> str:
    """The caller's address. Behind :class:`ProxyHeadersMiddleware` it is already resolved
    (``request.client``); otherwise ``X-Forwarded-For`` is believed only from a trusted proxy."""
    peer = request.client.host if request.client else "unknown"
    if request.scope.get("state", {}).get("client_resolved"):
        return peer
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
