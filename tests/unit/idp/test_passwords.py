from __future__ import annotations

import threading

import pytest
from passlib.context import CryptContext

from idp import passwords


def test_argon2id_with_owasp_parameters() -> None:
    hashed = passwords.hash_password("Un-mot-de-passe-solide")
    assert hashed.startswith("$argon2id$")
    assert "m=19456,t=2,p=1" in hashed


def test_outdated_hash_is_replaced_on_success() -> None:
    weak = CryptContext(schemes=["argon2"], argon2__type="ID", argon2__memory_cost=8192,
                        argon2__time_cost=1, argon2__parallelism=1).hash("Un-mot-de-passe")
    ok, new_hash = passwords.verify_and_update("Un-mot-de-passe", weak)
    assert ok is True
    assert new_hash is not None and "m=19456,t=2" in new_hash
    ok, again = passwords.verify_and_update("Un-mot-de-passe", new_hash)
    assert ok is True and again is None


def test_wrong_password_and_missing_hash_fail() -> None:
    hashed = passwords.hash_password("Un-mot-de-passe-solide")
    assert passwords.verify_and_update("autre", hashed) == (False, None)
    assert passwords.verify_and_update("autre", None) == (False, None)


def test_hashing_runs_in_the_bounded_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2's 19 MiB stay resident in the thread that computed them: every hash and
    verification runs in the pool's few threads, never in the caller's (a request thread)."""
    threads: list[str] = []
    real_verify = passwords._context.verify

    def verify(secret: str, hashed: str) -> bool:
        threads.append(threading.current_thread().name)
        return bool(real_verify(secret, hashed))

    monkeypatch.setattr(passwords._context, "verify", verify)
    callers = [threading.Thread(target=passwords.burn_time, args=("x",)) for _ in range(6)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    passwords.verify_and_update("x", None)
    assert len(threads) == 7
    assert all(name.startswith("argon2") for name in threads)
    assert len(set(threads)) <= passwords.HASH_THREADS


def test_a_forked_child_can_still_hash() -> None:
    """The pool's threads do not survive a fork: the child gets a pool of its own (with the
    parent's pool, its verification would wait forever for a thread that does not exist)."""
    import os
    import signal
    import time

    passwords.burn_time("x")  # the parent's pool has its threads
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if a verification completes
        code = 1
        try:
            passwords.burn_time("x")
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 120  # a guard against a hang, not a timing
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the forked child's verification never completed")
        time.sleep(0.05)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_the_number_of_hashing_threads_can_be_lowered() -> None:
    """``serve --workers N`` gives each forked worker one thread (one 19 MiB area)."""
    threads: set[str] = set()
    try:
        passwords.set_threads(1)
        assert passwords.HASH_THREADS == 1
        callers = [threading.Thread(target=lambda: threads.add(passwords._in_pool(
            lambda: threading.current_thread().name))) for _ in range(4)]
        for t in callers:
            t.start()
        for t in callers:
            t.join()
        assert passwords.verify_and_update("x", passwords.hash_password("x")) == (True, None)
        assert len(threads) == 1
        with pytest.raises(ValueError, match="at least 1"):
            passwords.set_threads(0)
    finally:
        passwords.set_threads(2)
