"""HTTP routes of the OpenID provider."""

from fastapi import APIRouter

from idp.api import authorize, discovery, login, oauth

router = APIRouter()
router.include_router(discovery.router)
router.include_router(authorize.router)
router.include_router(login.router)
router.include_router(oauth.router)

__all__ = ["router"]
