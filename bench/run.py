"""``make bench``: the peer (panva's oidc-provider) and Martinique Connect under the same load.

Everything is throw-away and local (127.0.0.1 only):

* a temporary data directory;
* a temporary PostgreSQL database ``mc_bench_<hex>`` and a Redis key prefix
  ``mcbench:<hex>:``, both removed at the end (without PostgreSQL or Redis: SQLite and one
  worker, said loudly, since the numbers are then not those of a production deployment);
* a copy of ``/work/shared/bench/peers`` (read-only there; ``run.sh`` runs ``npm ci`` in the
  peer's folder, which needs write access);
* ``martinique-connect serve --workers 2`` in the background, stopped at the end whatever
  happens.

The raw output of ``run.sh compare`` goes to ``bench/results/latest.txt`` (git-ignored),
followed by the ratios ours / peer for each endpoint (median of the rounds); run.sh's
tab-separated results go to ``bench/results/latest.tsv``.

Settings (environment): ``PEERS_DIR`` (the peer folder, default ``/work/shared/bench/peers``),
``BENCH_WORKERS`` (default 2), ``PEER_PORT``, ``MC_BENCH_PG_URL``, ``MC_BENCH_REDIS_URL``, and
every knob of ``run.sh`` (``ROUNDS``, ``DURATION``, ``WARMUP``, ``CONNS``, ``THREADS``) passed
through. ``PYTHONPATH`` reaches the server too: pointing it at a modified copy of the sources
measures that copy against the same peer.
"""

# Fixed local commands and 127.0.0.1 URLs built here, never user input:
# ruff: noqa: S603, S607, S310

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import stat
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
CLI = str(BIN / "martinique-connect")
PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/work/shared/bench/peers"))
PG_ADMIN_URL = os.environ.get("MC_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("MC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
RESULTS = ROOT / "bench" / "results"
TARGET_NAME = "martinique-connect"
PEER_NAME = "oidc-provider"


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_tools() -> None:
    missing = [t for t in ("wrk", "node", "npm", "bash", "python3") if shutil.which(t) is None]
    if missing:
        sys.exit(f"bench: missing tools: {', '.join(missing)} (wrk: apt-get install wrk)")
    if not Path(CLI).exists():
        sys.exit(f"bench: {CLI} not found (make install)")


# --- throw-away backends ----------------------------------------------------------------------


def pg_database(stack: ExitStack) -> str | None:
    """Create ``mc_bench_<hex>``; drop it at the end. None when PostgreSQL does not answer."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        say(f"PostgreSQL not reachable ({type(exc).__name__}: {exc})")
        return None
    name = f"mc_bench_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        say(f"database {name} dropped")

    stack.callback(drop)
    say(f"database {name} created")
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def redis_prefix(stack: ExitStack) -> str | None:
    """A fresh key prefix; its keys are deleted at the end. None when Redis does not answer."""
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=10)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        say(f"Redis not reachable ({type(exc).__name__}: {exc})")
        return None
    prefix = f"mcbench:{secrets.token_hex(6)}:"

    def clean() -> None:
        count = 0
        batch: list[bytes] = []
        for key in client.scan_iter(match=prefix + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                count += client.delete(*batch)
                batch = []
        if batch:
            count += client.delete(*batch)
        client.close()
        say(f"{count} Redis keys under {prefix} deleted")

    stack.callback(clean)
    return prefix


# --- the peer folder --------------------------------------------------------------------------


def writable_peers(stack: ExitStack) -> Path:
    """``run.sh`` runs ``npm ci`` in ``oidc-provider/`` (it writes ``node_modules``): run it
    from a writable copy when the folder is read-only (it is, under CI)."""
    if os.access(PEERS_DIR / "oidc-provider", os.W_OK):
        return PEERS_DIR
    tmp = Path(tempfile.mkdtemp(prefix="mc-bench-peers-"))
    stack.callback(shutil.rmtree, tmp, True)
    copy = tmp / "peers"
    shutil.copytree(PEERS_DIR, copy, ignore=shutil.ignore_patterns("node_modules"))
    for path in [copy, *copy.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    say(f"{PEERS_DIR} is read-only: running from a copy in {copy}")
    return copy


# --- the server -------------------------------------------------------------------------------


def run_cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        sys.exit(f"bench: martinique-connect {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"bench: the server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    sys.exit(f"bench: {url} did not answer within {timeout:.0f} s")


def launch(stack: ExitStack, command: list[str], env: dict[str, str],
           log: Path | None) -> subprocess.Popen[bytes]:
    """Start ``command`` (its output to ``log``, or nowhere), stopped when ``stack`` closes:
    SIGTERM (a server stops its workers, then exits), a kill after 20 s."""
    log_file = log.open("wb") if log is not None else open(os.devnull, "wb")  # noqa: SIM115
    proc = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)

    def stop() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                say(f"{command[0]} did not stop within 20 s: killing it")
                proc.kill()
                proc.wait(timeout=10)
        log_file.close()

    stack.callback(stop)
    return proc


def start_server(stack: ExitStack, env: dict[str, str], workers: int, log: Path) -> int:
    def stopped() -> None:
        how = "SIGTERM" if proc.returncode == -signal.SIGTERM else f"exit code {proc.returncode}"
        say(f"server stopped ({how})")

    stack.callback(stopped)  # registered first: runs once the server is stopped
    proc = launch(stack, [CLI, "serve", "--workers", str(workers)], env, log)
    wait_ready(env["MC_ISSUER"] + "/healthz", proc)
    say(f"server ready (pid {proc.pid}, {workers} worker(s)) on {env['MC_ISSUER']}")
    return proc.pid


# --- results ----------------------------------------------------------------------------------


def read_results(path: Path) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(system, endpoint) -> [(req/s, p99 ms)] per round, from run.sh's results.tsv."""
    rows: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        f = line.split("\t")
        system, endpoint, reqs, dur_us, p99_us = f[0], f[2], int(f[3]), int(f[4]), int(f[7])
        rows[(system, endpoint)].append((reqs / (dur_us / 1e6), p99_us / 1000))
    return rows


def final_table(raw: str) -> str:
    """The table printed by run.sh (from its header line to the blank line after it)."""
    lines = raw.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("system ")), None)
    if start is None:
        return "(no table)"
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return "\n".join(lines[start:end])


def ratio_table(rows: dict[tuple[str, str], list[tuple[float, float]]]) -> str:
    endpoints = list(dict.fromkeys(e for _, e in rows))
    lines = [
        "ratios ours / peer (median of rounds): req/s above 1.00 is faster than the peer, "
        "p99 below 1.00 is better",
        f"{'endpoint':28} {'peer req/s':>10} {'ours req/s':>10} {'req/s ×':>8} "
        f"{'peer p99':>9} {'ours p99':>9} {'p99 ×':>6}",
    ]
    for endpoint in endpoints:
        peer, ours = rows.get((PEER_NAME, endpoint)), rows.get((TARGET_NAME, endpoint))
        if not peer or not ours:
            lines.append(f"{endpoint:28} (missing on one side)")
            continue
        p_rps = statistics.median(r for r, _ in peer)
        o_rps = statistics.median(r for r, _ in ours)
        p_p99 = statistics.median(p for _, p in peer)
        o_p99 = statistics.median(p for _, p in ours)
        lines.append(
            f"{endpoint:28} {p_rps:10.0f} {o_rps:10.0f} {o_rps / p_rps:8.2f} "
            f"{p_p99:9.2f} {o_p99:9.2f} {o_p99 / p_p99:6.2f}"
        )
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------


def main() -> int:
    check_tools()
    workers = int(os.environ.get("BENCH_WORKERS", "2"))
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="mc-bench-"))
        stack.callback(shutil.rmtree, work, True)
        # Registered first, so run last: the server stops before its database is dropped.
        database_url = pg_database(stack)
        prefix = redis_prefix(stack) if database_url else None
        notes: list[str] = []
        if database_url is None or prefix is None:
            workers = 1
            database_url = None
            note = ("PostgreSQL or Redis unreachable: SQLite and an in-process store, ONE "
                    "worker. Not the production setup: do not compare with PostgreSQL+Redis "
                    "runs.")
            notes.append(note)
            say("WARNING: " + note)
        port = free_port()
        issuer = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MC_")}
        env.update({
            "MC_ISSUER": issuer, "MC_HOST": "127.0.0.1", "MC_PORT": str(port),
            "MC_DATA_DIR": str(work / "data"), "MC_SECRET_KEY": secrets.token_urlsafe(48),
        })
        if database_url and prefix:
            env.update({"MC_DATABASE_URL": database_url, "MC_REDIS_URL": REDIS_URL,
                        "MC_REDIS_PREFIX": prefix})
        run_cli(env, "db", "upgrade")
        created = json.loads(run_cli(
            env, "clients", "create", "--name", "bench", "--grant-type", "client_credentials",
            "--scope", "openid", "--json",
        ))
        client_id, secret = created["client_id"], created["client_secret"]
        peers = writable_peers(stack)
        server_pid = start_server(stack, env, workers, work / "server.log")

        run_env = dict(os.environ)
        run_env.update({
            "TARGET_NAME": TARGET_NAME, "TARGET_PIDS": str(server_pid),
            "PORT": os.environ.get("PEER_PORT", str(free_port())), "TMPDIR": str(work),
        })
        say(f"running {peers / 'run.sh'} compare {issuer} {client_id} (secret hidden)")
        proc = subprocess.Popen(
            ["bash", str(peers / "run.sh"), "compare", issuer, client_id, secret],
            env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=str(peers),
        )
        output: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            output.append(line)
        code = proc.wait()
        raw = "".join(output).replace(secret, "<secret>")
        tsv = next(work.glob("oidc-bench.*/results.tsv"), None)
        ratios = ratio_table(read_results(tsv)) if tsv and code == 0 else "(no results)"
        header = [
            f"# make bench, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
            f"# backend: {'PostgreSQL + Redis' if database_url else 'SQLite, in-process store'}"
            f", martinique-connect serve --workers {workers}",
            *(f"# NOTE: {n}" for n in notes),
        ]
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "latest.txt").write_text(
            "\n".join(header) + "\n\n" + raw + "\n" + ratios + "\n"
        )
        if tsv:  # run.sh's own file lives in the throw-away directory
            shutil.copy(tsv, RESULTS / "latest.tsv")
        if code != 0:
            log = (work / "server.log").read_text(errors="replace")[-3000:]
            say(f"run.sh failed (exit {code}); last lines of the server log:\n{log}")
            return code
    # Printed after the cleanup, so that it is the last thing on screen.
    print()
    print(final_table(raw))
    print()
    print(ratios)
    for n in notes:
        print("NOTE: " + n)
    print(f"raw output: {RESULTS / 'latest.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
