"""OpenID Connect Core §3.1 on top of the authorization code grant (Authlib's OpenIDCode)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from authlib.oidc.core.grants import OpenIDCode as _OpenIDCode
from joserfc.jwk import Key

from idp.oauth2.claims import user_claims
from idp.oauth2.models import AuthContext, AuthorizationCode
from idp.services import Provider


class OpenIDCode(_OpenIDCode):  # type: ignore[misc]
    """ID tokens with ``at_hash``, ``auth_time``, ``acr``, ``amr``, ``sid`` (and ``nonce``),
    signed ES256 by default or with the client's ``id_token_signed_response_alg``."""

    def __init__(self, provider: Provider) -> None:
        super().__init__(require_nonce=False)
        self.provider = provider

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        """OIDC Core §3.1.2.1: a nonce already bound to an issued code is refused (replay).

        Authlib validates the request twice when it issues the code (consent, then the
        response): a nonce found free earlier in the same request is not read again (no code
        of this request is saved between the two checks)."""
        key = nonce_key(request.payload.client_id, nonce)
        if getattr(request, "_mc_nonce_free", None) == key:
            return False
        used = self.provider.store.get(key) is not None
        if not used:
            request._mc_nonce_free = key
        return used

    def generate_user_info(self, user: AuthContext, scope: str) -> dict[str, Any]:
        """The ID token's claims of the person; a delegated session adds ``act`` (the
        mandatary, RFC 8693 §4.1)."""
        claims = user_claims(user, scope)
        if user.act:
            claims["act"] = user.act
        return claims

    def get_client_algorithm(self, client: Any) -> str:
        return client.id_token_signed_response_alg or self.provider.settings.signing_alg

    def resolve_client_private_key(self, client: Any) -> Key:
        return self.provider.keys.signing_key(self.get_client_algorithm(client))

    def get_encode_header(self, client: Any) -> dict[str, str]:
        key = self.resolve_client_private_key(client)
        return {"alg": self.get_client_algorithm(client), "kid": key.kid or "", "typ": "JWT"}

    def get_client_claims(self, client: Any) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.provider.issuer,
            "aud": client.get_client_id(),
            "iat": now,
            "exp": now + self.provider.settings.id_token_lifetime,
        }

    def get_authorization_code_claims(
        self, authorization_code: AuthorizationCode
    ) -> dict[str, Any]:
        claims = super().get_authorization_code_claims(authorization_code)
        if authorization_code.data.sid:
            claims["sid"] = authorization_code.data.sid
        return claims


def nonce_key(client_id: str, nonce: str) -> str:
    return f"idp:nonce:{client_id}:{hashlib.sha256(nonce.encode()).hexdigest()}"
