"""A worker builds every route before it serves (``build_routes``, called by the
``serve`` factory): no request pays for FastAPI building a router's routes."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import routing
from fastapi.testclient import TestClient

from martinique_connect.app import build_routes, create_app
from tests.conftest import Backend, make_settings


def test_no_route_is_built_after_build_routes(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    app = build_routes(create_app(make_settings(Backend("embedded"), tmp_path, 8000)))
    built: list[str] = []
    real = routing._populate_api_route_state

    def record(route: object, path: str, *args: object, **kwargs: object) -> None:
        built.append(path)
        real(route, path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(routing, "_populate_api_route_state", record)
    with TestClient(app) as client:
        for path in ("/api/archives/units", "/api/services/catalogue", "/admin/",
                     "/compte/", "/connexion", "/healthz", "/.well-known/openid-configuration"):
            assert client.get(path, follow_redirects=False).status_code < 500
    assert built == []
    # without build_routes, the first requests build them (what the test above would see)
    fresh = create_app(make_settings(Backend("embedded"), tmp_path / "again", 8000))
    with TestClient(fresh) as client:
        client.get("/api/archives/units")
    assert built
