"""Readiness: the checks ``/readyz`` runs, registered by whoever owns a dependency.

The composition root registers the SQL database and the key-value store; a domain that brings
another dependency (the archive's blob store) adds its own check with :meth:`Readiness.add`.
Checks run in parallel, each bounded by ``timeout`` seconds, so an unreachable dependency
(a stopped Redis, a firewalled S3 endpoint) makes ``/readyz`` answer 503 quickly, naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass

log = logging.getLogger("plateforme.health")

OK = "ok"
UNREACHABLE = "unreachable"
TIMEOUT = "timeout"


@dataclass(frozen=True)
class ReadinessReport:
    ready: bool
    checks: dict[str, str]

    @property
    def failing(self) -> list[str]:
        return [name for name, state in self.checks.items() if state != OK]


class Readiness:
    """Named checks: a callable returning True when its dependency answers (False or an
    exception: unreachable; no answer within ``timeout``: timeout)."""

    def __init__(self, *, timeout: float = 2.0) -> None:
        self.timeout = timeout
        self._checks: dict[str, Callable[[], bool]] = {}
        # A hung check keeps its thread until the dependency answers or times out on its own;
        # the others still get a thread.
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="readyz")

    def add(self, name: str, check: Callable[[], bool]) -> None:
        if name in self._checks:
            raise ValueError(f"readiness check {name!r} already registered")
        self._checks[name] = check

    @property
    def names(self) -> list[str]:
        return list(self._checks)

    def run(self) -> ReadinessReport:
        futures: dict[str, Future[bool]] = {
            name: self._executor.submit(check) for name, check in self._checks.items()
        }
        wait_futures(list(futures.values()), timeout=self.timeout)
        checks: dict[str, str] = {}
        for name, future in futures.items():
            if not future.done():
                checks[name] = TIMEOUT
                continue
            try:
                checks[name] = OK if future.result() else UNREACHABLE
            except Exception:  # noqa: BLE001 - any failure means "not ready"
                log.warning("readiness check %s failed", name, exc_info=True)
                checks[name] = UNREACHABLE
        return ReadinessReport(all(state == OK for state in checks.values()), checks)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
