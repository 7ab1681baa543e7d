"""schemathesis against the running platform's /openapi.json: no 5xx, every answer conforms to
the documented status codes, content types and schemas. Bounded in time (few examples per
operation). Every API the domains add to the schema is covered without changing this test.

Two runs: without credentials (most of the archive and catalogue API answers 401 there), and
with a bearer token of a client acting for a commune (Macouba) holding every archive and
catalogue scope, so the requests reach the routes' own validation and services."""

from __future__ import annotations

from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis

from tests.conftest import Platform

# The operations that must be in the schema (so the run is never empty).
REQUIRED = {("GET", "/healthz"), ("GET", "/readyz")}
MAX_EXAMPLES = 20
# The authenticated run does real work (deposits, orders): fewer examples per operation keep
# the file within about a minute per backend.
AUTHENTICATED_EXAMPLES = 6
# A reference commune no other test uses: the deposits and orders of the run stay out of
# the other tests' way on the session's platform.
ORGANISATION = "macouba"
SCOPES = ["archives:read", "archives:write", "archives:admin",
          "services:read", "services:order", "services:admin"]


@pytest.fixture
def api_schema(platform: Platform) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(platform.url + "/openapi.json")


def test_the_schema_lists_the_operations(api_schema: schemathesis.BaseSchema) -> None:
    operations = {(op.ok().method.upper(), op.ok().path)  # type: ignore[union-attr]
                  for op in api_schema.get_all_operations()}
    assert operations >= REQUIRED, operations


def _run(api_schema: schemathesis.BaseSchema, examples: int,
         headers: dict[str, str] | None = None, excluded: list[Any] | None = None) -> list[str]:
    # schemathesis' own pytest plugin does not load under pytest 9: one Hypothesis run per
    # operation instead, with every default check.
    failures = []
    for result in api_schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr] # an invalid schema raises here

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(max_examples=examples, deadline=None, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, excluded_checks=excluded)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - gather every operation's failure
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    return failures


def test_api_conforms_to_its_schema(api_schema: schemathesis.BaseSchema) -> None:
    failures = _run(api_schema, MAX_EXAMPLES)
    assert not failures, "\n\n".join(failures)


@pytest.fixture
def bearer(platform: Platform) -> dict[str, str]:
    """A client acting for a demo organisation, with every archive and catalogue scope."""
    client: dict[str, Any] = platform.create_client(
        name="Fuzz " + ORGANISATION, organisation=ORGANISATION, redirect_uris=[],
        grant_types=["client_credentials"], scopes=SCOPES)
    response = httpx.post(f"{platform.url}/token", data={
        "grant_type": "client_credentials", "scope": " ".join(SCOPES)},
        auth=(client["client_id"], client["client_secret"]))
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_authenticated_api_conforms_to_its_schema(api_schema: schemathesis.BaseSchema,
                                                  bearer: dict[str, str]) -> None:
    # Every check but "schema-valid data is accepted": past the token, a schema-valid request
    # may still be refused by a business rule, with a documented 422 (a deposit whose
    # metadata is not the JSON the service expects, or whose digests differ from its files;
    # an unknown offering code).
    failures = _run(api_schema, AUTHENTICATED_EXAMPLES, bearer,
                    excluded=[schemathesis.checks.positive_data_acceptance])
    assert not failures, "\n\n".join(failures)


def test_the_deposit_body_is_documented(api_schema: schemathesis.BaseSchema) -> None:
    """The deposit reads its multipart body by hand: /openapi.json still describes it."""
    body = api_schema.raw_schema["paths"]["/api/archives/deposits"]["post"]["requestBody"]
    form = body["content"]["multipart/form-data"]
    assert body["required"] is True
    assert set(form["schema"]["required"]) == {"metadata", "file"}
    assert form["schema"]["properties"]["file"]["items"]["format"] == "binary"
