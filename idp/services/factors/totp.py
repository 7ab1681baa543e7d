"""TOTP second factors (RFC 6238 through pyotp): enrolment by QR code, verification.

The secret is encrypted at rest. A code is accepted once: the last accepted time step is
stored and only a later step is accepted afterwards, even inside the same 30 seconds.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pyotp
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select

from idp.i18n import N_, Msg
from idp.models import TotpFactor, User
from idp.services.factors.common import FactorFailed, SecretBox, aware, clean_name
from plateforme.clock import Clock, SystemClock
from plateforme.errors import Conflict, NotFound

ISSUER_NAME = "Martinique Connect"
DEFAULT_NAME = "Application d'authentification"
STEP = 30
VALID_WINDOW = 1  # one step before and after: clocks of phones drift
MAX_FACTORS = 5
PENDING_LIFETIME = timedelta(minutes=15)
WRONG_CODE = N_("Code incorrect ou déjà utilisé.")


@dataclass(frozen=True)
class TotpEnrolment:
    factor_id: uuid.UUID
    secret: str
    uri: str

    @property
    def grouped_secret(self) -> str:
        """The secret in groups of four, easier to type by hand."""
        return " ".join(self.secret[i:i + 4] for i in range(0, len(self.secret), 4))

    def qr_data_uri(self) -> str:
        """The ``otpauth://`` URI as a QR code: an SVG made on the server, as a data URI."""
        import segno  # imported at the first enrolment only (memory per worker)

        return str(segno.make(self.uri, error="m").svg_data_uri(scale=5, border=2))


def normalise_code(code: str) -> str | None:
    digits = "".join(code.split())
    return digits if len(digits) == 6 and digits.isascii() and digits.isdigit() else None


class TotpService:
    def __init__(self, engine: Engine, secret_key: str, *, clock: Clock | None = None) -> None:
        self._engine = engine
        self._box = SecretBox(secret_key, b"totp-secret-at-rest")
        self.clock: Clock = clock or SystemClock()

    # --- enrolment ---------------------------------------------------------------------------

    def begin(self, user: User) -> TotpEnrolment:
        """A pending (unconfirmed) factor for ``user``: the one started less than 15 minutes
        ago, or a new one (older pending ones are dropped)."""
        now = self.clock.now()
        with Session(self._engine, expire_on_commit=False) as session:
            factors = session.exec(
                select(TotpFactor).where(TotpFactor.user_id == user.id)
            ).all()
            if sum(1 for f in factors if f.confirmed) >= MAX_FACTORS:
                raise Conflict(Msg("Vous avez déjà %(count)d applications d'authentification.",
                                    count=MAX_FACTORS))
            for factor in factors:
                if not factor.confirmed:
                    if aware(factor.created_at) > now - PENDING_LIFETIME:
                        return self._enrolment(user, factor)
                    session.delete(factor)
            secret = pyotp.random_base32()
            factor = TotpFactor(user_id=user.id, secret_encrypted=self._box.encrypt(secret),
                                confirmed=False, created_at=now)
            session.add(factor)
            session.commit()
        return self._enrolment(user, factor)

    def pending(self, user: User, factor_id: uuid.UUID | str) -> TotpEnrolment:
        factor = self._get(user.id, factor_id)
        if factor.confirmed:
            raise NotFound(N_("Cet ajout est déjà terminé."))
        return self._enrolment(user, factor)

    def confirm(self, user_id: uuid.UUID, factor_id: uuid.UUID | str, code: str,
                name: str | None) -> TotpFactor:
        """Confirm a pending factor with its first code (which is then used up)."""
        factor = self._get(user_id, factor_id)
        if factor.confirmed:
            raise NotFound(N_("Cet ajout est déjà terminé."))
        if aware(factor.created_at) < self.clock.now() - PENDING_LIFETIME:
            raise FactorFailed(N_("Cet ajout a expiré. Recommencez."))
        step = self._matching_step(factor, code)
        if step is None or not self._use_step(factor.id, step):
            raise FactorFailed(WRONG_CODE)
        with Session(self._engine, expire_on_commit=False) as session:
            stored = session.get(TotpFactor, factor.id)
            assert stored is not None
            stored.confirmed = True
            stored.name = clean_name(name, DEFAULT_NAME)
            stored.created_at = self.clock.now()
            session.add(stored)
            session.commit()
        return stored

    def _enrolment(self, user: User, factor: TotpFactor) -> TotpEnrolment:
        secret = self._box.decrypt(factor.secret_encrypted)
        uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER_NAME)
        return TotpEnrolment(factor_id=factor.id, secret=secret, uri=uri)

    # --- verification ------------------------------------------------------------------------

    def verify(self, user_id: uuid.UUID, code: str) -> TotpFactor | None:
        """The confirmed factor that accepts ``code`` now (and records its step), or None."""
        for factor in self.list(user_id):
            step = self._matching_step(factor, code)
            if step is not None and self._use_step(factor.id, step):
                return factor
        return None

    def _matching_step(self, factor: TotpFactor, code: str) -> int | None:
        digits = normalise_code(code)
        if digits is None:
            return None
        totp = pyotp.TOTP(self._box.decrypt(factor.secret_encrypted))
        current = self.clock.timestamp() // STEP
        for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
            if step > factor.last_step and hmac.compare_digest(totp.at(step * STEP), digits):
                return step
        return None

    def _use_step(self, factor_id: uuid.UUID, step: int) -> bool:
        """Record ``step`` as used, only if no later or equal step was (atomic: two requests
        with the same code cannot both win)."""
        with Session(self._engine) as session:
            result = session.exec(  # type: ignore[call-overload]
                update(TotpFactor)
                .where(col(TotpFactor.id) == factor_id, col(TotpFactor.last_step) < step)
                .values(last_step=step, last_used_at=self.clock.now())
            )
            session.commit()
            return bool(result.rowcount == 1)

    # --- management --------------------------------------------------------------------------

    def list(self, user_id: uuid.UUID) -> list[TotpFactor]:
        with Session(self._engine, expire_on_commit=False) as session:
            return list(session.exec(
                select(TotpFactor).where(TotpFactor.user_id == user_id, col(TotpFactor.confirmed))
                .order_by(col(TotpFactor.created_at))
            ).all())

    def rename(self, user_id: uuid.UUID, factor_id: uuid.UUID | str, name: str) -> TotpFactor:
        factor = self._get(user_id, factor_id)
        with Session(self._engine, expire_on_commit=False) as session:
            factor.name = clean_name(name, DEFAULT_NAME)
            session.add(factor)
            session.commit()
        return factor

    def remove(self, user_id: uuid.UUID, factor_id: uuid.UUID | str) -> TotpFactor:
        factor = self._get(user_id, factor_id)
        with Session(self._engine) as session:
            session.exec(delete(TotpFactor).where(  # type: ignore[call-overload]
                col(TotpFactor.id) == factor.id))
            session.commit()
        return factor

    def _get(self, user_id: uuid.UUID, factor_id: uuid.UUID | str) -> TotpFactor:
        try:
            fid = uuid.UUID(str(factor_id))
        except ValueError:
            raise NotFound("Application d'authentification introuvable.") from None
        with Session(self._engine, expire_on_commit=False) as session:
            factor = session.get(TotpFactor, fid)
        if factor is None or factor.user_id != user_id:
            raise NotFound("Application d'authentification introuvable.")
        return factor

