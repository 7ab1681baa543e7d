"""Grant types: authorization code (+ PKCE S256 required), refresh token (rotation with reuse
detection), client credentials. Each hook delegates to ``idp.services``."""

from __future__ import annotations

import json
from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge

from idp.oauth2.models import AuthContext, AuthorizationCode, StoredRefreshToken
from idp.oauth2.oidc import nonce_key
from idp.services import CodeData, Provider
from idp.services.mandates import is_active

ALL_CLIENT_AUTH = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
CONFIDENTIAL_AUTH = ["client_secret_basic", "client_secret_post", "private_key_jwt"]


class PKCES256(CodeChallenge):  # type: ignore[misc]
    """RFC 7636 with RFC 9700 §2.1.1: every client must send a ``code_challenge``, and only
    ``S256`` is accepted (``plain`` and an absent method, which means ``plain``, are refused)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE 'code_challenge_method' must be 'S256'.")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'.")
        super().validate_code_verifier(grant, result)


class _ProviderGrantMixin:
    provider: Provider

    def context_for(self, user_id: str, client: Any, *, sid: str | None, auth_time: int,
                    acr: str, amr: list[str], grant_id: str | None,
                    actor_id: str | None = None, mandate_id: str | None = None,
                    ) -> AuthContext | None:
        """The person behind the token; for a delegated grant, the mandator with the
        mandatary in ``act`` (RFC 8693 §4.1) — None once the mandate is no longer active."""
        user = self.provider.users.get(user_id)
        if user is None or user.locked:
            return None
        act = None
        if actor_id:
            mandate = self.provider.mandates.get(mandate_id)
            actor = self.provider.users.get(actor_id)
            if (mandate is None or not is_active(mandate) or actor is None or actor.locked
                    or not client.record.delegation_allowed):
                return None
            act = {"sub": self.provider.subject_for(actor_id, client.record)}
        return AuthContext(
            user=user, sub=self.provider.subject_for(user.id, client.record), sid=sid,
            auth_time=auth_time, acr=acr, amr=amr, grant_id=grant_id, act=act,
            actor_id=actor_id, mandate_id=mandate_id,
        )


def make_grants(provider: Provider) -> tuple[type, type, type]:
    """Grant classes bound to ``provider`` (Authlib instantiates grants per request)."""
    bound = provider

    class AuthorizationCodeGrant(_ProviderGrantMixin, grants.AuthorizationCodeGrant):  # type: ignore[misc]
        """RFC 6749 §4.1, codes single-use and short-lived (RFC 9700 §4.5)."""

        provider = bound

        TOKEN_ENDPOINT_AUTH_METHODS = ALL_CLIENT_AUTH
        AUTHORIZATION_CODE_LENGTH = 48

        def save_authorization_code(self, code: str, request: Any) -> None:
            ctx: AuthContext = request.user
            data = request.payload.data
            if data.get("nonce"):
                provider.store.set(
                    nonce_key(request.client.get_client_id(), data["nonce"]), "1",
                    ttl=provider.settings.id_token_lifetime + provider.settings.code_lifetime,
                )
            provider.tokens.save_code(code, CodeData(
                client_id=request.client.get_client_id(),
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope,
                user_id=str(ctx.user.id),
                sid=ctx.sid,
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                auth_time=ctx.auth_time,
                acr=ctx.acr,
                amr=ctx.amr,
                grant_id=provider.tokens.new_grant_id(),
                actor_id=ctx.actor_id,
                mandate_id=ctx.mandate_id,
            ))

        def query_authorization_code(self, code: str, client: Any) -> AuthorizationCode | None:
            data = provider.tokens.take_code(code)
            if data is None or data.client_id != client.get_client_id():
                return None
            return AuthorizationCode(data)

        def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
            """Nothing to do: :meth:`query_authorization_code` already consumed the code."""

        def authenticate_user(self, authorization_code: AuthorizationCode) -> AuthContext | None:
            d = authorization_code.data
            return self.context_for(
                d.user_id, self.request.client, sid=d.sid, auth_time=d.auth_time, acr=d.acr,
                amr=d.amr, grant_id=d.grant_id, actor_id=d.actor_id, mandate_id=d.mandate_id,
            )

    class RefreshTokenGrant(_ProviderGrantMixin, grants.RefreshTokenGrant):  # type: ignore[misc]
        """RFC 6749 §6 with rotation; reuse revokes the family (RFC 9700 §4.14.2)."""

        provider = bound

        TOKEN_ENDPOINT_AUTH_METHODS = ALL_CLIENT_AUTH
        INCLUDE_NEW_REFRESH_TOKEN = True

        def authenticate_refresh_token(self, refresh_token: str) -> StoredRefreshToken | None:
            client_id = self.request.client.get_client_id()
            outcome = provider.tokens.use_refresh_token(refresh_token, client_id)
            if outcome.token is None or outcome.grant is None:
                if outcome.reused:
                    raise InvalidGrantError("Refresh token reused: the session was revoked.")
                return None
            grant = outcome.grant
            if ("offline_access" not in grant.scope.split() and grant.sid
                    and not provider.sessions.is_alive(grant.sid)):
                # An online refresh token lives no longer than the sign-in session it came
                # from (expired, ended or logged out); only offline_access outlives it.
                provider.tokens.revoke_grant(grant.id, reason="session_ended")
                return None
            return StoredRefreshToken(outcome.token, grant)

        def authenticate_user(self, refresh_token: StoredRefreshToken) -> AuthContext | None:
            g = refresh_token.grant
            ctx = self.context_for(
                str(g.user_id), self.request.client, sid=g.sid, auth_time=g.auth_time,
                acr=g.acr or "eidas1", amr=json.loads(g.amr), grant_id=g.id,
                actor_id=str(g.actor_id) if g.actor_id else None,
                mandate_id=str(g.mandate_id) if g.mandate_id else None,
            )
            if ctx is None:
                # The account is gone or locked, or the mandate ended (RFC 6749 §5.2).
                raise InvalidGrantError("The refresh token is no longer valid.")
            return ctx

        def revoke_old_credential(self, refresh_token: StoredRefreshToken) -> None:
            """Already marked rotated, atomically, in :meth:`authenticate_refresh_token`."""

    class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
        """RFC 6749 §4.4, for confidential clients acting on their own behalf."""

        TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_AUTH

    return AuthorizationCodeGrant, RefreshTokenGrant, ClientCredentialsGrant
