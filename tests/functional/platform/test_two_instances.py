"""Horizontal scaling, shown: two ``martinique-connect serve`` processes on two ports over the
same PostgreSQL database and Redis prefix (each with its own, empty, data directory), and one
process running several workers."""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from joserfc import jws

from idp.services.signing_keys import CACHE_SECONDS
from tests.conftest import PASSWORD, Backend, CodeFlow, Platform
from tests.functional.platform.conftest import (
    Instance,
    Instances,
    cli_env,
    metric_value,
    start_instance,
)
from tests.support.browser import Browser
from tests.support.live import free_port

CALLBACK = "http://127.0.0.1:9999/callback"
DISCOVERY = "/.well-known/openid-configuration"


def _json(result: Any) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _kid(token: str) -> str:
    return str(jws.extract_compact(token.encode()).protected["kid"])


def _failed_login(instance: Instance, email: str) -> httpx.Response:
    with httpx.Client(base_url=instance.url) as http:
        page = http.get("/connexion")
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        return http.post("/connexion", data={"email": email, "password": "faux-" + PASSWORD,
                                             "csrf_token": token})


def _token_issued_by(instance: Instance, client: dict[str, Any], refresh_token: str) -> str:
    response = httpx.post(instance.url + "/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(client["client_id"], client["client_secret"]))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _client_credentials(instance: Instance, client: dict[str, Any]) -> str:
    response = httpx.post(instance.url + "/token", data={
        "grant_type": "client_credentials", "scope": "archives:read"},
        auth=(client["client_id"], client["client_secret"]))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_two_instances_share_sessions_tokens_keys_and_throttling(
        instances: Instances, instance_pair: tuple[Instance, Instance]) -> None:
    a, b = instance_pair
    rp = _json(instances.cli(
        "clients", "create", "--name", "Commune", "--redirect-uri", CALLBACK,
        "--grant-type", "authorization_code", "--grant-type", "refresh_token", "--json"))
    service = _json(instances.cli(
        "clients", "create", "--name", "Serveur de ressources", "--grant-type",
        "client_credentials", "--scope", "archives:read", "--json"))
    email = f"deux-{secrets.token_hex(4)}@example.mq"
    _json(instances.cli("users", "create", "--email", email, "--password", PASSWORD, "--json"))
    user = {"email": email, "password": PASSWORD}

    # Sign in on A; the same browser gets single sign-on on B (session in Redis).
    browser = Browser()
    flow_a = CodeFlow(platform=SimpleNamespace(url=a.url), client=rp,  # type: ignore[arg-type]
                      browser=browser, redirect_uri=CALLBACK)
    code_a = flow_a.get_code(user)["code"]
    flow_b = CodeFlow(platform=SimpleNamespace(url=b.url), client=rp,  # type: ignore[arg-type]
                      browser=browser, redirect_uri=CALLBACK)
    seen = len(browser.history)
    response = flow_b.start()
    assert response.status_code in (302, 303), response.text[:300]
    assert response.headers["location"].startswith(CALLBACK)
    visited = [str(r.url) for r in browser.history[seen:]]
    assert all(url.startswith(b.url) for url in visited), visited
    assert not any("/connexion" in url for url in visited), visited
    code_b = response.headers["location"].split("code=", 1)[1].split("&", 1)[0]

    # Codes live in Redis: the code issued by A is redeemed on B, and B's on A.
    flow_a.platform, flow_b.platform = flow_b.platform, flow_a.platform
    tokens_a = flow_a.token(code_a)
    assert tokens_a.status_code == 200, tokens_a.text
    tokens_b = flow_b.token(code_b)
    assert tokens_b.status_code == 200, tokens_b.text

    # A token issued by A is introspected and revoked through B, and A sees the revocation
    # (a client introspects the tokens issued to it).
    token_a = _token_issued_by(a, rp, tokens_a.json()["refresh_token"])
    credentials = (rp["client_id"], rp["client_secret"])
    assert httpx.post(b.url + "/introspect", data={"token": token_a},
                      auth=credentials).json()["active"] is True
    revoked = httpx.post(b.url + "/revoke", data={"token": token_a}, auth=credentials)
    assert revoked.status_code == 200, revoked.text
    assert httpx.post(a.url + "/introspect", data={"token": token_a},
                      auth=credentials).json() == {"active": False}

    # A key rotated by the CLI (a third process) is used by both instances within their key
    # cache (CACHE_SECONDS, plus a second for the requests themselves). Relying parties that
    # cache the JWKS already knew the new active key: it was published as "next" before.
    old_kid = _kid(_client_credentials(a, service))
    jwks_before = {k["kid"] for k in httpx.get(b.url + "/jwks.json").json()["keys"]}
    rotated = instances.cli("keys", "rotate")
    done = time.monotonic()
    assert rotated.returncode == 0, rotated.stderr
    active = next(line.rsplit(" ", 1)[1] for line in rotated.stdout.splitlines()
                  if line.startswith("ES256"))
    assert active != old_kid and active in jwks_before
    caught_up: dict[str, float] = {}
    while len(caught_up) < 2 and time.monotonic() - done < CACHE_SECONDS + 5:
        for instance in (a, b):
            if instance.url not in caught_up and _kid(
                    _client_credentials(instance, service)) == active:
                caught_up[instance.url] = time.monotonic() - done
        time.sleep(0.1)
    assert set(caught_up) == {a.url, b.url}, caught_up
    assert max(caught_up.values()) <= CACHE_SECONDS + 1.0, caught_up
    # Both publish the whole new set: the new active key, the new "next", the retiring one.
    keys = _json(instances.cli("keys", "list", "--json"))
    published = {k["kid"] for k in keys if k["status"] in ("active", "next", "retiring")}
    for instance in (a, b):
        assert {k["kid"] for k in httpx.get(instance.url + "/jwks.json").json()["keys"]} == \
            published

    # Throttling counts across both: 5 free failures, the 6th imposes a wait, then a 7th
    # attempt is refused on either instance. Per-instance counters would have allowed it.
    statuses = [_failed_login(instance, email).status_code for instance in (a, b) * 3]
    assert statuses == [401] * 6
    refused = _failed_login(a, email)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    browser.close()


def test_serve_runs_the_workers_and_sums_their_metrics(backend: Backend, platform: Platform,
                                                       tmp_path: Path) -> None:
    if backend.redis_url is None:
        pytest.skip("serve --workers N needs Redis (its refusal without Redis is tested in "
                    "tests/unit/martinique_connect/test_cli.py)")
    port = free_port()
    env = cli_env(backend, tmp_path / "data", MC_PORT=str(port),
                  MC_ISSUER=f"http://127.0.0.1:{port}",
                  MC_SECRET_KEY=str(platform.settings.secret_key))
    instance = start_instance(env, "--workers", "2")
    try:
        workers = _children(instance.process.pid)
        deadline = time.monotonic() + 30
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            workers = _children(instance.process.pid)
        assert len(workers) == 2, workers
        # Every request on a new connection (the kernel spreads them over the workers); the
        # exposition, whichever worker answers it, sums the counters of both.
        before = httpx.get(instance.url + "/metrics").text
        sent = 40
        for _ in range(sent):
            assert httpx.get(instance.url + DISCOVERY).status_code == 200
        folder = tmp_path / "data" / "prometheus"
        after = httpx.get(instance.url + "/metrics").text
        assert metric_value(after, "mc_http_requests_total", route=DISCOVERY) - metric_value(
            before, "mc_http_requests_total", route=DISCOVERY) == sent
        pids = {int(f.stem.rsplit("_", 1)[1]) for f in folder.glob("*.db")}
        assert pids & workers, (pids, workers)
    finally:
        instance.stop()
    assert instance.process.returncode == 0, instance.output()


def _children(pid: int) -> set[int]:
    """The worker processes ``serve`` forked under ``pid`` (Linux /proc): they share its
    imported application, and its command line (a spawned worker's would be
    multiprocessing's ``spawn_main``; its resource tracker, started with spawn, too)."""
    found, spawned = set(), set()
    own = Path(f"/proc/{pid}/cmdline").read_bytes()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) != pid:
            continue
        (found if cmdline == own else spawned).add(int(entry.name))
    assert not spawned, f"processes not forked by serve: {spawned}"
    return found


@pytest.fixture(autouse=True)
def _no_inherited_multiproc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
