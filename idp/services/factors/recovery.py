"""Ten single-use recovery codes, shown once and stored as keyed hashes.

Each code has ten characters from a 31-letter alphabet (about 50 bits): with the server key
(HMAC-SHA256 with a key derived from ``MC_SECRET_KEY``) and the throttling of attempts, a fast
hash is enough, as for client secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, func, select

from idp.models import RecoveryCode
from idp.services.factors.common import derive_key
from plateforme.clock import utcnow

COUNT = 10
LENGTH = 10
ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i


def normalise(code: str) -> str:
    return "".join(c for c in code.lower() if c not in " -\t")


def display(code: str) -> str:
    return f"{code[:5]}-{code[5:]}"


class RecoveryCodes:
    def __init__(self, engine: Engine, secret_key: str) -> None:
        self._engine = engine
        self._key = derive_key(secret_key, b"recovery-codes")

    def _digest(self, user_id: uuid.UUID, code: str) -> str:
        return hmac.new(self._key, user_id.bytes + normalise(code).encode(),
                        hashlib.sha256).hexdigest()

    def generate(self, user_id: uuid.UUID) -> list[str]:
        """Replace every code of the person by ten new ones; return them (shown once)."""
        codes = ["".join(secrets.choice(ALPHABET) for _ in range(LENGTH)) for _ in range(COUNT)]
        with Session(self._engine) as session:
            session.exec(delete(RecoveryCode).where(  # type: ignore[call-overload]
                col(RecoveryCode.user_id) == user_id))
            for code in codes:
                session.add(RecoveryCode(user_id=user_id, code_hash=self._digest(user_id, code)))
            session.commit()
        return [display(c) for c in codes]

    def use(self, user_id: uuid.UUID, code: str) -> bool:
        """Spend ``code`` if it is one of the person's unused codes (atomic: a code is never
        accepted twice, even by two simultaneous requests)."""
        value = normalise(code)
        if len(value) != LENGTH or any(c not in ALPHABET for c in value):
            return False
        digest = self._digest(user_id, value)
        with Session(self._engine) as session:
            result = session.exec(  # type: ignore[call-overload]
                update(RecoveryCode)
                .where(col(RecoveryCode.user_id) == user_id,
                       col(RecoveryCode.code_hash) == digest,
                       col(RecoveryCode.used_at).is_(None))
                .values(used_at=utcnow())
            )
            session.commit()
            return bool(result.rowcount == 1)

    def remaining(self, user_id: uuid.UUID) -> int:
        with Session(self._engine) as session:
            return int(session.exec(
                select(func.count()).select_from(RecoveryCode).where(
                    col(RecoveryCode.user_id) == user_id, col(RecoveryCode.used_at).is_(None))
            ).one())

    def clear(self, user_id: uuid.UUID) -> None:
        with Session(self._engine) as session:
            session.exec(delete(RecoveryCode).where(  # type: ignore[call-overload]
                col(RecoveryCode.user_id) == user_id))
            session.commit()
