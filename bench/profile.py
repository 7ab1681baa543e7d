"""Profile one endpoint of a live ``martinique-connect serve`` under the ``make bench`` load.

    .venv/bin/python bench/profile.py token|introspection [--seconds 10] [--workers 2]
                                      [--top 40] [--idle]

Same set-up as ``bench/run.py`` (throw-away PostgreSQL database and Redis prefix, same
client), then ``wrk`` (same Lua script, threads and connections as ``run.sh``) against the
endpoint while ``py-spy`` samples every worker (``.venv/bin/pip install py-spy``). Prints the
functions with the largest inclusive share of the samples and, from the request count, the
time per request they stand for. The collapsed stacks are kept in
``bench/results/profile-<endpoint>.txt`` (for ``flamegraph.pl`` or speedscope).

By default only the thread holding the GIL is sampled (``py-spy --gil``): the shares are then
shares of the Python CPU time of the workers (waits in ``epoll`` and idle pool threads are
left out; so is native code that releases the GIL). ``--all-threads`` samples every thread,
``--idle`` keeps waiting threads too.
"""

# Fixed local commands and 127.0.0.1 URLs built here, never user input:
# ruff: noqa: S603, S607, S310

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402 - bench/run.py, beside this file


def post(url: str, form: str, auth: str) -> dict[str, object]:
    req = urllib.request.Request(url, data=form.encode(), headers={
        "Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return dict(json.loads(resp.read()))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("endpoint", choices=["token", "introspection"])
    parser.add_argument("--report", type=Path, help="only summarise saved collapsed stacks")
    parser.add_argument("--requests", type=int, default=0, help="with --report")
    parser.add_argument("--lines", action="store_true", help="one entry per line, not function")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--idle", action="store_true")
    parser.add_argument("--all-threads", action="store_true",
                        help="sample every thread, not only the one holding the GIL")
    args = parser.parse_args()
    if args.report:
        report(args.report, args.requests or 1, 10**6, 0, args.top, args.rate, args.lines)
        return 0
    py_spy = shutil.which("py-spy") or str(bench.BIN / "py-spy")
    if not Path(py_spy).exists():
        sys.exit("py-spy not found: .venv/bin/pip install py-spy")
    bench.check_tools()
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="mc-profile-"))
        stack.callback(shutil.rmtree, work, True)
        database_url = bench.pg_database(stack)
        prefix = bench.redis_prefix(stack) if database_url else None
        workers = args.workers if database_url and prefix else 1
        port = bench.free_port()
        issuer = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MC_")}
        env.update({"MC_ISSUER": issuer, "MC_HOST": "127.0.0.1", "MC_PORT": str(port),
                    "MC_DATA_DIR": str(work / "data"), "MC_SECRET_KEY": secrets.token_urlsafe(48)})
        if database_url and prefix:
            env.update({"MC_DATABASE_URL": database_url, "MC_REDIS_URL": bench.REDIS_URL,
                        "MC_REDIS_PREFIX": prefix})
        bench.run_cli(env, "db", "upgrade")
        created = json.loads(bench.run_cli(
            env, "clients", "create", "--name", "bench", "--grant-type", "client_credentials",
            "--scope", "openid", "--json"))
        cid, secret = created["client_id"], created["client_secret"]
        enc = lambda s: urllib.parse.quote_plus(s, safe="")  # noqa: E731
        auth = "Basic " + base64.b64encode(f"{enc(cid)}:{enc(secret)}".encode()).decode()
        pid = bench.start_server(stack, env, workers, work / "server.log")
        if args.endpoint == "token":
            url, body, expect = issuer + "/token", "grant_type=client_credentials", '"access_token"'
        else:
            token = post(issuer + "/token", "grant_type=client_credentials", auth)["access_token"]
            url, body = issuer + "/introspect", "token=" + str(token)
            expect = '"active"%s*:%s*true'
        wrk_env = dict(os.environ, BENCH_METHOD="POST", BENCH_BODY=body, BENCH_AUTH=auth,
                       BENCH_EXPECT=expect)
        lua = str(bench.PEERS_DIR / "wrk" / "bench.lua")
        wrk = ["wrk", "-t2", "-c32", "--timeout", "5s", "-s", lua]
        subprocess.run([*wrk, "-d2s", url], env=wrk_env, capture_output=True, timeout=60,
                       check=True)
        raw = work / "stacks.txt"
        spy_cmd = [py_spy, "record", "--pid", str(pid), "--subprocesses", "--rate",
                   str(args.rate), "--duration", str(args.seconds + 1), "--format", "raw",
                   "--output", str(raw), "--nonblocking"]
        if args.idle:
            spy_cmd.append("--idle")
        if not args.all_threads:
            spy_cmd.append("--gil")
        spy = subprocess.Popen(spy_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)
        out = subprocess.run([*wrk, f"-d{args.seconds}s", url], env=wrk_env,
                             capture_output=True, text=True, timeout=args.seconds + 60).stdout
        spy.wait(timeout=120)
        result = next(line for line in out.splitlines() if line.startswith("@@RESULT")).split()
        requests, duration_us, bad = int(result[1]), int(result[2]), int(result[8])
        bench.RESULTS.mkdir(parents=True, exist_ok=True)
        keep = bench.RESULTS / f"profile-{args.endpoint}.txt"
        shutil.copy(raw, keep)
    report(keep, requests, duration_us, bad, args.top, args.rate, args.lines)
    return 0


def report(path: Path, requests: int, duration_us: int, bad: int, top: int, rate: int,
           lines: bool = False) -> None:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    pending = ""
    for line in path.read_text().splitlines():
        line = pending + line  # a frame may contain a line break (py-spy quirk)
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            pending = line
            continue
        pending = ""
        n = int(count)
        frames = [re.sub(r" \((/.*?)?(site-packages/|/work/main/)?", " (", f)
                  for f in stack.split(";")]
        if not lines:  # one entry per function, not per line
            frames = [re.sub(r":\d+\)$", ")", f) for f in frames]
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    rps = requests / (duration_us / 1e6)
    # samples -> CPU seconds -> ms per request (the sampling covers the whole measured part)
    ms_per_sample = 1000 / rate
    print(f"\n{requests} requests in {duration_us / 1e6:.1f} s = {rps:.0f}/s, {bad} bad; "
          f"{total} samples at {rate}/s ({total * ms_per_sample / 1000:.1f} s of samples)")
    print("ms/req = samples × (1/rate) / requests: CPU ms per request spent inside the frame")
    print(f"\n{'incl %':>7} {'ms/req':>7}  function (inclusive)")
    for frame, n in inclusive.most_common(top):
        print(f"{100 * n / total:7.1f} {n * ms_per_sample / requests:7.3f}  {frame[:150]}")
    print(f"\n{'self %':>7} {'ms/req':>7}  function (self)")
    for frame, n in own.most_common(top // 2):
        print(f"{100 * n / total:7.1f} {n * ms_per_sample / requests:7.3f}  {frame[:150]}")
    print(f"\ncollapsed stacks: {path}")


if __name__ == "__main__":
    sys.exit(main())
