"""``make loadtest``: locust against a throw-away ``martinique-connect serve`` on 127.0.0.1.

    .venv/bin/python loadtests/run.py [--journeys mix] [--users 6] [--seconds 20]
                                      [--workers 2] [--accounts N] [--out var/loadtest]

The same set-up as ``make bench`` (``bench/run.py``, reused here): a temporary data
directory, a temporary PostgreSQL database and Redis key prefix removed at the end (without
them: SQLite, the in-process store and ONE worker, said loudly), ``serve --workers N``
stopped at the end whatever happens. ``loadtests/prepare.py`` registers the applications and
creates the test accounts, then locust runs headless once per (journey, user count) step:

* ``--journeys``: ``mix`` (every journey, weighted as in ``locustfile.py``) or a
  comma-separated list of ``first-sign-in``, ``sso``, ``resource-server``, ``archives``,
  ``catalogue`` (one run each);
* ``--users``: one or more user counts (``1,2,4,8``), one run per count (the "steps").

For each step the report directory gets locust's CSV files (``<step>_stats.csv``,
``<step>_stats_history.csv`` with every entry's history, ``<step>_failures.csv``) and HTML
report (``<step>.html``); ``summary.json`` and ``summary.md`` add what locust cannot see: the
CPU time the server's processes used during the step (journeys per CPU-second = per core)
and the largest resident memory of each worker. Exit code 1 when a request failed.
"""

# Fixed local commands and 127.0.0.1 URLs built here, never user input:
# ruff: noqa: S603

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# bench/run.py (``make bench``): throw-away backends, server start and stop, reused as is.
_spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)
# bench waits 60 s for /healthz; on a machine shared with other jobs the workers' start-up
# can take longer: give them 180 s (start_server looks wait_ready up in its module).
_wait_ready = bench.wait_ready
bench.wait_ready = lambda url, proc, timeout=180: _wait_ready(url, proc, timeout)  # type: ignore[attr-defined]

JOURNEYS = {  # name on the command line -> locust User classes
    "mix": ["FirstSignInUser", "SsoUser", "ResourceServerUser", "ArchiveUser", "CatalogueUser"],
    "first-sign-in": ["FirstSignInUser"],
    "sso": ["SsoUser"],
    "resource-server": ["ResourceServerUser"],
    "archives": ["ArchiveUser"],
    "catalogue": ["CatalogueUser"],
}


def say(message: str) -> None:
    print(f"[loadtest] {message}", flush=True)


@dataclass
class Step:
    label: str
    journeys: str
    users: int
    seconds: int
    workers: int
    backend: str
    cpu_seconds: float = 0.0  # server processes, during the step
    locust_cpu_seconds: float = 0.0
    worker_rss_mb: list[float] = field(default_factory=list)  # peak, per worker
    worker_uss_mb: list[float] = field(default_factory=list)  # peak unique memory, per worker
    requests: int = 0
    failures: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per JOURNEY entry


def server_processes(pid: int) -> tuple[psutil.Process, list[psutil.Process]]:
    """The server's main process and its workers (the main process itself with one worker):
    ``serve --workers N`` forks them (same command line as the main process); uvicorn alone
    would spawn them (``multiprocessing.spawn``)."""
    main = psutil.Process(pid)
    command = main.cmdline()
    workers = [p for p in main.children(recursive=True)
               if p.cmdline() == command or "multiprocessing.spawn" in " ".join(p.cmdline())]
    return main, workers or [main]


def cpu_of(processes: list[psutil.Process]) -> dict[int, float]:
    times = {}
    for proc in processes:
        try:
            t = proc.cpu_times()
            times[proc.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return times


class RssSampler(threading.Thread):
    """The largest resident set size (RSS: with the shared libraries' pages) and unique set
    size (USS: what the worker alone holds, freed if it stopped) of each worker, sampled
    twice a second."""

    def __init__(self, workers: list[psutil.Process]) -> None:
        super().__init__(daemon=True)
        self.workers = workers
        self.peak = {p.pid: 0 for p in workers}
        self.peak_uss = {p.pid: 0 for p in workers}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.sample()

    def sample(self) -> None:
        for proc in self.workers:
            try:
                full = proc.memory_full_info()
                self.peak[proc.pid] = max(self.peak[proc.pid], full.rss)
                self.peak_uss[proc.pid] = max(self.peak_uss[proc.pid], full.uss)
            except psutil.NoSuchProcess:
                continue


def read_stats(prefix: Path) -> tuple[int, int, list[dict[str, Any]]]:
    """(requests, failures, JOURNEY rows) from locust's ``<prefix>_stats.csv``."""
    requests = failures = 0
    rows: list[dict[str, Any]] = []
    with open(f"{prefix}_stats.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Name"] == "Aggregated":
                continue
            if row["Type"] == "JOURNEY":
                rows.append({
                    "journey": row["Name"], "count": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]),
                    "per_second": float(row["Requests/s"]),
                    "median_ms": float(row["Median Response Time"]),
                    "p95_ms": float(row["95%"]), "p99_ms": float(row["99%"]),
                    "max_ms": float(row["Max Response Time"]),
                })
            else:
                requests += int(row["Request Count"])
                failures += int(row["Failure Count"])
    return requests, failures, rows


def start_profilers(step: Step, workers: list[psutil.Process], out: Path) -> list[Any]:
    """``py-spy record`` on each worker for the step (every active thread: argon2 runs with
    the GIL released, ``--gil`` would hide it). Collapsed stacks in ``<step>-<pid>.txt``,
    summarised by ``bench/profile.py --report FILE --requests N``."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    return [subprocess.Popen(
        [py_spy, "record", "--pid", str(w.pid), "--duration", str(step.seconds), "--rate", "100",
         "--format", "raw", "--nonblocking", "-o", str(out / f"{step.label}-{w.pid}.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for w in workers]


def run_step(step: Step, *, server_pid: int, issuer: str, config: Path, out: Path,
             env: dict[str, str], profile: bool = False) -> Step:
    prefix = out / step.label
    main, workers = server_processes(server_pid)
    watched = [main, *[w for w in workers if w.pid != main.pid]]
    before = cpu_of(watched)
    sampler = RssSampler(workers)
    sampler.start()
    locust_env = {**env, "LOADTEST_CONFIG": str(config)}
    cmd = [
        str(Path(sys.executable).parent / "locust"), "-f", str(HERE / "locustfile.py"),
        "--headless", "--host", issuer, "-u", str(step.users), "-r", str(step.users),
        "-t", f"{step.seconds}s", "--stop-timeout", "10", "--csv", str(prefix),
        "--csv-full-history", "--html", f"{prefix}.html", "--only-summary",
        "--loglevel", "WARNING", *JOURNEYS[step.journeys],
    ]
    say(f"step {step.label}: {step.users} user(s), {step.seconds} s")
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, env=locust_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    profilers = start_profilers(step, workers, out) if profile else []
    output, _ = proc.communicate(timeout=step.seconds + 120)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # locust, once waited for
    for profiler in profilers:
        profiler.wait(timeout=60)
    step.locust_cpu_seconds = round(
        children_after.ru_utime + children_after.ru_stime
        - children_before.ru_utime - children_before.ru_stime, 2)
    sampler.done.set()
    sampler.join()
    sampler.sample()
    after = cpu_of(watched)
    step.cpu_seconds = round(sum(after[pid] - before.get(pid, 0.0) for pid in after), 2)
    step.worker_rss_mb = [round(v / 2**20, 1) for v in sampler.peak.values()]
    step.worker_uss_mb = [round(v / 2**20, 1) for v in sampler.peak_uss.values()]
    (out / f"{step.label}.log").write_text(output)
    step.requests, step.failures, step.rows = read_stats(prefix)
    if proc.returncode not in (0, 1):  # 1: locust's "there were failures"
        say(f"locust exited with {proc.returncode}:\n{output[-3000:]}")
        step.failures = max(step.failures, 1)
    return step


def redis_footprint(url: str, prefix: str, sample: int = 300) -> dict[str, dict[str, float]]:
    """What the server keeps in Redis after the steps, per kind of key (the first two
    segments after the prefix, e.g. ``idp:session``): how many keys, and their mean size
    (``MEMORY USAGE``, on a sample)."""
    import redis

    client = redis.Redis.from_url(url)
    counts: dict[str, int] = {}
    sizes: dict[str, list[int]] = {}
    try:
        for key in client.scan_iter(match=prefix + "*", count=1000):
            kind = ":".join(key.decode()[len(prefix):].split(":")[:2])
            counts[kind] = counts.get(kind, 0) + 1
            if len(sizes.setdefault(kind, [])) < sample:
                sizes[kind].append(int(client.memory_usage(key) or 0))
    finally:
        client.close()
    return {kind: {"keys": counts[kind],
                   "mean_bytes": round(sum(sizes[kind]) / max(len(sizes[kind]), 1))}
            for kind in sorted(counts)}


# --- report -----------------------------------------------------------------------------------


def summary_table(steps: list[Step]) -> str:
    lines = [
        "| étape | utilisateurs | parcours | terminés | échecs | parcours/s | médiane ms | "
        "p95 ms | CPU serveur s | parcours par s CPU | RSS max par worker Mo | "
        "USS max par worker Mo |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for step in steps:
        for row in step.rows:
            # The server's CPU time is per step: per journey only when the step ran one.
            per_cpu = (f"{row['count'] / step.cpu_seconds:.1f}"
                       if step.cpu_seconds and step.journeys != "mix" else "–")
            lines.append(
                f"| {step.label} | {step.users} | {row['journey']} | {row['count']} | "
                f"{row['failures']} | {row['per_second']:.1f} | {row['median_ms']:.0f} | "
                f"{row['p95_ms']:.0f} | {step.cpu_seconds:.1f} | {per_cpu} | "
                f"{', '.join(f'{v:.0f}' for v in step.worker_rss_mb)} | "
                f"{', '.join(f'{v:.0f}' for v in step.worker_uss_mb)} |"
            )
    return "\n".join(lines)


def write_report(out: Path, steps: list[Step], meta: dict[str, Any]) -> None:
    (out / "summary.json").write_text(json.dumps(
        {"meta": meta, "steps": [asdict(s) for s in steps]}, indent=2, ensure_ascii=False))
    header = [f"# make loadtest, {meta['date']}", "",
              f"- serveur : {meta['backend']}, `serve --workers {meta['workers']}`",
              f"- machine : {meta['cpus']} cœurs logiques, {meta['machine']}",
              f"- charge annexe moyenne pendant le test (load average 1 min) : "
              f"{meta['loadavg_before']:.1f} avant, {meta['loadavg_after']:.1f} après", ""]
    redis_lines = ["", "Redis après le test (clés par sorte, taille moyenne) :", ""] + [
        f"- `{kind}` : {v['keys']} clés, {v['mean_bytes']} octets en moyenne"
        for kind, v in meta.get("redis", {}).items()]
    (out / "summary.md").write_text("\n".join(header) + summary_table(steps) + "\n"
                                    + "\n".join(redis_lines) + "\n")


# --- main -------------------------------------------------------------------------------------


def main() -> int:
    # A SIGTERM (make interrupted, CI timeout) unwinds like Ctrl-C: the server is stopped and
    # the throw-away database and Redis keys are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description="Load tests (locust) against a throw-away "
                                     "server on 127.0.0.1.")
    parser.add_argument("--journeys", default="mix",
                        help="mix, or a comma-separated list of " + ", ".join(JOURNEYS))
    parser.add_argument("--users", default="6", help="user counts, e.g. 1,2,4,8 (the mix "
                        "needs 6 to run every journey: weights 2,1,1,1,1)")
    parser.add_argument("--seconds", type=int, default=20, help="duration of each step")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--accounts", type=int, default=0,
                        help="test accounts to create (default: the largest user count; "
                        "each simulated person signs in with an account of their own)")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "loadtest")
    parser.add_argument("--profile", action="store_true",
                        help="sample the workers with py-spy during each step")
    args = parser.parse_args()
    journeys = [j.strip() for j in args.journeys.split(",") if j.strip()]
    unknown = [j for j in journeys if j not in JOURNEYS]
    if unknown:
        parser.error(f"unknown journey: {', '.join(unknown)} ({', '.join(JOURNEYS)})")
    counts = [int(u) for u in args.users.split(",")]
    args.accounts = args.accounts or max(counts)
    if args.accounts < max(counts):
        parser.error("--accounts must be at least the largest user count (one account each)")
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    workers = args.workers
    steps: list[Step] = []
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="mc-loadtest-"))
        stack.callback(shutil.rmtree, work, True)
        database_url = bench.pg_database(stack)  # registered first: dropped last
        prefix = bench.redis_prefix(stack) if database_url else None
        backend = "PostgreSQL + Redis"
        if database_url is None or prefix is None:
            workers, database_url, backend = 1, None, "SQLite + magasin en mémoire (1 worker)"
            say("WARNING: PostgreSQL or Redis unreachable: SQLite, in-process store, ONE "
                "worker. Not the production setup.")
        port = bench.free_port()
        issuer = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MC_")}
        env.update({
            "MC_ISSUER": issuer, "MC_HOST": "127.0.0.1", "MC_PORT": str(port),
            "MC_DATA_DIR": str(work / "data"), "MC_SECRET_KEY": secrets.token_urlsafe(48),
            # every simulated person comes from 127.0.0.1: the per-address throttle would
            # otherwise count them all as one address (failures only, but stay clear of it)
            "MC_ADDRESS_FREE_ATTEMPTS": "1000000",
        })
        if database_url and prefix:
            env.update({"MC_DATABASE_URL": database_url, "MC_REDIS_URL": bench.REDIS_URL,
                        "MC_REDIS_PREFIX": prefix})
        bench.run_cli(env, "db", "upgrade")
        config = work / "config.json"
        prepared = subprocess.run(
            [sys.executable, str(HERE / "prepare.py"), "--users", str(args.accounts),
             "--out", str(config)], env=env, text=True, capture_output=True, timeout=600)
        if prepared.returncode != 0:
            say(f"prepare.py failed:\n{prepared.stderr[-3000:]}")
            return 2
        print(prepared.stdout, end="")
        server_pid = bench.start_server(stack, env, workers, out / "server.log")
        loadavg_before = os.getloadavg()[0]
        for journey in journeys:
            for users in counts:
                step = Step(label=f"{journey}-u{users}", journeys=journey, users=users,
                            seconds=args.seconds, workers=workers, backend=backend)
                steps.append(run_step(step, server_pid=server_pid, issuer=issuer,
                                      config=config, out=out, env=env, profile=args.profile))
        meta = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "backend": backend,
            "workers": workers, "cpus": os.cpu_count(), "machine": platform.processor()
            or platform.machine(), "loadavg_before": loadavg_before,
            "loadavg_after": os.getloadavg()[0], "accounts": args.accounts,
            "redis": redis_footprint(bench.REDIS_URL, prefix) if prefix else {},
        }
        write_report(out, steps, meta)
    print()
    print(summary_table(steps))
    print(f"\nreports: {out} (summary.md, <step>.html, <step>_stats*.csv)")
    failed = sum(s.failures for s in steps) + sum(r["failures"] for s in steps for r in s.rows)
    if failed:
        say(f"{failed} failure(s): see {out}/*_failures.csv and {out}/server.log")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
