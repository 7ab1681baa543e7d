"""What the archival service needs from elsewhere, as Protocols plugged in by
``martinique_connect/wiring.py``."""

from __future__ import annotations

from typing import Protocol


class OrganisationDirectory(Protocol):
    """The organisations known to the platform (held by the IdP)."""

    def exists(self, slug: str) -> bool: ...


class Signer(Protocol):
    """Signs with the platform's key (JWS compact serialisation) and verifies against the
    published keys (the IdP's signing keys, through ``martinique_connect/wiring.py``)."""

    def sign(self, payload: bytes) -> str: ...

    def verify(self, token: str) -> bytes | None:
        """The payload when the signature is valid under a published key, else None."""
        ...

    def key_published(self, token: str) -> bool:
        """Whether the key that signed ``token`` (its ``kid``) is still published."""
        ...
