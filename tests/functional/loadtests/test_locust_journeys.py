"""A tiny locust session (20 seconds, six simulated people: one per kind of journey)
against the live platform, on each backend: every journey of ``loadtests/`` completes, with no
failed request."""

from __future__ import annotations

import ast
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
LOADTESTS = ROOT / "loadtests"
BIN = Path(sys.executable).parent



def journey_names() -> set[str]:
    """The JOURNEY names every module of loadtests/journeys/ reports (its ``REPORTED`` list of
    string constants), read, not imported: importing locust would monkey-patch this process
    with gevent."""
    names: set[str] = set()
    for module in sorted((LOADTESTS / "journeys").glob("*.py")):
        constants: dict[str, str] = {}
        for node in ast.parse(module.read_text()).body:
            if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)):
                continue
            target = node.targets[0].id
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                constants[target] = node.value.value
            elif target == "REPORTED" and isinstance(node.value, ast.List):
                names |= {constants[e.id] for e in node.value.elts if isinstance(e, ast.Name)}
    return names


def _env(platform: object) -> dict[str, str]:
    settings = platform.settings  # type: ignore[attr-defined]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MC_")}
    env.update({"MC_ISSUER": settings.issuer, "MC_DATA_DIR": str(settings.data_dir),
                "MC_SECRET_KEY": settings.secret_key, "MC_REDIS_PREFIX": settings.redis_prefix})
    if settings.database_url:
        env["MC_DATABASE_URL"] = settings.database_url
    if settings.redis_url:
        env["MC_REDIS_URL"] = settings.redis_url
    return env


@pytest.mark.backend
def test_every_journey_completes_without_failure(platform, tmp_path: Path) -> None:
    env = _env(platform)
    config = tmp_path / "config.json"
    prepared = subprocess.run(
        # A commune no other test uses: the journeys' deposits and orders stay out of the other
        # tests' way on the session's platform.
        [sys.executable, str(LOADTESTS / "prepare.py"), "--users", "4", "--out", str(config),
         "--organisation", "grand-riviere"],
        env=env, capture_output=True, text=True, timeout=300)
    assert prepared.returncode == 0, prepared.stderr
    assert config.stat().st_mode & 0o777 == 0o600  # it holds client secrets
    data = json.loads(config.read_text())
    assert data["issuer"] == platform.url and len(data["users"]) == 4
    assert data["organisation"] == "grand-riviere"

    prefix = tmp_path / "run"
    result = subprocess.run(
        [str(BIN / "locust"), "-f", str(LOADTESTS / "locustfile.py"), "--headless",
         "--host", platform.url, "-u", "6", "-r", "6", "-t", "20s", "--stop-timeout", "10",
         "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"],
        env={**env, "LOADTEST_CONFIG": str(config), "LOADTEST_WAIT": "0.2"},
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    with open(f"{prefix}_stats.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    journeys = {r["Name"]: r for r in rows if r["Type"] == "JOURNEY"}
    assert len(journey_names()) == 6
    summary = [(r["Type"], r["Name"], r["Request Count"], r["Failure Count"],
                r["Average Response Time"]) for r in rows]
    assert set(journeys) == journey_names(), summary  # each journey completed at least once
    for name, row in journeys.items():
        assert int(row["Request Count"]) >= 1, name
        assert int(row["Failure Count"]) == 0, name
    total = next(r for r in rows if r["Name"] == "Aggregated")
    assert int(total["Failure Count"]) == 0
    hops = {r["Name"] for r in rows if r["Type"] in ("GET", "POST")}
    assert {"/authorize", "/connexion", "/connexion/consentement", "/authorize/continue",
            "/token (authorization_code)", "/userinfo", "/token (client_credentials)",
            "/introspect", "/api/archives/deposits",
            "/api/archives/units/{id}/objects/{id}/content", "/api/archives/units?q=",
            "/api/services/offerings", "/api/services/orders",
            "/api/services/orders/{id}/approve",
            "/api/services/subscriptions/{id}/secret"} <= hops
