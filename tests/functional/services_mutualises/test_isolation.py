"""Organisation isolation on every endpoint of ``/api/services``: a buyer of Schœlcher never
reads nor acts on what belongs to Le Lamentin (404 for a resource of another organisation,
403 for an action its roles do not allow), lists show only its own, and every endpoint wants
a token with the right scope. The last test fails when an endpoint is missing here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.functional.services_mutualises.conftest import Actors, Api, person_api, site_id

MONTH = "2026-11"


@pytest.fixture(scope="module")
def lamentin(actors: Actors) -> dict[str, str]:
    """Le Lamentin's things: a completed order (THD), its subscription, a held order."""
    site = site_id(actors.buyer, "Hôtel de ville du Lamentin")
    item = {"action": "add", "offering": "acces-thd", "site_id": site}
    done = actors.buyer.post("/orders", {"items": [item]}).json()
    done = actors.approver.post(f"/orders/{done['id']}/approve").json()
    held = actors.buyer.post("/orders", {"items": [item]}).json()
    return {"site": site, "order": done["id"], "held": held["id"],
            "subscription": done["items"][0]["subscription_id"]}


def _ids(data: Any) -> set[str]:
    return {str(x.get("id")) for x in data} if isinstance(data, list) else set()


# (method, path template, check) — the check gets the other organisation's answer
Check = Callable[[httpx.Response, dict[str, str]], None]


def status(*expected: int) -> Check:
    def check(response: httpx.Response, things: dict[str, str]) -> None:
        assert response.status_code in expected, response.text
        for value in things.values():
            assert value not in response.text

    return check


def own_only(response: httpx.Response, things: dict[str, str]) -> None:
    assert response.status_code == 200, response.text
    assert not {things["order"], things["held"], things["subscription"], things["site"]} & (
        _ids(response.json()))
    assert "lamentin" not in {str(x.get("organisation")) for x in response.json()}


def shared(response: httpx.Response, things: dict[str, str]) -> None:
    assert response.status_code == 200  # the catalogue is the same for every member


def statement_own(response: httpx.Response, things: dict[str, str]) -> None:
    assert response.status_code == 200, response.text
    assert "lamentin" not in response.text.lower().replace("hôtel", "")


def site_in_own_org(response: httpx.Response, things: dict[str, str]) -> None:
    assert response.status_code == 201, response.text
    assert response.json()["organisation"] == "schoelcher"


ROUTES: list[tuple[str, str, Any, Check]] = [
    ("GET", "/offerings", None, shared),
    ("GET", "/offerings/acces-thd", None, shared),
    ("POST", "/offerings/acces-thd/versions", {"monthly_cents": 1}, status(403)),
    ("POST", "/offerings/acces-thd/versions/1/state", {"state": "retired"}, status(403)),
    ("POST", "/offerings/acces-thd/sharing-rules",
     {"method": "equal", "effective_from": "2031-01", "reason": "essai"}, status(403)),
    ("GET", "/sites", None, own_only),
    ("POST", "/sites", {"name": "Annexe isolée", "address": "Schœlcher", "latitude": 14.61,
                        "longitude": -61.09}, site_in_own_org),
    ("GET", "/orders", None, own_only),
    ("POST", "/orders", {"items": [{"action": "add", "offering": "acces-thd",
                                    "site_id": "{site}"}]}, status(422)),
    ("POST", "/orders", {"items": [{"action": "delete", "subscription_id": "{subscription}"}]},
     status(422)),
    ("GET", "/orders/{order}", None, status(404)),
    ("POST", "/orders/{held}/cancel", None, status(404)),
    ("POST", "/orders/{held}/approve", None, status(403)),
    ("POST", "/orders/{held}/reject", {"reason": "essai"}, status(403)),
    ("POST", "/orders/{order}/retry", None, status(403)),
    ("GET", "/subscriptions", None, own_only),
    ("GET", "/subscriptions/{subscription}", None, status(404)),
    ("POST", "/subscriptions/{subscription}/secret", None, status(404)),
    ("POST", "/subscriptions/{subscription}/suspend", {"reason": "essai"}, status(403)),
    ("POST", "/subscriptions/{subscription}/resume", {"reason": "essai"}, status(403)),
    ("GET", "/fibre", None, status(403)),
    ("GET", f"/statements?month={MONTH}&organisation=lamentin", None, status(404)),
    ("GET", f"/statements?month={MONTH}", None, statement_own),
    ("GET", f"/statements.csv?month={MONTH}&organisation=lamentin", None, status(404)),
    ("GET", f"/statements.csv?month={MONTH}", None, statement_own),
]


def _fill(value: Any, things: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**things)
    if isinstance(value, dict):
        return {k: _fill(v, things) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, things) for v in value]
    return value


@pytest.mark.parametrize(("method", "path", "body", "check"), ROUTES,
                         ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_other_organisation_gets_nothing(actors: Actors, lamentin: dict[str, str],
                                         method: str, path: str, body: Any, check: Check
                                         ) -> None:
    response = actors.other_buyer.request(method, _fill(path, lamentin),
                                          json=_fill(body, lamentin))
    check(response, lamentin)
    # and Le Lamentin's things are still as they were
    assert actors.buyer.get(f"/orders/{lamentin['held']}").json()["state"] == "held"
    assert actors.buyer.get(f"/subscriptions/{lamentin['subscription']}").json()[
        "state"] == "active"


@pytest.mark.parametrize(("method", "path", "body", "check"), ROUTES,
                         ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_every_endpoint_wants_a_valid_token(platform: Any, lamentin: dict[str, str],
                                            method: str, path: str, body: Any, check: Check
                                            ) -> None:
    anonymous = Api(platform, "")
    response = anonymous.request(method, _fill(path, lamentin), json=_fill(body, lamentin))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"].startswith("application/problem+json")
    forged = Api(platform, "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
    assert forged.request(method, _fill(path, lamentin),
                          json=_fill(body, lamentin)).status_code == 401


def test_scopes_are_required(platform: Any, catalogue: Any, lamentin: dict[str, str]) -> None:
    reader = person_api(platform, ("lamentin", "buyer"), scopes=["services:read"])
    assert reader.get("/orders").status_code == 200
    refused = reader.post("/orders", {"items": [{"action": "add", "offering": "acces-thd",
                                                 "site_id": lamentin["site"]}]})
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    approver = person_api(platform, ("ctm", "approver"), scopes=["services:read"])
    assert approver.post(f"/orders/{lamentin['held']}/approve").status_code == 403


def test_the_ctm_sees_every_organisation(actors: Actors, lamentin: dict[str, str]) -> None:
    orders = _ids(actors.approver.get("/orders").json())
    assert {lamentin["order"], lamentin["held"]} <= orders
    assert lamentin["subscription"] in _ids(actors.approver.get("/subscriptions").json())
    statement = actors.approver.get(f"/statements?month={MONTH}").json()
    assert "lamentin" in {m["organisation"] for m in statement["members"]}


def test_every_endpoint_is_in_the_table(platform: Any) -> None:
    tested = {(m, "/api/services" + p.split("?")[0]) for m, p, _, _ in ROUTES}
    normalised = set()
    for method, path in tested:
        for old, new in (("acces-thd", "{code}"), ("{held}", "{order_id}"),
                         ("{order}", "{order_id}"), ("{subscription}", "{subscription_id}"),
                         ("/versions/1/", "/versions/{version}/")):
            path = path.replace(old, new)
        normalised.add((method, path))
    # every route of the API is documented: the OpenAPI document lists them all
    openapi = httpx.get(f"{platform.url}/openapi.json").json()
    routes = {(method.upper(), path) for path, operations in openapi["paths"].items()
              if path.startswith("/api/services") for method in operations}
    assert len(routes) == 22
    assert routes - normalised == set()
