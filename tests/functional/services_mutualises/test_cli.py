"""The ``services`` command group, run (in process, ``tests.support.cli``) against its own
data directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.support.cli import CliResult, run_cli


def _run(data_dir: Path, *args: str) -> CliResult:
    env = {**os.environ, "MC_DATA_DIR": str(data_dir), "MC_ENVIRONMENT": "test"}
    env.pop("MC_DATABASE_URL", None)
    env.pop("MC_REDIS_URL", None)
    return run_cli(env, *args)


def test_catalogue_orders_and_statement_commands(tmp_path: Path) -> None:
    assert _run(tmp_path, "services", "seed").returncode == 0
    listed = _run(tmp_path, "services", "catalogue", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    codes = {o["code"] for o in json.loads(listed.stdout)}
    assert codes == {"fibre-noire", "acces-thd", "vpn-intersites", "lien-secours-sdis",
                     "hebergement", "archivage", "martinique-connect"}
    orders = _run(tmp_path, "services", "orders", "list", "--json")
    assert orders.returncode == 0 and json.loads(orders.stdout) == []
    statement = _run(tmp_path, "services", "statement", "--month", "2026-11", "--csv")
    assert statement.returncode == 0
    assert statement.stdout.splitlines()[-1].startswith("2026-11;;TOTAL;")
    bad = _run(tmp_path, "services", "statement", "--month", "2026-13")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "erreur : mois invalide : 2026-13 (attendu AAAA-MM)"


def test_statement_close_issues_a_finished_month_once_and_sweep_runs(tmp_path: Path) -> None:
    assert _run(tmp_path, "services", "seed").returncode == 0
    first = _run(tmp_path, "services", "statement", "close", "--month", "2026-01")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("relevé 2026-01 émis le ")
    again = _run(tmp_path, "services", "statement", "close", "--month", "2026-01")
    assert again.returncode == 0 and again.stdout.startswith("relevé 2026-01 déjà émis le ")
    assert again.stdout.split(" : ")[0].split(" le ")[1] == \
        first.stdout.split(" : ")[0].split(" le ")[1]
    future = _run(tmp_path, "services", "statement", "close", "--month", "2099-01")
    assert future.returncode == 2
    assert "n'est pas terminé" in future.stderr
    missing = _run(tmp_path, "services", "statement")
    assert missing.returncode == 2 and "--month" in missing.stderr
    swept = _run(tmp_path, "services", "sweep", "--older-than", "0")
    assert swept.returncode == 0, swept.stderr
    assert swept.stdout.strip() == "rien à reprendre"
