"""The one interface every provisioner implements, and what it is given."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from services_mutualises.schemas import ProvisionOutcome


@dataclass(frozen=True)
class SiteRef:
    id: uuid.UUID
    name: str
    latitude: float
    longitude: float
    fibre_reachable: bool


@dataclass(frozen=True)
class ProvisioningRequest:
    """What to provision (or change, or release) for one subscription.

    Provisioning is keyed by ``subscription_id``: doing it again (a retry after a failure)
    finds what an earlier attempt allocated instead of allocating twice.
    """

    subscription_id: uuid.UUID
    item_id: uuid.UUID
    organisation: str
    offering_code: str
    offering_name: str
    characteristics: dict[str, str]
    actor: str
    site: SiteRef | None = None
    site_b: SiteRef | None = None
    resources: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Provisioner(Protocol):
    """Provisions one kind of offering.

    Example::

        outcome = provisioner.provision(request)   # resources recorded on the subscription
        provisioner.release(request)               # at termination (resources in request)
    """

    #: the organisation may hold one live subscription of such an offering at most
    one_per_organisation: bool

    def provision(self, request: ProvisioningRequest) -> ProvisionOutcome:
        """Allocate; idempotent for a given subscription. Raise a ``DomainError`` with a
        French message when it cannot be done (nothing left allocated)."""
        ...

    def modify(self, request: ProvisioningRequest) -> ProvisionOutcome:
        """Apply new characteristics (``request.characteristics``) to what was allocated
        (``request.resources``)."""
        ...

    def release(self, request: ProvisioningRequest, *, undo: bool = False) -> None:
        """Free what was allocated (termination); ``undo`` when a provisioning is rolled back
        because another item of the order failed. Idempotent."""
        ...

    def suspend(self, request: ProvisioningRequest) -> None:
        """Stop the service while keeping what was allocated (``request.resources``), so
        that ``resume`` gives it back as it was. Idempotent."""
        ...

    def resume(self, request: ProvisioningRequest) -> None:
        """Give a suspended service back. Idempotent."""
        ...
