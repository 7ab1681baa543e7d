"""What the service catalogue needs from the other domains, as Protocols.

``martinique_connect/wiring.py`` plugs the implementations in: the IdP's organisations and
clients, and the archival service's spaces. services_mutualises never imports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class OrganisationInfo:
    """A member of the CUP as the catalogue needs it."""

    slug: str
    name: str
    kind: str
    population: int | None


@runtime_checkable
class OrganisationDirectory(Protocol):
    """The organisations (held by the IdP)."""

    def get(self, slug: str) -> OrganisationInfo | None:
        """The organisation, or None when unknown."""
        ...

    def all(self) -> list[OrganisationInfo]:
        """Every organisation of the CUP."""
        ...

    def contacts(self, slug: str) -> list[str]:
        """E-mail addresses to notify about the organisation's orders (its buyers and
        administrators)."""
        ...


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    client_secret: str


@runtime_checkable
class ClientRegistrar(Protocol):
    """Registers the OIDC clients the « Martinique Connect » offering provisions."""

    def register(self, *, client_id: str, name: str, organisation: str,
                 redirect_uris: list[str], actor: str) -> RegisteredClient:
        """Create the confidential client ``client_id`` (code flow + PKCE); when it already
        exists (a retried provisioning), enable it again and issue a new secret. Returns the
        plain secret, which is never stored in clear."""
        ...

    def disable(self, client_id: str, *, actor: str, reason: str) -> None:
        """Disable the client and revoke every token issued to it."""
        ...

    def set_redirect_uris(self, client_id: str, redirect_uris: list[str], *, actor: str,
                          reason: str) -> None:
        """Replace the client's redirect URIs (validated as at registration); its secret and
        tokens are unchanged."""
        ...

    def enable(self, client_id: str, *, actor: str, reason: str) -> None:
        """Enable a disabled client again, with its secret and redirect URIs unchanged (the
        tokens revoked when it was disabled stay revoked)."""
        ...

    def remove(self, client_id: str, *, actor: str, reason: str) -> None:
        """Delete the client (undo of a provisioning that failed further on); no error when
        it does not exist."""
        ...


class SpaceUsage(Protocol):
    @property
    def used_bytes(self) -> int: ...
    @property
    def quota_bytes(self) -> int | None: ...
    @property
    def is_open(self) -> bool: ...


@runtime_checkable
class ArchiveSpaces(Protocol):
    """The archival service's spaces (exported by ``archivage``)."""

    def set_quota(self, organisation: str, quota_bytes: int, *, actor: str, reason: str
                  ) -> None:
        """Open the organisation's space, or resize it, to ``quota_bytes``."""
        ...

    def close_space(self, organisation: str, *, actor: str, reason: str) -> None:
        """Refuse new deposits; existing records stay under their rules."""
        ...

    def usage(self, organisation: str) -> SpaceUsage:
        ...
