"""Server-side sessions of the console, for ``/admin`` only.

The browser holds a random id in the ``mc_admin`` cookie (HttpOnly, SameSite=Lax,
``Path=/admin``, Secure under https); the data lives in the key-value store under
``admin:session:<id>`` with an idle TTL and an absolute lifetime. Requests under ``/admin``
see it as ``request.session`` (what Authlib's Starlette client needs for ``state``, ``nonce``
and the PKCE verifier); no other request pays for it.

A signed-in session carries the provider's ``sid``; ``admin:sid:<sid>`` lists the console
sessions opened under it, so that a back-channel logout ends them all.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import cookie_parser

from plateforme.kv import KeyValueStore
from plateforme.web import ASGIApp, Message, Receive, Scope, Send

COOKIE = "mc_admin"
PATH = "/admin"
IDLE_TIMEOUT = 30 * 60
LIFETIME = 8 * 3600


def _key(session_id: str) -> str:
    return f"admin:session:{session_id}"


def _sid_index(sid: str) -> str:
    return f"admin:sid:{sid}"


class ConsoleSession(dict[str, Any]):
    """The session's data; ``renew()`` gives it a new id at the next response (sign-in,
    sign-out: no session fixation)."""

    def __init__(self, session_id: str | None, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.id = session_id
        self.renew_id = False

    def renew(self) -> None:
        self.renew_id = True


class ConsoleSessions:
    """Load, save and end console sessions in the key-value store."""

    def __init__(self, store: KeyValueStore) -> None:
        self.store = store

    def load(self, session_id: str | None) -> ConsoleSession:
        if not session_id or len(session_id) > 64:
            return ConsoleSession(None, {})
        raw = self.store.get(_key(session_id))
        if raw is None:
            return ConsoleSession(None, {})
        data = json.loads(raw)
        if time.time() - data.get("_created", 0) > LIFETIME:
            self.store.delete(_key(session_id))
            return ConsoleSession(None, {})
        self.store.expire(_key(session_id), IDLE_TIMEOUT)
        return ConsoleSession(session_id, data)

    def save(self, session: ConsoleSession) -> str | None:
        """Write the session; returns the id to send in a cookie (new or renewed), or "" to
        delete the cookie, or None when the cookie stays as it is."""
        old_id = session.id
        if session.renew_id and old_id:
            self.store.delete(_key(old_id))
            old_id = None
        if not session:
            if old_id:
                self.store.delete(_key(old_id))
                return ""
            return "" if session.id else None
        data = dict(session)
        data.setdefault("_created", int(time.time()))
        session_id = old_id or secrets.token_urlsafe(32)
        remaining = max(1, min(IDLE_TIMEOUT, int(data["_created"] + LIFETIME - time.time())))
        self.store.set(_key(session_id), json.dumps(data), ttl=remaining)
        if data.get("sid"):
            self.store.sadd(_sid_index(data["sid"]), session_id, ttl=LIFETIME)
        return None if session_id == session.id else session_id

    def end_sid(self, sid: str) -> int:
        """End every console session opened under the provider's session ``sid``."""
        ids = self.store.smembers(_sid_index(sid))
        self.store.delete(*(_key(i) for i in ids), _sid_index(sid))
        return len(ids)


class ConsoleSessionMiddleware:
    """Gives requests under ``/admin`` their ``request.session``; others pass untouched."""

    def __init__(self, app: ASGIApp, *, store: KeyValueStore, https: bool) -> None:
        self.app = app
        self.sessions = ConsoleSessions(store)
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == PATH or path.startswith(PATH + "/")):
            await self.app(scope, receive, send)
            return
        session_id = None
        for name, value in scope.get("headers", ()):
            if name == b"cookie":
                session_id = cookie_parser(value.decode("latin-1")).get(COOKIE) or session_id
        session = await run_in_threadpool(self.sessions.load, session_id)
        before = json.dumps(session, sort_keys=True)
        scope["session"] = session

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start" and (
                session.renew_id or json.dumps(session, sort_keys=True) != before
            ):
                cookie = await run_in_threadpool(self.sessions.save, session)
                if cookie is not None:
                    headers = MutableHeaders(scope=message)
                    headers.append("set-cookie", self._cookie(cookie))
            await send(message)

        await self.app(scope, receive, send_wrapper)

    def _cookie(self, value: str) -> str:
        parts = [f"{COOKIE}={value}", f"Path={PATH}", "HttpOnly", "SameSite=Lax"]
        if not value:
            parts.append("Max-Age=0")
        if self.https:
            parts.append("Secure")
        return "; ".join(parts)
