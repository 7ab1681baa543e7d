"""Key-value store for short-lived state: sessions, codes, throttling counters, replay caches.

Two implementations behind one :class:`KeyValueStore` protocol:

* :class:`InProcessStore`, the embedded default (one process only);
* :class:`RedisStore`, for production and for several workers or instances.

Every key carries a TTL. Keys are namespaced by path, e.g. ``idp:code:{hash}``.
"""

from __future__ import annotations

import builtins
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, runtime_checkable

from plateforme.errors import ServiceUnavailable


@runtime_checkable
class KeyValueStore(Protocol):
    """What the platform needs from a key-value store. Values are strings."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, *, ttl: int, nx: bool = False) -> bool:
        """Store ``value`` for ``ttl`` seconds; with ``nx``, only if absent. True if stored."""
        ...

    def get_many(self, *keys: str) -> list[str | None]:
        """:meth:`get` of each key, in one round trip."""
        ...

    def take(self, key: str) -> str | None:
        """Atomically read and delete ``key`` (one-time values such as codes)."""
        ...

    def delete(self, *keys: str) -> None: ...

    def incr(self, key: str, *, ttl: int) -> int:
        """Increment a counter; the TTL is set when the counter is created."""
        ...

    def ttl(self, key: str) -> int:
        """Seconds left before ``key`` expires, or -2 when absent."""
        ...

    def ttls(self, *keys: str) -> list[int]:
        """:meth:`ttl` of each key, in one round trip."""
        ...

    def expire(self, key: str, ttl: int) -> None: ...

    def sadd(self, key: str, member: str, *, ttl: int) -> None: ...

    def srem(self, key: str, member: str) -> None: ...

    def smembers(self, key: str) -> builtins.set[str]: ...

    def ping(self) -> bool: ...


class InProcessStore:
    """Thread-safe dictionary with expiry. Not shared between processes."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[object, float]] = {}
        self._lock = threading.Lock()
        self._ops = 0

    def _live(self, key: str) -> object | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires <= time.monotonic():
            del self._data[key]
            return None
        return value

    def _sweep(self) -> None:
        self._ops += 1
        if self._ops % 10_000:
            return
        now = time.monotonic()
        for key in [k for k, (_, e) in self._data.items() if e <= now]:
            del self._data[key]

    def get(self, key: str) -> str | None:
        with self._lock:
            value = self._live(key)
            return value if isinstance(value, str) else None

    def get_many(self, *keys: str) -> list[str | None]:
        with self._lock:
            values = [self._live(key) for key in keys]
        return [value if isinstance(value, str) else None for value in values]

    def set(self, key: str, value: str, *, ttl: int, nx: bool = False) -> bool:
        with self._lock:
            self._sweep()
            if nx and self._live(key) is not None:
                return False
            self._data[key] = (value, time.monotonic() + ttl)
            return True

    def take(self, key: str) -> str | None:
        with self._lock:
            value = self._live(key)
            self._data.pop(key, None)
            return value if isinstance(value, str) else None

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._data.pop(key, None)

    def incr(self, key: str, *, ttl: int) -> int:
        with self._lock:
            self._sweep()
            value = self._live(key)
            if value is None:
                self._data[key] = ("1", time.monotonic() + ttl)
                return 1
            count = int(str(value)) + 1
            self._data[key] = (str(count), self._data[key][1])
            return count

    def ttl(self, key: str) -> int:
        with self._lock:
            return self._ttl(key)

    def ttls(self, *keys: str) -> list[int]:
        with self._lock:
            return [self._ttl(key) for key in keys]

    def _ttl(self, key: str) -> int:
        if self._live(key) is None:
            return -2
        return max(1, math.ceil(self._data[key][1] - time.monotonic()))

    def expire(self, key: str, ttl: int) -> None:
        with self._lock:
            value = self._live(key)
            if value is not None:
                self._data[key] = (value, time.monotonic() + ttl)

    def sadd(self, key: str, member: str, *, ttl: int) -> None:
        with self._lock:
            value = self._live(key)
            members = set(value) if isinstance(value, set) else set()
            members.add(member)
            expires = max(time.monotonic() + ttl, self._data.get(key, (None, 0.0))[1])
            self._data[key] = (members, expires)

    def srem(self, key: str, member: str) -> None:
        with self._lock:
            value = self._live(key)
            if isinstance(value, set):
                value.discard(member)

    def smembers(self, key: str) -> builtins.set[str]:
        with self._lock:
            value = self._live(key)
            return set(value) if isinstance(value, set) else set()

    def ping(self) -> bool:
        return True


class RedisStore:
    """The same contract on Redis. ``prefix`` isolates instances and test runs.

    When Redis does not answer, every operation raises
    :class:`plateforme.errors.ServiceUnavailable` (HTTP 503) within about ``timeout`` seconds:
    one quick retry absorbs a failover or a dropped connection, never seconds of backoff, so
    requests fail fast instead of piling up while Redis is down, and recover by themselves
    when it is back.
    """

    def __init__(self, url: str, *, prefix: str = "mc:", timeout: float = 2.0) -> None:
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        self._redis = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout,
            health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=0.1, base=0.02), 1),
        )
        self._prefix = prefix
        self._unavailable = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

    def _k(self, key: str) -> str:
        return self._prefix + key

    @contextmanager
    def _call(self) -> Iterator[None]:
        try:
            yield
        except self._unavailable as exc:
            raise ServiceUnavailable(
                "Le stockage des sessions ne répond pas ; réessayez dans quelques instants.",
                dependency="kv",
            ) from exc

    def get(self, key: str) -> str | None:
        with self._call():
            value = self._redis.get(self._k(key))
        return value if value is None else str(value)

    def get_many(self, *keys: str) -> list[str | None]:
        if not keys:
            return []
        with self._call():
            values = self._redis.mget([self._k(key) for key in keys])
        return [value if value is None else str(value) for value in values]

    def set(self, key: str, value: str, *, ttl: int, nx: bool = False) -> bool:
        with self._call():
            return bool(self._redis.set(self._k(key), value, ex=max(1, ttl), nx=nx))

    def take(self, key: str) -> str | None:
        with self._call():
            value = self._redis.getdel(self._k(key))
        return value if value is None else str(value)

    def delete(self, *keys: str) -> None:
        if keys:
            with self._call():
                self._redis.delete(*(self._k(k) for k in keys))

    def incr(self, key: str, *, ttl: int) -> int:
        with self._call():
            pipe = self._redis.pipeline()
            pipe.incr(self._k(key))
            pipe.expire(self._k(key), ttl, nx=True)
            count, _ = pipe.execute()
        return int(count)

    def ttl(self, key: str) -> int:
        with self._call():
            return int(self._redis.ttl(self._k(key)))

    def ttls(self, *keys: str) -> list[int]:
        if not keys:
            return []
        with self._call():
            pipe = self._redis.pipeline(transaction=False)
            for key in keys:
                pipe.ttl(self._k(key))
            return [int(value) for value in pipe.execute()]

    def expire(self, key: str, ttl: int) -> None:
        with self._call():
            self._redis.expire(self._k(key), ttl)

    def sadd(self, key: str, member: str, *, ttl: int) -> None:
        with self._call():
            pipe = self._redis.pipeline()
            pipe.sadd(self._k(key), member)
            pipe.expire(self._k(key), ttl, gt=True)
            pipe.expire(self._k(key), ttl, nx=True)
            pipe.execute()

    def srem(self, key: str, member: str) -> None:
        with self._call():
            self._redis.srem(self._k(key), member)

    def smembers(self, key: str) -> builtins.set[str]:
        with self._call():
            return {str(m) for m in self._redis.smembers(self._k(key))}

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            return False

    def close(self) -> None:
        self._redis.close()


def make_store(redis_url: str | None, *, prefix: str = "mc:") -> KeyValueStore:
    """The in-process store when no Redis URL is given, Redis otherwise."""
    if redis_url:
        return RedisStore(redis_url, prefix=prefix)
    return InProcessStore()
