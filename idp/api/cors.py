"""CORS for the endpoints a browser application (a public client using PKCE) calls directly:
token, UserInfo and revocation. No cookie is involved in those calls, so any origin may read
the answers; the provider's pages and introspection (server to server) get no CORS."""

from __future__ import annotations

from plateforme.web import ASGIApp, Message, Receive, Scope, Send

CORS_PATHS = frozenset({"/token", "/userinfo", "/revoke"})
_PREFLIGHT = [
    (b"access-control-allow-methods", b"GET, POST"),
    (b"access-control-allow-headers", b"Authorization, Content-Type"),
    (b"access-control-max-age", b"600"),
    (b"vary", b"Origin"),
]


class PublicClientCORS:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in CORS_PATHS:
            await self.app(scope, receive, send)
            return
        origin = next((v for k, v in scope.get("headers", ()) if k == b"origin"), None)
        if origin is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": [
                (b"access-control-allow-origin", b"*"), *_PREFLIGHT]})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"access-control-allow-origin", b"*"))
                headers.append((b"access-control-expose-headers", b"WWW-Authenticate"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)
