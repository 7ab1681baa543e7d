"""Fixtures: the platform on each backend (embedded; PostgreSQL + Redis), served over real HTTP.

The backend is a fixture parameter, not a copy of the tests. The PostgreSQL + Redis variant
runs when both answer; under CI (``CI=true``) their absence is a failure, not a skip.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from idp import ClientCreate, Provider, UserCreate
from martinique_connect.app import create_app
from plateforme.settings import Settings
from tests.support.browser import Browser, query_of
from tests.support.live import LiveServer, free_port, serve

PG_ADMIN_URL = os.environ.get("MC_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("MC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PASSWORD = "Correct-Horse-Battery-972"


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2):
            return True
    except Exception:  # noqa: BLE001
        return False


def _redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except Exception:  # noqa: BLE001
        return False


@dataclass
class Backend:
    name: str
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "mc:"
    cleanup: list[Any] = field(default_factory=list)


@pytest.fixture(scope="session", params=["embedded", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "embedded":
        yield Backend("embedded")
        return
    if not (_pg_available() and _redis_available()):
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL and Redis are required under CI (see ../shared/SERVICES.md)")
        pytest.skip("PostgreSQL or Redis not reachable: PostgreSQL + Redis variant not run")
    import psycopg

    name = f"mc_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    prefix = f"mctest:{secrets.token_hex(6)}:"
    yield Backend("postgres", database_url=f"{base}/{name}", redis_url=REDIS_URL,
                  redis_prefix=prefix)
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=prefix + "*", count=1000):
        client.delete(key)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_settings(backend: Backend, data_dir: Path, port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "issuer": f"http://127.0.0.1:{port}", "port": port, "data_dir": data_dir,
        "database_url": backend.database_url, "redis_url": backend.redis_url,
        "redis_prefix": backend.redis_prefix, "environment": "test",
        "secret_key": "test-secret-" + secrets.token_hex(16),
        "backchannel_logout_retries": 2, "backchannel_logout_timeout": 2.0,
        # every test signs in from 127.0.0.1: the per-address limit has its own unit test
        "address_free_attempts": 10_000,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Platform:
    """The running platform: its URL, settings and in-process services (for arranging tests)."""

    live: LiveServer
    settings: Settings

    @property
    def url(self) -> str:
        return self.live.url

    @property
    def provider(self) -> Provider:
        return self.live.app.state.provider  # type: ignore[no-any-return]

    def create_client(self, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("name", "Application de test")
        kwargs.setdefault("redirect_uris", ["http://127.0.0.1:9999/callback"])
        created = self.provider.clients.create(ClientCreate(**kwargs))
        return created.model_dump()

    def create_user(self, email: str | None = None, password: str = PASSWORD,
                    **kwargs: Any) -> dict[str, Any]:
        email = email or f"user-{secrets.token_hex(4)}@example.mq"
        user = self.provider.users.create(UserCreate(email=email, password=password, **kwargs))
        return {"id": user.id, "email": email, "password": password}


@pytest.fixture(scope="session")
def platform(backend: Backend) -> Iterator[Platform]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"mc-{backend.name}-"))
    port = free_port()
    settings = make_settings(backend, data_dir, port)
    app = create_app(settings)
    with serve(app, port) as live:
        yield Platform(live=live, settings=settings)
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def browser() -> Iterator[Browser]:
    b = Browser()
    yield b
    b.close()


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


@dataclass
class CodeFlow:
    """A relying party doing authorization code + PKCE by hand (to test every parameter)."""

    platform: Platform
    client: dict[str, Any]
    browser: Browser
    redirect_uri: str = "http://127.0.0.1:9999/callback"
    verifier: str = ""
    state: str = ""
    nonce: str = ""

    def authorize_url(self, **params: str) -> str:
        self.verifier, challenge = pkce_pair()
        self.state = secrets.token_urlsafe(16)
        self.nonce = secrets.token_urlsafe(16)
        query = {
            "response_type": "code", "client_id": self.client["client_id"],
            "redirect_uri": self.redirect_uri, "scope": "openid profile email",
            "state": self.state, "nonce": self.nonce, "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        query.update(params)
        query = {k: v for k, v in query.items() if v is not None}
        return f"{self.platform.url}/authorize?{urlencode(query)}"

    def start(self, **params: str) -> httpx.Response:
        return self.browser.get(self.authorize_url(**params), stop_at=self.redirect_uri)

    def get_code(self, user: dict[str, Any], **params: str) -> dict[str, str]:
        """Sign in (and consent if asked) until the redirect back; return its query."""
        response = self.start(**params)
        if "/connexion?" in str(response.url):
            response = self.browser.login(response, user["email"], user["password"],
                                          stop_at=self.redirect_uri)
        if "/connexion/consentement" in str(response.url):
            response = self.browser.consent(response, stop_at=self.redirect_uri)
        assert response.status_code in (302, 303), response.text[:500]
        location = response.headers["location"]
        assert location.startswith(self.redirect_uri), location
        return query_of(location)

    def token(self, code: str, **extra: str) -> httpx.Response:
        data = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": self.redirect_uri, "code_verifier": self.verifier}
        data.update(extra)
        return httpx.post(f"{self.platform.url}/token", data=data,
                          auth=(self.client["client_id"], self.client["client_secret"]))


@pytest.fixture
def client_app(platform: Platform) -> dict[str, Any]:
    return platform.create_client(
        post_logout_redirect_uris=["http://127.0.0.1:9999/logged-out"],
        grant_types=["authorization_code", "refresh_token"],
    )


@pytest.fixture
def user(platform: Platform) -> dict[str, Any]:
    return platform.create_user(given_name="Marie", family_name="Dupont")


@pytest.fixture
def flow(platform: Platform, client_app: dict[str, Any], browser: Browser) -> CodeFlow:
    return CodeFlow(platform=platform, client=client_app, browser=browser)


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[Any]:
    """A real SMTP server (aiosmtpd) on a free loopback port, for the whole session."""
    from tests.support.mailbox import SmtpServer

    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mailbox(platform: Platform, smtp_server: Any) -> Iterator[Any]:
    """For one test, the platform sends its mail to ``smtp_server`` (the mailer built from
    ``MC_SMTP_URL``, as at start-up); the test reads what arrives there."""
    from plateforme.mail import make_mailer

    provider = platform.provider
    previous = provider.mailer
    provider.mailer = make_mailer(smtp_server.url, platform.settings.data_dir,
                                  sender=platform.settings.mail_from)
    yield smtp_server.mailbox
    provider.mailer = previous
