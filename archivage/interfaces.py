"""What the archival service needs from elsewhere, as Protocols plugged in by
``martinique_connect/wiring.py``."""

from __future__ import annotations

from typing import Protocol


class OrganisationDirectory(Protocol):
    """The organisations known to the platform (held by the IdP)."""

    def exists(self, slug: str) -> bool: ...
