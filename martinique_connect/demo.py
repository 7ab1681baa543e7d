"""Demo data for ``make run``: two citizens, two staff accounts (a CTM administrator and a
commune administrator, for the console at ``/admin/``) and the two demo relying parties.

The console requires two factors (``eidas2``): each staff account gets an authenticator app
(TOTP) enrolled through the factors service, whose key and ``otpauth://`` URI are written to
the demo file, so that a code can be computed on the command line. Citizens' accounts keep
the password alone."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import pyotp

from idp import ClientCreate, Provider, UserCreate
from idp.models import User
from idp.services.factors import Origin
from idp.services.mandates import MandateTerms
from plateforme.clock import utcnow

DEMO_USERS: list[dict[str, Any]] = [
    {"email": "marie.dupont@demo.mq", "password": "Bonjour-Madinina-972",
     "given_name": "Marie", "family_name": "Dupont"},
    {"email": "jean.louis@demo.mq", "password": "Soleil-Caraibes-2026",
     "given_name": "Jean", "family_name": "Louis"},
    {"email": "admin@demo.mq", "password": "Console-Admin-CTM-972",
     "given_name": "Alice", "family_name": "Administratrice", "role": ("ctm", "ctm_admin")},
    {"email": "mairie.lamentin@demo.mq", "password": "Mairie-Lamentin-97232",
     "given_name": "Louis", "family_name": "Lamentin", "role": ("lamentin", "org_admin")},
    # the service catalogue (docs/services.md): a commune's buyer and a CTM approver
    {"email": "acheteur.lamentin@demo.mq", "password": "Acheteur-Lamentin-97232",
     "given_name": "Sonia", "family_name": "Acheteuse", "role": ("lamentin", "buyer")},
    {"email": "valideur.ctm@demo.mq", "password": "Valideur-Services-CTM-972",
     "given_name": "Victor", "family_name": "Valideur", "role": ("ctm", "approver")},
    # An accredited digital mediator (France Services desk): receives mandates at the desk.
    {"email": "mediatrice@demo.mq", "password": "France-Services-972",
     "given_name": "Nadia", "family_name": "Médiatrice", "mediator": True},
    {"email": "archiviste.lamentin@demo.mq", "password": "Archives-Lamentin-97232",
     "given_name": "Rose", "family_name": "Archiviste", "role": ("lamentin", "archivist")},
    {"email": "autorite.archives@demo.mq", "password": "Visa-Archives-CTM-972",
     "given_name": "Paul", "family_name": "Autorité", "role": ("ctm", "archival_authority")},
]

DEMO_CLIENTS: list[dict[str, Any]] = [
    {"client_id": "cantine-scolaire", "name": "Cantine scolaire", "port": 8001,
     "delegation_allowed": True},
    {"client_id": "stationnement", "name": "Stationnement", "port": 8002},
]


def demo_client(client_id: str, name: str, port: int, delegation_allowed: bool = False
                ) -> ClientCreate:
    base = f"http://127.0.0.1:{port}"
    return ClientCreate(
        client_id=client_id, name=name, redirect_uris=[f"{base}/auth/callback"],
        post_logout_redirect_uris=[f"{base}/"], backchannel_logout_uri=f"{base}/backchannel-logout",
        first_party=True, scopes=["openid", "profile", "email", "offline_access"],
        delegation_allowed=delegation_allowed,
    )


def demo_family(provider: Provider) -> None:
    """Marie Dupont's son Léo (a minor with no sign-in): the collectivity recorded that she
    is his parent, for the canteen (docs/integration.md, « Procurations »)."""
    parent = provider.users.get_by_email("marie.dupont@demo.mq")
    if parent is None or any(m.origin == "relationship"
                             for m in provider.mandates.received(parent.id)):
        return
    child = provider.mandates.create_minor(given_name="Léo", family_name="Dupont",
                                           birthdate="2016-04-02", actor="demo")
    provider.mandates.record_relationship(
        child.id, parent.id, "parent", MandateTerms(
            clients=("cantine-scolaire",), scopes=("openid", "profile"),
            ends_at=utcnow() + timedelta(days=365)),
        actor="demo", reason="données de démonstration")


DEMO_TOTP_NAME = "Démo (make run)"
# The journal's address for what the command line does.
CLI_ORIGIN = Origin(address="cli")


def demo_totp(provider: Provider, user: User, known: dict[str, Any] | None) -> dict[str, Any]:
    """The staff account's demo authenticator app: the one recorded in the demo file if the
    account still has it (same key at every run), else a new one (enrolled and confirmed
    through the factors service, audited; an earlier demo app of the account is removed)."""
    factors = provider.factors.totp.list(user.id)
    if known and known.get("secret") and any(
            str(f.id) == known.get("factor_id") for f in factors):
        return known
    enrolment = provider.factors.begin_totp(user)
    # Confirmed with the previous time step's code (inside the accepted window): the code of
    # the current step, the one a newcomer computes right after, stays unused (one code, one
    # use) and opens the console at once.
    now = provider.factors.totp.clock.timestamp()
    code = pyotp.TOTP(enrolment.secret).at(now - 30)
    provider.factors.confirm_totp(user, str(enrolment.factor_id), code, DEMO_TOTP_NAME,
                                  origin=CLI_ORIGIN)
    for factor in factors:  # the demo app whose key was lost with the demo file
        if factor.name == DEMO_TOTP_NAME:
            provider.factors.remove_totp(user, str(factor.id), origin=CLI_ORIGIN)
    return {"factor_id": str(enrolment.factor_id), "secret": enrolment.secret,
            "otpauth_uri": enrolment.uri}


def seed(provider: Provider, output: Path) -> dict[str, Any]:
    """Create what is missing; keep what exists. Client secrets and the staff accounts' TOTP
    keys are written to ``output``."""
    previous: dict[str, Any] = json.loads(output.read_text()) if output.exists() else {}
    known_totp = {login["email"]: login.get("totp")
                  for login in previous.get("logins", []) if isinstance(login, dict)}
    totp: dict[str, dict[str, Any]] = {}
    for spec in DEMO_USERS:
        account = provider.users.get_by_email(spec["email"])
        if account is None:
            fields = {k: v for k, v in spec.items() if k not in ("role", "mediator")}
            provider.users.create(UserCreate(**fields), actor="demo")
            account = provider.users.get_by_email(spec["email"])
            assert account is not None
        if spec.get("mediator"):
            provider.organisations.grant(account.id, "ctm", "mediator", actor="demo",
                                         reason="données de démonstration")
        if "role" in spec:
            org, role = spec["role"]
            provider.organisations.grant(account.id, org, role, actor="demo",
                                         reason="données de démonstration")
            totp[spec["email"]] = demo_totp(provider, account, known_totp.get(spec["email"]))
    known: dict[str, Any] = previous.get("clients", {})
    clients: dict[str, Any] = {}
    for spec in DEMO_CLIENTS:
        cid = spec["client_id"]
        existing = provider.clients.get(cid)
        if existing is None:
            created = provider.clients.create(demo_client(
                cid, spec["name"], spec["port"], spec.get("delegation_allowed", False)),
                actor="demo")
            secret = created.client_secret
        elif cid in known:
            secret = known[cid]["client_secret"]
        else:
            secret = provider.clients.rotate_secret(cid, actor="demo")
        clients[cid] = {"client_id": cid, "client_secret": secret, "name": spec["name"],
                        "port": spec["port"]}
    demo_family(provider)
    result = {
        "issuer": provider.issuer, "clients": clients,
        "logins": [{"email": u["email"], "password": u["password"],
                    "role": "/".join(reversed(u["role"])) if "role" in u else None,
                    **({"totp": totp[u["email"]]} if u["email"] in totp else {})}
                   for u in DEMO_USERS],
        # what seed_archives() added (its client's secret is kept from run to run)
        **({"archives": previous["archives"]} if "archives" in previous else {}),
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


# --- archives ----------------------------------------------------------------------------------

DEMO_RULES = """RuleId,RuleType,RuleValue,RuleDescription,RuleDuration,RuleMeasurement
APP-6M,AppraisalRule,Six mois,Documents de travail,6,month
APP-5,AppraisalRule,Cinq ans,Pièces comptables (DUA 5 ans après clôture),5,year
APP-10,AppraisalRule,Dix ans,Marchés publics,10,year
ACC-25,AccessRule,Vingt-cinq ans,Secret des délibérations (Code du patrimoine L213-2),25,year
ACC-0,AccessRule,Immédiat,Communicable de plein droit,0,year
HOLD-CONT,HoldRule,Gel contentieux,Contentieux en cours,unlimited,
"""
ARCHIVES_CLIENT = "ged-lamentin"


def seed_archives(provider: Provider, archives: Any, output: Path) -> dict[str, Any]:
    """The rules référentiel, a filing plan for Le Lamentin and units whose DUA has expired
    (sort final « détruire ») ready for an elimination; a client for the archive API acting
    for Le Lamentin, whose secret is added to ``output`` (the demo file). Idempotent
    (deposits carry fixed deposit identifiers; the client's secret is kept)."""
    from archivage import Actor, DepositMetadata, IncomingFile, RuleAssignment, UnitMetadata
    from plateforme.blobs import StagedFile

    archivist = Actor(subject="demo", organisation="lamentin", roles=frozenset({"archivist"}))
    archives.rules.import_csv(DEMO_RULES, actor=archivist)
    found = archives.units.search(archivist, query="Comptabilité démonstration",
                                  level="series", owned_only=True)
    if found:
        series_id = found[0].id
    else:
        series_id = archives.deposits.create_unit(archivist, UnitMetadata(
            title="Comptabilité (démonstration)", level="series", producer="Service des finances",
            classification="1.4", description="Pièces comptables de la commune.",
            rules=[RuleAssignment(rule_id="APP-5", start_date=date(2019, 12, 31),
                                  final_action="détruire")])).id
    documents: list[tuple[str, str, date, Literal["conserver", "détruire"]]] = [
        ("demo-mandats-2018", "Mandats de paiement 2018", date(2018, 12, 31), "détruire"),
        ("demo-titres-2018", "Titres de recettes 2018", date(2018, 12, 31), "détruire"),
        ("demo-brouillons-2020", "Brouillons du budget 2020", date(2020, 6, 30), "détruire"),
        ("demo-budget-2019", "Budget primitif 2019", date(2019, 12, 31), "conserver"),
    ]
    units = []
    with tempfile.TemporaryDirectory() as tmp:
        for key, title, start, action in documents:
            body = (f"{title}\nCommune du Lamentin — document de démonstration.\n").encode()
            path = Path(tmp) / f"{key}.txt"
            path.write_bytes(body)
            staged = StagedFile(path, len(body), {
                "sha512": hashlib.sha512(body).hexdigest(),
                "sha256": hashlib.sha256(body).hexdigest()})
            metadata = DepositMetadata(
                title=title, parent=series_id, producer="Service des finances",
                document_type="pièce comptable", language="fr",
                start_date=date(start.year, 1, 1), end_date=start,
                keywords=["comptabilité", "démonstration"],
                rules=[RuleAssignment(rule_id="APP-6M" if "brouillon" in key else "APP-5",
                                      start_date=start, final_action=action)])
            ack, _ = archives.deposits.deposit(archivist, metadata,
                                               [IncomingFile(f"{key}.txt", staged)],
                                               deposit_key=key)
            units.append({"title": title, "ark": ack["units"][0]["ark"],
                          "final_action": action})
    demo_file: dict[str, Any] = json.loads(output.read_text()) if output.exists() else {}
    known = (demo_file.get("archives") or {}).get("client") or {}
    if provider.clients.get(ARCHIVES_CLIENT) is None:
        secret = provider.clients.create(ClientCreate(
            client_id=ARCHIVES_CLIENT, name="GED de la mairie du Lamentin", redirect_uris=[],
            grant_types=["client_credentials"], organisation="lamentin",
            scopes=["archives:read", "archives:write"]), actor="demo").client_secret
    elif known.get("client_secret"):
        secret = known["client_secret"]
    else:
        secret = provider.clients.rotate_secret(ARCHIVES_CLIENT, actor="demo")
    result = {"series": series_id, "units": units,
              "client": {"client_id": ARCHIVES_CLIENT, "client_secret": secret,
                         "organisation": "lamentin"}}
    demo_file["archives"] = result
    partial = output.with_suffix(".tmp")
    with open(partial, "w") as fh:
        json.dump(demo_file, fh, indent=2, ensure_ascii=False)
        fh.flush()
        os.fsync(fh.fileno())
    partial.chmod(0o600)
    partial.replace(output)
    return result
