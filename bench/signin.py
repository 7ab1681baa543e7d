"""Server CPU of one complete password sign-in, hop by hop, on one worker.

    .venv/bin/python bench/signin.py [--backend embedded|postgres] [--journeys 40]
                                     [--warmup 5] [--profile FILE] [--yappi FILE]
                                     [--json FILE]

Starts ONE server process (``uvicorn``, one worker, the application of ``serve``) on a free
port, with a throw-away data directory (embedded backend) or a throw-away PostgreSQL database
and Redis prefix (``postgres``, as ``make bench``). It registers a confidential client with
``prompt=consent`` and a few accounts, then runs the journey of ``loadtests/`` (authorize →
sign-in page → ``POST /connexion`` → consent page → ``POST`` consent → ``/authorize/continue``
→ ``POST /token`` → ``/userinfo``) sequentially, one request at a time, from this process.

Only this script talks to the server, one request at a time, so the CPU the server's threads
used between the start and the end of a request (``/proc/<pid>/task/*/schedstat``,
nanoseconds) is that request's cost, whatever the load of the machine. Each hop also counts
the SQL statements executed and the key-value store calls made (hooks installed in the
server process only). The memory of the worker (RSS, USS) is read after the warm-up and at
the end. ``--profile`` samples the server with ``py-spy`` (``.venv/bin/pip install py-spy``)
during the measured journeys and writes the collapsed stacks to FILE; ``--yappi`` measures
the CPU of every function in every thread of the server (``.venv/bin/pip install yappi``)
and writes a pstats file (yappi inflates Python code about 3.5 times: read shares only).
"""

# Fixed local commands and 127.0.0.1 URLs built here, never user input:
# ruff: noqa: S603, S607

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from loadtests.common import form_fields, pkce_pair, query_of  # noqa: E402 - after the path

PASSWORD = "Charge-Madinina-972-Essai"  # noqa: S105 - throw-away accounts
REDIRECT = "http://127.0.0.1:9/bench/callback"
ACCOUNTS = 8


# --- server side (``--serve``): the application of ``serve`` with counting hooks ------------


def serve(port: int, ready_file: Path) -> None:
    import logging
    import threading

    import uvicorn
    from sqlalchemy import event

    from martinique_connect.app import create_app
    from plateforme.logs import configure_logging
    from plateforme.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_format, logging.WARNING)
    app = create_app(settings, initialise=False)  # as a worker of ``serve``: see initialise()
    counts: dict[str, int] = defaultdict(int)
    lock = threading.Lock()

    @event.listens_for(app.state.engine, "before_cursor_execute")
    def _count_sql(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        kind = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
        with lock:
            counts["sql"] += 1
            counts["sql:" + kind] += 1

    store = app.state.store
    for name in ("get", "get_many", "set", "take", "delete", "incr", "ttl", "ttls", "expire",
                 "sadd", "srem", "smembers"):
        method = getattr(store, name, None)
        if method is None or not callable(method):
            continue

        def counted(*args: Any, __m: Any = method, __n: str = name, **kwargs: Any) -> Any:
            family = ":".join(str(args[0]).split(":")[:2]) if args else ""
            with lock:
                counts["kv"] += 1
                counts["kv:" + __n] += 1
                counts[f"kvkey:{__n} {family}"] += 1
            return __m(*args, **kwargs)

        setattr(store, name, counted)

    async def bench_counts(scope: Any, receive: Any, send: Any) -> None:
        with lock:
            body = json.dumps(counts).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    async def outer(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/__bench__/counts":
            await bench_counts(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"].startswith("/__bench__/yappi/"):
            import yappi  # .venv/bin/pip install yappi (--yappi only)

            if scope["path"].endswith("/start"):
                yappi.set_clock_type("cpu")
                yappi.clear_stats()
                yappi.start(builtins=False, profile_threads=True)
            else:
                yappi.stop()
                yappi.get_func_stats().save(os.environ["BENCH_YAPPI"], type="pstat")
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    ready_file.write_text(json.dumps({"pid": os.getpid()}))
    uvicorn.run(outer, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                lifespan="on", proxy_headers=False)


# --- driver side --------------------------------------------------------------------------


def _settings(env: dict[str, str]) -> Any:
    from plateforme.settings import Settings

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def initialise(env: dict[str, str]) -> None:
    """What ``serve`` does once before it starts its workers (migrations, keys, console
    client), done from this process: the server's worker then starts as one of ``serve``'s,
    without Alembic."""
    from idp import Provider
    from martinique_connect.cli import initialise as initialise_provider
    from martinique_connect.database import upgrade
    from plateforme.db import make_engine
    from plateforme.kv import make_store

    settings = _settings(env)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url)
    store = make_store(settings.redis_url, prefix=settings.redis_prefix)
    provider = Provider(settings=settings, engine=engine, store=store)
    try:
        upgrade(engine)
        initialise_provider(provider, console=True)
    finally:
        provider.close()
        if hasattr(store, "close"):
            store.close()
        engine.dispose()


def arrange(env: dict[str, str]) -> dict[str, Any]:
    """The client and the accounts, created from this process (the server's worker hashes no
    password before the journeys, as a worker of ``serve``)."""
    from idp import ClientCreate, Provider, UserCreate
    from plateforme.db import make_engine
    from plateforme.kv import make_store

    settings = _settings(env)
    engine = make_engine(settings.sqlalchemy_url)
    store = make_store(settings.redis_url, prefix=settings.redis_prefix)
    provider = Provider(settings=settings, engine=engine, store=store)
    try:
        client = provider.clients.create(ClientCreate(
            name="Banc connexion", redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            scopes=["openid", "profile", "email"]))
        emails = [f"banc-{i}-{secrets.token_hex(3)}@example.mq" for i in range(ACCOUNTS)]
        for email in emails:
            provider.users.create(UserCreate(email=email, password=PASSWORD, email_verified=True,
                                             given_name="Banc", family_name="Essai"))
    finally:
        provider.close()
        engine.dispose()
    created = client.model_dump(mode="json")
    return {"client_id": created["client_id"], "client_secret": created["client_secret"],
            "emails": emails}


def task_cpu_ns(pid: int) -> int:
    """CPU time (ns) of every live thread of ``pid`` (schedstat: on-CPU time, exact)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with suppress(FileNotFoundError, ProcessLookupError, ValueError):
            total += int((task / "schedstat").read_text().split()[0])
    return total


def process_cpu_s(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def memory_mb(pid: int) -> dict[str, float]:
    import psutil

    info = psutil.Process(pid).memory_full_info()
    return {"rss": info.rss / 2**20, "uss": info.uss / 2**20}


class Meter:
    """Per hop: server CPU (ns), SQL statements and key-value calls, summed over journeys."""

    def __init__(self, http: Any, base: str, pid: int) -> None:
        self.http, self.base, self.pid = http, base, pid
        self.cpu: dict[str, int] = defaultdict(int)
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.order: list[str] = []
        self._last = self._counts()

    def _counts(self) -> dict[str, int]:
        return dict(self.http.get(self.base + "/__bench__/counts").json())

    def call(self, hop: str, method: str, url: str, **kwargs: Any) -> Any:
        if hop not in self.order:
            self.order.append(hop)
        before = task_cpu_ns(self.pid)
        response = self.http.request(method, url, **kwargs)
        after = task_cpu_ns(self.pid)
        self.cpu[hop] += after - before
        now = self._counts()
        for key, value in now.items():
            self.counts[hop][key] += value - self._last.get(key, 0)
        self._last = self._counts()  # the read itself made no query: refresh after it
        return response


def journey(meter: Meter, base: str, creds: dict[str, Any], email: str) -> None:
    http = meter.http
    http.cookies.clear()
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    query = urlencode({
        "response_type": "code", "client_id": creds["client_id"], "redirect_uri": REDIRECT,
        "scope": "openid profile email", "state": state, "nonce": nonce,
        "code_challenge": challenge, "code_challenge_method": "S256", "prompt": "consent"})
    r = meter.call("GET /authorize", "GET", f"{base}/authorize?{query}")
    assert r.status_code in (302, 303), r.status_code
    r = meter.call("GET /connexion", "GET", base + r.headers["location"])
    assert r.status_code == 200, r.status_code
    fields = form_fields(r.text, "/connexion")
    fields.update(email=email, password=PASSWORD)
    r = meter.call("POST /connexion", "POST", base + "/connexion", data=fields)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    r = meter.call("GET /authorize/continue (1)", "GET", base + r.headers["location"])
    assert r.status_code in (302, 303), r.status_code
    r = meter.call("GET /connexion/consentement", "GET", base + r.headers["location"])
    assert r.status_code == 200, r.status_code
    fields = form_fields(r.text, "/connexion/consentement")
    fields["decision"] = "accept"
    r = meter.call("POST /connexion/consentement", "POST", base + "/connexion/consentement",
                   data=fields)
    assert r.status_code == 303, r.status_code
    r = meter.call("GET /authorize/continue (2)", "GET", base + r.headers["location"])
    assert r.status_code in (302, 303), r.status_code
    answer = query_of(r.headers["location"])
    assert answer.get("state") == state and "code" in answer, answer
    r = meter.call("POST /token", "POST", base + "/token", data={
        "grant_type": "authorization_code", "code": answer["code"], "redirect_uri": REDIRECT,
        "code_verifier": verifier}, auth=(creds["client_id"], creds["client_secret"]))
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    r = meter.call("GET /userinfo", "GET", base + "/userinfo",
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json().get("email") == email, r.text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["embedded", "postgres"], default="embedded")
    parser.add_argument("--journeys", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--profile", type=Path, help="py-spy collapsed stacks to this file")
    parser.add_argument("--json", type=Path, help="write the measurements as JSON")
    parser.add_argument("--yappi", type=Path,
                        help="profile the server's CPU with yappi (every thread); pstats file")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.ready_file)
        return 0

    import httpx
    import run as bench  # bench/run.py: throw-away PostgreSQL database and Redis prefix

    with ExitStack() as stack:
        data_dir = Path(tempfile.mkdtemp(prefix="mc-bench-signin-"))
        stack.callback(shutil.rmtree, data_dir, True)
        port = bench.free_port()
        env = {**os.environ, "MC_DATA_DIR": str(data_dir), "MC_ISSUER": f"http://127.0.0.1:{port}",
               "MC_PORT": str(port), "MC_SECRET_KEY": secrets.token_hex(16)}
        for key in ("MC_DATABASE_URL", "MC_REDIS_URL", "MC_REDIS_PREFIX"):
            env.pop(key, None)
        if args.backend == "postgres":
            url, prefix = bench.pg_database(stack), bench.redis_prefix(stack)
            if not url or not prefix:
                raise SystemExit("PostgreSQL and Redis are needed for --backend postgres")
            env.update(MC_DATABASE_URL=url, MC_REDIS_URL=bench.REDIS_URL, MC_REDIS_PREFIX=prefix)
        if args.yappi:
            env["BENCH_YAPPI"] = str(args.yappi.resolve())
        initialise(env)
        ready = data_dir / "ready.json"
        proc = bench.launch(stack, [sys.executable, __file__, "--serve", str(port),
                                    "--ready-file", str(ready)], env, data_dir / "server.log")
        base = env["MC_ISSUER"]
        bench.wait_ready(base + "/healthz", proc, timeout=180)
        pid = json.loads(ready.read_text())["pid"]
        creds = arrange(env)
        http = httpx.Client(follow_redirects=False, timeout=60)
        stack.callback(http.close)
        meter = Meter(http, base, pid)
        emails = creds["emails"]
        for i in range(args.warmup):
            journey(meter, base, creds, emails[i % len(emails)])
        warm_memory = memory_mb(pid)
        meter = Meter(http, base, pid)
        spy = None
        if args.profile:
            py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            spy = subprocess.Popen([py_spy, "record", "--pid", str(pid), "--rate", "200",
                                    "--format", "raw", "--output", str(args.profile),
                                    "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.5)
        if args.yappi:
            http.get(base + "/__bench__/yappi/start")
        load_before = Path("/proc/loadavg").read_text().split()[0]
        cpu_before = process_cpu_s(pid)
        wall = time.perf_counter()
        for i in range(args.journeys):
            journey(meter, base, creds, emails[i % len(emails)])
        wall = time.perf_counter() - wall
        cpu_total = process_cpu_s(pid) - cpu_before
        load_after = Path("/proc/loadavg").read_text().split()[0]
        if args.yappi:
            http.get(base + "/__bench__/yappi/stop")
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=60)
        end_memory = memory_mb(pid)

    n = args.journeys
    hop_ms = {hop: meter.cpu[hop] / n / 1e6 for hop in meter.order}
    per_journey = sum(hop_ms.values())
    print(f"\nbackend {args.backend}: {n} journeys (after {args.warmup} warm-up), "
          f"load average {load_before} → {load_after}, wall {wall:.1f} s")
    print(f"{'hop':34} {'CPU ms':>8} {'SQL':>5} {'KV':>5}")
    for hop in meter.order:
        c = meter.counts[hop]
        print(f"{hop:34} {hop_ms[hop]:8.2f} {c.get('sql', 0) / n:5.1f} {c.get('kv', 0) / n:5.1f}")
    sql = sum(c.get("sql", 0) for c in meter.counts.values()) / n
    kv = sum(c.get("kv", 0) for c in meter.counts.values()) / n
    print(f"{'journey (sum of hops)':34} {per_journey:8.2f} {sql:5.1f} {kv:5.1f}")
    print(f"process CPU (user+sys, ticks) per journey: {cpu_total / n * 1000:.1f} ms; "
          f"journeys per CPU-second: {1000 / per_journey:.1f}")
    print(f"worker memory after warm-up: RSS {warm_memory['rss']:.0f} MB, "
          f"USS {warm_memory['uss']:.0f} MB; at the end: RSS {end_memory['rss']:.0f} MB, "
          f"USS {end_memory['uss']:.0f} MB")
    kinds: dict[str, float] = defaultdict(float)
    for c in meter.counts.values():
        for key, value in c.items():
            if ":" in key and not key.startswith("kvkey:"):
                kinds[key] += value / n
    print("per journey: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(kinds.items())))
    if args.json:
        args.json.write_text(json.dumps({
            "backend": args.backend, "journeys": n, "load": [load_before, load_after],
            "hops_ms": hop_ms, "journey_ms": per_journey, "process_cpu_ms": cpu_total / n * 1000,
            "counts": {h: dict(c) for h, c in meter.counts.items()},
            "memory_warm": warm_memory, "memory_end": end_memory}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
