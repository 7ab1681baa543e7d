"""Martinique Connect's OpenID provider: accounts, sessions, clients, tokens.

The public API (what ``admin_ui`` and the composition root may use) is listed in ``__all__``.
"""

from idp.roles import (
    ORGANISATION_ROLES,
    PLATFORM_ORGANISATION,
    PLATFORM_ROLES,
    ROLE_LABELS,
)
from idp.schemas import (
    AUTH_METHODS,
    GRANT_TYPES,
    SCOPES,
    ClientCreate,
    ClientPublic,
    UserCreate,
    UserPublic,
)
from idp.services import Provider, RoleGrant
from idp.services.password_policy import assess as assess_password

__all__ = [
    "assess_password",
    "AUTH_METHODS",
    "ClientCreate",
    "ClientPublic",
    "GRANT_TYPES",
    "ORGANISATION_ROLES",
    "PLATFORM_ORGANISATION",
    "PLATFORM_ROLES",
    "Provider",
    "ROLE_LABELS",
    "RoleGrant",
    "SCOPES",
    "UserCreate",
    "UserPublic",
]
