"""A FranceConnect-like upstream for the brokering tests: a second instance of our own
provider, served on ``localhost`` (the provider under test is on ``127.0.0.1``: browsers, like
our test browser, share cookies between ports of one host, not between hosts), with a client
for the broker that gets its UserInfo as a signed JWT, and citizens with a civil status.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session

from idp import ClientCreate, Provider, UserCreate
from idp.models import User
from martinique_connect.app import create_app
from plateforme.settings import Settings
from tests.conftest import PG_ADMIN_URL, Backend, Platform, make_settings
from tests.support.live import LiveServer, free_port, serve

PASSWORD = "Identite-Nationale-972"


@dataclass
class Upstream:
    live: LiveServer
    settings: Settings

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    @property
    def provider(self) -> Provider:
        return self.live.app.state.provider  # type: ignore[no-any-return]

    def register_broker(self, broker_issuer: str) -> dict[str, Any]:
        """The broker's client, as FranceConnect registers a service provider: code flow,
        ``client_secret_post``, signed UserInfo, a consent page, the return and logout
        addresses of the broker."""
        created = self.provider.clients.create(ClientCreate(
            name="Martinique Connect", client_id=f"mc-{secrets.token_hex(4)}",
            redirect_uris=[broker_issuer + "/connexion/franceconnect/retour"],
            post_logout_redirect_uris=[broker_issuer + "/connexion/franceconnect/deconnexion"],
            token_endpoint_auth_method="client_secret_post",  # noqa: S106 - a method name
            userinfo_signed_response_alg="ES256", scopes=["openid", "profile", "email"],
        ))
        return created.model_dump()

    def citizen(self, *, email: str | None = None, family_name: str = "Lagier",
                given_name: str = "Angela Claire Louise", gender: str = "female",
                birthdate: str | None = None, birthplace: str = "97209",
                birthcountry: str = "99100") -> dict[str, Any]:
        """A person known to the upstream, with the six civil-status fields (a random
        birthdate unless given: two citizens of a test module are two people)."""
        if birthdate is None:
            birthdate = (f"19{secrets.randbelow(60) + 30}-{secrets.randbelow(9) + 1:02d}-"
                         f"{secrets.randbelow(18) + 10}")
        email = email or f"citoyen-{secrets.token_hex(4)}@example.mq"
        created = self.provider.users.create(UserCreate(
            email=email, password=PASSWORD, given_name=given_name, family_name=family_name))
        with Session(self.provider.engine) as session:
            user = session.get(User, uuid.UUID(str(created.id)))
            assert user is not None
            user.gender, user.birthdate = gender, birthdate
            user.birthplace, user.birthcountry = birthplace, birthcountry
            session.add(user)
            session.commit()
        return {"id": created.id, "email": email, "password": PASSWORD,
                "family_name": family_name, "given_name": given_name, "gender": gender,
                "birthdate": birthdate, "birthplace": birthplace, "birthcountry": birthcountry}


@contextmanager
def upstream_provider() -> Iterator[Upstream]:
    """The upstream on ``http://localhost:<port>`` (embedded backends: it is not under
    test)."""
    data_dir = Path(tempfile.mkdtemp(prefix="mc-upstream-"))
    port = free_port()
    settings = Settings(
        issuer=f"http://localhost:{port}", port=port, data_dir=data_dir, environment="test",
        database_url=None, redis_url=None,
        secret_key="upstream-" + secrets.token_hex(16), address_free_attempts=10_000,
    )
    app = create_app(settings)
    try:
        with serve(app, port) as live:
            yield Upstream(live=live, settings=settings)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def _own_database(backend: Backend) -> Iterator[Backend]:
    """The broker is a second platform: on PostgreSQL + Redis it gets its own database and
    key prefix (its secret key differs from the session platform's)."""
    if backend.name != "postgres":
        yield backend
        return
    import psycopg

    name = f"mc_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Backend("postgres", database_url=f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}",
                      redis_url=backend.redis_url,
                      redis_prefix=f"{backend.redis_prefix}broker:")
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def broker_platform(backend: Backend, upstream: Upstream, **overrides: Any
                    ) -> Iterator[Platform]:
    """The platform under test with « S'identifier avec FranceConnect » pointing to
    ``upstream`` (its client registered there first), on ``http://127.0.0.1:<port>``."""
    with _own_database(backend) as own:
        port = free_port()
        client = upstream.register_broker(f"http://127.0.0.1:{port}")
        data_dir = Path(tempfile.mkdtemp(prefix=f"mc-broker-{backend.name}-"))
        settings = make_settings(
            own, data_dir, port, franceconnect_issuer=upstream.issuer,
            franceconnect_client_id=client["client_id"],
            franceconnect_client_secret=client["client_secret"],
            franceconnect_scopes="openid profile email", franceconnect_acr_values="eidas1",
            **overrides,
        )
        try:
            with serve(create_app(settings), port) as live:
                yield Platform(live=live, settings=settings)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
