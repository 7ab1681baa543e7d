"""Shapes exchanged with the provider's services (not tables)."""

from __future__ import annotations

import uuid
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, EmailStr, Field, field_validator, model_validator

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials",
               "urn:ietf:params:oauth:grant-type:token-exchange")
SCOPES = ("openid", "profile", "email", "phone", "address", "offline_access")


def _check_uri(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError(f"adresse invalide : {uri!r} (https:// attendu)")
    if parts.fragment:
        raise ValueError(f"une adresse de redirection ne peut pas contenir de fragment : {uri!r}")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"http:// n'est admis que sur la boucle locale : {uri!r}")
    return uri


class ClientCreate(BaseModel):
    """What an operator gives to register a relying party."""

    name: str = Field(min_length=1, max_length=200)
    redirect_uris: list[str] = Field(default_factory=list)
    post_logout_redirect_uris: list[str] = Field(default_factory=list)
    backchannel_logout_uri: str | None = None
    grant_types: list[Literal["authorization_code", "refresh_token", "client_credentials",
                              "urn:ietf:params:oauth:grant-type:token-exchange"]] = (
        Field(default_factory=lambda: ["authorization_code", "refresh_token"])  # type: ignore[arg-type]
    )
    scopes: list[str] = Field(default_factory=lambda: list(SCOPES))
    token_endpoint_auth_method: Literal[
        "client_secret_basic", "client_secret_post", "private_key_jwt", "none"
    ] = "client_secret_basic"  # noqa: S105 - a method name, not a secret
    jwks: dict[str, object] | None = None
    id_token_signed_response_alg: Literal["ES256", "RS256"] | None = None
    # OIDC Core §5.3.2: UserInfo as a signed JWT (``application/jwt``) when set.
    userinfo_signed_response_alg: Literal["ES256", "RS256"] | None = None
    subject_type: Literal["pairwise", "public"] = "pairwise"
    first_party: bool = False
    organisation: str | None = None
    client_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._~-]{3,100}$")
    # The minimum assurance level of every sign-in to this client (step-up when below).
    default_acr: Literal["eidas1", "eidas2"] | None = None
    # Accepts delegated sessions (a person acting for another under a mandate, ``act``).
    delegation_allowed: bool = False

    @field_validator("redirect_uris", "post_logout_redirect_uris")
    @classmethod
    def _uris(cls, values: list[str]) -> list[str]:
        return [_check_uri(v) for v in values]

    @field_validator("backchannel_logout_uri")
    @classmethod
    def _bcl(cls, value: str | None) -> str | None:
        return _check_uri(value) if value else None

    @model_validator(mode="after")
    def _coherent(self) -> ClientCreate:
        if "authorization_code" in self.grant_types and not self.redirect_uris:
            raise ValueError("au moins une adresse de redirection (--redirect-uri) est requise")
        method = self.token_endpoint_auth_method
        if method == "none" and "client_credentials" in self.grant_types:  # noqa: S105
            raise ValueError("un client public ne peut pas utiliser client_credentials")
        if method == "private_key_jwt" and not self.jwks:  # noqa: S105 - a method name
            raise ValueError("private_key_jwt demande les clés publiques du client (jwks)")
        return self


class ClientPublic(BaseModel):
    """A registered client as operators see it. The secret appears only at creation."""

    client_id: str
    name: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    backchannel_logout_uri: str | None
    grant_types: list[str]
    scopes: list[str]
    token_endpoint_auth_method: str
    subject_type: str
    first_party: bool
    organisation: str | None
    disabled: bool
    default_acr: str | None = None
    delegation_allowed: bool = False
    client_secret: str | None = None


class UserCreate(BaseModel):
    email: EmailStr
    password: str = Field(min_length=12, max_length=256)
    given_name: str | None = Field(default=None, max_length=100)
    family_name: str | None = Field(default=None, max_length=100)
    email_verified: bool = True


class UserPublic(BaseModel):
    id: uuid.UUID
    email: str
    given_name: str | None
    family_name: str | None
    email_verified: bool
    locked: bool
