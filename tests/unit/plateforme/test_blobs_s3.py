"""Blob storage on S3, against a real S3-compatible server (moto, a separate process)."""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from plateforme.blobs import (
    BlobNotFound,
    BlobStore,
    FilesystemBlobStore,
    InsufficientCopies,
    ReplicatedBlobs,
    S3BlobStore,
    make_blob_stores,
)
from plateforme.settings import Settings
from tests.support.live import free_port
from tests.support.s3 import S3Server, moto_server, s3_bucket, s3_locked_bucket  # noqa: F401


def sha512(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()


def write(tmp_path: Path, data: bytes, name: str = "source") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def s3_store(server: S3Server, bucket: str, **kwargs: object) -> S3BlobStore:
    return S3BlobStore(bucket, endpoint_url=server.endpoint, access_key=server.access_key,
                       secret_key=server.secret_key, region=server.region,
                       **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def store(moto_server: S3Server, s3_bucket: str) -> S3BlobStore:  # noqa: F811
    return s3_store(moto_server, s3_bucket, prefix="archives/")


def test_s3_store_implements_the_protocol(store: S3BlobStore) -> None:
    assert isinstance(store, BlobStore)
    assert store.name.startswith("s3://") and store.name.endswith("/archives")


def test_put_open_size_exists_delete(store: S3BlobStore, tmp_path: Path,
                                     moto_server: S3Server) -> None:  # noqa: F811
    data = os.urandom(1024 * 1024 + 5)
    key = sha512(data)
    store.put_file(key, write(tmp_path, data))
    assert store.exists(key)
    assert store.size(key) == len(data)
    with store.open(key) as stream:
        first = stream.read(1000)
        rest = stream.read()
    assert first + rest == data
    listed = moto_server.client().list_objects_v2(Bucket=store.bucket)["Contents"]
    assert [o["Key"] for o in listed] == [f"archives/{key}"]
    assert list(store.keys()) == [key]
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # idempotent
    assert list(store.keys()) == []


def test_missing_key(store: S3BlobStore) -> None:
    assert not store.exists("abc")
    with pytest.raises(BlobNotFound):
        store.open("abc")
    with pytest.raises(BlobNotFound):
        store.size("abc")


def test_multipart_upload_of_a_large_file(moto_server: S3Server, s3_bucket: str,  # noqa: F811
                                          tmp_path: Path) -> None:
    store = s3_store(moto_server, s3_bucket, multipart_threshold=5 * 1024 * 1024)
    data = os.urandom(12 * 1024 * 1024 + 1)
    key = sha512(data)
    store.put_file(key, write(tmp_path, data))
    head = moto_server.client().head_object(Bucket=s3_bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    blobs = ReplicatedBlobs([store], min_copies=1)
    assert [s.state for s in blobs.check(key, "sha512", key)] == ["ok"]


def test_unsafe_keys_are_refused(store: S3BlobStore, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        store.put_file("../other-prefix/x", write(tmp_path, b"x"))


def test_ping(store: S3BlobStore) -> None:
    assert store.ping() is True
    down = S3BlobStore("nope", endpoint_url=f"http://127.0.0.1:{free_port()}",
                       access_key="k", secret_key="s", region="eu-west-3")
    assert down.ping() is False


def test_retention_is_a_no_op_without_object_lock(store: S3BlobStore, tmp_path: Path) -> None:
    store.put_file("k1", write(tmp_path, b"x"))
    assert store.object_lock_enabled is False
    store.set_retention("k1", datetime.now(UTC) + timedelta(days=365))
    assert store.retention("k1") is None
    store.delete("k1")
    assert not store.exists("k1")


def test_object_lock_retention_blocks_destruction(moto_server: S3Server,  # noqa: F811
                                                  s3_locked_bucket: str,  # noqa: F811
                                                  tmp_path: Path) -> None:
    store = s3_store(moto_server, s3_locked_bucket)
    assert store.object_lock_enabled is True
    store.put_file("k1", write(tmp_path, b"deliberation"))
    until = (datetime.now(UTC) + timedelta(days=3650)).replace(microsecond=0)
    store.set_retention("k1", until)
    assert store.retention("k1") == until
    store.set_retention("k1", until - timedelta(days=1))  # never shortened
    assert store.retention("k1") == until
    with pytest.raises(ClientError):
        store.delete("k1")
    assert store.exists("k1")
    blobs = ReplicatedBlobs([store], min_copies=1)
    with pytest.raises(ClientError):
        blobs.delete_everywhere("k1")
    with blobs.open("k1") as stream:
        assert stream.read() == b"deliberation"


def test_delete_destroys_every_version(moto_server: S3Server,  # noqa: F811
                                       s3_locked_bucket: str, tmp_path: Path) -> None:  # noqa: F811
    store = s3_store(moto_server, s3_locked_bucket)
    store.put_file("k1", write(tmp_path, b"v1"))
    store.put_file("k1", write(tmp_path, b"v2"))  # e.g. a repair: a second version
    client = moto_server.client()
    assert len(client.list_object_versions(Bucket=s3_locked_bucket)["Versions"]) == 2
    store.delete("k1")
    listing = client.list_object_versions(Bucket=s3_locked_bucket)
    assert listing.get("Versions", []) == [] and listing.get("DeleteMarkers", []) == []


def test_replication_across_filesystem_and_s3(store: S3BlobStore, tmp_path: Path,
                                              moto_server: S3Server) -> None:  # noqa: F811
    disk = FilesystemBlobStore(tmp_path / "disk", name="disk")
    blobs = ReplicatedBlobs([disk, store], min_copies=2, staging_dir=tmp_path / "staging")
    data = os.urandom(2 * 1024 * 1024)
    key = sha512(data)
    assert blobs.put_file(key, write(tmp_path, data)) == ["disk", store.name]
    assert [s.state for s in blobs.check(key, "sha512", key)] == ["ok", "ok"]

    # The S3 copy is corrupted behind our back: detected, then repaired from the disk.
    moto_server.client().put_object(Bucket=store.bucket, Key=f"archives/{key}", Body=b"rot")
    states = blobs.check(key, "sha512", key)
    assert [s.state for s in states] == ["ok", "corrupt"]
    assert blobs.repair(key, "sha512", key) == [store.name]
    assert [s.state for s in blobs.check(key, "sha512", key)] == ["ok", "ok"]

    # The disk copy disappears: detected, then repaired from S3.
    disk.delete(key)
    assert [s.state for s in blobs.check(key, "sha512", key)] == ["missing", "ok"]
    assert blobs.repair(key, "sha512", key) == ["disk"]
    with disk.open(key) as stream:
        assert sha512(stream.read()) == key

    blobs.delete_everywhere(key)
    assert not disk.exists(key) and not store.exists(key)


def test_unreachable_s3_rolls_back_the_filesystem_copy(tmp_path: Path) -> None:
    disk = FilesystemBlobStore(tmp_path / "disk", name="disk")
    down = S3BlobStore("archives", endpoint_url=f"http://127.0.0.1:{free_port()}",
                       access_key="k", secret_key="s", region="eu-west-3")
    blobs = ReplicatedBlobs([disk, down], min_copies=2)
    with pytest.raises(InsufficientCopies) as caught:
        blobs.put_file("k1", write(tmp_path, b"data"))
    assert down.name in caught.value.errors
    assert not disk.exists("k1")
    assert blobs.ping() == {"disk": True, down.name: False}
    disk.put_file("k1", write(tmp_path, b"data"))
    statuses = blobs.check("k1", "sha512", sha512(b"data"))
    assert [s.state for s in statuses] == ["ok", "unavailable"]


def test_concurrent_puts_of_the_same_key(store: S3BlobStore, tmp_path: Path) -> None:
    disk = FilesystemBlobStore(tmp_path / "disk", name="disk")
    blobs = ReplicatedBlobs([disk, store], min_copies=2)
    data = os.urandom(512 * 1024)
    key = sha512(data)
    source = write(tmp_path, data)
    errors: list[BaseException] = []

    def put() -> None:
        try:
            blobs.put_file(key, source)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert list(store.keys()) == [key] and list(disk.keys()) == [key]
    assert [s.state for s in blobs.check(key, "sha512", key)] == ["ok", "ok"]


def test_make_blob_stores_with_s3(moto_server: S3Server, tmp_path: Path) -> None:  # noqa: F811
    first, second = moto_server.create_bucket(), moto_server.create_bucket(object_lock=True)
    settings = Settings(data_dir=tmp_path, blob_url=f"s3://{first}/ctm,s3://{second}#replique",
                        s3_endpoint=moto_server.endpoint, s3_access_key=moto_server.access_key,
                        s3_secret_key=moto_server.secret_key, s3_region=moto_server.region)
    blobs = make_blob_stores(settings)
    assert blobs.locations == [f"s3://{first}/ctm", "replique"]
    assert blobs.ping() == {f"s3://{first}/ctm": True, "replique": True}
    data = b"registre des deliberations"
    key = sha512(data)
    blobs.put_file(key, write(tmp_path, data))
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    blobs.set_retention(key, until)
    locked = blobs.stores[1]
    assert isinstance(locked, S3BlobStore) and locked.retention(key) == until
