"""Prepare an instance for the load tests: two applications and a resource server registered
through the ``martinique-connect`` CLI, N test accounts created in bulk, what the archive and
catalogue journeys need (a client acting for an organisation with the archive scopes, one
with the catalogue's buyer scopes, a CTM approver's account and the first-party tool they sign
in with), and the JSON file the locust journeys read (``LOADTEST_CONFIG``).

    .venv/bin/python loadtests/prepare.py --users 200 --out var/loadtest/config.json

It acts on the instance the ``MC_*`` settings point to, like the CLI. Accounts are created in
one process through the provider's own service (``idp.Provider.users.create``: same
validation, argon2id hash and audit event as ``martinique-connect users create``), several at
a time: argon2id releases the GIL, so hashing uses every core, and there is no interpreter
start-up per account (a CLI call per account would cost a second each). Already existing
accounts are kept (the script can be run again). The output file holds client secrets: it is
written with mode 0600.
"""

# Fixed local commands built here, never user input:
# ruff: noqa: S603

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
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


def cli_path() -> str:
    beside = Path(sys.executable).parent / "martinique-connect"
    return str(beside) if beside.exists() else shutil.which("martinique-connect") or str(beside)


def cli_json(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = subprocess.run([cli_path(), *args, "--json"], capture_output=True, text=True,
                            env=env, timeout=120)
    if result.returncode != 0:
        raise SystemExit(f"martinique-connect {' '.join(args[:2])} failed: {result.stderr}")
    return dict(json.loads(result.stdout))


def create_clients(env: dict[str, str] | None = None) -> dict[str, Any]:
    """Application A (consent asked), application B (for SSO) and a resource server."""
    apps = []
    for label in ("a", "b"):
        created = cli_json(
            "clients", "create", "--name", f"Charge {label.upper()}",
            "--redirect-uri", f"{REDIRECT_BASE}/{label}/callback",
            "--grant-type", "authorization_code", "--grant-type", "refresh_token",
            "--scope", "openid profile email", env=env,
        )
        apps.append({"client_id": created["client_id"], "client_secret": created["client_secret"],
                     "redirect_uri": f"{REDIRECT_BASE}/{label}/callback"})
    rs = cli_json("clients", "create", "--name", "Charge serveur de ressources",
                  "--grant-type", "client_credentials", "--scope", "openid", env=env)
    return {"apps": apps, "resource_server": {
        "client_id": rs["client_id"], "client_secret": rs["client_secret"], "redirect_uri": ""}}


def seed_catalogue(env: dict[str, str] | None = None) -> None:
    """The service catalogue (``db upgrade`` seeds it too; idempotent)."""
    result = subprocess.run([cli_path(), "services", "seed"], capture_output=True, text=True,
                            env=env, timeout=120)
    if result.returncode != 0:
        raise SystemExit(f"martinique-connect services seed failed: {result.stderr}")


def create_domain_clients(env: dict[str, str] | None = None,
                          organisation: str = ORGANISATION) -> dict[str, Any]:
    """The archive and catalogue journeys' clients: the organisation's document management
    software (``client_credentials``, archives:read/write, acting for ``ORGANISATION``), its
    purchasing software (``client_credentials``, services:read/order), both for
    ``organisation``, and the CTM's
    first-party tool the approver signs in with (code flow, every catalogue scope)."""
    def machine(name: str, scopes: str) -> dict[str, str]:
        created = cli_json("clients", "create", "--name", name, "--org", organisation,
                           "--grant-type", "client_credentials", "--scope", scopes, env=env)
        return {"client_id": created["client_id"], "client_secret": created["client_secret"],
                "redirect_uri": ""}

    tool_redirect = f"{REDIRECT_BASE}/approver/callback"
    tool = cli_json("clients", "create", "--name", "Charge outil des valideurs",
                    "--first-party", "--redirect-uri", tool_redirect,
                    "--grant-type", "authorization_code",
                    "--scope", "openid services:read services:order services:admin", env=env)
    return {
        "organisation": organisation,
        "archives_client": machine("Charge GED", "archives:read archives:write"),
        "buyer_client": machine("Charge achats", "services:read services:order"),
        "approver_app": {"client_id": tool["client_id"], "client_secret": tool["client_secret"],
                         "redirect_uri": tool_redirect},
        "approver": APPROVER_EMAIL,
    }


def user_emails(count: int, domain: str = "charge.example.mq") -> list[str]:
    return [f"citoyen-{i:06d}@{domain}" for i in range(count)]


def create_users(emails: list[str], password: str, *, threads: int | None = None,
                 approver: str | None = None) -> int:
    """Create the accounts that do not exist yet; returns how many were created. With
    ``approver``: that account too, holding the CTM's ``approver`` role (the catalogue's
    orders are approved by it)."""
    from idp import Provider, UserCreate
    from martinique_connect.database import upgrade
    from plateforme.db import make_engine
    from plateforme.errors import Conflict
    from plateforme.kv import make_store
    from plateforme.settings import load_settings

    settings = load_settings()
    engine = make_engine(settings.sqlalchemy_url, pool_size=threads or os.cpu_count() or 2)
    upgrade(engine)
    store = make_store(settings.redis_url, prefix=settings.redis_prefix)
    provider = Provider(settings=settings, engine=engine, store=store)

    def one(email: str) -> int:
        try:
            provider.users.create(UserCreate(email=email, password=password,
                                             given_name="Citoyen", family_name="Essai"),
                                  actor="loadtest")
        except Conflict:
            return 0
        return 1

    try:
        with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 2) as pool:
            created = sum(pool.map(one, emails))
        if approver:
            one(approver)
            person = provider.users.get_by_email(approver)
            assert person is not None
            provider.organisations.grant(person.id, "ctm", "approver", actor="loadtest",
                                         reason="tests de charge")
        return created
    finally:
        provider.close()
        engine.dispose()


def prepare(out: Path, users: int, password: str = DEFAULT_PASSWORD,
            organisation: str = ORGANISATION) -> dict[str, Any]:
    from plateforme.settings import load_settings

    issuer = load_settings().issuer
    clients = create_clients()
    seed_catalogue()
    domains = create_domain_clients(organisation=organisation)
    emails = user_emails(users)
    start = time.perf_counter()
    created = create_users(emails, password, approver=domains["approver"])
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
