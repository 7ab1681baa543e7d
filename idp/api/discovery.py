"""OpenID Connect Discovery 1.0 / RFC 8414 metadata and the JWKS (RFC 7517).

Both are constant documents: they are prepared once as bytes and answered by a raw ASGI
shortcut placed in front of the application (:class:`WellKnownMiddleware`), so that the hot
path does no routing, no validation and no serialisation.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from idp import i18n
from idp.oauth2.claims import CLAIMS_SUPPORTED
from idp.oauth2.server import OIDC_SCOPES, RESOURCE_SCOPES
from idp.services import Provider
from idp.services.factors import ACR_VALUES
from plateforme.web import ASGIApp, Receive, Scope, Send

router = APIRouter(include_in_schema=False)

DISCOVERY_PATHS = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
JWKS_PATH = "/jwks.json"
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


def metadata(provider: Provider) -> dict[str, Any]:
    issuer = provider.issuer
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}{JWKS_PATH}",
        "introspection_endpoint": f"{issuer}/introspect",
        "revocation_endpoint": f"{issuer}/revoke",
        "end_session_endpoint": f"{issuer}/logout",
        "scopes_supported": OIDC_SCOPES + RESOURCE_SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials",
                                  "urn:ietf:params:oauth:grant-type:token-exchange"],
        "subject_types_supported": ["pairwise", "public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "userinfo_signing_alg_values_supported": ["ES256", "RS256"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS[:3],
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": CLAIMS_SUPPORTED,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "acr_values_supported": list(ACR_VALUES),
        "prompt_values_supported": ["none", "login", "consent"],
        "ui_locales_supported": list(i18n.LOCALES),
        "claims_locales_supported": ["fr"],
        "display_values_supported": ["page"],
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "service_documentation": f"{issuer}/docs",
    }


class WellKnownMiddleware:
    """Answers ``GET`` discovery and JWKS requests with prepared bytes."""

    def __init__(self, app: ASGIApp, *, provider: Provider) -> None:
        self.app = app
        self.provider = provider
        self._discovery = json.dumps(metadata(provider), separators=(",", ":")).encode()
        self._extra = [(b"strict-transport-security", b"max-age=31536000")] if (
            provider.settings.secure_cookies) else []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path = scope["path"]
            if path in DISCOVERY_PATHS:
                await self._send(send, self._discovery, scope["method"], "public, max-age=3600",
                                 self._extra)
                return
            if path == JWKS_PATH:
                body = self.provider.keys.view().jwks_bytes
                await self._send(send, body, scope["method"], "public, max-age=300", self._extra)
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _send(send: Send, body: bytes, method: str, cache: str,
                    extra: list[tuple[bytes, bytes]]) -> None:
        await send({
            "type": "http.response.start", "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", cache.encode()),
                (b"access-control-allow-origin", b"*"),
                (b"x-content-type-options", b"nosniff"),
                *extra,
            ],
        })
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


@router.get("/.well-known/openid-configuration")
@router.get("/.well-known/oauth-authorization-server")
def discovery(request: Request) -> Response:
    """Served by :class:`WellKnownMiddleware`; this route documents it and serves tests that
    mount the router alone."""
    provider: Provider = request.app.state.provider
    return Response(json.dumps(metadata(provider)), media_type="application/json")


@router.get(JWKS_PATH)
def jwks(request: Request) -> Response:
    provider: Provider = request.app.state.provider
    return Response(provider.keys.view().jwks_bytes, media_type="application/json")
