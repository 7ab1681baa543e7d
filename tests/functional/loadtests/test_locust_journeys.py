"""A tiny locust session (a few seconds, four simulated people) against the live platform, on
each backend: every journey of ``loadtests/`` completes, with no failed request."""

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
    """The JOURNEY names declared in loadtests/journeys/idp.py (read, not imported: importing
    locust would monkey-patch this process with gevent)."""
    tree = ast.parse((LOADTESTS / "journeys" / "idp.py").read_text())
    return {node.value.value for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str) and node.targets[0].id.isupper()}  # type: ignore[attr-defined]


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
        [sys.executable, str(LOADTESTS / "prepare.py"), "--users", "4", "--out", str(config)],
        env=env, capture_output=True, text=True, timeout=300)
    assert prepared.returncode == 0, prepared.stderr
    assert config.stat().st_mode & 0o777 == 0o600  # it holds client secrets
    data = json.loads(config.read_text())
    assert data["issuer"] == platform.url and len(data["users"]) == 4

    prefix = tmp_path / "run"
    result = subprocess.run(
        [str(BIN / "locust"), "-f", str(LOADTESTS / "locustfile.py"), "--headless",
         "--host", platform.url, "-u", "4", "-r", "4", "-t", "10s", "--stop-timeout", "10",
         "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"],
        env={**env, "LOADTEST_CONFIG": str(config), "LOADTEST_WAIT": "0.2"},
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    with open(f"{prefix}_stats.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    journeys = {r["Name"]: r for r in rows if r["Type"] == "JOURNEY"}
    assert len(journey_names()) == 4
    summary = [(r["Type"], r["Name"], r["Request Count"], r["Failure Count"],
                r["Average Response Time"]) for r in rows]
    assert set(journeys) == journey_names(), summary
    for name, row in journeys.items():
        assert int(row["Request Count"]) >= 1, name
        assert int(row["Failure Count"]) == 0, name
    total = next(r for r in rows if r["Name"] == "Aggregated")
    assert int(total["Failure Count"]) == 0
    hops = {r["Name"] for r in rows if r["Type"] in ("GET", "POST")}
    assert {"/authorize", "/connexion", "/connexion/consentement", "/authorize/continue",
            "/token (authorization_code)", "/userinfo", "/token (client_credentials)",
            "/introspect"} <= hops
