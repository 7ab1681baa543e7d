"""Dependencies of the provider's routes: everything comes from ``app.state``.

They are ``async def`` on purpose: they only read attributes, and FastAPI runs a plain
``def`` dependency in the thread pool (a thread hand-off, ~0.2 ms of CPU, per dependency
and per request: four of them on every sign-in page)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from idp.oauth2.integration import StarletteOAuth2Request, StarletteServer, read_oauth2_request
from idp.services import Provider
from plateforme.web import Csrf


async def get_provider(request: Request) -> Provider:
    return request.app.state.provider  # type: ignore[no-any-return]


async def get_server(request: Request) -> StarletteServer:
    return request.app.state.oauth2_server  # type: ignore[no-any-return]


async def get_templates(request: Request) -> Jinja2Templates:
    return request.app.state.templates  # type: ignore[no-any-return]


async def get_csrf(request: Request) -> Csrf:
    return request.app.state.csrf  # type: ignore[no-any-return]


ProviderDep = Annotated[Provider, Depends(get_provider)]
ServerDep = Annotated[StarletteServer, Depends(get_server)]
OAuth2RequestDep = Annotated[StarletteOAuth2Request, Depends(read_oauth2_request)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]
CsrfDep = Annotated[Csrf, Depends(get_csrf)]
