"""A body that is not JSON answers a documented 400 problem in French (schemathesis found the
catalogue's routes answering an undocumented 400 with FastAPI's English message)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Platform
from tests.functional.services_mutualises.conftest import client_api


def test_an_unreadable_body_is_a_documented_400_in_french(platform: Platform,
                                                            catalogue: Any) -> None:
    buyer = client_api(platform, "grand-riviere")
    response = httpx.post(f"{platform.url}/api/services/orders", content=b"\xbfG\x0e5{",
                          headers={"Authorization": f"Bearer {buyer.token}",
                                   "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["title"] == "Requête mal formée"
    assert problem["detail"] == "Le corps de la requête est illisible (JSON attendu)."

    schema = httpx.get(platform.url + "/openapi.json").json()
    for path, operations in schema["paths"].items():
        if path.startswith("/api/services/"):
            for operation in operations.values():
                assert "400" in operation["responses"], path
