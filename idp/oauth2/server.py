"""The authorization server: grants, client authentication methods, endpoints, token storage.

Framework-free; :mod:`idp.oauth2.integration` adds the Starlette glue.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationServer
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc.jwk import KeySet

from idp.oauth2.endpoints import EndSession, Introspection, Revocation
from idp.oauth2.grants import PKCES256, make_grants
from idp.oauth2.models import AuthContext, OAuthClient
from idp.oauth2.oidc import OpenIDCode
from idp.oauth2.token_exchange import make_token_exchange_grant
from idp.oauth2.tokens import AccessTokenGenerator
from idp.services import Provider
from plateforme.metrics import record_token

OIDC_SCOPES = ["openid", "profile", "email", "phone", "address", "offline_access"]
RESOURCE_SCOPES = [
    "archives:read", "archives:write", "archives:admin",
    "services:read", "services:order", "services:admin",
]


def _jwt_claims(token: str) -> dict[str, Any]:
    """Read the claims of a JWT we have just signed (no verification needed)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def count_issued(grant: Any) -> None:
    """Grant extension: a successful token response counts in ``mc_tokens_issued_total``."""

    def after(grant: Any, result: Any) -> None:
        if isinstance(result, tuple) and result and result[0] == 200:
            record_token(grant.GRANT_TYPE)

    grant.register_hook("after_create_token_response", after)


class PrivateKeyJWT(JWTBearerClientAssertion):  # type: ignore[misc]
    """RFC 7523 §2.2 / OIDC Core §9 ``private_key_jwt``; ``jti`` single use."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, provider: Provider) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self.provider = provider

    def get_audiences(self) -> list[str]:
        issuer = self.provider.issuer
        return [issuer, issuer + "/token", issuer + "/introspect", issuer + "/revoke"]

    def validate_jti(self, claims: Any, jti: str) -> bool:
        key = f"idp:assertion-jti:{claims['sub']}:{jti}"
        ttl = max(60, int(claims.get("exp", 0)) - int(__import__("time").time()) + 60)
        return self.provider.store.set(key, "1", ttl=ttl, nx=True)

    def resolve_client_public_key(self, client: OAuthClient) -> KeySet:
        return KeySet.import_key_set(json.loads(client.record.jwks or '{"keys": []}'))


class ProviderServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib's authorization server, with storage hooks delegating to ``Provider``."""

    def __init__(self, provider: Provider) -> None:
        super().__init__(scopes_supported=OIDC_SCOPES + RESOURCE_SCOPES)
        self.provider = provider
        self._oauth_clients: dict[str, OAuthClient] = {}
        self.register_token_generator("default", AccessTokenGenerator(provider))
        code_grant, refresh_grant, cc_grant = make_grants(provider)
        self.register_grant(code_grant, [PKCES256(required=True), OpenIDCode(provider),
                                         count_issued])
        self.register_grant(refresh_grant, [count_issued])
        self.register_grant(cc_grant, [count_issued])
        self.register_grant(make_token_exchange_grant(provider), [count_issued])
        self.register_client_auth_method(PrivateKeyJWT.CLIENT_AUTH_METHOD, PrivateKeyJWT(provider))
        self.register_endpoint(Introspection(provider))
        self.register_endpoint(Revocation(provider))
        self.register_endpoint(EndSession(provider))

    def create_token_response(self, request: Any = None) -> Any:
        """One read of the signing keys' stamp for the whole response (its access token and
        ID token), not one per signature (:meth:`KeyService.one_stamp`)."""
        with self.provider.keys.one_stamp():
            return super().create_token_response(request)

    def query_client(self, client_id: str) -> OAuthClient | None:
        """RFC 6749 §2.2: disabled or unknown clients do not exist for the protocol."""
        if not isinstance(client_id, str) or not client_id or len(client_id) > 100:
            return None
        client = self.provider.clients.get(client_id)
        if client is None or client.disabled:
            return None
        # The same record (the client cache keeps it a few seconds) gives the same adapter:
        # its lists are decoded from JSON once, not at every token request.
        cached = self._oauth_clients.get(client_id)
        if cached is not None and cached.record is client:
            return cached
        if len(self._oauth_clients) > 10_000:
            self._oauth_clients.clear()
        adapter = self._oauth_clients[client_id] = OAuthClient(client)
        return adapter

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        """Tokens issued to a person are recorded (``jti`` and refresh-token hash) so that
        their family can be revoked; client-credentials tokens need no storage."""
        user = request.user
        if not isinstance(user, AuthContext) or user.grant_id is None:
            return
        claims = _jwt_claims(token["access_token"])
        code = request.authorization_code.data if request.authorization_code else None
        self.provider.tokens.record_user_tokens(
            code=code, grant_id=user.grant_id, client_id=request.client.get_client_id(),
            scope=token.get("scope", ""), access_jti=claims["jti"], access_exp=claims["exp"],
            refresh_token=token.get("refresh_token"),
        )
