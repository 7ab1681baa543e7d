"""The service catalogue of the Réseau multiservices (action 21): sites, offerings, orders,
provisioning, inventory, fibre reserves and cost statements; an OAuth2 resource server
under ``/api/services/``.

The public API (what ``admin_ui`` and the composition root may use) is listed in ``__all__``.
"""

from services_mutualises.interfaces import (
    ArchiveSpaces,
    ClientRegistrar,
    OrganisationDirectory,
    OrganisationInfo,
    RegisteredClient,
)
from services_mutualises.schemas import (
    OfferingPublic,
    OrderCreate,
    OrderItemCreate,
    OrderPublic,
    Principal,
    SharingRuleCreate,
    SiteCreate,
    SitePublic,
    Statement,
    SubscriptionPublic,
)
from services_mutualises.services import (
    METHOD_LABELS,
    ORDER_LABELS,
    SUBSCRIPTION_LABELS,
    ServiceCatalogue,
    check_transition,
)
from services_mutualises.sharing import euros, largest_remainder

__all__ = [
    "ArchiveSpaces",
    "check_transition",
    "ClientRegistrar",
    "euros",
    "largest_remainder",
    "METHOD_LABELS",
    "OfferingPublic",
    "ORDER_LABELS",
    "OrderCreate",
    "OrderItemCreate",
    "OrderPublic",
    "OrganisationDirectory",
    "OrganisationInfo",
    "Principal",
    "RegisteredClient",
    "ServiceCatalogue",
    "SharingRuleCreate",
    "SiteCreate",
    "SitePublic",
    "Statement",
    "SUBSCRIPTION_LABELS",
    "SubscriptionPublic",
]
