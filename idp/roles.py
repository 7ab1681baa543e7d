"""Roles people hold. Platform-wide roles are held in the CTM's organisation."""

from __future__ import annotations

PLATFORM_ROLES = ("ctm_admin", "support", "catalogue_manager", "approver", "archival_authority")
ORGANISATION_ROLES = ("org_admin", "archivist", "buyer", "viewer", "mediator")
ALL_ROLES = PLATFORM_ROLES + ORGANISATION_ROLES
ORGANISATION_KINDS = ("commune", "epci", "ctm", "sdis", "other")
PLATFORM_ORGANISATION = "ctm"

ROLE_LABELS = {
    "ctm_admin": "administrateur de la plateforme (CTM)",
    "support": "assistance aux usagers (CTM)",
    "catalogue_manager": "gestionnaire du catalogue de services (CTM)",
    "approver": "valideur des commandes (CTM)",
    "archival_authority": "autorité d'archives (visa des éliminations)",
    "org_admin": "administrateur de l'organisation",
    "archivist": "archiviste",
    "buyer": "acheteur",
    "viewer": "lecteur",
    "mediator": "médiateur numérique habilité (procurations)",
}
