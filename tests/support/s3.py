"""A real S3-compatible server for the tests: moto's server, run as a separate process.

``moto_server`` (session scope) starts ``python -m moto.server`` on a free loopback port and
stops it at the end; ``s3_bucket`` gives each test its own bucket (``s3_locked_bucket`` one
with Object Lock enabled). The code under test talks to it over HTTP with boto3, like to any
S3 endpoint: nothing is mocked in-process.

To use the fixtures, import them in a test module or a conftest::

    from tests.support.s3 import moto_server, s3_bucket  # noqa: F401
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.live import free_port

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "eu-west-3"


@dataclass
class S3Server:
    """Where the server listens, with the credentials it accepts."""

    endpoint: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region,
                            config=Config(s3={"addressing_style": "path"}))

    def create_bucket(self, *, object_lock: bool = False) -> str:
        name = f"mc-test-{secrets.token_hex(6)}"
        self.client().create_bucket(
            Bucket=name, ObjectLockEnabledForBucket=object_lock,
            CreateBucketConfiguration={"LocationConstraint": self.region})
        return name


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto server exited with {process.returncode}")
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield S3Server(endpoint)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def s3_bucket(moto_server: S3Server) -> str:
    return moto_server.create_bucket()


@pytest.fixture
def s3_locked_bucket(moto_server: S3Server) -> str:
    return moto_server.create_bucket(object_lock=True)
