"""schemathesis against the running platform's /openapi.json: no 5xx, every answer conforms to
the documented status codes, content types and schemas. Bounded in time (few examples per
operation). Every API the domains add to the schema is covered without changing this test."""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis

from tests.conftest import Platform

# The operations that must be in the schema (so the run is never empty).
REQUIRED = {("GET", "/healthz"), ("GET", "/readyz")}
MAX_EXAMPLES = 20


@pytest.fixture
def api_schema(platform: Platform) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(platform.url + "/openapi.json")


def test_the_schema_lists_the_operations(api_schema: schemathesis.BaseSchema) -> None:
    operations = {(op.ok().method.upper(), op.ok().path)  # type: ignore[union-attr]
                  for op in api_schema.get_all_operations()}
    assert operations >= REQUIRED, operations


def test_api_conforms_to_its_schema(api_schema: schemathesis.BaseSchema) -> None:
    # schemathesis' own pytest plugin does not load under pytest 9: one Hypothesis run per
    # operation instead, with every default check.
    failures = []
    for result in api_schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr] # an invalid schema raises here

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate()

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - gather every operation's failure
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
