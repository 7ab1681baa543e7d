"""Dependencies of the archival API: the caller (from the access token) as an ``Actor``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from archivage.schemas import Actor
from archivage.services import Archives
from plateforme.resource_server import Caller, require_scopes
from plateforme.web import client_address


def _actor(request: Request, caller: Caller) -> Actor:
    return Actor(subject=caller.subject, organisation=caller.org, roles=caller.roles,
                 scopes=caller.scopes, is_client=caller.is_client,
                 address=client_address(request, request.app.state.trusted_proxies))


def reader(request: Request,
           caller: Caller = Depends(require_scopes("archives", "archives:read"))) -> Actor:
    return _actor(request, caller)


def writer(request: Request,
           caller: Caller = Depends(require_scopes("archives", "archives:write"))) -> Actor:
    return _actor(request, caller)


def administrator(request: Request,
                  caller: Caller = Depends(require_scopes("archives", "archives:admin"))
                  ) -> Actor:
    return _actor(request, caller)


def archives(request: Request) -> Archives:
    return request.app.state.archives  # type: ignore[no-any-return]


Reader = Annotated[Actor, Depends(reader)]
Writer = Annotated[Actor, Depends(writer)]
Administrator = Annotated[Actor, Depends(administrator)]
ArchivesDep = Annotated[Archives, Depends(archives)]
