"""What each request of a password sign-in costs in storage round trips: SQL statements and
key-value calls per hop, counted on the running platform (both backends). The sign-in's CPU
is mostly these round trips (bench/signin.py, docs/capacite.md): a hop that starts making
more of them fails here, before any benchmark sees it."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import event

from tests.conftest import Platform, pkce_pair
from tests.support.browser import Browser, query_of

REDIRECT = "http://127.0.0.1:9999/callback"
KV_METHODS = ("get", "get_many", "set", "take", "delete", "incr", "ttl", "ttls", "expire",
              "sadd", "srem", "smembers")


# Left out of the counts: the archive's background tasks, and what short caches read when
# they expire (clients and signing keys every 2 s, the revocation list every 0.5 s), which
# depends on timing, not on the request.
_UNCOUNTED_TABLES = ("archivage_", "arch_", "idp_client", "idp_signing_key",
                     "idp_revoked_token")
_UNCOUNTED_KEYS = ("idp:keys", "idp:revocations")


class Meter:
    """SQL statements and key-value calls of the provider (only what requests do)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def sql(self, statement: str) -> None:
        if any(table in statement for table in _UNCOUNTED_TABLES):
            return
        kind = statement.lstrip().split(None, 1)[0].upper()
        with self._lock:
            self.counts["sql"] += 1
            self.counts["sql:" + kind] += 1

    def kv(self, method: str, key: str) -> None:
        if not key.startswith("idp:") or key.startswith(_UNCOUNTED_KEYS):
            return
        with self._lock:
            self.counts["kv"] += 1
            self.counts["kv:" + method] += 1

    def take(self) -> Counter[str]:
        with self._lock:
            counts, self.counts = self.counts, Counter()
        return counts


@pytest.fixture
def meter(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> Iterator[Meter]:
    meter = Meter()
    engine = platform.provider.engine

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        meter.sql(statement)

    store = platform.provider.store
    for name in KV_METHODS:
        method = getattr(store, name)

        def counted(*args: Any, __m: Any = method, __n: str = name, **kwargs: Any) -> Any:
            meter.kv(__n, str(args[0]) if args else "")
            return __m(*args, **kwargs)

        monkeypatch.setattr(store, name, counted)
    event.listen(engine, "before_cursor_execute", on_execute)
    yield meter
    event.remove(engine, "before_cursor_execute", on_execute)


def _sign_in(platform: Platform, meter: Meter, user: dict[str, Any],
             client: dict[str, Any]) -> dict[str, Counter[str]]:
    """The journey of bench/signin.py, one request at a time; the counts of each hop."""
    hops: dict[str, Counter[str]] = {}
    base = platform.url
    browser = Browser()
    try:
        def call(hop: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
            meter.take()
            response = browser.request(method, url, **kwargs)
            hops[hop] = meter.take()
            return response

        verifier, challenge = pkce_pair()
        query = urlencode({
            "response_type": "code", "client_id": client["client_id"], "redirect_uri": REDIRECT,
            "scope": "openid profile email", "state": "s", "nonce": "n-" + user["email"],
            "code_challenge": challenge, "code_challenge_method": "S256", "prompt": "consent"})
        r = call("authorize", "GET", f"{base}/authorize?{query}")
        r = call("login page", "GET", base + r.headers["location"])
        fields = Browser.form_fields(r.text, "/connexion")
        fields.update(email=user["email"], password=user["password"])
        r = call("login", "POST", base + "/connexion", data=fields)
        assert r.status_code == 303, r.text[:300]
        r = call("continue after login", "GET", base + r.headers["location"])
        r = call("consent page", "GET", base + r.headers["location"])
        fields = Browser.form_fields(r.text, "/connexion/consentement")
        fields["decision"] = "accept"
        r = call("consent", "POST", base + "/connexion/consentement", data=fields)
        r = call("continue to the code", "GET", base + r.headers["location"])
        code = query_of(r.headers["location"])["code"]
        r = call("token", "POST", base + "/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier}, auth=(client["client_id"], client["client_secret"]))
        assert r.status_code == 200, r.text
        r = call("userinfo", "GET", base + "/userinfo",
                 headers={"Authorization": f"Bearer {r.json()['access_token']}"})
        assert r.status_code == 200, r.text
    finally:
        browser.close()
    return hops


def test_password_sign_in_round_trips_per_hop(platform: Platform, meter: Meter,
                                              user: dict[str, Any]) -> None:
    client = platform.create_client(redirect_uris=[REDIRECT],
                                    grant_types=["authorization_code", "refresh_token"])
    hops = _sign_in(platform, meter, user, client)
    got = {hop: (c["sql"], c["kv"]) for hop, c in hops.items()}
    assert got == {
        "authorize": (0, 2),  # the nonce checked unused; the interaction saved
        "login page": (0, 1),  # the interaction
        # the account; a second factor?; login.success (3); the interaction, the throttle's
        # three keys at once (nothing to clear after a success without failures), the SSO
        # session and its index, the interaction saved
        "login": (5, 5),
        # the account; the interaction and the SSO session in one call, the nonce checked
        # unused, the interaction saved
        "continue after login": (1, 3),
        "consent page": (1, 1),  # the account's language; the interaction and the session
        # the consent read and written, consent.grant (3); the interaction and the session,
        # the interaction saved
        "consent": (5, 2),
        # the account; the interaction and the session, the nonce, the session's clients,
        # the nonce and the code saved, the interaction dropped
        "continue to the code": (1, 6),
        # the account; the grant, the access token, the refresh token (the grant's id is new:
        # never looked up); the code taken and marked used
        "token": (4, 2),
        "userinfo": (1, 0),  # the grant and the account in one statement
    }


def test_success_after_a_failure_clears_the_account_counter(
        platform: Platform, meter: Meter, user: dict[str, Any]) -> None:
    """The success skips the throttle's delete only when no failure is on record."""
    client = platform.create_client(redirect_uris=[REDIRECT],
                                    grant_types=["authorization_code", "refresh_token"])
    wrong = {**user, "password": "pas-le-bon-mot-de-passe"}
    browser = Browser()
    try:
        page = browser.get(f"{platform.url}/connexion")
        fields = Browser.form_fields(page.text, "/connexion")
        fields.update(email=wrong["email"], password=wrong["password"])
        assert browser.request("POST", f"{platform.url}/connexion", data=fields
                               ).status_code == 401
    finally:
        browser.close()
    assert platform.provider.throttle.failures(user["email"]) == 1
    _sign_in(platform, meter, user, client)
    assert platform.provider.throttle.failures(user["email"]) == 0
