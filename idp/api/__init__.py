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

router = APIRouter()
router.include_router(discovery.router)
router.include_router(authorize.router)
router.include_router(login.router)
router.include_router(second_factor.router)
router.include_router(security.router)
router.include_router(oauth.router)
router.include_router(register.router)
router.include_router(account.router)
router.include_router(demo_inbox.router)
router.include_router(language.router)
router.include_router(franceconnect.router)
router.include_router(delegation.router)
router.include_router(delegation_console.router)

__all__ = ["router"]
