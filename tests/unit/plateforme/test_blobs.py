"""Blob storage on the filesystem: the store contract, replication, audit and repair, uploads."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from plateforme import blobs as blobs_module
from plateforme.blobs import (
    BlobNotFound,
    BlobStore,
    CopyStatus,
    FilesystemBlobStore,
    InsufficientCopies,
    NoHealthyCopy,
    ReplicatedBlobs,
    S3BlobStore,
    StagedFile,
    TooLarge,
    make_blob_stores,
    normalise_algorithm,
    receive,
)
from plateforme.settings import Settings


def _run(coroutine):  # type: ignore[no-untyped-def]
    """``asyncio.run`` in a thread of its own: another test of the session may have left an
    event loop running in this thread (Playwright's, gevent's)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def sha512(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()


def write(tmp_path: Path, data: bytes, name: str = "source") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


class BrokenStore:
    """A location that refuses everything, as a full disk or an unreachable bucket would."""

    def __init__(self, name: str = "broken") -> None:
        self.name = name

    def put_file(self, key: str, path: Path) -> None:
        raise OSError(28, "No space left on device")

    def open(self, key: str) -> BinaryIO:
        raise OSError(5, "Input/output error")

    def exists(self, key: str) -> bool:
        raise OSError(5, "Input/output error")

    def size(self, key: str) -> int:
        raise OSError(5, "Input/output error")

    def delete(self, key: str) -> None:
        raise OSError(5, "Input/output error")

    def keys(self) -> Iterator[str]:
        raise OSError(5, "Input/output error")

    def set_retention(self, key: str, until: datetime) -> None:
        raise OSError(5, "Input/output error")

    def ping(self) -> bool:
        return False


@pytest.fixture
def store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "store")


Two = tuple[FilesystemBlobStore, FilesystemBlobStore, ReplicatedBlobs]


@pytest.fixture
def two(tmp_path: Path) -> Two:
    a = FilesystemBlobStore(tmp_path / "a", name="a")
    b = FilesystemBlobStore(tmp_path / "b", name="b")
    return a, b, ReplicatedBlobs([a, b], min_copies=2, staging_dir=tmp_path / "staging")


# ------------------------------------------------------------------ FilesystemBlobStore


def test_filesystem_store_implements_the_protocol(store: FilesystemBlobStore) -> None:
    assert isinstance(store, BlobStore)
    assert isinstance(BrokenStore(), BlobStore)


def test_put_open_size_exists_delete(store: FilesystemBlobStore, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    key = sha512(data)
    store.put_file(key, write(tmp_path, data))
    assert store.exists(key)
    assert store.size(key) == len(data)
    with store.open(key) as stream:
        assert stream.read() == data
    assert store.path_of(key).stat().st_mode & 0o077 == 0  # readable by the service only
    assert store.root.stat().st_mode & 0o077 == 0
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # idempotent


def test_layout_is_fanned_out_and_keys_lists_only_blobs(store: FilesystemBlobStore,
                                                        tmp_path: Path) -> None:
    keys = set()
    for i in range(5):
        data = f"document {i}".encode()
        keys.add(sha512(data))
        store.put_file(sha512(data), write(tmp_path, data))
    for key in keys:
        relative = store.path_of(key).relative_to(store.root)
        assert len(relative.parts) == 2 and len(relative.parts[0]) == 2
    assert set(store.keys()) == keys
    assert not list(store._tmp.iterdir())  # no temporary file left behind


def test_missing_key_raises_blob_not_found(store: FilesystemBlobStore) -> None:
    assert not store.exists("abc")
    with pytest.raises(BlobNotFound):
        store.open("abc")
    with pytest.raises(BlobNotFound):
        store.size("abc")


@pytest.mark.parametrize("key", ["../etc/passwd", "a/b", "", ".hidden", "a\nb", "x" * 300])
def test_unsafe_keys_are_refused(store: FilesystemBlobStore, tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        store.put_file(key, write(tmp_path, b"x"))


def test_put_is_idempotent_and_replaces(store: FilesystemBlobStore, tmp_path: Path) -> None:
    store.put_file("k1", write(tmp_path, b"first"))
    store.put_file("k1", write(tmp_path, b"first"))
    assert list(store.keys()) == ["k1"]
    store.put_file("k1", write(tmp_path, b"second"))  # a repair overwrites a bad copy
    with store.open("k1") as stream:
        assert stream.read() == b"second"


def test_copy_without_sendfile(store: FilesystemBlobStore, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> int:
        raise OSError(22, "Invalid argument")  # as on filesystems without sendfile support

    monkeypatch.setattr(os, "sendfile", refuse)
    data = os.urandom(3 * 1024 * 1024 + 5)
    store.put_file("k1", write(tmp_path, data))
    with store.open("k1") as stream:
        assert stream.read() == data


def test_failed_copy_leaves_no_partial_file(store: FilesystemBlobStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        store.put_file("k1", tmp_path / "does-not-exist")
    assert not store.exists("k1")
    assert not list(store._tmp.iterdir())


def test_set_retention_is_a_no_op(store: FilesystemBlobStore, tmp_path: Path) -> None:
    store.put_file("k1", write(tmp_path, b"x"))
    store.set_retention("k1", datetime.now(UTC) + timedelta(days=1))
    store.delete("k1")
    assert not store.exists("k1")


def test_ping(store: FilesystemBlobStore) -> None:
    assert store.ping() is True


def test_stale_temporaries_of_a_killed_writer_are_removed_at_start(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = FilesystemBlobStore(root)
    big = write(tmp_path, os.urandom(1024 * 1024))
    # A writer process that dies (SIGKILL) in the middle of its copy leaves its temporary file.
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from plateforme import blobs\n"
        "store = blobs.FilesystemBlobStore(Path(sys.argv[1]))\n"
        "def copy_then_die(src, dst):\n"
        "    os.write(dst, os.read(src, 1000))\n"
        "    os.kill(os.getpid(), 9)\n"
        "blobs._copy_fd = copy_then_die\n"
        "store.put_file('k1', Path(sys.argv[2]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(root), str(big)],
                            cwd=Path(__file__).resolve().parents[3], check=False)
    assert result.returncode == -9
    leftovers = list((root / ".tmp").iterdir())
    assert len(leftovers) == 1
    # A temporary file of a live writer (this process) is kept; an old foreign one goes.
    mine = Path(store._temporary())
    mine.write_bytes(b"in progress")
    foreign = root / ".tmp" / "0123.1.otherhost.tmp"
    foreign.write_bytes(b"old")
    os.utime(foreign, (0, 0))
    restarted = FilesystemBlobStore(root)
    assert set((root / ".tmp").iterdir()) == {mine}
    assert not restarted.exists("k1")
    assert list(restarted.keys()) == []


def test_concurrent_puts_of_the_same_key(store: FilesystemBlobStore, tmp_path: Path) -> None:
    data = os.urandom(2 * 1024 * 1024)
    key = sha512(data)
    source = write(tmp_path, data)
    errors: list[BaseException] = []

    def put() -> None:
        try:
            store.put_file(key, source)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert list(store.keys()) == [key]
    with store.open(key) as stream:
        assert sha512(stream.read()) == key
    assert not list(store._tmp.iterdir())


# ------------------------------------------------------------------ ReplicatedBlobs


def test_put_writes_every_location(two: Two, tmp_path: Path) -> None:
    a, b, blobs = two
    data = b"compte rendu du conseil municipal"
    key = sha512(data)
    assert blobs.put_file(key, write(tmp_path, data)) == ["a", "b"]
    assert a.exists(key) and b.exists(key)
    with blobs.open(key) as stream:
        assert stream.read() == data
    assert blobs.size(key) == len(data)
    assert blobs.check(key, "SHA-512", key) == [CopyStatus("a", "ok"), CopyStatus("b", "ok")]


def test_adopted_file_is_linked_into_one_location_and_copied_to_the_others(
        two: Two, tmp_path: Path) -> None:
    a, b, blobs = two
    data = b"registre des deliberations"
    key = sha512(data)
    source = write(tmp_path, data)
    assert blobs.put_file(key, source, adopt=True) == ["a", "b"]
    linked, copied = a.path_of(key).stat(), b.path_of(key).stat()
    assert linked.st_ino == source.stat().st_ino and linked.st_nlink == 2  # no new inode
    assert copied.st_ino != linked.st_ino and copied.st_nlink == 1  # a copy of its own
    source.unlink()  # what the caller does with its staged file afterwards
    assert a.path_of(key).read_bytes() == data == b.path_of(key).read_bytes()
    assert blobs.check(key, "SHA-512", key) == [CopyStatus("a", "ok"), CopyStatus("b", "ok")]
    assert not list(a._tmp.iterdir()) and not list(b._tmp.iterdir())


def test_adopt_copies_where_a_link_is_refused(two: Two, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, blobs = two

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(blobs_module.os, "link", refuse)
    data = b"arrete du maire"
    key = sha512(data)
    source = write(tmp_path, data)
    assert blobs.put_file(key, source, adopt=True) == ["a", "b"]
    for store in (a, b):
        assert store.path_of(key).stat().st_ino != source.stat().st_ino
        assert store.path_of(key).read_bytes() == data


def test_adopted_link_is_fsynced(store: FilesystemBlobStore, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def record(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(blobs_module.os, "fsync", record)
    data = b"proces-verbal"
    source = write(tmp_path, data)
    assert store.adopt_file(sha512(data), source) is True
    assert source.stat().st_ino in synced  # the data, before the rename
    assert store.path_of(sha512(data)).parent.stat().st_ino in synced  # then the folder


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """Every ``fsync`` of the blob module from now on: (inode, is a folder)."""
    synced: list[tuple[int, bool]] = []
    real_fsync = os.fsync

    def record(fd: int) -> None:
        info = os.fstat(fd)
        synced.append((info.st_ino, stat.S_ISDIR(info.st_mode)))
        real_fsync(fd)

    monkeypatch.setattr(blobs_module.os, "fsync", record)
    return synced


@pytest.mark.parametrize("adopt", [False, True])
def test_a_batch_syncs_each_file_and_each_folder_once(
        store: FilesystemBlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        adopt: bool) -> None:
    datas = [f"piece {i}".encode() for i in range(40)]
    items = [(sha512(d), write(tmp_path, d, f"s{i}")) for i, d in enumerate(datas)]
    folders = {store.path_of(key).parent for key, _ in items}
    assert len(folders) < len(items)  # some folders receive several files
    synced = _record_fsyncs(monkeypatch)
    assert store.put_files(items, adopt=adopt) == (len(items) if adopt else 0)
    files = [ino for ino, is_dir in synced if not is_dir]
    dirs = [ino for ino, is_dir in synced if is_dir]
    assert sorted(files) == sorted(store.path_of(key).stat().st_ino for key, _ in items)
    # each folder once, and the root once: its new folders' entries
    assert sorted(dirs) == sorted([f.stat().st_ino for f in folders] + [store.root.stat().st_ino])
    for (key, source), data in zip(items, datas, strict=True):
        assert store.path_of(key).read_bytes() == data
        assert (store.path_of(key).stat().st_ino == source.stat().st_ino) is adopt
    assert not list(store._tmp.iterdir())
    synced.clear()
    again = [(sha512(b"encore"), write(tmp_path, b"encore", "again"))]
    store.put_files(again)  # a folder synced into the root before: the root is not synced
    assert store.root.stat().st_ino not in [ino for ino, _ in synced]


@pytest.mark.parametrize("adopt", [False, True])
def test_a_batch_reports_the_keys_it_created(store: FilesystemBlobStore, tmp_path: Path,
                                             adopt: bool) -> None:
    old, new = b"verse avant", b"nouveau"
    store.put_file(sha512(old), write(tmp_path, old, "old"))
    created: list[str] = []
    store.put_files([(sha512(old), write(tmp_path, old, "again")),
                     (sha512(new), write(tmp_path, new, "new"))], adopt=adopt, created=created)
    assert created == [sha512(new)]


def test_the_data_is_synced_before_the_name_appears(store: FilesystemBlobStore, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_link, real_replace = os.fsync, os.link, os.replace

    def fsync(fd: int) -> None:
        events.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "data")
        real_fsync(fd)

    def link(*args: Any, **kwargs: Any) -> None:
        real_link(*args, **kwargs)
        events.append("name")  # once done (a first try may fail: no folder yet)

    def replace(*args: Any, **kwargs: Any) -> None:
        real_replace(*args, **kwargs)
        events.append("name")

    monkeypatch.setattr(blobs_module.os, "fsync", fsync)
    monkeypatch.setattr(blobs_module.os, "link", link)
    monkeypatch.setattr(blobs_module.os, "replace", replace)
    data = b"deliberation"
    key = sha512(data)
    store.put_files([(key, write(tmp_path, data))], adopt=True)
    assert events == ["data", "name", "dir", "dir"]  # the folder, then the root
    events.clear()
    store.put_files([(key, write(tmp_path, data, "copy"))])
    assert events == ["data", "name", "dir"]


@pytest.mark.parametrize("adopt", [False, True])
def test_a_folder_another_writer_creates_meanwhile(store: FilesystemBlobStore, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  adopt: bool) -> None:
    """The name fails for want of a folder, which another writer creates right then."""
    name = "link" if adopt else "replace"
    real = getattr(os, name)
    raced: list[str] = []

    def racing(source: Any, target: Any, **kwargs: Any) -> None:
        folder = os.path.dirname(target)
        if not raced and not os.path.isdir(folder):
            os.mkdir(folder)  # the other writer
            raced.append(folder)
            raise FileNotFoundError(2, "No such file or directory")
        real(source, target, **kwargs)

    monkeypatch.setattr(blobs_module.os, name, racing)
    data = b"registre"
    store.put_files([(sha512(data), write(tmp_path, data))], adopt=adopt)
    assert raced and store.path_of(sha512(data)).read_bytes() == data


def test_an_adopted_file_replaces_an_existing_copy_through_a_temporary_link(
        store: FilesystemBlobStore, tmp_path: Path) -> None:
    data = b"arrete"
    key = sha512(data)
    store.put_file(key, write(tmp_path, data, "first"))
    source = write(tmp_path, data, "second")
    assert store.adopt_file(key, source) is True
    assert store.path_of(key).stat().st_ino == source.stat().st_ino
    assert not list(store._tmp.iterdir())


def test_replicated_batches_share_one_pool_of_writers(two: Two, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, blobs = two
    used: list[str] = []
    real = FilesystemBlobStore.write_files

    def record(self: FilesystemBlobStore, items: Any, **kwargs: Any) -> int:
        used.append(f"{self.name}:{threading.current_thread().name}")
        return real(self, items, **kwargs)

    monkeypatch.setattr(FilesystemBlobStore, "write_files", record)
    for n in range(3):
        datas = [f"lot {n} piece {i}".encode() for i in range(5)]
        items = [(sha512(d), write(tmp_path, d, f"{n}-{i}")) for i, d in enumerate(datas)]
        assert blobs.put_files(items, adopt=True) == ["a", "b"]
        for key, _ in items:
            assert a.exists(key) and b.exists(key)
    pool = blobs._pool()
    assert blobs._pool() is pool  # one pool for every call
    # a small batch is one part per location: the first in the caller's thread, the second
    # in the pool
    assert sorted(used) == sorted([f"a:{threading.current_thread().name}"] * 3 + [
        u for u in used if u.startswith("b:blob-writer")])
    assert len(used) == 6
    monkeypatch.setattr(blobs_module, "_pid", -1)  # as in a child process after a fork
    assert blobs._pool() is not pool


def test_a_large_batch_is_written_in_parts_and_each_folder_synced_once(
        two: Two, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, blobs = two
    threads: set[str] = set()
    real = FilesystemBlobStore.write_files

    def record(self: FilesystemBlobStore, items: Any, **kwargs: Any) -> int:
        threads.add(threading.current_thread().name)
        return real(self, items, **kwargs)

    monkeypatch.setattr(FilesystemBlobStore, "write_files", record)
    datas = [f"piece {i}".encode() for i in range(100)]
    items = [(sha512(d), write(tmp_path, d, f"s{i}")) for i, d in enumerate(datas)]
    synced = _record_fsyncs(monkeypatch)
    assert blobs.put_files(items, adopt=True) == ["a", "b"]
    assert len(threads) > 2  # parts written at once
    dirs = sorted(ino for ino, is_dir in synced if is_dir)
    expected = [store.path_of(key).parent.stat().st_ino for store in (a, b) for key in
                {k: None for k, _ in items}]
    assert dirs == sorted(set(expected) | {a.root.stat().st_ino, b.root.stat().st_ino})
    assert len([ino for ino, is_dir in synced if not is_dir]) == 200
    for key, _ in items:
        assert a.path_of(key).stat().st_nlink == 2 and b.path_of(key).stat().st_nlink == 1


def test_a_batch_a_location_refuses_midway_is_removed_everywhere(tmp_path: Path) -> None:
    a = FilesystemBlobStore(tmp_path / "a", name="a")
    b = FilesystemBlobStore(tmp_path / "b", name="b")
    kept = b"depose avant"
    b.put_file(sha512(kept), write(tmp_path, kept, "kept"))
    real = b.write_files
    written: list[str] = []

    def half(items: Sequence[tuple[str, Path]], *, adopt: bool = False,
             created: list[str] | None = None, folders: set[str]) -> int:
        real(items[:2], created=created, folders=folders)
        written.extend(key for key, _ in items[:2])
        raise OSError(28, "No space left on device")

    b.write_files = half  # type: ignore[method-assign]
    datas = [kept, b"un", b"deux", b"trois"]
    items = [(sha512(d), write(tmp_path, d, f"f{i}")) for i, d in enumerate(datas)]
    blobs = ReplicatedBlobs([a, b], min_copies=2)
    with pytest.raises(InsufficientCopies) as caught:
        blobs.put_files(items)
    assert caught.value.written == 1 and "No space left" in caught.value.errors["b"]
    assert written == [sha512(kept), sha512(b"un")]
    assert list(a.keys()) == []  # every copy this call created is gone, in both locations
    assert list(b.keys()) == [sha512(kept)]  # what was there before stays


def test_insufficient_copies_rolls_back(tmp_path: Path) -> None:
    a = FilesystemBlobStore(tmp_path / "a", name="a")
    blobs = ReplicatedBlobs([a, BrokenStore()], min_copies=2)
    with pytest.raises(InsufficientCopies) as caught:
        blobs.put_file("k1", write(tmp_path, b"data"))
    assert caught.value.written == 1 and caught.value.status == 503
    assert "broken" in caught.value.errors
    assert not a.exists("k1")


def test_rollback_keeps_a_copy_that_existed_before(tmp_path: Path) -> None:
    a = FilesystemBlobStore(tmp_path / "a", name="a")
    a.put_file("k1", write(tmp_path, b"data"))  # deposited earlier by another unit
    blobs = ReplicatedBlobs([a, BrokenStore()], min_copies=2)
    with pytest.raises(InsufficientCopies):
        blobs.put_file("k1", write(tmp_path, b"data"))
    assert a.exists("k1")


def test_one_copy_suffices_when_configured(tmp_path: Path) -> None:
    a = FilesystemBlobStore(tmp_path / "a", name="a")
    blobs = ReplicatedBlobs([a, BrokenStore()], min_copies=1)
    assert blobs.put_file("k1", write(tmp_path, b"data")) == ["a"]


def test_configuration_errors(tmp_path: Path) -> None:
    a = FilesystemBlobStore(tmp_path / "a", name="a")
    with pytest.raises(ValueError, match="min_copies"):
        ReplicatedBlobs([a], min_copies=2)
    with pytest.raises(ValueError, match="distinct"):
        ReplicatedBlobs([a, FilesystemBlobStore(tmp_path / "b", name="a")])


def test_open_falls_back_to_the_next_location(two: Two, tmp_path: Path) -> None:
    a, b, blobs = two
    blobs.put_file("k1", write(tmp_path, b"data"))
    a.delete("k1")
    with blobs.open("k1") as stream:
        assert stream.read() == b"data"
    b.delete("k1")
    with pytest.raises(BlobNotFound):
        blobs.open("k1")
    with pytest.raises(BlobNotFound):
        blobs.size("k1")
    unreadable = ReplicatedBlobs([BrokenStore(), b], min_copies=1)
    b.put_file("k1", write(tmp_path, b"data"))
    with unreadable.open("k1") as stream:
        assert stream.read() == b"data"


def test_corruption_is_detected_and_repaired(two: Two, tmp_path: Path) -> None:
    a, b, blobs = two
    data = os.urandom(3 * 1024 * 1024)
    key = sha512(data)
    blobs.put_file(key, write(tmp_path, data))
    damaged = bytearray(data)
    damaged[1_000_000] ^= 0x01  # one flipped bit
    b.path_of(key).write_bytes(bytes(damaged))
    statuses = blobs.check(key, "sha512", key)
    assert statuses[0] == CopyStatus("a", "ok")
    assert statuses[1].state == "corrupt" and statuses[1].location == "b"
    assert blobs.repair(key, "sha512", key) == ["b"]
    assert [s.state for s in blobs.check(key, "sha512", key)] == ["ok", "ok"]
    with b.open(key) as stream:
        assert stream.read() == data
    assert blobs.repair(key, "sha512", key) == []  # nothing left to repair


def test_missing_copy_is_detected_and_repaired(two: Two, tmp_path: Path) -> None:
    a, b, blobs = two
    data = b"deliberation 2026-114"
    key = sha512(data)
    blobs.put_file(key, write(tmp_path, data))
    a.delete(key)
    assert [s.state for s in blobs.check(key, "sha512", key)] == ["missing", "ok"]
    assert blobs.repair(key, "SHA-512", key.upper()) == ["a"]
    assert [s.state for s in blobs.check(key, "sha512", key)] == ["ok", "ok"]


def test_repair_without_a_healthy_copy(two: Two, tmp_path: Path) -> None:
    a, b, blobs = two
    data = b"original"
    key = sha512(data)
    blobs.put_file(key, write(tmp_path, data))
    a.path_of(key).write_bytes(b"tampered")
    b.delete(key)
    with pytest.raises(NoHealthyCopy):
        blobs.repair(key, "sha512", key)
    with a.open(key) as stream:
        assert stream.read() == b"tampered"  # nothing overwritten with unverified bytes


def test_unreachable_location_is_reported_not_repaired(tmp_path: Path) -> None:
    a = FilesystemBlobStore(tmp_path / "a", name="a")
    blobs = ReplicatedBlobs([a, BrokenStore()], min_copies=1)
    blobs.put_file("k1", write(tmp_path, b"data"))
    statuses = blobs.check("k1", "sha512", sha512(b"data"))
    assert statuses[0].state == "ok"
    assert statuses[1].state == "unavailable" and "Input/output" in (statuses[1].detail or "")
    assert blobs.repair("k1", "sha512", sha512(b"data")) == []


def test_check_other_algorithms(two: Two, tmp_path: Path) -> None:
    a, b, blobs = two
    blobs.put_file("k1", write(tmp_path, b"data"))
    expected = hashlib.sha256(b"data").hexdigest()
    assert [s.state for s in blobs.check("k1", "SHA-256", expected)] == ["ok", "ok"]
    with pytest.raises(ValueError, match="unsupported"):
        blobs.check("k1", "crc32", "00")


def test_delete_everywhere(two: Two, tmp_path: Path) -> None:
    a, b, blobs = two
    blobs.put_file("k1", write(tmp_path, b"data"))
    blobs.delete_everywhere("k1")
    assert not a.exists("k1") and not b.exists("k1")
    blobs.delete_everywhere("k1")  # idempotent


def test_delete_everywhere_reports_a_failed_location(tmp_path: Path) -> None:
    a = FilesystemBlobStore(tmp_path / "a", name="a")
    blobs = ReplicatedBlobs([BrokenStore(), a], min_copies=1)
    a.put_file("k1", write(tmp_path, b"data"))
    with pytest.raises(OSError, match="Input/output"):
        blobs.delete_everywhere("k1")
    assert not a.exists("k1")  # the other locations were still destroyed


def test_replicated_ping(two: Two) -> None:
    a, b, blobs = two
    assert blobs.ping() == {"a": True, "b": True}
    degraded = ReplicatedBlobs([a, BrokenStore()], min_copies=1)
    assert degraded.ping() == {"a": True, "broken": False}


def test_replicated_concurrent_puts(two: Two, tmp_path: Path) -> None:
    a, b, blobs = two
    data = os.urandom(1024 * 1024)
    key = sha512(data)
    source = write(tmp_path, data)
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(blobs.put_file(key, source)))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [["a", "b"]] * 6
    assert [s.state for s in blobs.check(key, "sha512", key)] == ["ok", "ok"]


# ------------------------------------------------------------------ receive


async def chunked(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]
        await asyncio.sleep(0)


def test_receive_streams_and_digests(tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024 + 3)
    staged = _run(receive(chunked(data), tmp_path / "staging", max_bytes=len(data)))
    assert isinstance(staged, StagedFile)
    assert staged.size == len(data)
    assert staged.path.read_bytes() == data
    assert staged.path.stat().st_mode & 0o077 == 0
    assert staged.digests == {"sha512": sha512(data), "sha256": hashlib.sha256(data).hexdigest()}
    staged.discard()
    assert not staged.path.exists()


def test_receive_never_holds_the_whole_upload(tmp_path: Path) -> None:
    block = os.urandom(65536)

    async def upload() -> AsyncIterator[bytes]:
        for _ in range(1024):  # 64 MiB
            yield block

    tracemalloc.start()
    try:
        staged = _run(receive(upload(), tmp_path, max_bytes=None))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert staged.size == 64 * 1024 * 1024
    assert peak < 8 * 1024 * 1024
    staged.discard()


def test_receive_empty_and_unlimited(tmp_path: Path) -> None:
    staged = _run(receive(chunked(b""), tmp_path, max_bytes=None, algorithms=("SHA-256",)))
    assert staged.size == 0
    assert staged.digests == {"sha256": hashlib.sha256(b"").hexdigest()}


def test_receive_too_large_stops_early_and_deletes(tmp_path: Path) -> None:
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for i in range(1000):
            sent.append(i)
            yield b"x" * 65536

    staging = tmp_path / "staging"
    with pytest.raises(TooLarge) as caught:
        _run(receive(endless(), staging, max_bytes=1024 * 1024))
    assert caught.value.status == 413
    assert len(sent) == 17  # stopped at the first chunk past the limit
    assert list(staging.iterdir()) == []


def test_receive_interrupted_upload_leaves_nothing(tmp_path: Path) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * (2 * 1024 * 1024)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        _run(receive(broken(), tmp_path, max_bytes=None))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ configuration


def test_default_is_two_folders_in_the_data_dir(tmp_path: Path) -> None:
    blobs = make_blob_stores(Settings(data_dir=tmp_path))
    assert blobs.min_copies == 2
    assert [type(s) for s in blobs.stores] == [FilesystemBlobStore, FilesystemBlobStore]
    roots = [s.root for s in blobs.stores]  # type: ignore[attr-defined]
    assert roots == [tmp_path / "blobs" / "a", tmp_path / "blobs" / "b"]
    assert blobs.locations == ["a", "b"]


def test_blob_url_lists_locations(tmp_path: Path) -> None:
    url = f"{(tmp_path / 'disk1').as_uri()}#disque1, {(tmp_path / 'disk2').as_uri()}"
    blobs = make_blob_stores(Settings(data_dir=tmp_path, blob_url=url))
    assert blobs.locations == ["disque1", (tmp_path / "disk2").as_uri()]
    settings = Settings(data_dir=tmp_path, blob_url="s3://archives/ctm,s3://archives-replica",
                        s3_endpoint="http://127.0.0.1:1", s3_access_key="k", s3_secret_key="s",
                        s3_region="eu-west-3")
    s3 = make_blob_stores(settings)
    assert [type(s) for s in s3.stores] == [S3BlobStore, S3BlobStore]
    assert s3.locations == ["s3://archives/ctm", "s3://archives-replica"]


@pytest.mark.parametrize("url", ["file://relative/path", "file:///only-one", "ftp://x/y", "s3://"])
def test_bad_blob_urls(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValueError, match="MC_BLOB_URL|min_copies"):
        make_blob_stores(Settings(data_dir=tmp_path, blob_url=url))


def test_normalise_algorithm() -> None:
    assert normalise_algorithm("SHA-512") == "sha512"
    assert normalise_algorithm("sha256") == "sha256"
    assert normalise_algorithm("SHA3-256") == "sha3_256"


def test_all_is_sorted_and_complete() -> None:
    exported = list(blobs_module.__all__)
    assert exported == sorted(exported)
    for name in exported:
        assert hasattr(blobs_module, name)
