"""A relying party's back-channel logout endpoint, recording what it receives."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.live import LiveServer, free_port, serve


class Receiver:
    def __init__(self, status: int = 200) -> None:
        self.tokens: list[str] = []
        self.status = status
        self.event = threading.Event()

    async def endpoint(self, request: Request) -> Response:
        form = await request.form()
        self.tokens.append(str(form.get("logout_token")))
        self.event.set()
        return Response(status_code=self.status)


@contextmanager
def backchannel_receiver(status: int = 200) -> Iterator[tuple[Receiver, LiveServer]]:
    receiver = Receiver(status)
    app = Starlette(routes=[Route("/bcl", receiver.endpoint, methods=["POST"])])
    with serve(app, free_port()) as live:
        yield receiver, live
