"""The administration console, under ``/admin/``: server-rendered French pages over the
domains' public APIs. It signs its users in through the provider like any relying party.

The composition root installs it with::

    provider.clients.ensure(*console_client(settings))      # at initialisation
    app.include_router(router)
    app.add_middleware(ConsoleSessionMiddleware, store=store, https=settings.secure_cookies)
and adds :data:`TEMPLATES_DIR` to the template loader.
"""

from pathlib import Path

from fastapi import APIRouter

from admin_ui.auth import CONSOLE_CLIENT_ID, REQUIRED_ACR, console_client
from admin_ui.auth import router as _auth_router
from admin_ui.permissions import ACTIONS, MATRIX, Permissions
from admin_ui.sessions import ConsoleSessionMiddleware
from admin_ui.views import (
    archives,
    audit,
    clients,
    dashboard,
    keys,
    mandates,
    organisations,
    people,
    services,
)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

router = APIRouter(prefix="/admin", include_in_schema=False)
for _module_router in (_auth_router, dashboard.router, clients.router, people.router,
                       organisations.router, keys.router, audit.router, services.router,
                       archives.router, mandates.router):
    router.include_router(_module_router)

__all__ = [
    "ACTIONS",
    "CONSOLE_CLIENT_ID",
    "ConsoleSessionMiddleware",
    "MATRIX",
    "Permissions",
    "REQUIRED_ACR",
    "TEMPLATES_DIR",
    "console_client",
    "router",
]
