"""Brute-force protection: growing delays per account and per address, in the key-value store.

After ``free_attempts`` failures, each new failure doubles the wait (2 s, 4 s, 8 s … up to
``max_delay``). While a wait runs, attempts are refused without checking the password, with
the same answer for known and unknown accounts.
"""

from __future__ import annotations

import hashlib

from plateforme.kv import KeyValueStore

WINDOW = 24 * 3600


def _h(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class Throttle:
    def __init__(
        self, store: KeyValueStore, *, kind: str = "login", free_attempts: int = 5,
        address_free_attempts: int = 30, max_delay: int = 900,
    ) -> None:
        self._store = store
        self._kind = kind
        self._free = free_attempts
        self._addr_free = address_free_attempts
        self._max = max_delay

    def _keys(self, account: str, address: str) -> tuple[str, str]:
        return (
            f"idp:throttle:{self._kind}:account:{_h(account.strip().lower())}",
            f"idp:throttle:{self._kind}:address:{_h(address)}",
        )

    def retry_after(self, account: str, address: str) -> int:
        """Seconds to wait before another attempt is examined (0: go ahead)."""
        return self.assess(account, address)[0]

    def assess(self, account: str, address: str) -> tuple[int, bool]:
        """Seconds to wait before another attempt is examined (0: go ahead), and whether
        failures of the account are on record (:meth:`success` then has something to clear):
        one store round trip for the three keys."""
        acc, addr = self._keys(account, address)
        account_wait, address_wait, counter = self._store.ttls(
            acc + ":wait", addr + ":wait", acc)
        return max(account_wait, address_wait, 0), counter != -2 or account_wait != -2

    def failure(self, account: str, address: str) -> int:
        """Count a failure; return the delay now imposed (0 if none)."""
        delay = 0
        for key, free in zip(self._keys(account, address), (self._free, self._addr_free),
                             strict=True):
            count = self._store.incr(key, ttl=WINDOW)
            if count > free:
                wait = min(self._max, 2 ** (count - free))
                self._store.set(key + ":wait", "1", ttl=wait)
                delay = max(delay, wait)
        return delay

    def success(self, account: str, address: str) -> None:
        acc, _ = self._keys(account, address)
        self._store.delete(acc, acc + ":wait")

    def failures(self, account: str) -> int:
        acc, _ = self._keys(account, "")
        value = self._store.get(acc)
        return int(value) if value else 0
