"""Memory of ``martinique-connect serve --workers N``, process by process, after warm-up.

    .venv/bin/python bench/workers_memory.py [--workers 2] [--backend embedded|postgres]
                                             [--clients 4] [--journeys 10] [--json FILE]

Starts ``serve --workers N`` (the real command: its parent, its workers) on a free port, with
a throw-away data directory and Redis prefix (``--workers`` > 1 needs Redis; ``embedded``
keeps SQLite, ``postgres`` a throw-away PostgreSQL database, as ``make bench``). Reads the
memory of every process once the server answers, then after ``--clients`` concurrent clients
have each run ``--journeys`` complete password sign-ins (the journey of ``bench/signin.py``),
every request on a new connection so that the kernel spreads them over the workers, and again
after a second identical round, whose server CPU (every process) per sign-in it prints.

For each process: RSS (every page it maps, shared ones included), USS (the pages only it
maps: what stopping it would free) and PSS (its own pages plus its share of the shared ones).
The sum of the PSS is the memory of the whole server; divided by N, the memory per worker.
"""

# Fixed local commands and 127.0.0.1 URLs built here, never user input:
# ruff: noqa: S603

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))


def snapshot(pid: int) -> dict[str, Any]:
    """RSS, USS and PSS (MB) of the parent ``pid`` and of each of its children."""
    import psutil

    def one(process: Any) -> dict[str, float]:
        info = process.memory_full_info()
        return {"pid": process.pid, "rss": info.rss / 2**20, "uss": info.uss / 2**20,
                "pss": info.pss / 2**20, "threads": process.num_threads()}

    parent = psutil.Process(pid)
    children = [one(child) for child in parent.children()]
    main = one(parent)
    return {"parent": main, "children": children,
            "total_pss": main["pss"] + sum(c["pss"] for c in children)}


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) of the parent ``pid`` and of its children."""
    import psutil

    parent = psutil.Process(pid)
    total = 0.0
    for process in [parent, *parent.children()]:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def show(label: str, snap: dict[str, Any], workers: int) -> None:
    def line(name: str, p: dict[str, float]) -> str:
        return (f"  {name:14} RSS {p['rss']:4.0f}  USS {p['uss']:4.0f}  PSS {p['pss']:4.0f} MB"
                f"  ({p['threads']:.0f} threads)")

    print(f"{label}:")
    print(line("parent", snap["parent"]))
    for child in snap["children"]:
        print(line(f"child {child['pid']:.0f}", child))
    print(f"  total PSS {snap['total_pss']:.0f} MB, i.e. {snap['total_pss'] / workers:.0f} MB "
          f"per worker")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", choices=["embedded", "postgres"], default="embedded")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--journeys", type=int, default=10, help="per client")
    parser.add_argument("--json", type=Path, help="write the measurements as JSON")
    args = parser.parse_args()

    import httpx
    import run as bench  # bench/run.py: throw-away PostgreSQL database and Redis prefix
    import signin  # bench/signin.py: the accounts, the client and the journey

    with ExitStack() as stack:
        data_dir = Path(tempfile.mkdtemp(prefix="mc-bench-workers-"))
        stack.callback(shutil.rmtree, data_dir, True)
        port = bench.free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MC_", "PROMETHEUS_"))}
        env.update(MC_DATA_DIR=str(data_dir), MC_ISSUER=f"http://127.0.0.1:{port}",
                   MC_PORT=str(port), MC_SECRET_KEY=secrets.token_hex(16),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                            os.environ.get("PYTHONPATH")])))
        prefix = bench.redis_prefix(stack)
        if not prefix:
            raise SystemExit("Redis is needed for serve --workers N")
        env.update(MC_REDIS_URL=bench.REDIS_URL, MC_REDIS_PREFIX=prefix)
        if args.backend == "postgres":
            url = bench.pg_database(stack)
            if not url:
                raise SystemExit("PostgreSQL is needed for --backend postgres")
            env["MC_DATABASE_URL"] = url
        proc = bench.launch(stack, [sys.executable, "-m", "martinique_connect", "serve",
                                    "--workers", str(args.workers)], env,
                            data_dir / "server.log")
        base = env["MC_ISSUER"]
        bench.wait_ready(base + "/healthz", proc, timeout=180)
        time.sleep(1)  # every worker started
        ready = snapshot(proc.pid)
        creds = signin.arrange(env)
        failures: list[str] = []

        class Client:
            def __init__(self) -> None:
                self.http = httpx.Client(follow_redirects=False, timeout=60,
                                         headers={"Connection": "close"})

            def call(self, _hop: str, method: str, url: str, **kwargs: Any) -> Any:
                return self.http.request(method, url, **kwargs)

        def client(k: int) -> None:
            c = Client()
            try:
                for i in range(args.journeys):
                    signin.journey(c, base, creds,  # type: ignore[arg-type]
                                   creds["emails"][(k + i) % len(creds["emails"])])
            except Exception as exc:  # noqa: BLE001 - reported below
                failures.append(repr(exc))
            finally:
                c.http.close()

        def clients() -> float:
            threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
            wall = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return time.perf_counter() - wall

        load_before = Path("/proc/loadavg").read_text().split()[0]
        wall = clients()
        time.sleep(0.5)
        warm = snapshot(proc.pid)
        cpu_before = server_cpu(proc.pid)
        again = clients()  # the same sign-ins again: the server's CPU per sign-in, warm
        cpu = server_cpu(proc.pid) - cpu_before
        end = snapshot(proc.pid)
        load_after = Path("/proc/loadavg").read_text().split()[0]

    n = args.clients * args.journeys
    print(f"\nserve --workers {args.workers}, backend {args.backend}: {args.clients} clients x "
          f"{args.journeys} sign-ins in {wall:.1f} s, then again in {again:.1f} s "
          f"({cpu / n * 1000:.0f} ms of server CPU per sign-in), load average {load_before} → "
          f"{load_after}" + (f", FAILURES {failures[:3]}" if failures else ""))
    show("ready", ready, args.workers)
    show("after the sign-ins (warm-up)", warm, args.workers)
    show("after the second round", end, args.workers)
    if args.json:
        args.json.write_text(json.dumps({
            "workers": args.workers, "backend": args.backend, "clients": args.clients,
            "journeys": args.journeys, "load": [load_before, load_after],
            "cpu_ms_per_sign_in": cpu / n * 1000, "ready": ready, "warm": warm, "end": end,
            "failures": failures}, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
