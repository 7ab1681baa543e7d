"""Password hashing: argon2id through passlib's API (the maintained ``libpass`` fork).

Parameters follow OWASP (19 MiB, 2 passes, 1 lane). A hash made with older parameters is
replaced at the next successful sign-in (:func:`verify_and_update`).

Every hash and verification runs in one small pool of :data:`HASH_THREADS` threads per
process. argon2 allocates its 19 MiB in the thread that computes, and the C allocator keeps
that memory in the thread's arena once freed: computed in whichever of the server's forty
request threads happened to serve the sign-in, eight simultaneous sign-ins left ~150 MB more
resident in the worker for good. In the pool, at most ``HASH_THREADS`` × 19 MiB stay resident,
however many sign-ins arrive at once; the others wait their turn, which costs no throughput
(a worker has one core for Python, and argon2 releases the GIL: two threads keep it busy).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from passlib.context import CryptContext

T = TypeVar("T")
HASH_THREADS = 2


def _new_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="argon2")


_pool = _new_pool()


def _after_fork() -> None:
    """A forked child has none of the parent's threads: it gets a pool of its own."""
    global _pool
    _pool = _new_pool()


def set_threads(threads: int) -> None:
    """Hash in ``threads`` threads from now on (and in the workers forked from now on).
    ``serve --workers N`` forks N workers with one each: a worker has about one core, so one
    thread keeps up with its sign-ins (argon2id takes 16 to 27 ms of a sign-in's 70 to 120),
    and one 19 MiB area stays resident per worker instead of two."""
    global HASH_THREADS, _pool
    if threads < 1:
        raise ValueError("threads must be at least 1")
    HASH_THREADS = threads
    previous, _pool = _pool, _new_pool()
    previous.shutdown(wait=True)


os.register_at_fork(after_in_child=_after_fork)


def _in_pool(fn: Callable[..., T], *args: object) -> T:
    return _pool.submit(fn, *args).result()


_context = CryptContext(
    schemes=["argon2"],
    argon2__type="ID",
    argon2__memory_cost=19 * 1024,
    argon2__time_cost=2,
    argon2__parallelism=1,
)

# A real hash of a random password, verified when the account does not exist so that
# unknown and known accounts take the same time.
_DUMMY_HASH = _context.hash("martinique-connect-dummy-password-for-timing")


def hash_password(password: str) -> str:
    return _in_pool(_context.hash, password)


def verify_and_update(password: str, password_hash: str | None) -> tuple[bool, str | None]:
    """Check ``password``; return ``(ok, new_hash)`` where ``new_hash`` is set when the stored
    hash uses outdated parameters. With no hash, burn the same time and fail."""
    if not password_hash:
        _in_pool(_context.verify, password, _DUMMY_HASH)
        return False, None
    return _in_pool(_context.verify_and_update, password, password_hash)


def burn_time(password: str) -> None:
    """Spend one verification's worth of time (unknown accounts, throttled attempts)."""
    _in_pool(_context.verify, password, _DUMMY_HASH)


def needs_update(password_hash: str) -> bool:
    return _context.needs_update(password_hash)
