"""/readyz reports the blob locations: ready while at least ``min_copies`` of them answer."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from martinique_connect.app import create_app
from tests.conftest import Backend, Platform, make_settings
from tests.support.live import free_port, serve


def test_readyz_follows_the_blob_locations(backend: Backend, platform: Platform,
                                           tmp_path: Path) -> None:
    port = free_port()
    disk1, disk2, disk3 = (tmp_path / name for name in ("disk1", "disk2", "disk3"))
    blob_url = ",".join(f"{d.as_uri()}#{d.name}" for d in (disk1, disk2, disk3))
    # A second instance over the session's database: with the platform's secret key, which
    # encrypts the signing keys stored there (with its own, this instance created keys the
    # session's platform, started later, could not decrypt: its /token answered 500).
    settings = make_settings(backend, tmp_path / "data", port, blob_url=blob_url,
                             secret_key=platform.settings.secret_key)
    with serve(create_app(settings), port) as live:
        answer = httpx.get(f"{live.url}/readyz")
        assert answer.status_code == 200
        assert answer.json()["checks"]["blobs"] == "ok"
        shutil.rmtree(disk3)  # one location lost: two copies can still be written
        assert httpx.get(f"{live.url}/readyz").status_code == 200
        shutil.rmtree(disk2)  # below MC_BLOB_MIN_COPIES: deposits would fail
        answer = httpx.get(f"{live.url}/readyz")
        assert answer.status_code == 503
        assert answer.json()["checks"]["blobs"] == "unreachable"
