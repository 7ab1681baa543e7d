"""``make bench`` (archives): ingest through the HTTP API against the machine's raw baseline.

* a large file (``BENCH_LARGE_MB``, default 1024 MiB) deposited through
  ``POST /api/archives/deposits`` (streamed multipart), compared in the same run with
  ``sha256sum`` + a copy of the same bytes to the same disk, once per storage location;
* many small documents (``BENCH_SMALL_COUNT``, default 10 000, of 20 KiB), deposited by
  ``BENCH_CLIENTS`` (default 8) concurrent clients in deposits of ``BENCH_BATCH`` files
  (default 100: a depositor sending a folder of documents in one request, as the API
  allows), documents per second; then ``BENCH_SINGLE_COUNT`` (default 500) of them one file
  per request, the other figure; for both, the server's CPU milliseconds per document;
* the server's peak resident memory (``VmHWM`` of the worker that took it) during the large
  deposit.

Two setups (``BENCH_SETUP``):

* ``production`` (the default when PostgreSQL and Redis answer): a throw-away PostgreSQL
  database and Redis key prefix (as ``bench/run.py`` makes them), ``martinique-connect serve
  --workers BENCH_WORKERS`` (default 2, one per core here): the deployment's shape, blobs in
  the two default folders;
* ``embedded`` (the default otherwise, said loudly): SQLite and in-process stores, one
  worker, as ``make run`` starts it.

Everything is throw-away: a temporary data directory (under ``BENCH_DIR``, default the
system's temporary folder: point it at the disk to measure), the server on a free loopback
port, stopped at the end. ``BENCH_SERVER_LOG`` names a file for the server's output.
"""

# Fixed local commands and 127.0.0.1 URLs built here, never user input:
# ruff: noqa: S603, S607

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import REDIS_URL, free_port, launch, pg_database, redis_prefix, wait_ready  # noqa: E402 - bench/run.py, a script

ROOT = Path(__file__).resolve().parent.parent
LARGE_MB = int(os.environ.get("BENCH_LARGE_MB", "1024"))
SMALL_COUNT = int(os.environ.get("BENCH_SMALL_COUNT", "10000"))
SMALL_KB = 20
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
BATCH = int(os.environ.get("BENCH_BATCH", "100"))
SINGLE_COUNT = int(os.environ.get("BENCH_SINGLE_COUNT", "500"))
SETUP = os.environ.get("BENCH_SETUP", "")
COPIES = 2


def say(message: str) -> None:
    print(f"[bench archives] {message}", flush=True)


def server_processes(pid: int) -> list[psutil.Process]:
    """The server and its workers (``serve --workers N`` forks N processes)."""
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def peak_rss_mib(pid: int) -> float:
    """The largest peak resident memory (``VmHWM``) of the server's processes: one worker
    takes a deposit whole."""
    peak = 0.0
    for process in server_processes(pid):
        try:
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except OSError:
            continue
    return peak


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time (user, system) the server's processes have used so far."""
    user = system = 0.0
    for process in server_processes(pid):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        user, system = user + times.user, system + times.system
    return user, system


def baseline(path: Path, work: Path) -> float:
    """sha256sum + one copy per location, on the same disk: MiB/s."""
    start = time.perf_counter()
    subprocess.run(["sha256sum", str(path)], check=True, capture_output=True)
    for i in range(COPIES):
        target = work / f"copy-{i}"
        shutil.copyfile(path, target)
        with open(target, "rb") as fh:
            os.fsync(fh.fileno())
        target.unlink()
    elapsed = time.perf_counter() - start
    return path.stat().st_size / 1024 / 1024 / elapsed


def multipart(path: Path, title: str) -> tuple[str, Iterator[bytes], int]:
    boundary = "bench" + secrets.token_hex(8)
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'
            f'{json.dumps({"title": title})}\r\n--{boundary}\r\nContent-Disposition: '
            f'form-data; name="file"; filename="{path.name}"\r\n\r\n').encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        with path.open("rb") as fh:
            while block := fh.read(1024 * 1024):
                yield block
        yield tail

    return boundary, body(), len(head) + path.stat().st_size + len(tail)


def backends(stack: ExitStack) -> tuple[str, int, dict[str, str]]:
    """The setup, its number of workers and its settings (see the module's docstring)."""
    if SETUP not in ("", "production", "embedded"):
        sys.exit(f"bench: BENCH_SETUP={SETUP!r}: production or embedded")
    if SETUP != "embedded":
        database_url = pg_database(stack)
        prefix = redis_prefix(stack) if database_url else None
        if database_url and prefix:
            workers = int(os.environ.get("BENCH_WORKERS", "2"))
            return "production", workers, {
                "MC_DATABASE_URL": database_url, "MC_REDIS_URL": REDIS_URL,
                "MC_REDIS_PREFIX": prefix}
        if SETUP == "production":
            sys.exit("bench: BENCH_SETUP=production needs PostgreSQL and Redis")
        say("WARNING: PostgreSQL or Redis unreachable: SQLite and in-process stores, ONE "
            "worker (the embedded setup, not a deployment's)")
    return "embedded", 1, {"MC_DATABASE_URL": "", "MC_REDIS_URL": ""}


def main() -> int:
    with ExitStack() as stack:
        return measure(stack)


def measure(stack: ExitStack) -> int:
    work = Path(tempfile.mkdtemp(prefix="mc-bench-archives-", dir=os.environ.get("BENCH_DIR")))
    stack.callback(shutil.rmtree, work, True)  # registered first: runs after the server stops
    setup, workers, backend = backends(stack)
    port = free_port()
    env = {**os.environ, **backend, "MC_DATA_DIR": str(work / "data"), "MC_PORT": str(port),
           "MC_ISSUER": f"http://127.0.0.1:{port}", "MC_ENVIRONMENT": "test",
           "MC_SECRET_KEY": secrets.token_hex(24)}
    cli = [sys.executable, "-m", "martinique_connect"]
    say(f"setup: {setup}, {workers} worker(s), data in {work}")
    client = json.loads(subprocess.run(
        [*cli, "clients", "create", "--name", "bench", "--grant-type",
         "client_credentials", "--scope", "archives:read archives:write", "--org",
         "lamentin", "--json"], env=env, check=True, capture_output=True, text=True
    ).stdout)
    log = os.environ.get("BENCH_SERVER_LOG")
    server = launch(stack, [*cli, "serve", "--workers", str(workers)], env,
                    Path(log) if log else None)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/healthz", server)
    token = httpx.post(url + "/token", data={
        "grant_type": "client_credentials", "scope": "archives:read archives:write"},
        auth=(client["client_id"], client["client_secret"])).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}

    say(f"writing a {LARGE_MB} MiB file of random bytes")
    large = work / "large.bin"
    with large.open("wb") as fh:
        for _ in range(LARGE_MB):
            fh.write(os.urandom(1024 * 1024))
    base = baseline(large, work)
    say(f"baseline sha256sum + {COPIES} copies: {base:.1f} MiB/s")

    peak = [0.0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], peak_rss_mib(server.pid))  # type: ignore[union-attr]
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    boundary, body, length = multipart(large, "Gros fichier")
    start = time.perf_counter()
    response = httpx.post(url + "/api/archives/deposits", content=body, timeout=3600,
                          headers={**auth, "Content-Length": str(length),
                                   "Content-Type": f"multipart/form-data; boundary={boundary}"})
    elapsed = time.perf_counter() - start
    stop.set()
    watcher.join()
    assert response.status_code == 201, response.text
    assert response.json()["files"][0]["sha256"] == hashlib.sha256(
        large.read_bytes()).hexdigest()
    ingest = LARGE_MB / elapsed
    say(f"large file through the API: {ingest:.1f} MiB/s "
        f"({100 * ingest / base:.0f} % of the baseline), server peak RSS {peak[0]:.0f} MiB")
    large.unlink()

    payloads = [os.urandom(SMALL_KB * 1024) for _ in range(min(SMALL_COUNT, 256))]

    def document(i: int) -> tuple[str, tuple[str, bytes]]:
        return ("file", (f"doc-{i}.bin", payloads[i % len(payloads)] + i.to_bytes(4, "big")))

    # One HTTP client per client thread, kept for the whole run, as a depositing software
    # keeps its connection: ``httpx.post`` builds a new client (and its TLS context, even for
    # http://) at every call, 45 ms of this process's CPU taken from the cores the server
    # is measured on.
    local = threading.local()
    clients: list[httpx.Client] = []

    def http() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(headers=auth, timeout=600)
            clients.append(local.client)
        return local.client  # type: ignore[no-any-return]

    def close_clients() -> None:
        for each in clients:
            each.close()

    stack.callback(close_clients)

    def deposit(first: int, count: int) -> int:
        return http().post(url + "/api/archives/deposits", files=[
            ("metadata", (None, json.dumps({"title": f"lot {first}"}))),
            *[document(i) for i in range(first, first + count)]]).status_code

    def run(offset: int, total: int, batch: int) -> tuple[float, float, float]:
        """Documents per second, and the server's CPU milliseconds per document, user and
        system (less disturbed by the other work of a shared machine than the time; the
        system part is mostly the file system's: creating, writing, syncing files)."""
        starts = range(offset, offset + total, batch)
        user, system = cpu_seconds(server.pid)  # type: ignore[union-attr]
        begin = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            codes = list(pool.map(lambda first: deposit(
                first, min(batch, offset + total - first)), starts))
        elapsed = time.perf_counter() - begin
        user_after, system_after = cpu_seconds(server.pid)  # type: ignore[union-attr]
        assert codes.count(201) == len(starts), {c: codes.count(c) for c in set(codes)}
        return (total / elapsed, 1000 * (user_after - user) / total,
                1000 * (system_after - system) / total)

    small, small_user, small_sys = run(0, SMALL_COUNT, BATCH)
    say(f"{SMALL_COUNT} × {SMALL_KB} KiB through the API, {BATCH} per deposit, "
        f"{CLIENTS} clients: {small:.0f} documents/s, server CPU "
        f"{small_user + small_sys:.1f} ms per document ({small_user:.1f} user, "
        f"{small_sys:.1f} system)")
    single, single_user, single_sys = run(SMALL_COUNT, SINGLE_COUNT, 1) \
        if SINGLE_COUNT else (0.0, 0.0, 0.0)
    say(f"{SINGLE_COUNT} × {SMALL_KB} KiB through the API, one per deposit, "
        f"{CLIENTS} clients: {single:.0f} documents/s, server CPU "
        f"{single_user + single_sys:.1f} ms per document ({single_user:.1f} user, "
        f"{single_sys:.1f} system)")
    load = os.getloadavg()
    print(json.dumps({"setup": setup, "workers": workers, "large_mib": LARGE_MB,
                      "baseline_mib_s": round(base, 1),
                      "ingest_mib_s": round(ingest, 1),
                      "ratio": round(ingest / base, 3), "peak_rss_mib": round(peak[0]),
                      "small_count": SMALL_COUNT, "batch": BATCH,
                      "small_docs_s": round(small, 1),
                      "small_server_cpu_ms": round(small_user + small_sys, 2),
                      "small_server_sys_ms": round(small_sys, 2),
                      "single_count": SINGLE_COUNT, "single_docs_s": round(single, 1),
                      "single_server_cpu_ms": round(single_user + single_sys, 2),
                      "single_server_sys_ms": round(single_sys, 2),
                      "loadavg": [round(x, 2) for x in load]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
