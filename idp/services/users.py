"""Accounts: creation, password sign-in with throttling, lookup."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session

from idp import passwords, repository
from idp.i18n import N_
from idp.models import User
from idp.schemas import UserCreate, UserPublic
from idp.services.throttle import Throttle
from plateforme.audit import AuditRecord, append
from plateforme.clock import utcnow
from plateforme.db import reader
from plateforme.errors import Conflict, NotFound, TooManyRequests

GENERIC_FAILURE = N_("Adresse électronique ou mot de passe incorrect.")


class LoginFailed(Exception):
    """Wrong credentials or unusable account; the message never tells which."""

    def __init__(self, message: str = GENERIC_FAILURE) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class SignIn:
    user: User
    amr: list[str]
    acr: str


def to_public(user: User) -> UserPublic:
    return UserPublic(
        id=user.id, email=user.email, given_name=user.given_name, family_name=user.family_name,
        email_verified=user.email_verified, locked=user.locked,
    )


class UserService:
    def __init__(self, engine: Engine, throttle: Throttle) -> None:
        self._engine = engine
        self._reader = reader(engine)
        self._throttle = throttle

    def create(self, data: UserCreate, *, actor: str | None = None) -> UserPublic:
        email = str(data.email).strip().lower()
        with Session(self._engine, expire_on_commit=False) as session:
            if repository.get_user_by_email(session=session, email=email) is not None:
                raise Conflict(f"un compte existe déjà pour {email}")
            user = User(
                email=email, email_verified=data.email_verified,
                password_hash=passwords.hash_password(data.password),
                given_name=data.given_name, family_name=data.family_name,
            )
            session.add(user)
            append(session, AuditRecord(action="user.create", actor=actor, target=str(user.id)))
            session.commit()
        return to_public(user)

    def get(self, user_id: uuid.UUID | str) -> User | None:
        with Session(self._reader, expire_on_commit=False) as session:
            return repository.read_user(session=session, user_id=uuid.UUID(str(user_id)))

    def get_by_email(self, email: str) -> User | None:
        with Session(self._engine, expire_on_commit=False) as session:
            return repository.get_user_by_email(session=session, email=email)

    def list(self, search: str | None = None) -> list[UserPublic]:
        with Session(self._engine) as session:
            return [to_public(u) for u in repository.list_users(session=session, search=search)]

    def require(self, user_id: uuid.UUID | str) -> User:
        user = self.get(user_id)
        if user is None:
            raise NotFound("compte introuvable")
        return user

    def set_locked(self, user_id: uuid.UUID | str, locked: bool, *, actor: str | None,
                   reason: str) -> User:
        with Session(self._engine, expire_on_commit=False) as session:
            user = repository.get_user(session=session, user_id=uuid.UUID(str(user_id)))
            if user is None:
                raise NotFound("compte introuvable")
            user.locked = locked
            user.locked_reason = reason if locked else None
            user.updated_at = utcnow()
            session.add(user)
            append(session, AuditRecord(action="user.lock" if locked else "user.unlock",
                                        actor=actor, target=str(user.id), reason=reason))
            session.commit()
        return user

    def delete(self, user_id: uuid.UUID | str, *, actor: str | None, reason: str) -> None:
        """Erase the account row (its consents, grants and tokens cascade)."""
        with Session(self._engine) as session:
            user = repository.get_user(session=session, user_id=uuid.UUID(str(user_id)))
            if user is None:
                raise NotFound("compte introuvable")
            session.delete(user)
            append(session, AuditRecord(action="user.delete", actor=actor,
                                        target=str(user_id), reason=reason))
            session.commit()

    def authenticate_password(
        self, email: str, password: str, *, address: str, request_id: str | None = None
    ) -> SignIn:
        """Check a password sign-in. Unknown account, wrong password and locked account all
        raise :class:`LoginFailed` after the same work; throttling raises TooManyRequests."""
        email = email.strip().lower()
        wait, failures_on_record = self._throttle.assess(email, address)
        if wait:
            passwords.burn_time(password)
            self._audit("login.throttled", None, email, address, request_id, "refused")
            raise TooManyRequests(
                N_("Trop de tentatives. Réessayez dans quelques instants."), retry_after=wait
            )
        with Session(self._engine, expire_on_commit=False) as session:
            user = repository.get_user_by_email(session=session, email=email)
            ok, new_hash = passwords.verify_and_update(
                password, user.password_hash if user else None
            )
            if user is not None and ok and new_hash:
                user.password_hash = new_hash
                user.updated_at = utcnow()
                session.add(user)
                session.commit()
        # An account whose address is not confirmed yet cannot sign in; the answer is the
        # generic one (registration tells the person to open the emailed link first).
        if not ok or user is None or user.locked or not user.email_verified:
            delay = self._throttle.failure(email, address)
            reason = None
            if user is not None and ok:
                reason = "locked" if user.locked else "unverified"
            self._audit("login.failure", user, email, address, request_id, "failure",
                        reason=reason)
            if delay:  # the account (or the address) is now locked out for a while
                self._audit("login.lockout", user, email, address, request_id, "refused",
                            reason=f"password:{delay}s")
            raise LoginFailed()
        if failures_on_record:
            # Nothing to clear otherwise (one store round trip less on most sign-ins); a
            # failure counted meanwhile by a concurrent attempt is kept, which only errs on
            # the side of throttling.
            self._throttle.success(email, address)
        return SignIn(user=user, amr=["pwd"], acr="eidas1")

    def _audit(
        self, action: str, user: User | None, email: str, address: str, request_id: str | None,
        outcome: str, reason: str | None = None,
    ) -> None:
        with Session(self._engine) as session:
            append(session, AuditRecord(
                action=action, actor=str(user.id) if user else None, address=address,
                request_id=request_id, outcome=outcome, reason=reason,
                details={} if user else {"unknown_account": True},
            ))
            session.commit()
