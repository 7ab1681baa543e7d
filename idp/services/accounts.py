"""Citizen accounts: registration with a confirmed address, password reset and change, the
profile, and what the account console shows and does (sessions, connected applications,
activity, data export, deletion).

Rules kept here:

* **No account enumeration.** Registering a known address, asking a reset for an unknown one
  or resending a confirmation link give the caller the same answer at once: the work, which
  differs (an account created or not, a link issued or not), runs afterwards in the
  background (:meth:`AccountService.later`), and what differs in the end is only the message
  the *owner* of the address receives (:class:`AccountMail` sends in the background too).
* **Emailed links** are random 256-bit values stored as their SHA-256 in ``EmailToken``,
  single use (an atomic update marks them used) and short-lived: 24 h to confirm an address,
  1 h to reset a password. A newer link of the same purpose cancels the older ones. Opening
  a link only shows a page; the change happens when the person submits its form (mail
  scanners that follow links cannot use them up).
* **An unconfirmed account cannot sign in** (the sign-in answer stays the generic one).
  A password reset proves control of the address and so also confirms it.
* A reset or a change of password ends the person's other sessions (clients told through
  back-channel logout) and revokes every refresh token.
* Every change is written to the audit journal with the account id as actor, the caller's
  address and the request id; no email address or name goes into the (unerasable) journal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import exists
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from idp import passwords, repository
from idp.i18n import N_, Msg
from idp.models import EmailToken, User
from idp.services.account_mail import AccountMail
from idp.services.logout import LogoutDelivery
from idp.services.password_policy import PasswordAssessment, assess
from idp.services.sessions import SSOSession
from idp.services.users import LoginFailed
from plateforme.audit import AuditEvent, AuditQuery, AuditRecord, append
from plateforme.clock import utcnow
from plateforme.errors import Conflict, NotFound, TooManyRequests

if TYPE_CHECKING:
    from idp.services.provider import Provider

log = logging.getLogger(__name__)

VERIFY_LIFETIME = timedelta(hours=24)
RESET_LIFETIME = timedelta(hours=1)
EMAIL_CHANGE_LIFETIME = timedelta(hours=24)
# A never-confirmed account is deleted once its last confirmation link has been dead this long.
UNCONFIRMED_MARGIN = timedelta(hours=24)
# How often a registration also purges the never-confirmed accounts (at most once per period,
# across every worker: a key in the key-value store).
PURGE_PERIOD = 3600
# Messages one address may receive per hour from the account pages (beyond: silently none).
MAIL_PER_HOUR = 8
# Registration, reset and resend requests one network address may make per hour.
REQUESTS_PER_HOUR = 60
LOCALES = ("fr", "en")
MISMATCH = N_("Les deux mots de passe ne sont pas identiques.")
_PHONE = re.compile(r"^\+?[0-9 .()-]{6,24}$")
_POSTAL = re.compile(r"^[A-Za-z0-9 -]{3,10}$")


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _h(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def session_handle(sid: str) -> str:
    """What the console shows and posts instead of a session id (a bearer secret)."""
    return hashlib.sha256(("handle:" + sid).encode()).hexdigest()[:20]


def normalise_email(value: str) -> str:
    return value.strip().lower()


def check_email(value: str) -> str | None:
    """An error message for an unusable address, else None (no DNS look-up)."""
    value = value.strip()
    if not value:
        return N_("Indiquez votre adresse électronique.")
    if len(value) > 320:
        return N_("L'adresse électronique est trop longue.")
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return N_("Indiquez une adresse électronique valide, au format nom@domaine.fr.")
    return None


@dataclass
class Profile:
    """What a person tells about themself (registration and the profile page)."""

    given_name: str = ""
    family_name: str = ""
    birthdate: str = ""
    phone_number: str = ""
    street_address: str = ""
    postal_code: str = ""
    locality: str = ""
    locale: str = "fr"

    def check(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        for name, missing in (("given_name", N_("Indiquez votre prénom.")),
                              ("family_name", N_("Indiquez votre nom."))):
            value = getattr(self, name).strip()
            if not value:
                errors[name] = missing
            elif len(value) > 100:
                errors[name] = N_("100 caractères au plus.")
        if self.birthdate:
            try:
                born = date.fromisoformat(self.birthdate)
                if not date(1900, 1, 1) <= born <= date.today():
                    raise ValueError
            except ValueError:
                errors["birthdate"] = (N_("Indiquez une date de naissance valide, au format "
                                       "jour/mois/année."))
        if self.phone_number and not _PHONE.match(self.phone_number.strip()):
            errors["phone_number"] = (N_("Indiquez un numéro de téléphone valide, par exemple "
                                      "0596 12 34 56."))
        if self.postal_code and not _POSTAL.match(self.postal_code.strip()):
            errors["postal_code"] = N_("Indiquez un code postal valide, par exemple 97200.")
        for name in ("street_address", "locality"):
            if len(getattr(self, name)) > 200:
                errors[name] = N_("200 caractères au plus.")
        if self.locale not in LOCALES:
            errors["locale"] = N_("Choisissez le français ou l'anglais.")
        return errors

    def address_json(self) -> str | None:
        parts = {"street_address": self.street_address.strip(),
                 "postal_code": self.postal_code.strip(), "locality": self.locality.strip()}
        if not any(parts.values()):
            return None
        parts = {k: v for k, v in parts.items() if v}
        parts["country"] = "France"
        lines = [parts.get("street_address", ""),
                 " ".join(p for p in (parts.get("postal_code"), parts.get("locality")) if p)]
        parts["formatted"] = "\n".join(line for line in lines if line)
        return json.dumps(parts, ensure_ascii=False, sort_keys=True)

    def apply(self, user: User) -> list[str]:
        """Copy onto the account; return the names of the fields that changed."""
        wanted = {
            "given_name": self.given_name.strip(), "family_name": self.family_name.strip(),
            "birthdate": self.birthdate or None, "phone_number": self.phone_number.strip() or None,
            "address": self.address_json(), "locale": self.locale,
        }
        changed = [k for k, v in wanted.items() if getattr(user, k) != v]
        for key in changed:
            setattr(user, key, wanted[key])
        if "phone_number" in changed:
            user.phone_number_verified = False
        return changed

    @classmethod
    def of(cls, user: User) -> Profile:
        address = user.address_claim() or {}
        return cls(
            given_name=user.given_name or "", family_name=user.family_name or "",
            birthdate=user.birthdate or "", phone_number=user.phone_number or "",
            street_address=address.get("street_address", ""),
            postal_code=address.get("postal_code", ""), locality=address.get("locality", ""),
            locale=user.locale if user.locale in LOCALES else "fr",
        )


@dataclass
class Registration:
    email: str
    password: str
    password_confirmation: str
    profile: Profile = field(default_factory=Profile)


@dataclass(frozen=True)
class Caller:
    """Where a request comes from, for throttling and the audit journal."""

    address: str
    request_id: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class FormCheck:
    """Field errors of a submitted form and the strength meter's verdict."""

    errors: dict[str, str]
    strength: PasswordAssessment | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class SessionView:
    handle: str
    current: bool
    device: str
    address: str | None
    created_at: datetime
    last_seen: datetime
    clients: list[str]
    acr: str
    amr: list[str]


@dataclass(frozen=True)
class ConnectedApp:
    client_id: str
    name: str
    scopes: list[str]
    granted_at: datetime
    implied: bool
    first_party: bool
    last_used: datetime | None


def describe_device(user_agent: str | None) -> str:
    """A short French description of a browser from its User-Agent."""
    ua = user_agent or ""
    browser = next((name for token, name in (
        ("Edg/", "Edge"), ("OPR/", "Opera"), ("SamsungBrowser", "Samsung Internet"),
        ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Chromium", "Chromium"),
        ("Safari/", "Safari"),
    ) if token in ua), None)
    system = next((name for token, name in (
        ("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"), ("Windows", "Windows"),
        ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"),
    ) if token in ua), None)
    if browser and system:
        return f"{browser} sur {system}"
    return browser or system or (ua[:60] if ua else "Navigateur inconnu")


def _ts(value: int) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class AccountService:
    """The account use cases, on top of the provider's other services."""

    def __init__(self, provider: Provider) -> None:
        self._p = provider
        self._engine = provider.engine
        self.mail = AccountMail(lambda: provider.mailer)
        # Requests whose work depends on whether the address has an account run here, after
        # the answer: the answer's timing cannot tell known and unknown addresses apart.
        self._work = ThreadPoolExecutor(max_workers=2, thread_name_prefix="account")

    def later(self, name: str, *args: Any) -> Future[None]:
        """Run ``register``, ``request_reset`` or ``resend_verification`` in the background
        (the caller answers at once, the same way whatever the outcome)."""
        if name not in ("register", "request_reset", "resend_verification"):
            raise ValueError(name)
        method = getattr(self, name)

        def run() -> None:
            try:
                method(*args)
            except Exception:  # noqa: BLE001 - logged; the person already has the answer
                log.exception("account request %s failed", name)

        return self._work.submit(run)

    # -- helpers ---------------------------------------------------------------------------

    def link(self, path: str, token: str | None = None) -> str:
        return self._p.issuer + path + (f"?jeton={token}" if token else "")

    def _audit(self, session: Session, action: str, actor: object, caller: Caller | None,
               **kwargs: Any) -> None:
        append(session, AuditRecord(
            action=action, actor=str(actor) if actor else None,
            address=caller.address if caller else None,
            request_id=caller.request_id if caller else None, **kwargs))

    def _record(self, action: str, actor: object, caller: Caller | None, **kwargs: Any) -> None:
        with Session(self._engine) as session:
            self._audit(session, action, actor, caller, **kwargs)
            session.commit()

    def check_request_rate(self, caller: Caller) -> None:
        """Registration, reset and resend requests per network address and hour."""
        limit = max(REQUESTS_PER_HOUR, self._p.settings.address_free_attempts)
        key = f"idp:account-requests:{_h(caller.address)}"
        if self._p.store.incr(key, ttl=3600) > limit:
            raise TooManyRequests(
                N_("Trop de demandes depuis votre connexion. Réessayez plus tard."),
                retry_after=max(1, self._p.store.ttl(key)))

    def _mail_allowed(self, email: str) -> bool:
        return self._p.store.incr(f"idp:account-mail:{_h(email)}", ttl=3600) <= MAIL_PER_HOUR

    def _send(self, kind: str, user: User | None, *, to: str, locale: str | None = None,
              link: str | None = None, **values: object) -> None:
        if not self._mail_allowed(to):
            return
        name = (user.given_name or "") if user else ""
        self.mail.send(kind, to=to, locale=locale or (user.locale if user else "fr"),
                       link=link, name=name, **values)

    @staticmethod
    def _issue(session: Session, user_id: uuid.UUID, purpose: str, lifetime: timedelta,
               new_email: str | None = None) -> str:
        now = utcnow()
        repository.cancel_email_tokens(session=session, user_id=user_id, purpose=purpose, now=now)
        token = secrets.token_urlsafe(32)
        session.add(EmailToken(token_hash=digest(token), purpose=purpose, user_id=user_id,
                               new_email=new_email, expires_at=now + lifetime))
        return token

    def _find(self, session: Session, token: str | None, purpose: str) -> EmailToken | None:
        if not token or len(token) > 100:
            return None
        row = repository.get_email_token(session=session, token_hash=digest(token))
        if row is None or row.purpose != purpose or row.used_at is not None:
            return None
        if _aware(row.expires_at) <= utcnow():
            return None
        return row

    def link_user(self, token: str | None, purpose: str) -> User | None:
        """The account an unused, unexpired link belongs to (the link is not used up)."""
        with Session(self._engine, expire_on_commit=False) as session:
            row = self._find(session, token, purpose)
            return repository.get_user(session=session, user_id=row.user_id) if row else None

    def _consume(self, session: Session, token: str | None, purpose: str) -> EmailToken | None:
        row = self._find(session, token, purpose)
        if row is None or not repository.use_email_token(session=session, token_id=row.id,
                                                         now=utcnow()):
            return None
        return row

    # -- registration ------------------------------------------------------------------------

    def check_registration(self, data: Registration) -> FormCheck:
        errors = data.profile.check()
        email_error = check_email(data.email)
        if email_error:
            errors["email"] = email_error
        strength = assess(data.password, user_inputs=[
            data.email, data.profile.given_name, data.profile.family_name])
        if not strength.acceptable:
            errors["password"] = Msg.join(strength.problems)
        if data.password and data.password_confirmation != data.password:
            errors["password_confirmation"] = MISMATCH
        return FormCheck(errors, strength)

    def purge_unconfirmed(self, *, older_than: timedelta | None = None, dry_run: bool = False,
                          actor: str = "purge") -> list[str]:
        """Delete the accounts whose address was never confirmed and which have had no
        confirmation link for ``older_than`` (default: a link's life plus a day's margin).
        Return their addresses. Each deletion is one transaction with its audit event, and
        re-checks the conditions: an address confirmed meanwhile keeps its account."""
        age = older_than if older_than is not None else VERIFY_LIFETIME + UNCONFIRMED_MARGIN
        cutoff = utcnow() - age
        recent_link = exists().where(
            col(EmailToken.user_id) == col(User.id), col(EmailToken.purpose) == "verify",
            col(EmailToken.created_at) >= cutoff)
        stale = (col(User.email_verified).is_(False), col(User.created_at) < cutoff,
                 ~recent_link)
        with Session(self._engine) as session:
            found = session.exec(select(User.id, User.email).where(*stale)).all()
        if dry_run:
            return [email for _, email in found]
        purged: list[str] = []
        for uid, email in found:
            with Session(self._engine) as session:
                result = session.exec(delete(User).where(  # type: ignore[call-overload]
                    col(User.id) == uid, *stale))
                if not result.rowcount:
                    continue
                append(session, AuditRecord(
                    action="account.purge_unconfirmed", actor=actor, target=str(uid),
                    reason=f"adresse jamais confirmée (plus de {age.total_seconds() / 3600:g} h)"))
                session.commit()
                purged.append(email)
        if purged:
            log.info("purged %d never-confirmed account(s)", len(purged))
        return purged

    def purge_unconfirmed_if_due(self) -> None:
        """The opportunistic purge: at most once per ``PURGE_PERIOD`` over the whole cluster."""
        if self._p.store.set("idp:purge-unconfirmed", "1", ttl=PURGE_PERIOD, nx=True):
            self.purge_unconfirmed()

    def register(self, data: Registration, caller: Caller) -> None:
        """Create an unconfirmed account and email its confirmation link; for a known address,
        tell its owner instead. The caller cannot tell which happened. Runs the opportunistic
        purge of never-confirmed accounts first (in the background, like all of this)."""
        try:
            self.purge_unconfirmed_if_due()
        except Exception:  # noqa: BLE001 - the purge must not stop a registration
            log.exception("purge of never-confirmed accounts failed")
        email = normalise_email(data.email)
        with Session(self._engine, expire_on_commit=False) as session:
            existing = repository.get_user_by_email(session=session, email=email)
            if existing is None:
                user = User(email=email, email_verified=False,
                            password_hash=passwords.hash_password(data.password),
                            password_changed_at=utcnow())
                data.profile.apply(user)
                session.add(user)
                session.flush()
                token = self._issue(session, user.id, "verify", VERIFY_LIFETIME)
                self._audit(session, "account.register", user.id, caller,
                            details={"locale": user.locale})
                try:
                    session.commit()
                except IntegrityError:  # registered by a concurrent request
                    session.rollback()
                    existing = repository.get_user_by_email(session=session, email=email)
                else:
                    self._send("verify", user, to=email,
                               link=self.link("/inscription/confirmer", token),
                               hours=int(VERIFY_LIFETIME.total_seconds() // 3600))
                    return
            else:
                passwords.hash_password(data.password)  # the same work as for a new account
            if existing is None:
                return
            self._audit(session, "account.register_existing", existing.id, caller,
                        outcome="refused")
            session.commit()
        self._send("exists", existing, to=existing.email,
                   link=self.link("/mot-de-passe/oublie"))

    def resend_verification(self, email: str, caller: Caller) -> None:
        """A new confirmation link for an unconfirmed account; nothing otherwise."""
        email = normalise_email(email)
        token = None
        with Session(self._engine, expire_on_commit=False) as session:
            user = repository.get_user_by_email(session=session, email=email)
            if user is not None and not user.email_verified and not user.locked:
                token = self._issue(session, user.id, "verify", VERIFY_LIFETIME)
            self._audit(session, "account.verification_resent", user.id if user else None,
                        caller, outcome="success" if token else "ignored",
                        details={} if user else {"unknown_account": True})
            session.commit()
        if token and user is not None:
            self._send("verify", user, to=user.email,
                       link=self.link("/inscription/confirmer", token),
                       hours=int(VERIFY_LIFETIME.total_seconds() // 3600))

    def resend_verification_for(self, user_id: uuid.UUID | str, *, actor: str | None,
                                reason: str, address: str | None = None) -> None:
        """An operator sends a new confirmation link to an account whose address is not
        confirmed yet (the older links stop working), as :meth:`resend_verification` does for
        the person; the journal records the operator and the reason. Refused with a message
        when the address is already confirmed, the account locked, or the address received
        too many messages this hour."""
        user = self._p.users.require(user_id)
        if user.email_verified:
            raise Conflict(N_("L'adresse de ce compte est déjà confirmée : il n'y a pas de lien "
                           "de confirmation à renvoyer."))
        if user.locked:
            raise Conflict(N_("Ce compte est verrouillé : déverrouillez-le avant de renvoyer le "
                           "lien de confirmation."))
        if not self._mail_allowed(user.email):
            raise TooManyRequests(N_("Cette adresse a reçu trop de messages dans l'heure. "
                                  "Réessayez plus tard."), retry_after=3600)
        with Session(self._engine) as session:
            token = self._issue(session, user.id, "verify", VERIFY_LIFETIME)
            append(session, AuditRecord(
                action="account.verification_resent", actor=str(actor) if actor else None,
                target=str(user.id), address=address, reason=reason))
            session.commit()
        self.mail.send("verify", to=user.email, locale=user.locale,
                       link=self.link("/inscription/confirmer", token),
                       name=user.given_name or "",
                       hours=int(VERIFY_LIFETIME.total_seconds() // 3600))

    def verify_email(self, token: str | None, caller: Caller) -> User | None:
        """Use a confirmation link: the account may sign in from now on."""
        with Session(self._engine, expire_on_commit=False) as session:
            row = self._consume(session, token, "verify")
            if row is None:
                self._audit(session, "account.verify_email", None, caller, outcome="failure",
                            reason="invalid_or_expired_link")
                session.commit()
                return None
            user = repository.get_user(session=session, user_id=row.user_id)
            if user is None:
                return None
            user.email_verified = True
            user.updated_at = utcnow()
            session.add(user)
            self._audit(session, "account.verify_email", user.id, caller)
            session.commit()
            return user

    # -- password reset and change ------------------------------------------------------------

    def request_reset(self, email: str, caller: Caller) -> None:
        """Email a reset link to a known, unlocked account; the same answer otherwise."""
        email = normalise_email(email)
        token = None
        with Session(self._engine, expire_on_commit=False) as session:
            user = repository.get_user_by_email(session=session, email=email)
            if user is not None and not user.locked:
                token = self._issue(session, user.id, "reset", RESET_LIFETIME)
            self._audit(session, "password.reset_request", user.id if user else None, caller,
                        outcome="success" if token else "ignored",
                        reason="locked" if user is not None and user.locked else None,
                        details={} if user else {"unknown_account": True})
            session.commit()
        if token and user is not None:
            self._send("reset", user, to=user.email,
                       link=self.link("/mot-de-passe/nouveau", token),
                       minutes=int(RESET_LIFETIME.total_seconds() // 60))

    def check_new_password(self, user: User, password: str, confirmation: str) -> FormCheck:
        errors: dict[str, str] = {}
        strength = assess(password, user_inputs=[user.email, user.given_name or "",
                                                 user.family_name or ""])
        if not strength.acceptable:
            errors["password"] = Msg.join(strength.problems)
        if password and confirmation != password:
            errors["password_confirmation"] = MISMATCH
        return FormCheck(errors, strength)

    def reset_password(self, token: str | None, password: str, caller: Caller) -> User | None:
        """Use a reset link: new password, address confirmed, every session ended and every
        token revoked. None when the link is unknown, used or expired."""
        with Session(self._engine, expire_on_commit=False) as session:
            row = self._consume(session, token, "reset")
            user = repository.get_user(session=session, user_id=row.user_id) if row else None
            if user is None or user.locked:
                session.rollback()
                self._record("password.reset", None, caller, outcome="failure",
                             reason="invalid_or_expired_link")
                return None
            user.password_hash = passwords.hash_password(password)
            user.password_changed_at = user.updated_at = utcnow()
            user.email_verified = True
            session.add(user)
            repository.cancel_email_tokens(session=session, user_id=user.id, purpose="reset",
                                           now=utcnow())
            self._audit(session, "password.reset", user.id, caller)
            session.commit()
        self._p.end_all_sessions(user.id, reason="password_reset", actor=str(user.id),
                                 address=caller.address)
        self._p.throttle.success(user.email, caller.address)
        self._send("password_changed", user, to=user.email,
                   link=self.link("/mot-de-passe/oublie"))
        return user

    def change_password(self, sso: SSOSession, current: str, new: str, confirmation: str,
                        caller: Caller) -> FormCheck:
        """Change the password (the current one is asked again). Other sessions end, every
        refresh token is revoked; this session stays open."""
        user = self._p.users.require(sso.user_id)
        wait = self._p.throttle.retry_after(user.email, caller.address)
        if wait:
            passwords.burn_time(current)
            raise TooManyRequests(N_("Trop de tentatives. Réessayez dans quelques instants."),
                                  retry_after=wait)
        ok, _ = passwords.verify_and_update(current, user.password_hash)
        if not ok:
            self._p.throttle.failure(user.email, caller.address)
            self._record("password.change", user.id, caller, outcome="failure",
                         reason="wrong_current_password")
            return FormCheck({"current_password": N_("Le mot de passe actuel est incorrect.")})
        check = self.check_new_password(user, new, confirmation)
        if check.ok and new == current:
            check = FormCheck({"password": N_("Choisissez un mot de passe différent de l'actuel.")},
                              check.strength)
        if not check.ok:
            return check
        with Session(self._engine, expire_on_commit=False) as session:
            record = repository.get_user(session=session, user_id=user.id)
            if record is None:
                raise NotFound("compte introuvable")
            record.password_hash = passwords.hash_password(new)
            record.password_changed_at = record.updated_at = utcnow()
            session.add(record)
            repository.cancel_email_tokens(session=session, user_id=user.id, purpose="reset",
                                           now=utcnow())
            self._audit(session, "password.change", user.id, caller)
            session.commit()
        self.end_other_sessions(sso, caller, reason="password_changed")
        for grant_id in self._p.tokens.user_grant_ids(user.id):
            self._p.tokens.revoke_grant(grant_id, reason="password_changed", actor=str(user.id))
        self._p.throttle.success(user.email, caller.address)
        self._send("password_changed", user, to=user.email,
                   link=self.link("/mot-de-passe/oublie"))
        return check

    # -- profile and address -------------------------------------------------------------------

    def update_profile(self, user_id: uuid.UUID | str, profile: Profile,
                       caller: Caller) -> dict[str, str]:
        errors = profile.check()
        if errors:
            return errors
        with Session(self._engine, expire_on_commit=False) as session:
            user = repository.get_user(session=session, user_id=uuid.UUID(str(user_id)))
            if user is None:
                raise NotFound("compte introuvable")
            if user.civil_status_verified_at is not None:
                # Verified by FranceConnect (idp.services.brokering): read-only here.
                profile = replace(profile, given_name=user.given_name or "",
                                  family_name=user.family_name or "",
                                  birthdate=user.birthdate or "")
            changed = profile.apply(user)
            if changed:
                user.updated_at = utcnow()
                session.add(user)
                self._audit(session, "profile.update", user.id, caller,
                            details={"fields": changed})
                session.commit()
        return {}

    def request_email_change(self, user_id: uuid.UUID | str, new_email: str, password: str,
                             caller: Caller) -> dict[str, str]:
        """Send a confirmation link to the new address (the password is asked again). When
        the address belongs to another account, its owner is told instead; the answer to the
        person asking is the same."""
        user = self._p.users.require(user_id)
        error = check_email(new_email)
        if error:
            return {"new_email": error}
        new = normalise_email(new_email)
        if new == user.email:
            return {"new_email": N_("C'est déjà l'adresse de votre compte.")}
        ok, _ = passwords.verify_and_update(password, user.password_hash)
        if not ok:
            self._p.throttle.failure(user.email, caller.address)
            self._record("email.change_request", user.id, caller, outcome="failure",
                         reason="wrong_password")
            return {"email_password": N_("Le mot de passe est incorrect.")}
        token = None
        with Session(self._engine) as session:
            taken = repository.get_user_by_email(session=session, email=new) is not None
            if not taken:
                token = self._issue(session, user.id, "email", EMAIL_CHANGE_LIFETIME,
                                    new_email=new)
            self._audit(session, "email.change_request", user.id, caller,
                        outcome="success" if token else "refused",
                        reason=None if token else "address_in_use")
            session.commit()
        if token:
            self._send("email_change", user, to=new,
                       link=self.link("/compte/adresse/confirmer", token),
                       hours=int(EMAIL_CHANGE_LIFETIME.total_seconds() // 3600))
        else:
            self._send("email_taken", None, to=new, locale=user.locale,
                       link=self.link("/mot-de-passe/oublie"))
        return {}

    def confirm_email_change(self, token: str | None, caller: Caller) -> User | None:
        with Session(self._engine, expire_on_commit=False) as session:
            row = self._consume(session, token, "email")
            user = repository.get_user(session=session, user_id=row.user_id) if row else None
            if row is None or user is None or not row.new_email or repository.get_user_by_email(
                    session=session, email=row.new_email) is not None:
                session.rollback()
                self._record("email.change", None, caller, outcome="failure",
                             reason="invalid_or_expired_link")
                return None
            old_email = user.email
            user.email = row.new_email
            user.email_verified = True
            user.updated_at = utcnow()
            session.add(user)
            self._audit(session, "email.change", user.id, caller)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return None
        self._send("email_changed", user, to=old_email)
        return user

    # -- sessions ----------------------------------------------------------------------------

    def sessions(self, sso: SSOSession) -> list[SessionView]:
        views = []
        for other in self._p.sessions.for_user(sso.uid):
            names = []
            for client_id in other.clients:
                client = self._p.clients.get(client_id)
                names.append(client.name if client else client_id)
            views.append(SessionView(
                handle=session_handle(other.sid), current=other.sid == sso.sid,
                device=describe_device(other.user_agent), address=other.address,
                created_at=_ts(other.created_at), last_seen=_ts(other.last_seen),
                clients=names, acr=other.acr, amr=list(other.amr)))
        return sorted(views, key=lambda v: (not v.current, -v.last_seen.timestamp()))

    def end_session(self, sso: SSOSession, handle: str, caller: Caller) -> bool:
        """End one of the person's sessions (this one too, if asked). False if unknown."""
        for other in self._p.sessions.for_user(sso.uid):
            if secrets.compare_digest(session_handle(other.sid), handle):
                self._p.end_session(other, reason="ended_by_user", address=caller.address,
                                    request_id=caller.request_id)
                self._record("session.end", sso.user_id, caller,
                             details={"current": other.sid == sso.sid})
                return True
        return False

    def end_other_sessions(self, sso: SSOSession, caller: Caller,
                           reason: str = "ended_by_user") -> int:
        ended = 0
        for other in self._p.sessions.for_user(sso.uid):
            if other.sid != sso.sid:
                self._p.end_session(other, reason=reason, address=caller.address,
                                    request_id=caller.request_id)
                ended += 1
        self._record("session.end_others", sso.user_id, caller, reason=reason,
                     details={"sessions": ended})
        return ended

    # -- connected applications -----------------------------------------------------------

    def connected_apps(self, user_id: uuid.UUID | str) -> list[ConnectedApp]:
        uid = uuid.UUID(str(user_id))
        with Session(self._engine) as session:
            last_used: dict[str, datetime] = {}
            for grant in repository.list_grants(session=session, user_id=uid):
                last_used.setdefault(grant.client_id, _aware(grant.created_at))
        apps = []
        for consent in self._p.consents.list(uid):
            client = self._p.clients.get(consent.client_id)
            apps.append(ConnectedApp(
                client_id=consent.client_id, name=client.name if client else consent.client_id,
                scopes=consent.scope.split(), granted_at=_aware(consent.granted_at),
                implied=consent.implied, first_party=bool(client and client.first_party),
                last_used=last_used.get(consent.client_id)))
        return sorted(apps, key=lambda a: a.name.lower())

    def revoke_app(self, sso: SSOSession, client_id: str, caller: Caller) -> None:
        """Withdraw the authorisation given to an application: consent removed, its tokens
        revoked, and its sessions ended (back-channel logout to the client)."""
        uid = sso.uid
        self._p.revoke_consent(uid, client_id, actor=str(uid), reason="retrait par la personne")
        client = self._p.clients.get(client_id)
        deliveries = []
        for other in self._p.sessions.for_user(uid):
            if client_id not in other.clients:
                continue
            self._p.sessions.remove_client(other, client_id)
            if client is not None and client.backchannel_logout_uri:
                token = self._p.notifier.logout_token(
                    client, sub=self._p.subject_for(uid, client), sid=other.sid)
                deliveries.append(LogoutDelivery(client_id, client.backchannel_logout_uri, token))
        self._p.notifier.notify(deliveries)
        self._record("application.revoke", uid, caller, target=client_id,
                     details={"sessions_notified": len(deliveries)})

    # -- activity, export, deletion -------------------------------------------------------

    def activity(self, user_id: uuid.UUID | str, *, limit: int = 100) -> list[AuditEvent]:
        """What the person did, and what was done for them under a mandate (a mandatary's
        acts and the mandates given or withdrawn name them as ``target``)."""
        own = self._p.journal.search(AuditQuery(actor=str(user_id)), limit=limit)
        for_them = [e for prefix in ("mandate.", "delegation.")
                    for e in self._p.journal.search(
                        AuditQuery(target=str(user_id), action=prefix), limit=limit)
                    if e.actor != str(user_id)]
        merged = {e.seq: e for e in own + for_them}
        return sorted(merged.values(), key=lambda e: e.seq, reverse=True)[:limit]

    def export(self, sso: SSOSession, caller: Caller) -> dict[str, Any]:
        """Everything held about the person, secrets excepted (hashes, keys, session ids)."""
        user = self._p.users.require(sso.user_id)
        uid = user.id
        with Session(self._engine) as session:
            totps, codes, passkeys = repository.list_factors(session=session, user_id=uid)
            grants = repository.list_grants(session=session, user_id=uid)
            data: dict[str, Any] = {
                "factors": {
                    "totp": [{"name": t.name, "confirmed": t.confirmed,
                              "created_at": t.created_at, "last_used_at": t.last_used_at}
                             for t in totps],
                    "recovery_codes": {"total": len(codes),
                                       "unused": sum(1 for c in codes if c.used_at is None)},
                    "passkeys": [{"name": k.name, "created_at": k.created_at,
                                  "last_used_at": k.last_used_at, "backed_up": k.backed_up,
                                  "transports": json.loads(k.transports or "[]")}
                                 for k in passkeys],
                },
                "authorisations": [{"client_id": g.client_id, "scope": g.scope,
                                    "created_at": g.created_at, "acr": g.acr,
                                    "amr": json.loads(g.amr or "[]"),
                                    "revoked_at": g.revoked_at,
                                    "revoked_reason": g.revoked_reason} for g in grants],
            }
        export: dict[str, Any] = {
            "format": "martinique-connect-export/1",
            "exported_at": utcnow(),
            "account": {
                "id": str(uid), "email": user.email, "email_verified": user.email_verified,
                "given_name": user.given_name, "family_name": user.family_name,
                "birthdate": user.birthdate, "phone_number": user.phone_number,
                "phone_number_verified": user.phone_number_verified,
                "address": user.address_claim(), "locale": user.locale,
                "has_password": bool(user.password_hash),
                "password_changed_at": user.password_changed_at, "locked": user.locked,
                "created_at": user.created_at, "updated_at": user.updated_at,
            },
            "consents": [{"client_id": a.client_id, "client_name": a.name, "scope": a.scopes,
                          "granted_at": a.granted_at, "implied": a.implied}
                         for a in self.connected_apps(uid)],
            "sessions": [{"current": s.current, "device": s.device, "address": s.address,
                          "created_at": s.created_at, "last_seen": s.last_seen,
                          "applications": s.clients, "acr": s.acr, "amr": s.amr}
                         for s in self.sessions(sso)],
            "memberships": [{"organisation": g.organisation,
                             "organisation_name": g.organisation_name, "role": g.role}
                            for g in self._p.organisations.roles_of(uid)],
            "civil_status": {"gender": user.gender, "birthplace": user.birthplace,
                             "birthcountry": user.birthcountry,
                             "verified_at": user.civil_status_verified_at},
            "mandates": [{"id": str(m.id), "mandator": str(m.mandator_id),
                          "mandatary": str(m.mandatary_id), "origin": m.origin,
                          "relationship": m.relationship, "clients": m.client_list(),
                          "scopes": m.scope_list(), "starts_at": m.starts_at,
                          "ends_at": m.ends_at, "status": m.status,
                          "revoked_at": m.revoked_at}
                         for m in self._p.mandates.given(uid) + self._p.mandates.received(uid)],
            **data,
            "activity": [{"at": e.at, "action": e.action, "outcome": e.outcome,
                          "target": e.target, "address": e.address, "reason": e.reason,
                          "details": json.loads(e.details or "{}")}
                         for e in self.activity(uid, limit=1000)],
        }
        self._record("account.export", uid, caller)
        return export

    def delete_account(self, sso: SSOSession, password: str, caller: Caller) -> bool:
        """Delete the account after the password was given again: personal data erased,
        tokens revoked, clients told; the journal keeps only the random account id."""
        user = self._p.users.require(sso.user_id)
        try:
            self._p.users.authenticate_password(user.email, password, address=caller.address,
                                                request_id=caller.request_id)
        except LoginFailed:
            self._record("account.delete", user.id, caller, outcome="failure",
                         reason="wrong_password")
            return False
        self._send("deleted", user, to=user.email)
        self._p.delete_user(user.id, actor=str(user.id), reason="demande de la personne")
        return True

    def close(self) -> None:
        self._work.shutdown(wait=True)
        self.mail.close()
