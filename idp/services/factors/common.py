"""What the factor modules share: the error they raise, secret encryption, name cleaning."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from idp.i18n import N_

NAME_MAX = 100


class FactorFailed(Exception):
    """A second factor was refused (wrong, replayed or used code; unknown passkey…). The
    message, for people, never says more than needed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def derive_key(secret_key: str, info: bytes) -> bytes:
    """32 bytes derived from ``MC_SECRET_KEY`` for one purpose (HKDF-SHA256)."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"martinique-connect", info=info
    ).derive(secret_key.encode())


class SecretBox:
    """Fernet encryption at rest with a key of its own (separate HKDF ``info``)."""

    def __init__(self, secret_key: str, info: bytes) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(derive_key(secret_key, info)))

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:  # another secret key: the factor is unusable
            raise FactorFailed(N_("Ce facteur ne peut pas être vérifié.")) from exc


def clean_name(name: str | None, default: str) -> str:
    """A factor's display name: printable, trimmed, at most 100 characters."""
    text = " ".join("".join(c for c in (name or "") if c.isprintable()).split())
    return text[:NAME_MAX] or default


def aware(value: datetime) -> datetime:
    """SQLite gives naive datetimes back: read them as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
