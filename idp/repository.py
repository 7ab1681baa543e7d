"""Every query on the provider's tables. Keyword-only functions taking the session first."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, delete, select
from sqlmodel.sql.expression import SelectOfScalar

from idp.models import (
    AccessTokenRecord,
    Client,
    Consent,
    EmailToken,
    FederatedIdentity,
    Grant,
    Mandate,
    Organisation,
    RecoveryCode,
    RefreshToken,
    RevokedToken,
    SigningKey,
    TotpFactor,
    User,
    WebAuthnCredential,
)

# --- users -----------------------------------------------------------------------------------


def get_user(*, session: Session, user_id: uuid.UUID) -> User | None:
    return session.get(User, user_id)


# An account by id, built once: the sign-in reads one at almost every hop.
_USER_BY_ID: SelectOfScalar[User] = select(User).where(col(User.id) == bindparam("user_id"))


def read_user(*, session: Session, user_id: uuid.UUID) -> User | None:
    """The account, read by a prebuilt statement (no identity-map lookup first: for a
    session that only reads it)."""
    return session.execute(_USER_BY_ID, {"user_id": user_id}).scalar_one_or_none()


_USER_BY_EMAIL: SelectOfScalar[User] = select(User).where(col(User.email) == bindparam("email"))


def get_user_by_email(*, session: Session, email: str) -> User | None:
    return session.execute(_USER_BY_EMAIL, {"email": email.strip().lower()}).scalars().first()


def list_users(*, session: Session, search: str | None = None, limit: int = 100) -> Sequence[User]:
    query = select(User).order_by(col(User.email)).limit(limit)
    if search:
        query = query.where(col(User.email).contains(search.lower()))
    return session.exec(query).all()


def add(*, session: Session, obj: object) -> None:
    session.add(obj)


# --- clients ---------------------------------------------------------------------------------


def get_client(*, session: Session, client_id: str) -> Client | None:
    return session.exec(select(Client).where(Client.client_id == client_id)).first()


def list_clients(*, session: Session) -> Sequence[Client]:
    return session.exec(select(Client).order_by(col(Client.name))).all()


def delete_client(*, session: Session, client: Client) -> None:
    session.delete(client)


# --- consents --------------------------------------------------------------------------------


def get_consent(*, session: Session, user_id: uuid.UUID, client_id: str) -> Consent | None:
    return session.get(Consent, (user_id, client_id))


_CONSENT = Consent.__table__  # type: ignore[attr-defined]
_CONSENT_SCOPE = sa_select(_CONSENT.c.scope).where(
    _CONSENT.c.user_id == bindparam("user_id"), _CONSENT.c.client_id == bindparam("client_id"))
_CONSENT_INSERT = insert(_CONSENT)
_CONSENT_UPDATE = update(_CONSENT).where(
    _CONSENT.c.user_id == bindparam("key_user"), _CONSENT.c.client_id == bindparam("key_client"))


def consented_scope(*, session: Session, user_id: uuid.UUID, client_id: str) -> str | None:
    """The scopes the person granted the client (space-separated), or None: one column, no
    ORM object (the consent POST only merges scopes)."""
    value = session.execute(_CONSENT_SCOPE, {"user_id": user_id, "client_id": client_id}
                            ).scalar_one_or_none()
    return None if value is None else str(value)


def save_consent(*, session: Session, user_id: uuid.UUID, client_id: str, scope: str,
                 implied: bool, granted_at: datetime, exists: bool) -> None:
    """Insert the consent row, or update it when ``exists`` (Core statements built once). A
    concurrent insert of the same row raises IntegrityError, as the ORM flush did."""
    values = {"scope": scope, "implied": implied, "granted_at": granted_at}
    if exists:
        session.execute(_CONSENT_UPDATE, {"key_user": user_id, "key_client": client_id, **values})
    else:
        session.execute(_CONSENT_INSERT, {"user_id": user_id, "client_id": client_id, **values})


def list_consents(*, session: Session, user_id: uuid.UUID) -> Sequence[Consent]:
    return session.exec(select(Consent).where(Consent.user_id == user_id)).all()


# --- grants and tokens -----------------------------------------------------------------------


def get_grant(*, session: Session, grant_id: str) -> Grant | None:
    return session.get(Grant, grant_id)


def list_active_grants(
    *, session: Session, user_id: uuid.UUID | None = None, sid: str | None = None,
    client_id: str | None = None,
) -> Sequence[Grant]:
    query = select(Grant).where(col(Grant.revoked_at).is_(None))
    if user_id is not None:
        query = query.where(Grant.user_id == user_id)
    if sid is not None:
        query = query.where(Grant.sid == sid)
    if client_id is not None:
        query = query.where(Grant.client_id == client_id)
    return session.exec(query).all()


def get_refresh_token(*, session: Session, token_hash: str) -> RefreshToken | None:
    return session.exec(select(RefreshToken).where(RefreshToken.token_hash == token_hash)).first()


def mark_refresh_token_rotated(*, session: Session, token_id: uuid.UUID, now: datetime) -> bool:
    """Atomically mark a refresh token used. False when another request used it first."""
    result = session.execute(
        update(RefreshToken)
        .where(col(RefreshToken.id) == token_id, col(RefreshToken.rotated_at).is_(None))
        .values(rotated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def revoke_grant_tokens(*, session: Session, grant_id: str, now: datetime) -> list[str]:
    """Revoke every refresh token of the grant and list every access token ``jti`` to revoke."""
    session.execute(
        update(RefreshToken)
        .where(col(RefreshToken.grant_id) == grant_id, col(RefreshToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    records = session.exec(
        select(AccessTokenRecord).where(
            AccessTokenRecord.grant_id == grant_id, col(AccessTokenRecord.expires_at) > now
        )
    ).all()
    for record in records:
        if session.get(RevokedToken, record.jti) is None:
            session.add(RevokedToken(jti=record.jti, expires_at=record.expires_at))
    return [r.jti for r in records]


def access_token_expiries(*, session: Session, jtis: Sequence[str]) -> dict[str, float]:
    """The expiry (epoch seconds) of each of these access tokens."""
    if not jtis:
        return {}
    rows = session.exec(select(AccessTokenRecord.jti, AccessTokenRecord.expires_at).where(
        col(AccessTokenRecord.jti).in_(list(jtis)))).all()
    return {jti: (exp if exp.tzinfo else exp.replace(tzinfo=UTC)).timestamp()
            for jti, exp in rows}


def is_jti_revoked(*, session: Session, jti: str) -> bool:
    return session.get(RevokedToken, jti) is not None


_REVOKED = RevokedToken.__table__  # type: ignore[attr-defined]
_IS_REVOKED = select(_REVOKED.c.jti).where(_REVOKED.c.jti == bindparam("jti"))


def is_jti_revoked_conn(*, conn: Connection, jti: str) -> bool:
    return conn.execute(_IS_REVOKED, {"jti": jti}).first() is not None


_REVOKED_SINCE = select(_REVOKED.c.jti, _REVOKED.c.expires_at).where(
    _REVOKED.c.revoked_at >= bindparam("since"), _REVOKED.c.expires_at > bindparam("now"))


def revoked_jtis_since(*, conn: Connection, since: datetime, now: datetime
                       ) -> list[tuple[str, datetime]]:
    """The ``jti`` (and expiry) of the access tokens revoked at or after ``since`` that have
    not expired at ``now``: the delta a worker's revocation list loads."""
    rows = conn.execute(_REVOKED_SINCE, {"since": since, "now": now}).all()
    return [(str(row[0]), row[1]) for row in rows]


def get_access_token_record(*, session: Session, jti: str) -> AccessTokenRecord | None:
    return session.get(AccessTokenRecord, jti)


_GRANT_AND_USER_FOR_JTI = (
    select(Grant, User)
    .join(AccessTokenRecord, col(AccessTokenRecord.grant_id) == col(Grant.id))
    .join(User, col(User.id) == col(Grant.user_id))
    .where(col(AccessTokenRecord.jti) == bindparam("jti"))
)


def get_grant_and_user_for_jti(*, session: Session, jti: str) -> tuple[Grant, User] | None:
    """The grant of an access token and its account, in one statement built once
    (``/userinfo``)."""
    row = session.execute(_GRANT_AND_USER_FOR_JTI, {"jti": jti}).first()
    return (row[0], row[1]) if row is not None else None


def purge_expired(*, session: Session, now: datetime) -> int:
    """Remove expired refresh tokens, access-token records and revocation entries."""
    total = 0
    for model, column in (
        (RevokedToken, RevokedToken.expires_at),
        (AccessTokenRecord, AccessTokenRecord.expires_at),
        (RefreshToken, RefreshToken.expires_at),
    ):
        result = session.execute(delete(model).where(col(column) < now))
        total += int(result.rowcount)  # type: ignore[attr-defined]
    return total


# --- signing keys ----------------------------------------------------------------------------


def list_signing_keys(
    *, session: Session, statuses: Sequence[str] | None = None
) -> Sequence[SigningKey]:
    query = select(SigningKey).order_by(col(SigningKey.created_at))
    if statuses:
        query = query.where(col(SigningKey.status).in_(statuses))
    return session.exec(query).all()


# --- emailed single-use links and factor metadata (account console) --------------------------


def get_email_token(*, session: Session, token_hash: str) -> EmailToken | None:
    return session.exec(select(EmailToken).where(EmailToken.token_hash == token_hash)).first()


def use_email_token(*, session: Session, token_id: uuid.UUID, now: datetime) -> bool:
    """Atomically mark a link used. False when another request used it first."""
    result = session.execute(
        update(EmailToken)
        .where(col(EmailToken.id) == token_id, col(EmailToken.used_at).is_(None))
        .values(used_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def cancel_email_tokens(*, session: Session, user_id: uuid.UUID, purpose: str,
                        now: datetime) -> None:
    """Make every unused link of this purpose unusable (a newer one replaces them)."""
    session.execute(
        update(EmailToken)
        .where(col(EmailToken.user_id) == user_id, col(EmailToken.purpose) == purpose,
               col(EmailToken.used_at).is_(None))
        .values(used_at=now)
    )


def list_grants(*, session: Session, user_id: uuid.UUID) -> Sequence[Grant]:
    return session.exec(
        select(Grant).where(Grant.user_id == user_id).order_by(col(Grant.created_at).desc())
    ).all()


def list_factors(*, session: Session, user_id: uuid.UUID
                 ) -> tuple[Sequence[TotpFactor], Sequence[RecoveryCode],
                            Sequence[WebAuthnCredential]]:
    return (
        session.exec(select(TotpFactor).where(TotpFactor.user_id == user_id)).all(),
        session.exec(select(RecoveryCode).where(RecoveryCode.user_id == user_id)).all(),
        session.exec(select(WebAuthnCredential)
                     .where(WebAuthnCredential.user_id == user_id)).all(),
    )


def get_organisation(*, session: Session, slug: str) -> Organisation | None:
    return session.exec(select(Organisation).where(Organisation.slug == slug)).first()


# --- federated identities (FranceConnect) ------------------------------------------------

def get_federated_identity(*, session: Session, issuer: str, subject: str
                           ) -> FederatedIdentity | None:
    return session.exec(select(FederatedIdentity).where(
        FederatedIdentity.issuer == issuer, FederatedIdentity.subject == subject)).first()


def list_federated_identities(*, session: Session, user_id: uuid.UUID
                              ) -> Sequence[FederatedIdentity]:
    return session.exec(select(FederatedIdentity).where(
        FederatedIdentity.user_id == user_id)).all()


def list_users_born(*, session: Session, birthdate: str) -> Sequence[User]:
    """Accounts with this birthdate (the civil-status reconciliation narrows them down)."""
    return session.exec(select(User).where(User.birthdate == birthdate).limit(1000)).all()


# --- mandates (delegation) -------------------------------------------------------------------

def get_mandate(*, session: Session, mandate_id: uuid.UUID) -> Mandate | None:
    return session.get(Mandate, mandate_id)


def list_mandates(*, session: Session, mandator_id: uuid.UUID | None = None,
                  mandatary_id: uuid.UUID | None = None, status: str | None = None
                  ) -> Sequence[Mandate]:
    query = select(Mandate).order_by(col(Mandate.created_at).desc())
    if mandator_id is not None:
        query = query.where(Mandate.mandator_id == mandator_id)
    if mandatary_id is not None:
        query = query.where(Mandate.mandatary_id == mandatary_id)
    if status is not None:
        query = query.where(Mandate.status == status)
    return session.exec(query).all()


def list_mandate_grants(*, session: Session, mandate_id: uuid.UUID) -> Sequence[Grant]:
    return session.exec(select(Grant).where(
        Grant.mandate_id == mandate_id, col(Grant.revoked_at).is_(None))).all()


def get_token_mandate(*, session: Session, jti: str) -> Mandate | None:
    """The mandate a (delegated) access token was issued under, in one query."""
    return session.exec(
        select(Mandate)
        .join(Grant, col(Grant.mandate_id) == col(Mandate.id))
        .join(AccessTokenRecord, col(AccessTokenRecord.grant_id) == col(Grant.id))
        .where(AccessTokenRecord.jti == jti)).first()
