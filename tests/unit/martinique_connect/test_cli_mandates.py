"""``martinique-connect mandates record|revoke`` (a relationship the collectivity verified)
and ``clients create --delegation-allowed``, as scripts use them (run in process,
``tests.support.cli``)."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.support.cli import CliResult, run_cli


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MC_")}
    env.update(MC_DATA_DIR=str(tmp_path), MC_SECRET_KEY="cli-test-secret")

    def _run(*args: str) -> CliResult:
        return run_cli(env, *args)

    return _run


def test_record_then_revoke_a_parent_mandate(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = run("clients", "create", "--name", "Cantine", "--redirect-uri",
                 "https://cantine.example.mq/cb", "--delegation-allowed", "--json")
    assert client.returncode == 0, client.stderr
    assert json.loads(client.stdout)["delegation_allowed"] is True
    client_id = json.loads(client.stdout)["client_id"]
    parent = run("users", "create", "--email", "parent@example.mq", "--password",
                 "Correct-Horse-Battery-972", "--json")
    assert parent.returncode == 0, parent.stderr
    recorded = run("mandates", "record", "--parent-email", "parent@example.mq",
                   "--relationship", "parent", "--until", "2099-01-01", "--reason",
                   "livret de famille", "--child-given-name", "Léo", "--child-family-name",
                   "Dupont", "--client", client_id, "--json")
    # more than a year ahead: refused, one line, exit 2
    assert recorded.returncode == 2 and "un an" in recorded.stderr
    assert "Traceback" not in recorded.stderr
    until = (date.today() + timedelta(days=180)).isoformat()
    recorded = run("mandates", "record", "--parent-email", "parent@example.mq",
                   "--relationship", "parent", "--until", until, "--reason",
                   "livret de famille", "--child-given-name", "Léo", "--child-family-name",
                   "Dupont", "--client", client_id, "--json")
    assert recorded.returncode == 0, recorded.stderr
    data = json.loads(recorded.stdout)
    assert data["status"] == "active"
    assert data["mandatary_id"] == json.loads(parent.stdout)["id"]
    revoked = run("mandates", "revoke", data["id"], "--reason", "fin de l'autorité parentale")
    assert revoked.returncode == 0, revoked.stderr
    with sqlite3.connect(tmp_path / "martinique-connect.db") as db:
        status, clients = db.execute("SELECT status, clients FROM idp_mandate").fetchone()
        actions = [row[0] for row in db.execute(
            "SELECT action FROM plateforme_audit_event WHERE action LIKE 'mandate.%'")]
    assert status == "revoked" and json.loads(clients) == [client_id]
    assert actions == ["mandate.create", "mandate.revoke"]
    unknown = run("mandates", "record", "--parent-email", "personne@example.mq",
                  "--relationship", "parent", "--until", until, "--reason", "x",
                  "--child-given-name", "A", "--child-family-name", "B")
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
