"""Martinique Connect's OpenID provider: accounts, sessions, clients, tokens.

The public API (what ``admin_ui`` and the composition root may use) is listed in ``__all__``.
"""

from idp.schemas import ClientCreate, ClientPublic, UserCreate, UserPublic
from idp.services import Provider

__all__ = ["ClientCreate", "ClientPublic", "Provider", "UserCreate", "UserPublic"]
