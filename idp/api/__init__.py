"""HTTP routes of the OpenID provider."""

from fastapi import APIRouter

from idp.api import (
    account,
    authorize,
    delegation,
    delegation_console,
    demo_inbox,
    discovery,
    franceconnect,
    language,
    login,
    oauth,
    register,
    second_factor,
    security,
)

# One flat router of the pages' routes, in this order (the first route matching a path wins).
# Not ``include_router`` of each module: FastAPI matches an included router by matching
# every route of every router it includes, level after level, and again when it hands the
# request down (≈ 10 % of a sign-in page's CPU with two levels); copying the routes leaves
# one level (the application's ``include_router`` of this router). The module routers
# declare no prefix, dependency or option of their own that this copy would lose.
router = APIRouter()
for _module in (discovery, authorize, login, second_factor, security, oauth, register, account,
                demo_inbox, language, franceconnect, delegation, delegation_console):
    _sub = _module.router
    assert not _sub.prefix and not _sub.dependencies and not _sub.callbacks, _module.__name__
    router.routes.extend(_sub.routes)

__all__ = ["router"]
