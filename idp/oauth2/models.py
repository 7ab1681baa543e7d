"""Adapters giving our records the interfaces Authlib expects (RFC 6749 §2, OIDC Core §3.1)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin

from idp.models import Client, Grant, RefreshToken, User
from idp.services import CodeData, check_secret


class OAuthClient(ClientMixin):  # type: ignore[misc]
    """A registered client as Authlib sees it. Redirect URIs match exactly (RFC 9700 §2.1)."""

    def __init__(self, client: Client) -> None:
        self.record = client
        self.redirect_uris = client.get_list("redirect_uris")
        self.grant_types = client.get_list("grant_types")
        self.scopes = client.scope.split()
        self.id_token_signed_response_alg = client.id_token_signed_response_alg
        self.client_metadata = {
            "post_logout_redirect_uris": client.get_list("post_logout_redirect_uris"),
        }

    @property
    def client_id(self) -> str:
        return self.record.client_id

    def get_client_id(self) -> str:
        return self.record.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # redirect_uri is required in every request (OIDC Core §3.1.2.1)

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = set(self.scopes)
        return " ".join(s for s in dict.fromkeys(scope.split()) if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return check_secret(self.record, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.record.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class AuthContext:
    """The person behind a request, as one client sees them (``sub`` is that client's)."""

    user: User
    sub: str
    sid: str | None
    auth_time: int
    acr: str
    amr: list[str]
    grant_id: str | None = None
    # Delegation (RFC 8693 §4.1): the mandatary acting for ``user`` (the mandator), as the
    # ``act`` claim this client sees, and the mandate that allows it.
    act: dict[str, str] | None = None
    actor_id: str | None = None
    mandate_id: str | None = None
    # A cap on the access token's expiry (token exchange: the subject token's, the mandate's).
    expires_at: int | None = None

    def get_user_id(self) -> str:
        return self.sub

    @property
    def user_id(self) -> uuid.UUID:
        return self.user.id


class AuthorizationCode(AuthorizationCodeMixin):  # type: ignore[misc]
    def __init__(self, data: CodeData) -> None:
        self.data = data
        self.code_challenge = data.code_challenge
        self.code_challenge_method = data.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.data.redirect_uri

    def get_scope(self) -> str:
        return self.data.scope

    def get_nonce(self) -> str | None:
        return self.data.nonce

    def get_auth_time(self) -> int:
        return self.data.auth_time

    def get_acr(self) -> str:
        return self.data.acr

    def get_amr(self) -> list[str]:
        return self.data.amr


class StoredRefreshToken(TokenMixin):  # type: ignore[misc]
    def __init__(self, record: RefreshToken, grant: Grant) -> None:
        self.record = record
        self.grant = grant

    def check_client(self, client: Any) -> bool:
        return bool(self.record.client_id == client.get_client_id())

    def get_scope(self) -> str:
        return self.record.scope

    def get_expires_in(self) -> int:
        return int(self.record.expires_at.timestamp() - time.time())

    def is_expired(self) -> bool:
        return self.get_expires_in() <= 0

    def is_revoked(self) -> bool:
        return self.record.revoked_at is not None
