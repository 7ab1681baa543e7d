"""Tables of the OpenID provider. Secrets are stored hashed; keys encrypted."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlalchemy import Column, DateTime, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from plateforme.clock import utcnow


class User(SQLModel, table=True):
    """A person's account (citizen or staff)."""

    __tablename__ = "idp_user"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(unique=True, index=True, max_length=320)
    email_verified: bool = False
    password_hash: str | None = Field(default=None, max_length=255)
    given_name: str | None = Field(default=None, max_length=100)
    family_name: str | None = Field(default=None, max_length=100)
    birthdate: str | None = Field(default=None, max_length=10)
    # Civil status brought by FranceConnect (``family_name`` is then the birth name); read-only
    # once verified (``civil_status_verified_at`` set by a FranceConnect sign-in).
    gender: str | None = Field(default=None, max_length=10)
    birthplace: str | None = Field(default=None, max_length=10)
    birthcountry: str | None = Field(default=None, max_length=10)
    civil_status_verified_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    phone_number: str | None = Field(default=None, max_length=32)
    phone_number_verified: bool = False
    address: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    locale: str = Field(default="fr", max_length=10)
    password_changed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    locked: bool = False
    locked_reason: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.given_name, self.family_name) if p) or self.email

    def address_claim(self) -> dict[str, str] | None:
        return json.loads(self.address) if self.address else None


class Client(SQLModel, table=True):
    """A relying party registered with the provider."""

    __tablename__ = "idp_client"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    client_id: str = Field(unique=True, index=True, max_length=100)
    client_secret_hash: str | None = Field(default=None, max_length=128)
    name: str = Field(max_length=200)
    redirect_uris: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    post_logout_redirect_uris: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    backchannel_logout_uri: str | None = Field(default=None, max_length=2000)
    grant_types: str = Field(default='["authorization_code", "refresh_token"]')
    scope: str = Field(default="openid profile email phone address offline_access")
    token_endpoint_auth_method: str = Field(default="client_secret_basic", max_length=40)
    jwks: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    id_token_signed_response_alg: str | None = Field(default=None, max_length=10)
    # OIDC Core §5.3.2 / Dynamic Registration §2: UserInfo answered as a signed JWT when set.
    userinfo_signed_response_alg: str | None = Field(default=None, max_length=10)
    subject_type: str = Field(default="pairwise", max_length=10)
    sector_identifier: str | None = Field(default=None, max_length=255)
    first_party: bool = False
    organisation: str | None = Field(default=None, index=True, max_length=100)
    default_acr: str | None = Field(default=None, max_length=20)
    # The client accepts sessions where a person acts for another under a mandate (its
    # tokens then carry ``act``, RFC 8693 §4.1); a client that never opted in never sees one.
    delegation_allowed: bool = False
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]

    def get_list(self, name: str) -> list[str]:
        return list(json.loads(getattr(self, name) or "[]"))


class Consent(SQLModel, table=True):
    """Scopes a person granted to a client; first-party consents are implied and recorded."""

    __tablename__ = "idp_consent"

    user_id: uuid.UUID = Field(primary_key=True, foreign_key="idp_user.id", ondelete="CASCADE")
    client_id: str = Field(primary_key=True, max_length=100)
    scope: str
    implied: bool = False
    granted_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class Grant(SQLModel, table=True):
    """One authorization (a code exchange and every token derived from it: the token family)."""

    __tablename__ = "idp_grant"

    id: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(index=True, max_length=100)
    user_id: uuid.UUID = Field(index=True, foreign_key="idp_user.id", ondelete="CASCADE")
    sid: str | None = Field(default=None, index=True, max_length=64)
    scope: str
    auth_time: int
    acr: str | None = Field(default=None, max_length=20)
    amr: str = "[]"
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    revoked_reason: str | None = Field(default=None, max_length=100)
    # A delegated grant: ``user_id`` is the mandator, ``actor_id`` the mandatary who acted.
    actor_id: uuid.UUID | None = Field(default=None, foreign_key="idp_user.id",
                                       ondelete="CASCADE")
    mandate_id: uuid.UUID | None = Field(default=None, index=True)


class RefreshToken(SQLModel, table=True):
    """A refresh token, stored as its SHA-256. Rotated on every use; reuse revokes the family."""

    __tablename__ = "idp_refresh_token"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    token_hash: str = Field(unique=True, index=True, max_length=64)
    grant_id: str = Field(index=True, foreign_key="idp_grant.id", ondelete="CASCADE")
    client_id: str = Field(max_length=100)
    scope: str
    issued_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    rotated_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class AccessTokenRecord(SQLModel, table=True):
    """What is kept of a JWT access token issued to a person: enough to revoke its family."""

    __tablename__ = "idp_access_token"

    jti: str = Field(primary_key=True, max_length=64)
    grant_id: str = Field(index=True, foreign_key="idp_grant.id", ondelete="CASCADE")
    client_id: str = Field(max_length=100)
    scope: str
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class RevokedToken(SQLModel, table=True):
    """Revocation list of JWT access tokens, by ``jti``, kept until the token would expire."""

    __tablename__ = "idp_revoked_token"

    jti: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Field(index=True, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    revoked_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class SigningKey(SQLModel, table=True):
    """A signing key. Lifecycle: ``next`` (published, not yet signing) → ``active`` →
    ``retiring`` (published until its last token expired) → ``retired``."""

    __tablename__ = "idp_signing_key"

    kid: str = Field(primary_key=True, max_length=64)
    alg: str = Field(max_length=10)
    status: str = Field(index=True, max_length=10)
    private_jwk: str = Field(sa_column=Column(Text, nullable=False))
    public_jwk: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    activated_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    retire_after: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class Organisation(SQLModel, table=True):
    """A public body of the CUP: commune, EPCI, the CTM, the SDIS, or other."""

    __tablename__ = "idp_organisation"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    slug: str = Field(unique=True, index=True, max_length=64)
    name: str = Field(max_length=200)
    kind: str = Field(index=True, max_length=10)
    insee: str | None = Field(default=None, max_length=5)
    population: int | None = None
    population_source: str | None = Field(default=None, max_length=200)
    parent_slug: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class Membership(SQLModel, table=True):
    """A role a person holds in an organisation. Platform-wide roles (``ctm_admin``,
    ``support``, ``catalogue_manager``, ``approver``, ``archival_authority``) are held in the
    CTM's organisation."""

    __tablename__ = "idp_membership"
    __table_args__ = (UniqueConstraint("user_id", "organisation_id", "role",
                                       name="uq_idp_membership_user_org_role"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(index=True, foreign_key="idp_user.id", ondelete="CASCADE")
    organisation_id: uuid.UUID = Field(index=True, foreign_key="idp_organisation.id",
                                       ondelete="CASCADE")
    role: str = Field(max_length=30)
    granted_by: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class Invitation(SQLModel, table=True):
    """An emailed invitation to take a role; the token is stored as its SHA-256."""

    __tablename__ = "idp_invitation"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    token_hash: str = Field(unique=True, index=True, max_length=64)
    email: str = Field(index=True, max_length=320)
    organisation_id: uuid.UUID = Field(foreign_key="idp_organisation.id", ondelete="CASCADE")
    role: str = Field(max_length=30)
    invited_by: str | None = Field(default=None, max_length=64)
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    accepted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class EmailToken(SQLModel, table=True):
    """A single-use emailed link (address verification, password reset, address change),
    stored as its SHA-256."""

    __tablename__ = "idp_email_token"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    token_hash: str = Field(unique=True, index=True, max_length=64)
    purpose: str = Field(max_length=20)
    user_id: uuid.UUID = Field(index=True, foreign_key="idp_user.id", ondelete="CASCADE")
    new_email: str | None = Field(default=None, max_length=320)
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    used_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class TotpFactor(SQLModel, table=True):
    """A TOTP second factor; the secret is encrypted at rest, the last accepted time step
    is kept so that a code is never accepted twice."""

    __tablename__ = "idp_totp"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(index=True, foreign_key="idp_user.id", ondelete="CASCADE")
    name: str = Field(default="Application d'authentification", max_length=100)
    secret_encrypted: str = Field(sa_column=Column(Text, nullable=False))
    confirmed: bool = False
    last_step: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    last_used_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class RecoveryCode(SQLModel, table=True):
    """One of ten single-use recovery codes, stored hashed."""

    __tablename__ = "idp_recovery_code"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(index=True, foreign_key="idp_user.id", ondelete="CASCADE")
    code_hash: str = Field(max_length=255)
    used_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class WebAuthnCredential(SQLModel, table=True):
    """A passkey (WebAuthn credential) registered by a person."""

    __tablename__ = "idp_webauthn_credential"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(index=True, foreign_key="idp_user.id", ondelete="CASCADE")
    credential_id: str = Field(unique=True, index=True, max_length=1400)
    public_key: str = Field(sa_column=Column(Text, nullable=False))
    sign_count: int = 0
    transports: str = "[]"
    name: str = Field(default="Clé d'accès", max_length=100)
    backed_up: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    last_used_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class FederatedIdentity(SQLModel, table=True):
    """An account's link to an identity at an upstream OpenID provider (FranceConnect): the
    upstream ``sub`` is what a return visit is recognised by."""

    __tablename__ = "idp_federated_identity"
    __table_args__ = (UniqueConstraint("issuer", "subject", name="uq_idp_federated_issuer_sub"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    issuer: str = Field(max_length=255)
    subject: str = Field(max_length=255)
    user_id: uuid.UUID = Field(index=True, foreign_key="idp_user.id", ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    last_login_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class Mandate(SQLModel, table=True):
    """Person A (mandator) lets person B (mandatary) act for them, on some clients and/or
    scopes, between two dates, until A revokes it. ``origin``: ``self`` (A in the account
    console), ``relationship`` (recorded by the collectivity: parent of a minor child, legal
    guardian), ``mediator`` (an accredited mediator with A present; A confirms with a one-time
    code sent to A's address: ``pending`` until then)."""

    __tablename__ = "idp_mandate"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    mandator_id: uuid.UUID = Field(index=True, foreign_key="idp_user.id", ondelete="CASCADE")
    mandatary_id: uuid.UUID = Field(index=True, foreign_key="idp_user.id", ondelete="CASCADE")
    origin: str = Field(max_length=20)
    relationship: str | None = Field(default=None, max_length=20)
    clients: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    scopes: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    starts_at: datetime = Field(sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    ends_at: datetime = Field(sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    status: str = Field(default="active", index=True, max_length=10)
    created_by: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    confirmation_hash: str | None = Field(default=None, max_length=64)
    confirmation_expires_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    confirmation_attempts: int = 0
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    revoked_by: str | None = Field(default=None, max_length=64)

    def client_list(self) -> list[str]:
        return list(json.loads(self.clients or "[]"))

    def scope_list(self) -> list[str]:
        return list(json.loads(self.scopes or "[]"))
