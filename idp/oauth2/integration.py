"""Starlette glue for Authlib's server (Authlib ships none): requests in, responses out.

Authlib's core is synchronous, so the body is read once by an async dependency
(:func:`read_oauth2_request`) and the routes that call the server are plain ``def``.

The machine-to-machine endpoints (token, introspection, revocation) are also answered by a
raw ASGI shortcut, :class:`OAuth2EndpointsMiddleware`: same request object, same server, same
responses, without FastAPI's routing and dependency machinery (see docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from starlette.datastructures import FormData, Headers, QueryParams, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from idp.oauth2.server import ProviderServer
from idp.services import Provider
from plateforme.web import ASGIApp, Message, Receive, Scope, Send

# Limits of the form read by read_oauth2_request (Starlette's FormParser).
MAX_FORM_FIELDS = 100
MAX_FIELD_BYTES = 64 * 1024

JSON_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class StarlettePayload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, query: QueryParams, form: FormData | None) -> None:
        self._query = query
        self._form = form
        values: dict[str, Any] = dict(query)
        if form is not None:
            values.update({k: v for k, v in form.items() if isinstance(v, str)})
        self._data = values

    @property
    def data(self) -> dict[str, Any]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        values: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in self._query.multi_items():
            values[key].append(value)
        if self._form is not None:
            for key, item in self._form.multi_items():
                if isinstance(item, str):
                    values[key].append(item)
        return values


class StarletteOAuth2Request(OAuth2Request):  # type: ignore[misc]
    """An Authlib request built from a Starlette request whose form was already read."""

    def __init__(
        self, *, method: str, uri: str, headers: Any, query: QueryParams,
        form: FormData | None, address: str | None = None,
    ) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self._query = query
        self._form_data = form
        self.address = address
        self.payload = StarlettePayload(query, form)

    @property
    def args(self) -> QueryParams:
        return self._query

    @property
    def form(self) -> dict[str, str]:
        if self._form_data is None:
            return {}
        return {k: v for k, v in self._form_data.items() if isinstance(v, str)}


def from_query(provider: Provider, query: str, *, method: str = "GET") -> StarletteOAuth2Request:
    """Rebuild an authorization request from its stored query string (resumed interaction)."""
    return StarletteOAuth2Request(
        method=method, uri=f"{provider.issuer}/authorize?{query}", headers={},
        query=QueryParams(query), form=None,
    )


async def read_oauth2_request(request: Request) -> StarletteOAuth2Request:
    form = None
    if request.method == "POST":
        form = await request.form(
            max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FIELD_BYTES
        )
    provider: Provider = request.app.state.provider
    uri = provider.issuer + request.url.path
    if request.url.query:
        uri += "?" + request.url.query
    return StarletteOAuth2Request(
        method=request.method, uri=uri, headers=request.headers,
        # RFC 6749 §3.2 / OIDC Core §3.1.2.1: a POST carries its parameters in the body only
        # (codes, verifiers and tokens must not travel in URLs, which end up in logs).
        query=QueryParams("") if request.method == "POST" else request.query_params,
        form=form, address=request.client.host if request.client else None,
    )


class StarletteServer(ProviderServer):
    """The provider's authorization server answering Starlette responses."""

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        raise TypeError("build the request with read_oauth2_request() first")

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        merged = dict(headers or [])
        if isinstance(body, dict):
            merged.update(JSON_HEADERS)
            merged["Content-Type"] = "application/json"
            return Response(
                json.dumps(body, separators=(",", ":")), status_code=status, headers=merged
            )
        return Response(body or "", status_code=status, headers=merged)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Signals are not used; audit happens in the services."""


# --- raw ASGI shortcut for the machine-to-machine endpoints -----------------------------------

FORM_CONTENT_TYPE = b"application/x-www-form-urlencoded"
# Bodies above this size (or with ';', or too many fields) take the general route, which
# applies the same per-field and field-count limits as before.
FAST_BODY_BYTES = MAX_FIELD_BYTES
ENDPOINTS = {"/token": "token", "/introspect": "introspection", "/revoke": "revocation"}
# Grant types whose handling needs no storage round trip (only the client and key caches,
# refreshed every few seconds): answered on the event loop, without a thread hop, when the
# client is cached (see _answer_inline).
INLINE_GRANT_TYPES = frozenset({"client_credentials"})


def _is_form(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == FORM_CONTENT_TYPE
    return False


def parse_form(body: bytes) -> FormData | None:
    """The form as Starlette's ``FormParser`` reads it, or None when the body needs that
    parser (``;`` separators, more than :data:`MAX_FORM_FIELDS` fields)."""
    if b";" in body:
        return None
    try:
        pairs: list[tuple[str, str | UploadFile]] = list(parse_qsl(
            body.decode("latin-1"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        ))
    except ValueError:
        return None
    return FormData(pairs)


def _answer_inline(server: StarletteServer, request: StarletteOAuth2Request) -> bool:
    """A token request is answered on the event loop only when nothing in it waits for
    storage: a grant of :data:`INLINE_GRANT_TYPES`, a client authenticated by a secret (an
    assertion's ``jti`` goes to the key-value store) and already in the client cache (an
    unknown ``client_id`` goes to the database)."""
    data = request.payload.data
    if data.get("grant_type") not in INLINE_GRANT_TYPES or "client_assertion" in data:
        return False
    client_id, _ = extract_basic_authorization(request.headers)
    client_id = client_id or data.get("client_id")
    return isinstance(client_id, str) and server.provider.clients.is_cached(client_id)


def _replay(body: bytes, more_body: bool, receive: Receive) -> Receive:
    """A ``receive`` that first gives back what was already read."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": more_body}
        return await receive()

    return replay


class OAuth2EndpointsMiddleware:
    """``POST /token``, ``/introspect`` and ``/revoke`` with a form body, answered by the
    application's Authlib server (``app.state.oauth2_server``) exactly as the FastAPI routes
    of :mod:`idp.api.oauth` do: same :class:`StarletteOAuth2Request`, same server calls, same
    responses. Anything else (another content type, a large or unusual body) goes on to those
    routes untouched.

    Place it inside the security-headers middleware (which adds the common headers and the
    request id) and outside FastAPI's routing. Calls that reach the database or the key-value
    store run in a thread pool, like FastAPI's ``def`` routes; ``client_credentials`` with a
    cached client runs on the event loop (:func:`_answer_inline`).
    """

    def __init__(self, app: ASGIApp, *, issuer: str, threads: int = 4) -> None:
        # Few threads: they contend for the GIL with the event loop. Introspection with a
        # local PostgreSQL, 2 workers (docs/performance.md): 16 threads ~720/s and 1.8 ms of
        # CPU per request, 4 threads ~1 100/s, 2 threads ~1 300/s, on the loop ~1 650/s
        # (but a slow database would then stall every request of the worker).
        self.app = app
        self.issuer = issuer
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        endpoint = ENDPOINTS.get(scope["path"])
        if endpoint is None or not _is_form(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect: nobody to answer
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body", False))
            if not more or size > FAST_BODY_BYTES:
                break
        body = b"".join(chunks)
        form = parse_form(body) if not more and size <= FAST_BODY_BYTES else None
        if form is None:
            await self.app(scope, _replay(body, more, receive), send)
            return
        response = await self._respond(scope, endpoint, form)
        await response(scope, receive, send)

    async def _respond(self, scope: Scope, endpoint: str, form: FormData) -> Response:
        query = scope.get("query_string", b"").decode("latin-1")
        uri = self.issuer + scope["path"]
        if query:
            uri += "?" + query
        client = scope.get("client")
        request = StarletteOAuth2Request(
            method="POST", uri=uri, headers=Headers(scope=scope), query=QueryParams(""),
            form=form, address=client[0] if client else None,
        )
        server: StarletteServer = scope["app"].state.oauth2_server
        if endpoint == "token":
            if _answer_inline(server, request):
                return server.create_token_response(request)  # type: ignore[no-any-return]
            return await self._in_thread(server.create_token_response, request)
        return await self._in_thread(server.create_endpoint_response, endpoint, request)

    async def _in_thread(self, func: Callable[..., Response], *args: Any) -> Response:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="oauth2")
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, context.run, func, *args
        )
