"""Demo data for ``make run``: two citizens, two staff accounts (a CTM administrator and a
commune administrator, for the console at ``/admin/``) and the two demo relying parties."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from idp import ClientCreate, Provider, UserCreate

DEMO_USERS: list[dict[str, Any]] = [
    {"email": "marie.dupont@demo.mq", "password": "Bonjour-Madinina-972",
     "given_name": "Marie", "family_name": "Dupont"},
    {"email": "jean.louis@demo.mq", "password": "Soleil-Caraibes-2026",
     "given_name": "Jean", "family_name": "Louis"},
    {"email": "admin@demo.mq", "password": "Console-Admin-CTM-972",
     "given_name": "Alice", "family_name": "Administratrice", "role": ("ctm", "ctm_admin")},
    {"email": "mairie.lamentin@demo.mq", "password": "Mairie-Lamentin-97232",
     "given_name": "Louis", "family_name": "Lamentin", "role": ("lamentin", "org_admin")},
]

DEMO_CLIENTS: list[dict[str, Any]] = [
    {"client_id": "cantine-scolaire", "name": "Cantine scolaire", "port": 8001},
    {"client_id": "stationnement", "name": "Stationnement", "port": 8002},
]


def demo_client(client_id: str, name: str, port: int) -> ClientCreate:
    base = f"http://127.0.0.1:{port}"
    return ClientCreate(
        client_id=client_id, name=name, redirect_uris=[f"{base}/auth/callback"],
        post_logout_redirect_uris=[f"{base}/"], backchannel_logout_uri=f"{base}/backchannel-logout",
        first_party=True, scopes=["openid", "profile", "email", "offline_access"],
    )


def seed(provider: Provider, output: Path) -> dict[str, Any]:
    """Create what is missing; keep what exists. Client secrets are written to ``output``."""
    for spec in DEMO_USERS:
        account = provider.users.get_by_email(spec["email"])
        if account is not None:
            user_id = account.id
        else:
            fields = {k: v for k, v in spec.items() if k != "role"}
            user_id = provider.users.create(UserCreate(**fields), actor="demo").id
        if "role" in spec:
            org, role = spec["role"]
            provider.organisations.grant(user_id, org, role, actor="demo",
                                         reason="données de démonstration")
    known: dict[str, Any] = {}
    if output.exists():
        known = json.loads(output.read_text()).get("clients", {})
    clients: dict[str, Any] = {}
    for spec in DEMO_CLIENTS:
        cid = spec["client_id"]
        existing = provider.clients.get(cid)
        if existing is None:
            created = provider.clients.create(demo_client(cid, spec["name"], spec["port"]),
                                              actor="demo")
            secret = created.client_secret
        elif cid in known:
            secret = known[cid]["client_secret"]
        else:
            secret = provider.clients.rotate_secret(cid, actor="demo")
        clients[cid] = {"client_id": cid, "client_secret": secret, "name": spec["name"],
                        "port": spec["port"]}
    result = {
        "issuer": provider.issuer, "clients": clients,
        "logins": [{"email": u["email"], "password": u["password"],
                    "role": "/".join(reversed(u["role"])) if "role" in u else None}
                   for u in DEMO_USERS],
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        json.dump(result, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.chmod(0o600)
    tmp.replace(output)
    return result
