"""Checking a JWS seal (the archive logbook's, the destruction certificates') against a set
of published keys: shared by the running platform's signer and the verifier used after a
restore, which differ only by where they read the keys."""

from __future__ import annotations

import base64
import json
from abc import ABC, abstractmethod
from typing import Any


class JwksVerifier(ABC):
    """``verify`` and ``key_published`` of ``archivage.interfaces.Signer`` over the JWKS
    that :meth:`_keys` returns."""

    @abstractmethod
    def _keys(self) -> dict[str, Any]:
        """The published keys, as a JWKS."""

    def verify(self, token: str) -> bytes | None:
        from joserfc import jws
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        try:
            keys = KeySet.import_key_set(self._keys())  # type: ignore[arg-type]
            return bytes(jws.deserialize_compact(token, keys, algorithms=["ES256", "RS256"])
                         .payload)
        except (JoseError, ValueError):
            return None

    def key_published(self, token: str) -> bool:
        try:
            raw = token.split(".", 1)[0]
            kid = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))).get("kid")
        except (ValueError, AttributeError):
            return False
        return any(k.get("kid") == kid for k in self._keys().get("keys", []))
