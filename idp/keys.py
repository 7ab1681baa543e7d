"""Signing-key material: generation, encryption at rest, public JWK export.

Private keys are encrypted with a key derived from ``MC_SECRET_KEY`` (HKDF-SHA256 → Fernet).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc.jwk import ECKey, Key, RSAKey, import_key

SUPPORTED_ALGS = ("ES256", "RS256")


class KeyCipher:
    """Encrypts private JWKs at rest."""

    def __init__(self, secret_key: str) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"martinique-connect", info=b"jwk-at-rest"
        ).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt(self, data: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(data).encode()).decode()

    def decrypt(self, token: str) -> dict[str, Any]:
        return dict(json.loads(self._fernet.decrypt(token.encode())))


def generate_key(alg: str) -> Key:
    """A fresh private key for ``alg``, with ``kid`` (its RFC 7638 thumbprint), ``alg``, ``use``."""
    if alg == "ES256":
        key: Key = ECKey.generate_key("P-256", private=True)
    elif alg == "RS256":
        key = RSAKey.generate_key(2048, private=True)
    else:
        raise ValueError(f"unsupported signing algorithm {alg}")
    return import_key(key.as_dict(private=True, kid=key.thumbprint(), alg=alg, use="sig"))


def public_jwk(key: Key) -> dict[str, Any]:
    data = key.as_dict(private=False)
    return {k: data[k] for k in sorted(data)}


def load_private(data: dict[str, Any]) -> Key:
    return import_key(data)
