"""The load-test report tools on locust-shaped CSV files: the summary read by
``loadtests/run.py`` and the latency-against-load charts of ``loadtests/charts.py``."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[3]
HISTORY_FIELDS = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", "50%",
                  "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%",
                  "Total Request Count", "Total Failure Count"]
STATS_FIELDS = ["Type", "Name", "Request Count", "Failure Count", "Median Response Time",
                "Average Response Time", "Min Response Time", "Max Response Time",
                "Requests/s", "95%", "99%"]
JOURNEY = "premiere connexion (authorize, connexion, consentement, token, userinfo)"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"lt_{name}", ROOT / "loadtests" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def write_csv(path: Path, fields: list[str], rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, restval="0")
        writer.writeheader()
        writer.writerows(rows)


def test_run_reads_journeys_and_request_failures_from_locust_stats(tmp_path: Path) -> None:
    run = load("run")
    write_csv(tmp_path / "s_stats.csv", STATS_FIELDS, [
        {"Type": "GET", "Name": "/authorize", "Request Count": 40, "Failure Count": 1},
        {"Type": "POST", "Name": "/token (authorization_code)", "Request Count": 20},
        {"Type": "JOURNEY", "Name": JOURNEY, "Request Count": 20, "Failure Count": 0,
         "Requests/s": 2.5, "Median Response Time": 480, "95%": 900, "99%": 1000,
         "Max Response Time": 1200},
        {"Type": "", "Name": "Aggregated", "Request Count": 80, "Failure Count": 1},
    ])
    requests, failures, rows = run.read_stats(tmp_path / "s")
    assert (requests, failures) == (60, 1)
    assert rows == [{"journey": JOURNEY, "count": 20, "failures": 0, "per_second": 2.5,
                     "median_ms": 480.0, "p95_ms": 900.0, "p99_ms": 1000.0, "max_ms": 1200.0}]
    step = run.Step(label="s", journeys="first-sign-in", users=2, seconds=10, workers=2,
                    backend="PostgreSQL + Redis", cpu_seconds=4.0, worker_rss_mb=[150.0],
                    worker_uss_mb=[120.0], rows=rows)
    table = run.summary_table([step])
    assert "| s | 2 | " + JOURNEY + " | 20 | 0 | 2.5 | 480 | 900 | 4.0 | 5.0 | 150 | 120 |" in table


def test_charts_plot_latency_against_load_from_the_history(tmp_path: Path) -> None:
    charts = load("charts")
    steps = []
    for users, rate, p50 in ((1, 2.0, 400), (2, 3.0, 500), (4, 3.1, 1200)):
        label = f"first-sign-in-u{users}"
        rows: list[dict[str, object]] = [
            {"Timestamp": 1000 + t, "User Count": users, "Type": "JOURNEY", "Name": JOURNEY,
             "Requests/s": rate if t >= 3 else 0.5, "50%": p50 if t >= 3 else 9999,
             "95%": 2 * p50} for t in range(10)]
        rows.append({"Timestamp": 1000, "User Count": users, "Type": "", "Name": "Aggregated",
                     "Requests/s": 99, "50%": "N/A", "95%": "N/A"})
        write_csv(tmp_path / f"{label}_stats_history.csv", HISTORY_FIELDS, rows)
        steps.append({"label": label, "users": users})
    (tmp_path / "summary.json").write_text(json.dumps({"meta": {
        "backend": "PostgreSQL + Redis", "workers": 2, "cpus": 2, "date": "2026-11-29"},
        "steps": steps}))
    point = charts.step_points(tmp_path / "first-sign-in-u2_stats_history.csv")[JOURNEY]
    assert point == {"per_second": 3.0, "p50": 500.0, "p95": 1000.0}  # warm-up left out
    written = charts.draw(tmp_path, tmp_path / "img")
    assert [p.name for p in written] == ["capacite-premiere-connexion.png"]
    assert written[0].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert written[0].stat().st_size > 10_000
