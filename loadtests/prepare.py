"""Prepare an instance for the load tests: two applications and a resource server registered, N
test accounts created in bulk, what the archive and catalogue journeys need (a client acting
for an organisation with the archive scopes, one with the catalogue's buyer scopes, a CTM
approver's account and the first-party tool they sign in with), and the JSON file the locust
journeys read (``LOADTEST_CONFIG``).

    .venv/bin/python loadtests/prepare.py --users 200 --out var/loadtest/config.json

It acts on the instance the ``MC_*`` settings point to, like the CLI, and in one process
through the provider's own services, as the CLI's commands do (``clients create``, ``services
seed``, ``users create``: same validation, secrets, argon2id hashes and audit events), with no
interpreter start-up per command (each cost seconds). Accounts are created several at a
time: argon2id releases the GIL, so hashing uses every core. Already existing
accounts are kept (the script can be run again). The output file holds client secrets: it is
written with mode 0600.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PASSWORD = "Charge-Madinina-972-Essai"  # noqa: S105 - throw-away test accounts
REDIRECT_BASE = "http://127.0.0.1:9/loadtest"  # never requested: the journeys stop before it
# The organisation the archive and catalogue journeys act for (one of the reference ones):
# deposits go to its archive space (opened at the first deposit, no quota unless
# MC_ARCHIVES_DEFAULT_QUOTA_BYTES), orders are placed for it.
ORGANISATION = "lamentin"
APPROVER_EMAIL = "valideur-charge@charge.example.mq"


@contextmanager
def platform(threads: int | None = None) -> Iterator[Any]:
    """The provider of the instance the ``MC_*`` settings point to, in this process, as the
    CLI builds it (migrations, signing keys and reference organisations made sure of)."""
    from idp import Provider
    from martinique_connect.cli import initialise
    from martinique_connect.database import upgrade
    from plateforme.db import make_engine
    from plateforme.kv import make_store
    from plateforme.settings import load_settings

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url, pool_size=threads or os.cpu_count() or 2)
    upgrade(engine)
    store = make_store(settings.redis_url, prefix=settings.redis_prefix)
    provider = Provider(settings=settings, engine=engine, store=store)
    try:
        initialise(provider)
        yield provider
    finally:
        provider.close()
        if hasattr(store, "close"):  # the in-process store has nothing to close
            store.close()
        engine.dispose()


def create_client(provider: Any, **fields: Any) -> dict[str, str]:
    """One client registered through the provider's own service (as ``clients create``)."""
    from idp import ClientCreate

    created = provider.clients.create(ClientCreate(**fields), actor="loadtest")
    return {"client_id": created.client_id, "client_secret": created.client_secret or "",
            "redirect_uri": (fields.get("redirect_uris") or [""])[0]}


def create_clients(provider: Any) -> dict[str, Any]:
    """Application A (consent asked), application B (for SSO) and a resource server."""
    apps = [create_client(provider, name=f"Charge {label.upper()}",
                          redirect_uris=[f"{REDIRECT_BASE}/{label}/callback"],
                          grant_types=["authorization_code", "refresh_token"],
                          scopes=["openid", "profile", "email"])
            for label in ("a", "b")]
    rs = create_client(provider, name="Charge serveur de ressources",
                       grant_types=["client_credentials"], scopes=["openid"])
    return {"apps": apps, "resource_server": rs}


def seed_catalogue(provider: Any) -> None:
    """The service catalogue, fibre reserves and sites (``db upgrade`` seeds the catalogue
    too; idempotent, as ``services seed``)."""
    from martinique_connect.wiring import build_services

    build_services(provider, provider.settings, provider.engine, provider.store).seed(sites=True)


def create_domain_clients(provider: Any, organisation: str = ORGANISATION) -> dict[str, Any]:
    """The archive and catalogue journeys' clients: the organisation's document management
    software (``client_credentials``, archives:read/write, acting for ``organisation``), its
    purchasing software (``client_credentials``, services:read/order), and the CTM's
    first-party tool the approver signs in with (code flow, every catalogue scope)."""
    def machine(name: str, scopes: str) -> dict[str, str]:
        return create_client(provider, name=name, organisation=organisation,
                             grant_types=["client_credentials"], scopes=scopes.split())

    tool = create_client(provider, name="Charge outil des valideurs", first_party=True,
                         redirect_uris=[f"{REDIRECT_BASE}/approver/callback"],
                         grant_types=["authorization_code"],
                         scopes=["openid", "services:read", "services:order", "services:admin"])
    return {
        "organisation": organisation,
        "archives_client": machine("Charge GED", "archives:read archives:write"),
        "buyer_client": machine("Charge achats", "services:read services:order"),
        "approver_app": tool,
        "approver": APPROVER_EMAIL,
    }


def user_emails(count: int, domain: str = "charge.example.mq") -> list[str]:
    return [f"citoyen-{i:06d}@{domain}" for i in range(count)]


def create_users(provider: Any, emails: list[str], password: str, *,
                 threads: int | None = None, approver: str | None = None) -> int:
    """Create the accounts that do not exist yet; returns how many were created. With
    ``approver``: that account too, holding the CTM's ``approver`` role (the catalogue's
    orders are approved by it)."""
    from idp import UserCreate
    from plateforme.errors import Conflict

    def one(email: str) -> int:
        try:
            provider.users.create(UserCreate(email=email, password=password,
                                             given_name="Citoyen", family_name="Essai"),
                                  actor="loadtest")
        except Conflict:
            return 0
        return 1

    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 2) as pool:
        created = sum(pool.map(one, emails))
    if approver:
        one(approver)
        person = provider.users.get_by_email(approver)
        assert person is not None
        provider.organisations.grant(person.id, "ctm", "approver", actor="loadtest",
                                     reason="tests de charge")
    return created


def prepare(out: Path, users: int, password: str = DEFAULT_PASSWORD,
            organisation: str = ORGANISATION) -> dict[str, Any]:
    with platform() as provider:
        issuer = provider.settings.issuer
        clients = create_clients(provider)
        seed_catalogue(provider)
        domains = create_domain_clients(provider, organisation)
        emails = user_emails(users)
        start = time.perf_counter()
        created = create_users(provider, emails, password, approver=domains["approver"])
    print(f"[prepare] {created} accounts created ({len(emails) - created} kept) in "
          f"{time.perf_counter() - start:.1f} s", flush=True)
    data = {"issuer": issuer, "password": password, "users": emails, **clients, **domains}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.chmod(0o600)
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(out)
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200, help="test accounts (default 200)")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "loadtest" / "config.json")
    parser.add_argument("--password", default=DEFAULT_PASSWORD)
    parser.add_argument("--organisation", default=ORGANISATION,
                        help=f"the commune the archive and catalogue journeys act for "
                        f"(default {ORGANISATION})")
    args = parser.parse_args()
    prepare(args.out, args.users, args.password, args.organisation)
    print(f"[prepare] configuration written to {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
