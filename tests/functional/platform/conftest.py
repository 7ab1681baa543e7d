"""Fixtures of the platform tests: real server processes (``martinique-connect serve``) over
the session's database and Redis prefix, and a private ``redis-server`` a test may stop."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import Backend, Platform
from tests.support.cli import CliResult
from tests.support.cli import run_cli as in_process_cli
from tests.support.live import free_port


def cli_env(backend: Backend, data_dir: Path, **extra: str) -> dict[str, str]:
    """The ``MC_*`` environment of a server or CLI process on ``backend``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MC_", "PROMETHEUS_"))}
    env.update({
        "MC_DATA_DIR": str(data_dir), "MC_ENVIRONMENT": "test",
        "MC_ADDRESS_FREE_ATTEMPTS": "10000",
    })
    if backend.database_url:
        env["MC_DATABASE_URL"] = backend.database_url
    if backend.redis_url:
        env["MC_REDIS_URL"] = backend.redis_url
        env["MC_REDIS_PREFIX"] = backend.redis_prefix
    env.update(extra)
    return env


def run_cli(env: dict[str, str], *args: str) -> CliResult:
    """A command (in process, ``tests.support.cli``) with the ``MC_*`` settings of ``env``;
    the servers themselves are real processes (``start_instance``)."""
    return in_process_cli(env, *args)


@dataclass
class Instance:
    """One ``martinique-connect serve`` process."""

    url: str
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_instance(env: dict[str, str], *args: str, timeout: float = 180) -> Instance:
    port = int(env["MC_PORT"])
    log = Path(env["MC_DATA_DIR"]) / f"serve-{port}.log"
    Path(env["MC_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "martinique_connect", "serve", "--port", str(port), *args],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    instance = Instance(f"http://127.0.0.1:{port}", port, env, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited with {process.returncode}:\n{instance.output()}")
        try:
            if httpx.get(instance.url + "/healthz", timeout=1).status_code == 200:
                return instance
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    instance.stop()
    raise RuntimeError(f"serve did not answer on {instance.url}:\n{instance.output()}")


@dataclass
class Instances:
    """Instances sharing one database, Redis prefix, secret key and public issuer."""

    backend: Backend
    issuer: str
    secret_key: str
    root: Path
    running: list[Instance] = field(default_factory=list)

    def env(self, port: int, **extra: str) -> dict[str, str]:
        data_dir = self.root / f"instance-{port}"  # nothing on disk is shared
        return cli_env(self.backend, data_dir, MC_ISSUER=self.issuer, MC_PORT=str(port),
                       MC_SECRET_KEY=self.secret_key, **extra)

    def start(self, port: int | None = None, *args: str, **extra: str) -> Instance:
        instance = start_instance(self.env(port or free_port(), **extra), *args)
        self.running.append(instance)
        return instance

    def cli(self, *args: str) -> CliResult:
        return run_cli(self.env(free_port()), *args)


@contextmanager
def _group(backend: Backend, platform: Platform) -> Iterator[Instances]:
    if backend.redis_url is None:
        pytest.skip("several instances share their state through Redis and PostgreSQL: "
                    "PostgreSQL + Redis backend only")
    assert platform.settings.secret_key
    root = Path(tempfile.mkdtemp(prefix="mc-instances-"))
    # the platform's own issuer: `serve` registers the console's client under its issuer, in
    # the database the session's platform shares
    group = Instances(backend, issuer=platform.settings.issuer,
                      secret_key=platform.settings.secret_key, root=root)
    try:
        yield group
    finally:
        for instance in group.running:
            instance.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def instances(backend: Backend, platform: Platform) -> Iterator[Instances]:
    """Instances over the session's database: with the session platform's secret key, which
    encrypts the signing keys stored there (as every instance of one deployment)."""
    with _group(backend, platform) as group:
        yield group


@pytest.fixture(scope="session")
def _shared_group(backend: Backend, platform: Platform) -> Iterator[Instances]:
    with _group(backend, platform) as group:
        yield group


@pytest.fixture
def instance_pair(_shared_group: Instances) -> tuple[Instance, Instance]:
    """Two plain ``serve`` processes (default settings) over the session's database, started
    once and shared by the tests that need nothing else of them: a test must leave them
    running and must not depend on what another did through them (each creates its own
    clients and accounts). Restarted if one has died."""
    group = _shared_group
    alive = [i for i in group.running if i.process.poll() is None]
    if len(alive) < 2:
        for instance in group.running:
            instance.stop()
        group.running.clear()
        group.start()
        group.start()
        alive = group.running
    return alive[0], alive[1]


@dataclass
class PrivateRedis:
    """A ``redis-server`` of the test's own, on a free port, without persistence."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.5).ping():
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true and redis-server is not installed")
        pytest.skip("redis-server not installed")
    server = PrivateRedis(free_port())
    server.start()
    yield server
    server.stop()


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus text exposition (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total
