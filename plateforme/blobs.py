"""Blob storage: content-addressed files kept in several independent locations.

One :class:`BlobStore` protocol, two implementations:

* :class:`FilesystemBlobStore`, the embedded default: fan-out folders, atomic writes
  (temporary file in the same filesystem, ``fsync`` of the file and of its folder,
  ``os.replace``);
* :class:`S3BlobStore`, S3-compatible object storage through boto3, with Object Lock
  retention when the bucket has it enabled.

:class:`ReplicatedBlobs` is the storage strategy: every file goes to at least ``min_copies``
locations, copies are audited against their expected digest and repaired from a healthy one.
:func:`receive` streams an upload to a staging file while computing its digests, and
:func:`make_blob_stores` builds the strategy from ``MC_BLOB_URL``.

Example::

    blobs = make_blob_stores(settings)
    staged = await receive(request.stream(), staging_dir, max_bytes=limit)
    key = staged.digests["sha512"]
    blobs.put_file(key, staged.path)          # raises InsufficientCopies
    statuses = blobs.check(key, "sha512", key)
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import io
import itertools
import logging
import os
import re
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import (
    IO,
    TYPE_CHECKING,
    Any,
    BinaryIO,
    Literal,
    Protocol,
    TypeVar,
    cast,
    runtime_checkable,
)
from urllib.parse import unquote, urlsplit

from plateforme.errors import DomainError

if TYPE_CHECKING:
    from plateforme.settings import Settings

log = logging.getLogger("plateforme.blobs")

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "CopyState",
    "CopyStatus",
    "FilesystemBlobStore",
    "InsufficientCopies",
    "NoHealthyCopy",
    "ReplicatedBlobs",
    "S3BlobStore",
    "StagedFile",
    "TooLarge",
    "make_blob_stores",
    "normalise_algorithm",
    "receive",
    "stage_many",
]

_CHUNK = 1024 * 1024
_PARTS = 4  # a batch's files (and folders) written (and synced) by this many threads at once
_PART_MIN = 8  # files per part, at least
_WRITERS = 16  # threads of the pool shared by a process's batches
_T = TypeVar("_T")
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


class BlobNotFound(Exception):
    """The key is absent from the location (or from every location)."""


class NoHealthyCopy(BlobNotFound):
    """No location holds a copy matching the expected digest: nothing to repair from."""


class TooLarge(DomainError):
    """An upload passed its size limit; the partial file is already deleted."""

    status = 413
    title = "Contenu trop volumineux"

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"Le fichier dépasse la taille maximale autorisée ({max_bytes} octets).")
        self.max_bytes = max_bytes


class InsufficientCopies(DomainError):
    """Fewer than ``min_copies`` locations accepted the file; what was written is removed."""

    status = 503
    title = "Stockage indisponible"

    def __init__(self, key: str, written: int, required: int, errors: dict[str, str]) -> None:
        super().__init__(
            f"Le fichier n'a pu être écrit que dans {written} emplacement(s) sur les "
            f"{required} requis ; le dépôt est refusé, réessayez plus tard."
        )
        self.key = key
        self.written = written
        self.required = required
        self.errors = errors


def check_key(key: str) -> str:
    """Refuse keys that could escape a folder or an S3 prefix (``/``, ``..``, control chars)."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"invalid blob key: {key!r}")
    return key


def normalise_algorithm(algorithm: str) -> str:
    """``SHA-512``, ``sha-512`` and ``sha512`` all name hashlib's ``sha512``."""
    name = algorithm.lower().replace("-", "").replace("_", "")
    if name.startswith("sha3"):
        name = "sha3_" + name[4:]
    if name not in hashlib.algorithms_guaranteed:
        raise ValueError(f"unsupported digest algorithm: {algorithm}")
    return name


@runtime_checkable
class BlobStore(Protocol):
    """One storage location. Keys are content addresses (a digest in hex, for example).

    Implement the methods below; every write must be atomic (a reader never sees a partial
    object) and idempotent (writing the same key twice leaves one complete object)::

        class MyStore:
            name = "mine"
            def put_file(self, key, path): upload(path, key)   # all or nothing
            ...
    """

    name: str

    def put_file(self, key: str, path: Path) -> None:
        """Store the file at ``path`` under ``key``, atomically; replaces an existing copy."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A binary stream of the object. Raises :class:`BlobNotFound`."""
        ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int:
        """Size in bytes. Raises :class:`BlobNotFound`."""
        ...

    def delete(self, key: str) -> None:
        """Destroy the object (every version of it); deleting an absent key is not an error."""
        ...

    def keys(self) -> Iterator[str]: ...

    def set_retention(self, key: str, until: datetime) -> None:
        """Forbid destruction before ``until`` where the location supports it; no-op elsewhere."""
        ...

    def ping(self) -> bool:
        """True when the location answers and accepts writes (for ``/readyz``)."""
        ...


# --------------------------------------------------------------------------- filesystem


@contextlib.contextmanager
def _removed_on_failure(tmp: str | Path) -> Iterator[None]:
    """Delete the temporary file ``tmp`` if the block fails (it is never left half-written)."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_pid = os.getpid()  # getpid() is a system call on every call; kept here, renewed at fork


def _renew_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_renew_pid)


def _copy_fd(src: int, dst: int) -> None:
    """Copy a whole file between descriptors in the kernel (``sendfile``), in Python if the
    kernel refuses."""
    offset = 0
    try:
        while sent := os.sendfile(dst, src, offset, 64 * 1024 * 1024):
            offset += sent
    except OSError:
        if offset:
            raise
        while chunk := os.read(src, _CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(dst, view):]


def _parts(items: Sequence[_T]) -> list[Sequence[_T]]:
    """``items`` cut in at most :data:`_PARTS` runs of at least :data:`_PART_MIN`, written
    (or synced) by as many threads at once."""
    count = max(1, min(_PARTS, len(items) // _PART_MIN))
    size = -(-len(items) // count)
    return [items[i:i + size] for i in range(0, len(items), size)] if items else []


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FilesystemBlobStore:
    """Blobs in a folder: ``root/ab/<key>``, where ``ab`` starts the SHA-256 of the key (256
    folders, as git does: few folders to create and ``fsync``, small enough listings).

    Writes go to ``root/.tmp/`` (the same filesystem), are ``fsync``-ed, renamed into place
    with ``os.replace`` and the folder is ``fsync``-ed, so a crash leaves either the old state
    or the complete new file, never a partial one; an adopted file (:meth:`adopt_file`) is
    ``fsync``-ed and linked into place. :meth:`put_files` syncs each folder once per batch.
    Temporary files left by a dead process (same host, process gone; or older than
    ``stale_after`` seconds) are removed when the store is created.
    """

    def __init__(self, root: Path, *, name: str | None = None,
                 stale_after: float = 6 * 3600) -> None:
        self.root = Path(root).resolve()
        self.name = name or self.root.as_uri()
        self._tmp = self.root / ".tmp"
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)  # archives are not for others
        self._tmp.mkdir(mode=0o700, exist_ok=True)
        self._host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
        self._root_name = str(self.root)
        # Temporary names: a random prefix of this store and a counter (not a random name
        # each: one getrandom system call per file), then the writer's pid and host.
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count()
        # Fan-out folders known to exist and whose entry in the root was fsync-ed by this
        # process: their parent need not be synced again.
        self._durable_folders: set[str] = set()
        self.clean_stale_temporaries(stale_after)

    def __repr__(self) -> str:
        return f"FilesystemBlobStore({str(self.root)!r})"

    def path_of(self, key: str) -> Path:
        """Where ``key`` lives (whether or not it exists)."""
        return Path(self._place_of(key)[1])

    def _place_of(self, key: str) -> tuple[str, str]:
        """``key``'s fan-out folder and path, as strings (no ``Path`` objects per file)."""
        folder = f"{self._root_name}/{hashlib.sha256(check_key(key).encode()).hexdigest()[:2]}"
        return folder, f"{folder}/{key}"

    def clean_stale_temporaries(self, stale_after: float = 6 * 3600) -> list[Path]:
        """Remove temporary files of dead writers; returns what was removed."""
        removed: list[Path] = []
        now = time.time()
        for entry in self._tmp.iterdir():
            if entry.is_dir():
                continue
            parts = entry.name.split(".")
            dead = False
            if len(parts) == 4 and parts[3] == "tmp" and parts[2] == self._host:
                with contextlib.suppress(ValueError):
                    pid = int(parts[1])
                    dead = pid != os.getpid() and not _pid_alive(pid)
            try:
                old = now - entry.lstat().st_mtime > stale_after
            except FileNotFoundError:
                continue
            if dead or old:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                removed.append(entry)
        if removed:
            log.info("removed %d stale temporary blob file(s) in %s", len(removed), self._tmp)
        return removed

    def _temporary(self) -> str:
        return (f"{self._root_name}/.tmp/{self._prefix}{next(self._counter):x}."
                f"{_pid}.{self._host}.tmp")

    def put_file(self, key: str, path: Path) -> None:
        self.put_files([(key, path)])

    def adopt_file(self, key: str, path: Path) -> bool:
        """Store the file at ``path`` under ``key`` by a hard link to it instead of a copy,
        when both are on the same file system: no new inode, no copy of the bytes, and the
        file at ``path`` is not freed when its caller deletes it (creating and freeing inodes
        by the thousand is what costs most on ext4). The caller must never modify the file
        at ``path`` afterwards. The data is ``fsync``-ed as by :meth:`put_file`. Returns
        False (after a copy by :meth:`put_file`) where a link is impossible."""
        return self.put_files([(key, path)], adopt=True) == 1

    def put_files(self, items: Sequence[tuple[str, Path]], *, adopt: bool = False,
                  created: list[str] | None = None) -> int:
        """Store each ``(key, path)`` of ``items`` as :meth:`put_file` would (with ``adopt``,
        as :meth:`adopt_file` would), syncing each folder once for the whole batch rather
        than once per file. Returns how many files were kept by a link; ``created``, when
        given, receives (as they are written) the keys that were absent before.

        Each file's data is ``fsync``-ed before its name appears, so a crash never leaves a
        partial file under a key; every folder that received a file (and the root, for a
        folder this process has not yet made durable) is ``fsync``-ed before the call
        returns. On an error, the files placed so far are complete but may not survive a
        crash: the caller treats the whole batch as not written. :meth:`write_files` and
        :meth:`sync_folders` (with :meth:`sync_root`) are its halves, for a caller writing
        parts of a batch from several threads."""
        folders: set[str] = set()
        linked = self.write_files(items, adopt=adopt, created=created, folders=folders)
        self.sync_folders(sorted(folders))
        self.sync_root(folders)
        return linked

    def write_files(self, items: Sequence[tuple[str, Path]], *, adopt: bool = False,
                    created: list[str] | None = None, folders: set[str]) -> int:
        """The first half of :meth:`put_files`: each file written, ``fsync``-ed and named;
        the folders that received one added to ``folders``, for :meth:`sync_folders`.
        Nothing is durable before the folders are synced."""
        linked = 0
        link = adopt
        for key, path in items:
            folder, final = self._place_of(key)
            if link:
                placed = self._link(path, folder, final)
                if placed is None:  # another file system, links refused: copies from now on
                    link = False
                else:
                    linked += 1
                    folders.add(folder)
                    if placed and created is not None:
                        created.append(key)
                    continue
            if created is not None and not os.path.exists(final):
                created.append(key)
            tmp = self._temporary()
            with _removed_on_failure(tmp):
                out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                try:
                    src = os.open(path, os.O_RDONLY)
                    try:
                        _copy_fd(src, out)
                    finally:
                        os.close(src)
                    os.fsync(out)
                finally:
                    os.close(out)
                self._rename(tmp, folder, final)
            folders.add(folder)
        return linked

    def _link(self, path: Path, folder: str, final: str) -> bool | None:
        """Give ``path``'s file (``fsync``-ed first) the name ``final``: True when the name is
        new, False when it existed (it is replaced through a temporary link), None where a
        link is impossible."""
        _fsync_file(path)  # the data, before the name appears
        try:
            try:
                os.link(path, final, follow_symlinks=False)
            except FileNotFoundError:  # no folder yet (or made by another writer meanwhile)
                self._make_folder(folder)
                os.link(path, final, follow_symlinks=False)
        except FileExistsError:  # the same content stored before: replaced, atomically
            tmp = self._temporary()
            try:
                os.link(path, tmp, follow_symlinks=False)
            except OSError:
                return None
            with _removed_on_failure(tmp):
                self._rename(tmp, folder, final)
            return False
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            return None
        return True

    def _rename(self, tmp: str, folder: str, final: str) -> None:
        try:
            os.replace(tmp, final)
        except FileNotFoundError:  # no folder yet (or made by another writer meanwhile)
            self._make_folder(folder)
            os.replace(tmp, final)

    def _make_folder(self, folder: str) -> None:
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, 0o700)
        self._durable_folders.discard(folder)  # its entry in the root: synced by the caller

    def sync_folders(self, folders: Iterable[str]) -> None:
        """``fsync`` each of these folders (the second half of :meth:`put_files`, with
        :meth:`sync_root`)."""
        for folder in folders:
            _fsync_dir(folder)

    def sync_root(self, folders: Collection[str]) -> None:
        """``fsync`` the root when one of ``folders`` may not have its own entry durable
        yet: a folder this process has not synced the root for (another writer may have
        created it a moment ago)."""
        new = set(folders) - self._durable_folders
        if new:
            _fsync_dir(self._root_name)
            self._durable_folders |= new

    def open(self, key: str) -> BinaryIO:
        try:
            return cast(BinaryIO, self.path_of(key).open("rb"))
        except FileNotFoundError:
            raise BlobNotFound(f"{key} not in {self.name}") from None

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._place_of(key)[1])

    def size(self, key: str) -> int:
        try:
            return self.path_of(key).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f"{key} not in {self.name}") from None

    def delete(self, key: str) -> None:
        path = self.path_of(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)

    def keys(self) -> Iterator[str]:
        for folder in sorted(self.root.iterdir()):
            if len(folder.name) != 2 or not folder.is_dir():
                continue
            for entry in sorted(folder.iterdir()):
                if entry.is_file() and _KEY.fullmatch(entry.name):
                    yield entry.name

    def set_retention(self, key: str, until: datetime) -> None:
        """A folder has no retention lock: protection comes from the application's rules."""
        return None

    def ping(self) -> bool:
        return self._tmp.is_dir() and os.access(self._tmp, os.W_OK | os.X_OK)


# --------------------------------------------------------------------------- replication


CopyState = Literal["ok", "missing", "corrupt", "unavailable"]


@dataclass(frozen=True)
class CopyStatus:
    """The state of one copy: ``ok``, ``missing``, ``corrupt`` (digest mismatch) or
    ``unavailable`` (the location did not answer; nothing is known about the copy)."""

    location: str
    state: CopyState
    detail: str | None = None


def _digest_stream(stream: IO[bytes], algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


class ReplicatedBlobs:
    """The storage strategy: each blob in at least ``min_copies`` of the ``stores``.

    Args:
        stores: the locations, in reading preference order (the first is read first).
        min_copies: how many locations must accept a file for :meth:`put_file` to succeed.
        staging_dir: where :meth:`repair` downloads a healthy copy before rewriting others
            (default: the system temporary folder).
    """

    def __init__(self, stores: Sequence[BlobStore], min_copies: int = 2, *,
                 staging_dir: Path | None = None) -> None:
        names = [s.name for s in stores]
        if len(set(names)) != len(names):
            raise ValueError(f"blob locations must have distinct names: {names}")
        if not 1 <= min_copies <= len(stores):
            raise ValueError(
                f"min_copies={min_copies} needs at least as many locations ({len(stores)})")
        self.stores = list(stores)
        self.min_copies = min_copies
        self.staging_dir = staging_dir
        self._pool_lock = threading.Lock()
        self._pool_of: tuple[int, ThreadPoolExecutor] | None = None

    @property
    def locations(self) -> list[str]:
        return [s.name for s in self.stores]

    def put_file(self, key: str, path: Path, *, adopt: bool = False) -> list[str]:
        """Write ``path`` under ``key`` to every location; returns the locations written.

        ``adopt``: the caller gives the file up (it will only delete it): the first
        filesystem location keeps it by a hard link (:meth:`FilesystemBlobStore.adopt_file`)
        where it is on the same file system, instead of a copy; every other location still
        gets a copy of its own, so the copies stay distinct files.

        Raises:
            InsufficientCopies: fewer than ``min_copies`` succeeded. Copies this call created
                are removed again; copies that existed before (the same content deposited
                earlier) are left alone.
        """
        return self.put_files([(key, path)], adopt=adopt)

    def put_files(self, items: Sequence[tuple[str, Path]], *, adopt: bool = False
                  ) -> list[str]:
        """:meth:`put_file` for several ``(key, path)`` at once. Each location takes the
        whole batch, cut in a few parts written at once (the disk then takes several
        ``fsync`` together) by a pool of threads shared by the process (not created per
        call), one part in the calling thread; then a filesystem location syncs each folder
        that received a file once for the batch (:meth:`FilesystemBlobStore.put_files`), in
        parts too. A location counts as written when it took every file of the batch.

        Raises:
            InsufficientCopies: fewer than ``min_copies`` locations took every file (named:
                the first key). Copies this call created are removed again, in every
                location.
        """
        for key, _ in items:
            check_key(key)
        adopter = next((s for s in self.stores if isinstance(s, FilesystemBlobStore)),
                       None) if adopt else None
        created: dict[int, list[str]] = {i: [] for i in range(len(self.stores))}
        folders: dict[int, set[str]] = {i: set() for i in range(len(self.stores))}
        errors: dict[int, str] = {}

        def write(index: int, part: Sequence[tuple[str, Path]]) -> None:
            store = self.stores[index]
            try:
                if isinstance(store, FilesystemBlobStore):
                    found: set[str] = set()
                    store.write_files(part, adopt=store is adopter, created=created[index],
                                      folders=found)
                    folders[index] |= found
                else:
                    for key, path in part:
                        if not store.exists(key):
                            created[index].append(key)
                        store.put_file(key, path)
            except Exception as exc:  # noqa: BLE001 - any failure counts as a missing copy
                log.warning("blobs (%d, first %s) not written to %s: %s", len(part),
                            part[0][0], store.name, exc)
                errors.setdefault(index, f"{type(exc).__name__}: {exc}")

        def sync(index: int, part: Sequence[str]) -> None:
            try:
                cast(FilesystemBlobStore, self.stores[index]).sync_folders(part)
            except Exception as exc:  # noqa: BLE001 - any failure counts as a missing copy
                log.warning("folders of %s not synced: %s", self.stores[index].name, exc)
                errors.setdefault(index, f"{type(exc).__name__}: {exc}")

        self._run([(write, (index, part)) for index in range(len(self.stores))
                   for part in _parts(items)])
        self._run([(sync, (index, part)) for index in range(len(self.stores))
                   if index not in errors for part in _parts(sorted(folders[index]))])
        for index, store in enumerate(self.stores):
            if index not in errors and isinstance(store, FilesystemBlobStore):
                try:
                    store.sync_root(folders[index])
                except Exception as exc:  # noqa: BLE001 - any failure counts as a missing copy
                    errors[index] = f"{type(exc).__name__}: {exc}"
        written = [s for i, s in enumerate(self.stores) if i not in errors]
        if len(written) < self.min_copies:
            for index, store in enumerate(self.stores):
                for key in created[index]:
                    try:
                        store.delete(key)
                    except Exception:  # noqa: BLE001 - best effort; an orphan copy is harmless
                        log.exception("could not remove %s from %s after a failed put",
                                      key, store.name)
            raise InsufficientCopies(items[0][0], len(written), self.min_copies,
                                     {self.stores[i].name: e for i, e in errors.items()})
        return [s.name for s in written]

    def _run(self, jobs: Sequence[tuple[Callable[..., None], tuple[Any, ...]]]) -> None:
        """Run ``jobs`` (functions that catch their own errors), the first in this thread
        and the others in the pool; return once all are done."""
        if not jobs:
            return
        pending = [self._pool().submit(job, *args) for job, args in jobs[1:]]
        first, args = jobs[0]
        try:
            first(*args)
        finally:
            for future in pending:
                future.result()

    def _pool(self) -> ThreadPoolExecutor:
        """The writers of the locations after the first, shared by every call of this
        process (created at first use: threads do not survive a fork)."""
        with self._pool_lock:
            if self._pool_of is None or self._pool_of[0] != _pid:
                self._pool_of = (_pid, ThreadPoolExecutor(
                    _WRITERS, thread_name_prefix="blob-writer"))
            return self._pool_of[1]

    def open(self, key: str) -> BinaryIO:
        """Read from the first location that has the blob. Raises :class:`BlobNotFound`."""
        for store in self.stores:
            try:
                return store.open(key)
            except BlobNotFound:
                continue
            except Exception as exc:  # noqa: BLE001 - try the next location
                log.warning("blob %s unreadable from %s: %s", key, store.name, exc)
        raise BlobNotFound(f"{key} in no location")

    def size(self, key: str) -> int:
        """Size from the first location that has the blob. Raises :class:`BlobNotFound`."""
        for store in self.stores:
            try:
                return store.size(key)
            except BlobNotFound:
                continue
            except Exception as exc:  # noqa: BLE001 - try the next location
                log.warning("blob %s size unknown in %s: %s", key, store.name, exc)
        raise BlobNotFound(f"{key} in no location")

    def _check_one(self, store: BlobStore, key: str, algorithm: str, expected: str) -> CopyStatus:
        try:
            with store.open(key) as stream:
                actual = _digest_stream(stream, algorithm)
        except BlobNotFound:
            return CopyStatus(store.name, "missing")
        except Exception as exc:  # noqa: BLE001 - an unreachable location is reported
            return CopyStatus(store.name, "unavailable", f"{type(exc).__name__}: {exc}")
        if actual != expected:
            return CopyStatus(store.name, "corrupt", f"{algorithm} {actual}")
        return CopyStatus(store.name, "ok")

    def check(self, key: str, algorithm: str, expected_hex: str) -> list[CopyStatus]:
        """Recompute the digest of every copy (streaming); one status per location."""
        algorithm = normalise_algorithm(algorithm)
        expected = expected_hex.lower()
        return [self._check_one(store, key, algorithm, expected) for store in self.stores]

    def repair(self, key: str, algorithm: str, expected_hex: str) -> list[str]:
        """Rewrite every missing or corrupt copy from a healthy one; returns the locations
        repaired (empty when all were sound). Unavailable locations are left for later.

        Raises:
            NoHealthyCopy: no location holds a copy with the expected digest.
        """
        algorithm = normalise_algorithm(algorithm)
        expected = expected_hex.lower()
        statuses = {s.location: s for s in self.check(key, algorithm, expected)}
        bad = [s for s in self.stores if statuses[s.name].state in ("missing", "corrupt")]
        if not bad:
            return []
        sources = [s for s in self.stores if statuses[s.name].state == "ok"]
        if self.staging_dir is not None:
            self.staging_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.staging_dir, prefix="repair-") as tmp:
            staged = Path(tmp) / "blob"
            if not any(self._download_verified(s, key, algorithm, expected, staged)
                       for s in sources):
                raise NoHealthyCopy(f"{key}: no copy with the expected {algorithm} digest")
            repaired: list[str] = []
            for store in bad:
                store.put_file(key, staged)
                if self._check_one(store, key, algorithm, expected).state == "ok":
                    repaired.append(store.name)
                else:
                    log.error("repair of %s in %s did not verify", key, store.name)
        return repaired

    @staticmethod
    def _download_verified(store: BlobStore, key: str, algorithm: str, expected: str,
                           dest: Path) -> bool:
        """Copy ``store``'s blob to ``dest`` and verify it on the way (it may have changed
        since it was checked)."""
        digest = hashlib.new(algorithm)
        try:
            with store.open(key) as src, dest.open("wb") as out:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        except Exception as exc:  # noqa: BLE001 - try the next healthy location
            log.warning("could not read %s from %s for repair: %s", key, store.name, exc)
            return False
        return digest.hexdigest() == expected

    def delete_everywhere(self, key: str) -> None:
        """Destroy every copy. Tries every location, then raises the first error if any
        location failed (the caller must not record a destruction that did not happen;
        calling again is safe)."""
        failures: list[Exception] = []
        for store in self.stores:
            try:
                store.delete(key)
            except Exception as exc:  # noqa: BLE001 - collected, re-raised below
                log.error("could not delete %s from %s: %s", key, store.name, exc)
                failures.append(exc)
        if failures:
            raise failures[0]

    def set_retention(self, key: str, until: datetime) -> None:
        """Set the retention date on every location that supports it."""
        for store in self.stores:
            store.set_retention(key, until)

    def ping(self) -> dict[str, bool]:
        result: dict[str, bool] = {}
        for store in self.stores:
            try:
                result[store.name] = bool(store.ping())
            except Exception:  # noqa: BLE001 - any failure means "not ready"
                result[store.name] = False
        return result


# --------------------------------------------------------------------------- uploads


@dataclass
class StagedFile:
    """An upload written to a staging file, with its size and hex digests (by hashlib name)."""

    path: Path
    size: int
    digests: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        """Delete the staging file (once it is stored, or when the deposit is refused)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class _Writer:
    def __init__(self, out: IO[bytes], algorithms: Sequence[str]) -> None:
        self.out = out
        self.hashes = {a: hashlib.new(a) for a in algorithms}

    def write(self, data: bytes) -> None:
        for digest in self.hashes.values():
            digest.update(data)
        self.out.write(data)


def _new_upload(directory: Path) -> Path:
    """A fresh name for an upload's staging file in ``directory`` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"upload-{secrets.token_hex(12)}.part"


def _create(path: Path) -> BinaryIO:
    """``path`` opened for writing, created now (never an existing file, never a link)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    return os.fdopen(fd, "wb")


_staged_names = itertools.count()


def stage_many(parts: Sequence[bytes], directory: Path,
               algorithms: Sequence[str] = ("sha512", "sha256")) -> list[StagedFile]:
    """Write each of ``parts`` (small uploads received whole) to a new file in ``directory``,
    with its digests: what :func:`receive` does, without its worker thread, for parts small
    enough to be hashed and written at once. The folder is made once, each file written by
    one system call, named from a counter of the process (``directory`` is the caller's
    own: the names only need to differ there; ``O_EXCL`` refuses any existing file). On a
    failure, the files already written are deleted."""
    names = [normalise_algorithm(a) for a in algorithms]
    directory.mkdir(parents=True, exist_ok=True)
    staged: list[StagedFile] = []
    try:
        for data in parts:
            path = f"{directory}/upload-{_pid}-{next(_staged_names):x}.part"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with _removed_on_failure(path):
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                finally:
                    os.close(fd)
            staged.append(StagedFile(Path(path), len(data), {
                name: hashlib.new(name, data).hexdigest() for name in names}))
    except BaseException:
        for done in staged:
            done.discard()
        raise
    return staged


async def receive(chunks: AsyncIterator[bytes], directory: Path, *, max_bytes: int | None,
                  algorithms: Sequence[str] = ("sha512", "sha256")) -> StagedFile:
    """Stream ``chunks`` to a new file in ``directory`` while computing its digests.

    The bytes are buffered by at most about 1 MiB and hashed and written in a worker thread,
    so neither the whole file nor the event loop is held.

    Raises:
        TooLarge: as soon as more than ``max_bytes`` arrived; the partial file is deleted.
    """
    names = [normalise_algorithm(a) for a in algorithms]
    path = _new_upload(directory)
    size = 0
    pending: list[bytes] = []
    pending_size = 0
    with _removed_on_failure(path), _create(path) as out:
        writer = _Writer(out, names)
        async for chunk in chunks:
            if not chunk:
                continue
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise TooLarge(max_bytes)
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= _CHUNK:
                await asyncio.to_thread(writer.write, b"".join(pending))
                pending, pending_size = [], 0
        if pending:
            await asyncio.to_thread(writer.write, b"".join(pending))
    return StagedFile(path, size, {a: h.hexdigest() for a, h in writer.hashes.items()})


# --------------------------------------------------------------------------- S3


class _BodyReader(io.RawIOBase):
    """A raw binary stream over a botocore ``StreamingBody`` (read-only, not seekable)."""

    def __init__(self, body: Any) -> None:
        super().__init__()
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3BlobStore:
    """Blobs as objects of one S3 bucket (optionally under a prefix), through boto3.

    Uploads use boto3's managed transfer (multipart above 64 MiB, streamed from the file);
    downloads stream the response body. When the bucket has Object Lock enabled (detected
    once), :meth:`set_retention` puts a retention of ``retention_mode`` (``COMPLIANCE`` by
    default: not even the bucket owner can destroy the object before the date) and
    :meth:`delete` destroys every version, which the bucket refuses while the retention runs.
    """

    def __init__(self, bucket: str, *, prefix: str = "", endpoint_url: str | None = None,
                 access_key: str | None = None, secret_key: str | None = None,
                 region: str | None = None, name: str | None = None,
                 retention_mode: Literal["COMPLIANCE", "GOVERNANCE"] = "COMPLIANCE",
                 multipart_threshold: int = 64 * 1024 * 1024, client: Any = None) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.name = name or f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.retention_mode = retention_mode
        if client is None:
            config = Config(retries={"max_attempts": 3, "mode": "standard"},
                            connect_timeout=5, read_timeout=60,
                            s3={"addressing_style": "path"} if endpoint_url else None)
            client = boto3.client("s3", endpoint_url=endpoint_url, aws_access_key_id=access_key,
                                  aws_secret_access_key=secret_key, region_name=region,
                                  config=config)
        self.client = client
        self._transfer = TransferConfig(multipart_threshold=multipart_threshold,
                                        multipart_chunksize=max(multipart_threshold,
                                                                5 * 1024 * 1024),
                                        max_concurrency=4)
        self._lock = threading.Lock()
        self._object_lock: bool | None = None

    def __repr__(self) -> str:
        return f"S3BlobStore({self.name!r})"

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    @staticmethod
    def _is_missing(exc: Exception) -> bool:
        from botocore.exceptions import ClientError

        if not isinstance(exc, ClientError):
            return False
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound", "NoSuchVersion")

    @property
    def object_lock_enabled(self) -> bool:
        """Whether the bucket has Object Lock enabled (asked once, then remembered)."""
        with self._lock:
            if self._object_lock is None:
                from botocore.exceptions import ClientError

                try:
                    conf = self.client.get_object_lock_configuration(Bucket=self.bucket)
                    enabled = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
                    self._object_lock = enabled == "Enabled"
                except ClientError as exc:
                    code = str(exc.response.get("Error", {}).get("Code", ""))
                    if code != "ObjectLockConfigurationNotFoundError":
                        raise
                    self._object_lock = False
            return self._object_lock

    def put_file(self, key: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(key), Config=self._transfer)

    def open(self, key: str) -> BinaryIO:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if self._is_missing(exc):
                raise BlobNotFound(f"{key} not in {self.name}") from None
            raise
        return cast(BinaryIO, io.BufferedReader(_BodyReader(response["Body"]), _CHUNK))

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return cast(dict[str, Any],
                        self.client.head_object(Bucket=self.bucket, Key=self._key(key)))
        except Exception as exc:
            if self._is_missing(exc):
                return None
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise BlobNotFound(f"{key} not in {self.name}")
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        object_key = self._key(key)
        paginator = self.client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=object_key):
            for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
                if entry["Key"] == object_key:
                    self.client.delete_object(Bucket=self.bucket, Key=object_key,
                                              VersionId=entry["VersionId"])
        if self._head(key) is not None:  # an unversioned bucket without version listing
            self.client.delete_object(Bucket=self.bucket, Key=object_key)

    def keys(self) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for entry in page.get("Contents", []):
                key = entry["Key"][len(self.prefix):]
                if _KEY.fullmatch(key):
                    yield key

    def retention(self, key: str) -> datetime | None:
        """The current retain-until date of the object (from its metadata), or None."""
        head = self._head(key)
        if head is None:
            raise BlobNotFound(f"{key} not in {self.name}")
        return cast(datetime | None, head.get("ObjectLockRetainUntilDate"))

    def set_retention(self, key: str, until: datetime) -> None:
        """Object Lock retention until ``until`` (timezone-aware). A retention is only ever
        extended: an earlier date than the current one is ignored (COMPLIANCE forbids it)."""
        if not self.object_lock_enabled:
            return
        if until.tzinfo is None:
            raise ValueError("retention dates must be timezone-aware")
        current = self.retention(key)
        if current is not None and current >= until:
            return
        self.client.put_object_retention(
            Bucket=self.bucket, Key=self._key(key),
            Retention={"Mode": self.retention_mode, "RetainUntilDate": until})

    def ping(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            return False
        return True


# --------------------------------------------------------------------------- factory


def _store_from_url(url: str, settings: Settings) -> BlobStore:
    parts = urlsplit(url.strip())
    name = unquote(parts.fragment) or None
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"MC_BLOB_URL: file URLs must be local: {url}")
        path = Path(unquote(parts.path))
        if not path.is_absolute():
            raise ValueError(f"MC_BLOB_URL: file URLs need an absolute path: {url}")
        return FilesystemBlobStore(path, name=name)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"MC_BLOB_URL: s3 URLs name a bucket: {url}")
        return S3BlobStore(parts.netloc, prefix=parts.path, name=name,
                           endpoint_url=settings.s3_endpoint,
                           access_key=settings.s3_access_key,
                           secret_key=settings.s3_secret_key,
                           region=settings.s3_region,
                           retention_mode=settings.s3_retention_mode)
    raise ValueError(f"MC_BLOB_URL: unsupported location {url!r} (file:///… or s3://…)")


def make_blob_stores(settings: Settings) -> ReplicatedBlobs:
    """The storage strategy described by the settings.

    ``MC_BLOB_URL`` lists the locations, comma-separated: ``file:///abs/path`` or
    ``s3://bucket[/prefix]`` (endpoint and credentials from ``MC_S3_*``); a ``#name`` fragment
    names a location (default: the URL itself). Unset: two folders, ``<data dir>/blobs/a`` and
    ``<data dir>/blobs/b``, named ``a`` and ``b``.
    ``MC_BLOB_MIN_COPIES`` (default 2) locations must accept each file.
    """
    data_dir = Path(settings.data_dir).resolve()
    urls = [u for u in (settings.blob_url or "").split(",") if u.strip()]
    if not urls:  # named, so that recorded locations survive a move of the data dir
        urls = [f"{(data_dir / 'blobs' / n).as_uri()}#{n}" for n in ("a", "b")]
    stores = [_store_from_url(u, settings) for u in urls]
    return ReplicatedBlobs(stores, min_copies=settings.blob_min_copies,
                           staging_dir=data_dir / "tmp")
