"""The key-value store contract, run against each implementation."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterator

import pytest

from plateforme.kv import InProcessStore, KeyValueStore, RedisStore

REDIS_URL = os.environ.get("MC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(params=["in-process", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[KeyValueStore]:
    if request.param == "in-process":
        yield InProcessStore()
        return
    redis_store = RedisStore(REDIS_URL, prefix=f"mctest:{secrets.token_hex(4)}:")
    if not redis_store.ping():
        if os.environ.get("CI") == "true":
            pytest.fail("Redis is required under CI")
        pytest.skip("Redis not reachable")
    yield redis_store
    redis_store.close()


def test_implements_the_protocol(store: KeyValueStore) -> None:
    assert isinstance(store, KeyValueStore)


def test_set_get_delete(store: KeyValueStore) -> None:
    assert store.set("a", "1", ttl=10) is True
    assert store.get("a") == "1"
    store.delete("a")
    assert store.get("a") is None


def test_set_nx_refuses_existing_key(store: KeyValueStore) -> None:
    assert store.set("once", "x", ttl=10, nx=True) is True
    assert store.set("once", "y", ttl=10, nx=True) is False
    assert store.get("once") == "x"


def test_values_expire(store: KeyValueStore) -> None:
    store.set("short", "v", ttl=1)
    assert 1 <= store.ttl("short") <= 1
    time.sleep(1.2)
    assert store.get("short") is None
    assert store.ttl("short") == -2


def test_take_is_atomic_single_use(store: KeyValueStore) -> None:
    store.set("code", "data", ttl=10)
    winners: list[str | None] = []

    def taker() -> None:
        winners.append(store.take("code"))

    threads = [threading.Thread(target=taker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert winners.count("data") == 1
    assert store.get("code") is None


def test_incr_counts_and_keeps_first_ttl(store: KeyValueStore) -> None:
    assert store.incr("n", ttl=5) == 1
    assert store.incr("n", ttl=100) == 2
    assert store.ttl("n") <= 5


def test_sets(store: KeyValueStore) -> None:
    store.sadd("s", "a", ttl=10)
    store.sadd("s", "b", ttl=10)
    store.srem("s", "a")
    assert store.smembers("s") == {"b"}
    assert store.smembers("absent") == set()


def test_ping(store: KeyValueStore) -> None:
    assert store.ping() is True


def test_ttls_reads_several_keys_at_once(store: KeyValueStore) -> None:
    store.set("t1", "v", ttl=30)
    store.incr("t2", ttl=5)
    first, second, absent = store.ttls("t1", "t2", "absent")
    assert 25 <= first <= 30 and 1 <= second <= 5 and absent == -2
    assert store.ttls() == []


def test_get_many_reads_several_keys_at_once(store: KeyValueStore) -> None:
    store.set("m1", "a", ttl=10)
    store.sadd("m-set", "x", ttl=10)  # not a string value: read as absent, as by get()
    assert store.get_many("m1", "absent", "m-set") == ["a", None, None]
    assert store.get_many() == []
