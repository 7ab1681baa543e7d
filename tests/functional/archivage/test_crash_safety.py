"""A server process killed (SIGKILL) in the middle of a deposit leaves no partial unit and
no orphan blob visible; the next start sweeps what the crash left behind.

The server is a real subprocess (``martinique-connect serve``); the test kills it once the
first copy of the file is in place but before the deposit is recorded (the blob intent is
there, the unit is not), then restarts it and checks that the blob is gone from every
location, and that the unit never appeared.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from plateforme.blobs import FilesystemBlobStore
from plateforme.db import make_engine
from tests.support.cli import run_cli
from tests.support.live import free_port, wait_http

CLI = [sys.executable, "-m", "martinique_connect"]


class Server:
    def __init__(self, env: dict[str, str], url: str) -> None:
        self.env = env
        self.url = url
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([*CLI, "serve"], env=self.env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        wait_http(self.url + "/healthz", timeout=60)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def server(backend, tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    env = {**os.environ, "MC_DATA_DIR": str(tmp_path / "data"), "MC_PORT": str(port),
           "MC_ISSUER": f"http://127.0.0.1:{port}", "MC_ENVIRONMENT": "test",
           "MC_SECRET_KEY": "crash-" + secrets.token_hex(16),
           "MC_ARCHIVES_ORPHAN_GRACE_SECONDS": "0", "MC_ADDRESS_FREE_ATTEMPTS": "10000"}
    database = None
    if backend.database_url:
        # A database and a Redis prefix of its own: its `serve` registers the console client
        # for its own issuer, which must not touch the session platform's.
        import psycopg

        from tests.conftest import PG_ADMIN_URL

        database = f"mc_crash_{secrets.token_hex(6)}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        env.update(MC_DATABASE_URL=PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database,
                   MC_REDIS_URL=backend.redis_url or "",
                   MC_REDIS_PREFIX=backend.redis_prefix + "crash:")
    running = Server(env, f"http://127.0.0.1:{port}")
    yield running
    running.stop()
    if database:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _token(server: Server) -> str:
    out = run_cli(server.env, "clients", "create", "--name", "GED crash", "--grant-type",
                  "client_credentials", "--scope", "archives:read archives:write", "--org",
                  "lamentin", "--json")  # in process: the server is the process under test
    assert out.returncode == 0, out.stderr
    client = json.loads(out.stdout)
    response = httpx.post(server.url + "/token", data={
        "grant_type": "client_credentials", "scope": "archives:read archives:write"},
        auth=(client["client_id"], client["client_secret"]))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _body(title: str, size: int) -> tuple[bytes, bytes]:
    """A multipart body with one file of random content; returns (body, file bytes)."""
    data = secrets.token_bytes(size)
    head = (b'--CrAsH\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'
            + json.dumps({"title": title}).encode()
            + b'\r\n--CrAsH\r\nContent-Disposition: form-data; name="file"; '
              b'filename="big.bin"\r\n\r\n')
    return head + data + b"\r\n--CrAsH--\r\n", data


def test_sigkill_mid_deposit_leaves_nothing_visible(server: Server, backend) -> None:
    import hashlib

    server.start()
    token = _token(server)
    data_dir = Path(server.env["MC_DATA_DIR"])
    stores = [FilesystemBlobStore(data_dir / "blobs" / name) for name in ("a", "b")]
    engine = make_engine(make_url(server.env))
    hit = None
    for attempt in range(4):
        title = f"Versement interrompu {attempt} {secrets.token_hex(3)}"
        body, data = _body(title, 120 * 1024 * 1024)
        key = hashlib.sha512(data).hexdigest()
        first_copy = stores[0].path_of(key)
        result: dict[str, object] = {}

        def send(body: bytes = body, result: dict[str, object] = result) -> None:
            try:
                result["response"] = httpx.post(
                    server.url + "/api/archives/deposits", content=body, timeout=120,
                    headers={"Authorization": f"Bearer {token}",
                             "Content-Type": "multipart/form-data; boundary=CrAsH"})
            except httpx.HTTPError as exc:
                result["error"] = exc

        sender = threading.Thread(target=send)
        sender.start()
        deadline = time.time() + 120
        while not first_copy.exists() and sender.is_alive() and time.time() < deadline:
            time.sleep(0.001)
        server.kill()
        sender.join(timeout=30)
        with engine.connect() as conn:
            intents = conn.execute(text("SELECT count(*) FROM arch_blob_intent WHERE "
                                        "blob_key = :k"), {"k": key}).scalar_one()
            units = conn.execute(text("SELECT count(*) FROM arch_unit WHERE title = :t"),
                                 {"t": title}).scalar_one()
        if intents and not units and first_copy.exists():
            hit = (title, key)
            break
        server.start()  # the deposit finished before the kill: try again
    assert hit is not None, "the kill never landed between the blob write and the commit"
    title, key = hit
    assert "response" not in result  # the client never saw a success

    server.start()  # the start-up sweep removes the crash's leftovers
    assert not any(store.exists(key) for store in stores)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM arch_blob_intent WHERE blob_key = :k"),
                            {"k": key}).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM arch_unit WHERE title = :t"),
                            {"t": title}).scalar_one() == 0
    staging = data_dir / "archives" / "staging"
    assert not staging.exists() or not any(staging.iterdir())
    found = httpx.get(server.url + "/api/archives/units", params={"q": "interrompu"},
                      headers={"Authorization": f"Bearer {token}"})
    assert found.status_code == 200 and found.json()["items"] == []
    # and the server works normally afterwards
    ok = httpx.post(server.url + "/api/archives/deposits", timeout=60,
                    headers={"Authorization": f"Bearer {token}"},
                    files=[("metadata", (None, json.dumps({"title": "Après reprise"}))),
                           ("file", ("ok.txt", b"tout va bien"))])
    assert ok.status_code == 201, ok.text
    engine.dispose()


def make_url(env: dict[str, str]) -> str:
    from plateforme.settings import Settings

    return Settings(data_dir=Path(env["MC_DATA_DIR"]),
                    database_url=env.get("MC_DATABASE_URL") or None).sqlalchemy_url
