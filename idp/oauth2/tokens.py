"""JWT access tokens (RFC 9068), signed with the provider's active key."""

from __future__ import annotations

import secrets
import time
from typing import Any

from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc import jwt

from idp.oauth2.models import AuthContext, OAuthClient
from idp.services import Provider

# Scopes that address a resource server other than the provider's own UserInfo endpoint.
RESOURCE_SCOPES = {"archives": "/api/archives", "services": "/api/services"}


class AccessTokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
    """RFC 9068 §2.2: ``iss``, ``exp``, ``aud``, ``sub``, ``client_id``, ``iat``, ``jti``,
    ``scope``, plus ``auth_time``/``acr``/``amr`` when a person is behind the token."""

    def __init__(self, provider: Provider) -> None:
        super().__init__(
            issuer=provider.issuer, alg=provider.settings.signing_alg,
            # 48 URL-safe characters (288 bits) from one os.urandom call: Authlib's
            # generate_token() draws each character separately (~2 µs each, see
            # docs/performance.md).
            refresh_token_generator=lambda **_: secrets.token_urlsafe(36),
            expires_generator=lambda client, grant_type: provider.settings.access_token_lifetime,
        )
        self.provider = provider

    def get_audiences(self, client: OAuthClient, user: Any, scope: str) -> str | list[str]:
        """The resource servers named by the scopes (RFC 9068 §3); the provider itself
        (UserInfo) otherwise."""
        audiences = []
        scopes = (scope or "").split()
        if not scopes or any(":" not in s for s in scopes):
            audiences.append(self.issuer)
        for prefix, path in RESOURCE_SCOPES.items():
            if any(s.startswith(prefix + ":") for s in scopes):
                audiences.append(self.issuer + path)
        return audiences[0] if len(audiences) == 1 else audiences

    def access_token_generator(self, client: OAuthClient, grant_type: str, user: Any,
                               scope: str) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "exp": min(now + self._get_expires_in(client, grant_type),
                       user.expires_at or now + 10**9) if isinstance(user, AuthContext)
            else now + self._get_expires_in(client, grant_type),
            "aud": self.get_audiences(client, user, scope),
            "sub": user.get_user_id() if user else client.get_client_id(),
            "client_id": client.get_client_id(),
            "iat": now,
            "jti": secrets.token_urlsafe(16),  # 128 bits, 22 characters
            "scope": scope,
        }
        if isinstance(user, AuthContext):
            claims["auth_time"] = user.auth_time
            claims["acr"] = user.acr
            claims["amr"] = user.amr
            if user.sid:
                claims["sid"] = user.sid
            if user.act:
                claims["act"] = user.act
        if any(":" in s for s in (scope or "").split()):
            # Only tokens meant for a resource server carry the caller's organisation and
            # roles; tokens of citizen-facing clients asking for OIDC scopes never do.
            if isinstance(user, AuthContext):
                affiliation = self.provider.organisations.affiliation(user.user.id)
                if affiliation.org:
                    claims["org"] = affiliation.org
                claims["roles"] = affiliation.roles
            elif client.record.organisation:
                claims["org"] = client.record.organisation
                claims["roles"] = []
        key = self.provider.keys.signing_key(self.alg)
        header = {"alg": self.alg, "typ": "at+jwt", "kid": key.kid}
        return jwt.encode(header, claims, key)
