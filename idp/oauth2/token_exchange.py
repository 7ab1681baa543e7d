"""OAuth 2.0 Token Exchange (RFC 8693) for delegation: a resource server that received a
delegated access token (``act`` present) exchanges it at ``/token`` for a token of its own to
call a service downstream on the mandator's behalf — never beyond the mandate.

Authlib 1.x ships no RFC 8693 grant (``authlib.oauth2.rfc8693`` is empty), so this is a grant
class on Authlib's ``BaseGrant``/``TokenEndpointMixin``, registered like the others.

Rules:

* the requesting client authenticates (confidential), has the grant type registered and
  accepts delegation (``delegation_allowed``);
* ``subject_token`` is one of our JWT access tokens (``subject_token_type``
  ``urn:ietf:params:oauth:token-type:access_token``), active, not revoked, and delegated;
  ``actor_token`` is not supported (the actor is the one in the subject token);
* the mandate behind it is still active and covers the requesting client;
* ``scope`` (default: the subject token's) must lie within the subject token's scope and the
  mandate's scopes (``invalid_scope`` otherwise); ``audience``/``resource``, when given, must be
  an audience those scopes address (``invalid_target``);
* the new token's ``sub`` is the mandator as the requesting client knows them, ``act`` the
  mandatary; it expires no later than the subject token nor the mandate's end, and belongs to
  the same grant: revoking the mandate revokes it too. No refresh token.
"""

from __future__ import annotations

import time
from datetime import UTC
from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    UnauthorizedClientError,
)

from idp.oauth2.endpoints import verify_access_token
from idp.oauth2.grants import CONFIDENTIAL_AUTH, _ProviderGrantMixin
from idp.oauth2.tokens import RESOURCE_SCOPES
from idp.services import Provider
from idp.services.mandates import allows_client, is_active, limit_scope

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a URN


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]
    """RFC 8693 §2.2.2: the audience or resource is not acceptable."""

    error = "invalid_target"


def audiences_for(issuer: str, scope: str) -> set[str]:
    """The audiences a token of ``scope`` addresses (see ``AccessTokenGenerator``)."""
    scopes = scope.split()
    audiences = {issuer} if not scopes or any(":" not in s for s in scopes) else set()
    for prefix, path in RESOURCE_SCOPES.items():
        if any(s.startswith(prefix + ":") for s in scopes):
            audiences.add(issuer + path)
    return audiences


def make_token_exchange_grant(provider: Provider) -> type:
    bound = provider

    class TokenExchangeGrant(_ProviderGrantMixin, grants.BaseGrant,  # type: ignore[misc]
                             grants.TokenEndpointMixin):
        """RFC 8693 §2.1, limited to delegated subject tokens and to their mandate."""

        provider = bound
        GRANT_TYPE = GRANT_TYPE
        TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_AUTH

        def validate_token_request(self) -> None:
            client = self.authenticate_token_endpoint_client()
            if not client.check_grant_type(GRANT_TYPE):
                raise UnauthorizedClientError(
                    f"The client is not authorized to use 'grant_type={GRANT_TYPE}'")
            if not client.record.delegation_allowed:
                raise UnauthorizedClientError("The client does not accept delegation.")
            self.request.client = client
            data = self.request.payload.data
            subject_token = data.get("subject_token")
            if not subject_token or data.get("subject_token_type") != ACCESS_TOKEN_TYPE:
                raise InvalidRequestError(
                    "'subject_token' and 'subject_token_type' (access_token) are required.")
            if data.get("actor_token") or data.get("actor_token_type"):
                raise InvalidRequestError("'actor_token' is not supported.")
            requested = data.get("requested_token_type")
            if requested not in (None, "", ACCESS_TOKEN_TYPE):
                raise InvalidRequestError("Only access tokens are issued.")
            claims = verify_access_token(self.provider, subject_token)
            if (claims is None or int(claims.get("exp", 0)) <= int(time.time())
                    or self.provider.tokens.is_revoked(claims["jti"])):
                raise InvalidGrantError("The subject token is invalid, expired or revoked.")
            if not claims.get("act"):
                raise InvalidGrantError("Only delegated tokens (with 'act') are exchanged.")
            grant = self.provider.tokens.grant_for_jti(claims["jti"])
            mandate = self.provider.mandates.get(grant.mandate_id) if grant else None
            if (grant is None or grant.revoked_at is not None or mandate is None
                    or grant.actor_id is None or not is_active(mandate)
                    or not allows_client(mandate, client.get_client_id())):
                raise InvalidGrantError("The mandate does not allow this exchange.")
            subject_scope = set(str(claims.get("scope", "")).split())
            wanted = self.request.payload.scope or " ".join(sorted(subject_scope))
            allowed = set(limit_scope(mandate, client.get_allowed_scope(wanted)).split())
            if not wanted.split() or not set(wanted.split()) <= (allowed & subject_scope):
                raise InvalidScopeError("The scope exceeds the subject token or the mandate.")
            for target in (data.get("audience"), data.get("resource")):
                if target and target not in audiences_for(self.provider.issuer, wanted):
                    raise InvalidTargetError(f"Unknown audience or resource: {target!r}.")
            ctx = self.context_for(
                str(grant.user_id), client, sid=grant.sid, auth_time=grant.auth_time,
                acr=grant.acr or "eidas1", amr=list(claims.get("amr") or []),
                grant_id=grant.id, actor_id=str(grant.actor_id), mandate_id=str(mandate.id))
            if ctx is None:
                raise InvalidGrantError("The mandate does not allow this exchange.")
            ends_at = mandate.ends_at
            ends = int((ends_at if ends_at.tzinfo else ends_at.replace(tzinfo=UTC)).timestamp())
            ctx.expires_at = min(int(claims["exp"]), ends)
            self.request.user = ctx
            self.request.scope = wanted

        def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
            ctx = self.request.user
            expires_in = max(1, min(self.provider.settings.access_token_lifetime,
                                    ctx.expires_at - int(time.time())))
            token = self.generate_token(user=ctx, scope=self.request.scope,
                                        expires_in=expires_in, include_refresh_token=False)
            token["issued_token_type"] = ACCESS_TOKEN_TYPE
            self.save_token(token)
            return 200, token, self.TOKEN_RESPONSE_HEADER

    return TokenExchangeGrant
