"""Introspection (RFC 7662), revocation (RFC 7009) and RP-initiated logout (OIDC RP-Initiated
Logout 1.0) for JWT access tokens (RFC 9068) and refresh tokens."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.rpinitiated import EndSessionEndpoint
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from idp.models import RefreshToken
from idp.services import Provider
from idp.services.tokens import digest

ACCESS_TOKEN_ALGS = ["ES256", "RS256"]


@dataclass
class AccessTokenInfo:
    """A JWT access token whose signature, ``typ`` and issuer were verified.

    The revocation list is consulted when :meth:`is_revoked` is called, not before: Authlib
    asks only for a token of the calling client that has not expired (introspection), and
    never when revoking, so those cases cost no storage round trip."""

    claims: dict[str, Any]
    provider: Provider

    def check_client(self, client: Any) -> bool:
        return bool(self.claims.get("client_id") == client.get_client_id())

    def is_expired(self) -> bool:
        return int(self.claims.get("exp", 0)) <= int(time.time())

    def is_revoked(self) -> bool:
        if self.provider.tokens.is_revoked(self.claims["jti"]):
            return True
        # A delegated token lives no longer than its mandate (its end date may pass first).
        return "act" in self.claims and not self.provider.mandates.token_allowed(
            self.claims["jti"])


@dataclass
class RefreshTokenInfo:
    record: RefreshToken
    revoked: bool

    def check_client(self, client: Any) -> bool:
        return bool(self.record.client_id == client.get_client_id())

    def is_expired(self) -> bool:
        return self.record.expires_at.timestamp() <= time.time()

    def is_revoked(self) -> bool:
        return self.revoked or self.record.revoked_at is not None or (
            self.record.rotated_at is not None
        )


def verify_access_token(provider: Provider, token: str) -> dict[str, Any] | None:
    """Verify signature (ES256/RS256 only: ``none`` and HMAC are refused), ``typ`` and
    ``iss``. Expiry is left to the caller."""
    if token.count(".") != 2 or len(token) > 8192:
        return None
    try:
        decoded = jwt.decode(token, provider.keys.view().verify_set, algorithms=ACCESS_TOKEN_ALGS)
    except (JoseError, ValueError):
        return None
    if decoded.header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
        return None
    claims = dict(decoded.claims)
    if claims.get("iss") != provider.issuer or "jti" not in claims:
        return None
    return claims


class _TokenLookup:
    provider: Provider
    SUPPORTED_TOKEN_TYPES = ("access_token", "refresh_token")

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        claims = verify_access_token(self.provider, token_string)
        if claims is not None:
            return AccessTokenInfo(claims, self.provider)
        from sqlmodel import Session

        from idp import repository

        with Session(self.provider.engine, expire_on_commit=False) as session:
            record = repository.get_refresh_token(session=session, token_hash=digest(token_string))
            if record is None:
                return None
            grant = repository.get_grant(session=session, grant_id=record.grant_id)
        return RefreshTokenInfo(record, revoked=grant is None or grant.revoked_at is not None)


class Introspection(_TokenLookup, IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662. A client may introspect only the tokens issued to it; anything else, and any
    expired or revoked token, is ``{"active": false}``. Public clients cannot introspect."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

    def __init__(self, provider: Provider) -> None:
        super().__init__()
        self.provider = provider

    def check_permission(self, token: Any, client: Any, request: Any) -> bool:
        return bool(token.check_client(client))

    def introspect_token(self, token: Any) -> dict[str, Any]:
        if isinstance(token, AccessTokenInfo):
            c = token.claims
            payload = {
                "active": True, "token_type": "Bearer", "client_id": c["client_id"],
                "scope": c.get("scope", ""), "sub": c["sub"], "aud": c["aud"], "iss": c["iss"],
                "exp": c["exp"], "iat": c["iat"], "jti": c["jti"],
            }
            for extra in ("auth_time", "acr", "amr", "sid", "org", "roles", "act"):
                if extra in c:
                    payload[extra] = c[extra]
            return payload
        record = token.record
        return {
            "active": True, "client_id": record.client_id,
            "scope": record.scope, "iss": self.provider.issuer,
            "exp": int(record.expires_at.timestamp()), "iat": int(record.issued_at.timestamp()),
        }


class Revocation(_TokenLookup, RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009. Revoking a refresh token revokes its whole grant; revoking a JWT access token
    puts its ``jti`` on the revocation list. Unknown tokens get 200 (RFC 7009 §2.2). Public
    clients authenticate with their ``client_id`` (RFC 7009 §2.1)."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]

    def __init__(self, provider: Provider) -> None:
        super().__init__()
        self.provider = provider

    def revoke_token(self, token: Any, request: Any) -> None:
        if isinstance(token, AccessTokenInfo):
            self.provider.tokens.revoke_access_token(token.claims["jti"], int(token.claims["exp"]))
        else:
            self.provider.tokens.revoke_grant(token.record.grant_id, reason="revocation")


class EndSession(EndSessionEndpoint):  # type: ignore[misc]
    """OIDC RP-Initiated Logout: ``id_token_hint`` checked against our keys, exact
    ``post_logout_redirect_uri``; the logout itself is done by the caller (it owns the
    browser session)."""

    def __init__(self, provider: Provider) -> None:
        super().__init__()
        self.provider = provider

    def get_server_jwks(self) -> KeySet:
        return self.provider.keys.view().verify_set

    def get_algorithms(self) -> list[str]:
        return ACCESS_TOKEN_ALGS

    def end_session(self, end_session_request: Any) -> None:
        """Left to the web layer, which holds the session cookie."""
