"""Dependencies of the catalogue's API: the caller (an RFC 9068 access token for the
``services`` resource server, with its scopes) as a :class:`Principal`, and the services."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from plateforme.resource_server import Caller, require_scopes
from services_mutualises.schemas import Principal
from services_mutualises.services import ServiceCatalogue


def get_catalogue(request: Request) -> ServiceCatalogue:
    return request.app.state.services  # type: ignore[no-any-return]


def _principal(scope: str):  # type: ignore[no-untyped-def]
    check = require_scopes("services", scope)

    def dependency(request: Request) -> Principal:
        caller: Caller = check(request)
        return Principal(subject=caller.subject, org=caller.org, roles=caller.roles,
                         is_client=caller.is_client)

    return dependency


CatalogueDep = Annotated[ServiceCatalogue, Depends(get_catalogue)]
Reader = Annotated[Principal, Depends(_principal("services:read"))]
Buyer = Annotated[Principal, Depends(_principal("services:order"))]
Admin = Annotated[Principal, Depends(_principal("services:admin"))]
