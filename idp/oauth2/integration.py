"""Starlette glue for Authlib's server (Authlib ships none): requests in, responses out.

Authlib's core is synchronous, so the body is read once by an async dependency
(:func:`read_oauth2_request`) and the routes that call the server are plain ``def``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from starlette.datastructures import FormData, QueryParams
from starlette.requests import Request
from starlette.responses import Response

from idp.oauth2.server import ProviderServer
from idp.services import Provider

JSON_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class StarlettePayload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, query: QueryParams, form: FormData | None) -> None:
        self._query = query
        self._form = form
        values: dict[str, Any] = dict(query)
        if form is not None:
            values.update({k: v for k, v in form.items() if isinstance(v, str)})
        self._data = values

    @property
    def data(self) -> dict[str, Any]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        values: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in self._query.multi_items():
            values[key].append(value)
        if self._form is not None:
            for key, value in self._form.multi_items():
                if isinstance(value, str):
                    values[key].append(value)
        return values


class StarletteOAuth2Request(OAuth2Request):  # type: ignore[misc]
    """An Authlib request built from a Starlette request whose form was already read."""

    def __init__(
        self, *, method: str, uri: str, headers: Any, query: QueryParams,
        form: FormData | None, address: str | None = None,
    ) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self._query = query
        self._form_data = form
        self.address = address
        self.payload = StarlettePayload(query, form)

    @property
    def args(self) -> QueryParams:
        return self._query

    @property
    def form(self) -> dict[str, str]:
        if self._form_data is None:
            return {}
        return {k: v for k, v in self._form_data.items() if isinstance(v, str)}


def from_query(provider: Provider, query: str, *, method: str = "GET") -> StarletteOAuth2Request:
    """Rebuild an authorization request from its stored query string (resumed interaction)."""
    return StarletteOAuth2Request(
        method=method, uri=f"{provider.issuer}/authorize?{query}", headers={},
        query=QueryParams(query), form=None,
    )


async def read_oauth2_request(request: Request) -> StarletteOAuth2Request:
    form = None
    if request.method == "POST":
        form = await request.form(max_files=0, max_fields=100, max_part_size=64 * 1024)
    provider: Provider = request.app.state.provider
    uri = provider.issuer + request.url.path
    if request.url.query:
        uri += "?" + request.url.query
    return StarletteOAuth2Request(
        method=request.method, uri=uri, headers=request.headers, query=request.query_params,
        form=form, address=request.client.host if request.client else None,
    )


class StarletteServer(ProviderServer):
    """The provider's authorization server answering Starlette responses."""

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        raise TypeError("build the request with read_oauth2_request() first")

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        merged = dict(headers or [])
        if isinstance(body, dict):
            merged.update(JSON_HEADERS)
            merged["Content-Type"] = "application/json"
            return Response(
                json.dumps(body, separators=(",", ":")), status_code=status, headers=merged
            )
        return Response(body or "", status_code=status, headers=merged)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Signals are not used; audit happens in the services."""
