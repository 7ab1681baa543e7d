"""Robustness: the server keeps answering while its Redis is stopped and restarted (a Redis of
the test's own: the shared one is never touched)."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import httpx

from martinique_connect.app import create_app
from tests.conftest import Backend, Platform, make_settings
from tests.functional.platform.conftest import PrivateRedis
from tests.support.browser import Browser
from tests.support.live import free_port, serve

FAST = 3.0  # seconds: an answer, even an error, never takes longer while Redis is down


def _timed(method: str, url: str, **kwargs: object) -> httpx.Response:
    start = time.monotonic()
    response = httpx.request(method, url, timeout=10, **kwargs)  # type: ignore[arg-type]
    assert time.monotonic() - start < FAST, f"{method} {url} took too long"
    return response


def _sign_in(browser: Browser, url: str, user: dict[str, str]) -> httpx.Response:
    page = browser.get(url + "/connexion")
    return browser.login(page, user["email"], user["password"],
                         stop_at=url + "/connexion/termine")


def test_redis_stopped_then_restarted(backend: Backend, platform: Platform,
                                      private_redis: PrivateRedis) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="mc-outage-"))
    port = free_port()
    settings = make_settings(backend, data_dir, port, redis_url=private_redis.url,
                             redis_prefix="outage:", secret_key=platform.settings.secret_key)
    try:
        with serve(create_app(settings), port) as live:
            url = live.url
            user = platform.create_user() if backend.database_url else None
            if user is None:  # embedded: this instance has its own SQLite database
                from idp import UserCreate
                from tests.conftest import PASSWORD

                email = "panne@example.mq"
                live.app.state.provider.users.create(UserCreate(email=email, password=PASSWORD))
                user = {"email": email, "password": PASSWORD}
            from idp import ClientCreate

            client = live.app.state.provider.clients.create(ClientCreate(
                name="Panne", redirect_uris=["http://127.0.0.1:9999/callback"]))
            assert _timed("GET", url + "/readyz").status_code == 200
            signed_in = Browser()
            assert _sign_in(signed_in, url, user).status_code == 303

            private_redis.stop()
            ready = _timed("GET", url + "/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"] == {"database": "ok", "kv": "unreachable", "blobs": "ok"}
            assert ready.json()["failing"] == ["kv"]
            assert _timed("GET", url + "/healthz").status_code == 200
            # What needs no Redis keeps working: discovery, keys.
            assert _timed("GET", url + "/.well-known/openid-configuration").status_code == 200
            assert _timed("GET", url + "/jwks.json").status_code == 200
            # What needs it answers a clear 503, quickly, several times in a row.
            for _ in range(3):
                with httpx.Client(base_url=url, timeout=10) as http:
                    page = http.get("/connexion")
                    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
                    start = time.monotonic()
                    refused = http.post("/connexion", data={
                        "email": user["email"], "password": user["password"],
                        "csrf_token": token})
                    assert time.monotonic() - start < FAST
                assert refused.status_code == 503, refused.text[:300]
                assert refused.headers["content-type"] == "application/problem+json"
                assert refused.headers["retry-after"]
                assert refused.json()["status"] == 503
            authorize = _timed("GET", url + "/authorize?response_type=code&client_id=x")
            assert authorize.status_code in (400, 503), authorize.text[:300]
            # A signed-in person's session lives in Redis.
            start = time.monotonic()
            account = signed_in.get(url + "/compte/", follow=False)
            assert time.monotonic() - start < FAST
            assert account.status_code == 503, account.text[:300]
            # The token endpoint (answered outside FastAPI's routes) too: codes live in Redis.
            answer = _timed("POST", url + "/token", data={
                "grant_type": "authorization_code", "code": "abc", "code_verifier": "x" * 43,
                "redirect_uri": "http://127.0.0.1:9999/callback"},
                auth=(client.client_id, client.client_secret))
            assert answer.status_code == 503, answer.text[:300]
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.headers["retry-after"]

            private_redis.start()  # same port, empty
            deadline = time.monotonic() + 10
            while _timed("GET", url + "/readyz").status_code != 200:
                assert time.monotonic() < deadline, "still not ready after Redis came back"
                time.sleep(0.2)
            assert _sign_in(Browser(), url, user).status_code == 303
            signed_in.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
