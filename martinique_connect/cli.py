"""The ``martinique-connect`` command. It reads the same ``MC_*`` settings as the server.

Bad input ends with exit code 2 and one line on stderr, never a traceback. Each invocation
reads its settings when it runs and closes what it opened (engines, key-value stores) when it
ends, so that several invocations can run in one process (the tests run it in process through
``typer.testing.CliRunner``). A command imports only the domains it uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from typer._click import exceptions as click_exceptions  # typer vendors its click
from typer.core import TyperGroup

from martinique_connect.cli_archives import archives_app
from plateforme.errors import DomainError


class BadInput(Exception):
    """Reported as one line and exit code 2."""


# What the running command opened, closed when it ends (most recent first).
_opened: list[Callable[[], None]] = []


def _close_when_done(close: Callable[[], None]) -> None:
    _opened.append(close)


def _close_opened() -> None:
    while _opened:
        with contextlib.suppress(Exception):  # closing never hides the command's outcome
            _opened.pop()()


def _report(exc: Exception) -> int:
    """One line on stderr for ``exc``; the exit code."""
    if isinstance(exc, click_exceptions.ClickException):
        message = exc.format_message()
        if message:  # empty when the help was shown (a group without its command)
            typer.echo(f"erreur : {message}", err=True)
        return 2
    if isinstance(exc, BadInput):
        typer.echo(f"erreur : {exc}", err=True)
        return 2
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = str(first.get("msg", "valeur invalide")).removeprefix("Value error, ")
        typer.echo(f"erreur : {where + ' : ' if where else ''}{message}", err=True)
        return 2
    if isinstance(exc, DomainError):
        typer.echo(f"erreur : {exc.message}", err=True)
        return 2
    # the last guard: one line, never a traceback
    typer.echo(f"erreur : {type(exc).__name__}: {exc}", err=True)
    return 1


class _Root(TyperGroup):
    """The root command: every error ends as one line on stderr with its exit code, and what
    the command opened is closed, whether it is run as a process or in one (CliRunner)."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False,
                                windows_expand_args=windows_expand_args, **extra)
        except typer.Exit as exc:
            code = exc.exit_code
        except Exception as exc:
            if os.environ.get("MC_DEBUG") and not isinstance(
                    exc, click_exceptions.ClickException | BadInput | ValidationError
                    | DomainError):
                raise
            code = _report(exc)
        finally:
            _close_opened()
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    name="martinique-connect", no_args_is_help=True, add_completion=False, cls=_Root,
    pretty_exceptions_enable=False, help="Martinique Connect : fournisseur d'identité de la CTM.",
)
db_app = typer.Typer(no_args_is_help=True, help="Base de données.")
keys_app = typer.Typer(no_args_is_help=True, help="Clés de signature.")
clients_app = typer.Typer(no_args_is_help=True, help="Applications clientes (relying parties).")
users_app = typer.Typer(no_args_is_help=True, help="Comptes.")
demo_app = typer.Typer(no_args_is_help=True, help="Données de démonstration.")
audit_app = typer.Typer(no_args_is_help=True, help="Journal d'audit.")
tokens_app = typer.Typer(no_args_is_help=True, help="Jetons.")
orgs_app = typer.Typer(no_args_is_help=True, help="Organisations (communes, EPCI, CTM, SDIS).")
members_app = typer.Typer(no_args_is_help=True, help="Rôles des personnes dans les organisations.")
certs_app = typer.Typer(no_args_is_help=True, help="Certificats TLS de développement.")
mandates_app = typer.Typer(no_args_is_help=True, help="Procurations (liens familiaux ou légaux).")
for sub, name in ((db_app, "db"), (keys_app, "keys"), (clients_app, "clients"),
                  (users_app, "users"), (demo_app, "demo"), (audit_app, "audit"),
                  (tokens_app, "tokens"), (orgs_app, "orgs"), (members_app, "members"),
                  (certs_app, "certs"), (mandates_app, "mandates")):
    app.add_typer(sub, name=name)
app.add_typer(archives_app, name="archives")


def _fail(message: str) -> NoReturn:
    raise BadInput(message)


def _settings() -> Any:
    from plateforme.settings import load_settings

    return load_settings()


def _make_engine(url: str) -> Any:
    """An engine disposed of when the command ends."""
    from plateforme.db import make_engine

    engine = make_engine(url)
    _close_when_done(engine.dispose)
    return engine


def _make_store(settings: Any) -> Any:
    """The key-value store of ``settings``, closed when the command ends."""
    from plateforme.kv import make_store

    store = make_store(settings.redis_url, prefix=settings.redis_prefix)
    if hasattr(store, "close"):
        _close_when_done(store.close)
    return store


def _engine() -> Any:
    from martinique_connect.database import upgrade

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = _make_engine(settings.sqlalchemy_url)
    upgrade(engine)
    return settings, engine


def _provider(*, console: bool = False) -> Any:
    from idp import Provider

    settings, engine = _engine()
    store = _make_store(settings)
    provider = Provider(settings=settings, engine=engine, store=store)
    initialise(provider, console=console)
    return provider


def initialise(provider: Any, *, console: bool = False) -> None:
    """Signing keys and the reference organisations (idempotent, every command); with
    ``console``, also the administration console's client, whose redirect URIs follow
    ``MC_ISSUER``: only the commands that deploy (``db upgrade``, ``serve``, ``demo seed``)
    register it, so a one-off command run with another issuer cannot break the console."""
    from idp.services.signing_keys import UnreadableKeys

    try:
        provider.keys.ensure_keys()
    except UnreadableKeys as exc:
        _fail(str(exc))
    if not provider.organisations.list():
        provider.organisations.seed()
    if console:
        from admin_ui import console_client  # the console's pages: only when deploying

        provider.clients.ensure(*console_client(provider.settings), actor="initialisation")
        _services(provider).seed(sites=False)  # the service catalogue and fibre reserves


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


# --- serve -----------------------------------------------------------------------------------


@app.command()
def serve(
    workers: Annotated[int, typer.Option(min=1, max=64, help="Processus de travail.")] = 1,
    host: Annotated[str | None, typer.Option(help="Adresse d'écoute (MC_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (MC_PORT).")] = None,
    access_log: Annotated[bool, typer.Option(
        help="Une ligne de journal par requête, avec son identifiant (MC_ACCESS_LOG).")] = False,
) -> None:
    """Start the server (uvicorn), after migrations and key creation.

    With several workers, this process imports the application once and forks them
    (:mod:`martinique_connect.prefork`), and the metrics of every worker are summed through
    ``PROMETHEUS_MULTIPROC_DIR`` (a folder of the data directory, emptied at start, unless
    the variable is already set)."""
    import uvicorn

    settings = _settings()
    if workers > 1 and not settings.redis_url:
        _fail(
            "--workers > 1 demande MC_REDIS_URL : les sessions, codes et compteurs en mémoire "
            "d'un processus ne sont pas partagés avec les autres"
        )
    if workers > 1:
        _prepare_multiprocess_metrics(settings.data_dir)
    if access_log:
        os.environ["MC_ACCESS_LOG"] = "true"  # read by each worker's settings
    _provider(console=True)  # migrations, keys, console client: once, before the workers
    forked: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if workers > 1:  # imported once here, forked N times (memory per worker, issue 8)
        from idp import passwords
        from martinique_connect import prefork

        _close_opened()  # no connection crosses the fork
        passwords.set_threads(1)  # one core per worker: one argon2id thread each
        prefork.preload()
        forked = prefork.forked_workers()
    with forked:
        uvicorn.run(
            "martinique_connect.app:app_from_env", factory=True, workers=workers,
            host=host or settings.host, port=port or settings.port, access_log=False,
            log_level="warning", proxy_headers=False, server_header=False,
            timeout_graceful_shutdown=10,
        )



@mandates_app.command("record")
def mandates_record(
    parent_email: Annotated[str, typer.Option(help="Compte du parent ou du tuteur.")],
    relationship: Annotated[str, typer.Option(help="parent | guardian")],
    until: Annotated[str, typer.Option(help="Fin (AAAA-MM-JJ), un an au plus.")],
    reason: Annotated[str, typer.Option(help="Pièce vérifiée (livret de famille, jugement).")],
    child_given_name: Annotated[str | None, typer.Option()] = None,
    child_family_name: Annotated[str | None, typer.Option()] = None,
    child_birthdate: Annotated[str | None, typer.Option()] = None,
    mandator_email: Annotated[str | None, typer.Option(
        help="Compte de la personne représentée (sinon : un enfant mineur sans compte).")] = None,
    client: Annotated[list[str] | None, typer.Option(help="Service couvert (répétable).")] = None,
    scope: Annotated[list[str] | None, typer.Option(help="Portée (répétable).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Record a verified relationship: the parent (or guardian) acts for the person."""
    from datetime import UTC, datetime

    from idp.services.mandates import MandateTerms

    provider = _provider()
    parent = provider.users.get_by_email(parent_email.strip().lower())
    if parent is None:
        _fail(f"aucun compte pour {parent_email}")
    if mandator_email:
        mandator = provider.users.get_by_email(mandator_email.strip().lower())
        if mandator is None:
            _fail(f"aucun compte pour {mandator_email}")
    else:
        mandator = provider.mandates.create_minor(
            given_name=child_given_name or "", family_name=child_family_name or "",
            birthdate=child_birthdate, actor="cli")
    try:
        ends = datetime.fromisoformat(until).replace(hour=23, minute=59, tzinfo=UTC)
    except ValueError:
        _fail("--until : date attendue au format AAAA-MM-JJ")
    mandate = provider.mandates.record_relationship(
        mandator.id, parent.id, relationship, MandateTerms(
            clients=tuple(client or ()), scopes=tuple(scope or ("openid", "profile")),
            ends_at=ends), actor="cli", reason=reason)
    if as_json:
        _print_json({"id": str(mandate.id), "mandator_id": str(mandator.id),
                     "mandatary_id": str(parent.id), "status": mandate.status})
    else:
        typer.echo(f"procuration enregistrée : {mandate.id}")


@mandates_app.command("revoke")
def mandates_revoke(
    mandate_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option()],
) -> None:
    """End a recorded relationship (its delegated sessions end, their clients are told)."""
    provider = _provider()
    mandate = provider.mandates.get(mandate_id)
    if mandate is None:
        _fail("procuration introuvable")
    provider.revoke_mandate(mandate.id, "cli", as_operator=True)
    typer.echo(f"procuration retirée : {mandate.id} ({reason})")

def _prepare_multiprocess_metrics(data_dir: Path) -> None:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at an empty folder before any worker starts (the
    values of a previous run would otherwise be added to this one's)."""
    folder = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or data_dir / "prometheus")
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder.resolve())


# --- db, keys ----------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations and create the missing signing keys."""
    _provider(console=True)
    typer.echo("base de données à jour")


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    keys = _provider().keys.list_keys()
    rows = [{"kid": k.kid, "alg": k.alg, "status": k.status, "created_at": k.created_at,
             "retire_after": k.retire_after} for k in keys]
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['kid']}  {row['alg']:6} {row['status']:9} créée {row['created_at']}")


@keys_app.command("rotate")
def keys_rotate(alg: Annotated[str | None, typer.Option(help="ES256 ou RS256")] = None) -> None:
    """Promote the pre-published key; the old one stays published until its tokens expire."""
    if alg is not None and alg not in ("ES256", "RS256"):
        _fail(f"algorithme inconnu : {alg} (ES256 ou RS256)")
    for key in _provider().keys.rotate(alg):
        typer.echo(f"{key.alg} : nouvelle clé active {key.kid}")


@keys_app.command("retire")
def keys_retire(kid: str) -> None:
    try:
        _provider().keys.retire(kid)
    except LookupError:
        _fail(f"clé inconnue : {kid}")
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(f"clé {kid} retirée")


# --- clients -----------------------------------------------------------------------------------


@clients_app.command("create")
def clients_create(
    name: Annotated[str, typer.Option(help="Nom affiché aux usagers.")],
    redirect_uri: Annotated[list[str] | None, typer.Option()] = None,
    post_logout_redirect_uri: Annotated[list[str] | None, typer.Option()] = None,
    backchannel_logout_uri: Annotated[str | None, typer.Option()] = None,
    grant_type: Annotated[list[str] | None, typer.Option()] = None,
    scope: Annotated[list[str] | None, typer.Option()] = None,
    auth_method: Annotated[str, typer.Option()] = "client_secret_basic",
    first_party: Annotated[bool, typer.Option("--first-party")] = False,
    delegation_allowed: Annotated[bool, typer.Option(
        "--delegation-allowed", help="Accepte les connexions par procuration (act).")] = False,
    public_subject: Annotated[bool, typer.Option("--public-subject")] = False,
    id_token_alg: Annotated[str | None, typer.Option()] = None,
    jwks_file: Annotated[Path | None, typer.Option(exists=True, dir_okay=False)] = None,
    org: Annotated[str | None, typer.Option()] = None,
    client_id: Annotated[str | None, typer.Option()] = None,
    default_acr: Annotated[str | None, typer.Option(
        help="Niveau minimal exigé à chaque connexion : eidas1 ou eidas2.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Register a client; its secret is printed once."""
    from idp import ClientCreate

    data: dict[str, Any] = {
        "name": name, "redirect_uris": redirect_uri or [],
        "post_logout_redirect_uris": post_logout_redirect_uri or [],
        "backchannel_logout_uri": backchannel_logout_uri, "token_endpoint_auth_method": auth_method,
        "first_party": first_party, "organisation": org, "client_id": client_id,
        "subject_type": "public" if public_subject else "pairwise",
        "id_token_signed_response_alg": id_token_alg,
    }
    if default_acr:
        data["default_acr"] = default_acr
    if delegation_allowed:
        data["delegation_allowed"] = True
    if grant_type:
        data["grant_types"] = grant_type
    if scope:
        data["scopes"] = [s for item in scope for s in item.split()]
    if jwks_file:
        data["jwks"] = json.loads(jwks_file.read_text())
    created = _provider().clients.create(ClientCreate(**data), actor="cli")
    if as_json:
        _print_json(created.model_dump())
    else:
        typer.echo(f"client_id     : {created.client_id}")
        if created.client_secret:
            typer.echo(f"client_secret : {created.client_secret}  (affiché une seule fois)")


@clients_app.command("list")
def clients_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    clients = _provider().clients.list()
    if as_json:
        _print_json([c.model_dump() for c in clients])
        return
    for c in clients:
        typer.echo(f"{c.client_id:30} {c.name}{'  (désactivé)' if c.disabled else ''}")


@clients_app.command("show")
def clients_show(client_id: str) -> None:
    _print_json(_provider().clients.show(client_id).model_dump())


@clients_app.command("delete")
def clients_delete(client_id: str) -> None:
    _provider().clients.delete(client_id, actor="cli")
    typer.echo(f"client {client_id} supprimé")


@clients_app.command("rotate-secret")
def clients_rotate_secret(client_id: str, as_json: Annotated[bool, typer.Option("--json")] = False
                          ) -> None:
    secret = _provider().clients.rotate_secret(client_id, actor="cli")
    if as_json:
        _print_json({"client_id": client_id, "client_secret": secret})
    else:
        typer.echo(f"client_secret : {secret}  (affiché une seule fois)")


# --- users -------------------------------------------------------------------------------------


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option()],
    password: Annotated[str, typer.Option()],
    given_name: Annotated[str | None, typer.Option()] = None,
    family_name: Annotated[str | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    from idp import UserCreate, assess_password

    verdict = assess_password(password, user_inputs=[email, given_name or "", family_name or ""])
    if not verdict.acceptable:
        _fail(" ".join(verdict.problems))
    user = _provider().users.create(UserCreate(
        email=email, password=password, given_name=given_name, family_name=family_name,
    ), actor="cli")
    if as_json:
        _print_json(user.model_dump(mode="json"))
    else:
        typer.echo(f"compte créé : {user.email} ({user.id})")


@users_app.command("list")
def users_list(
    search: Annotated[str | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    users = _provider().users.list(search)
    if as_json:
        _print_json([u.model_dump(mode="json") for u in users])
        return
    for u in users:
        typer.echo(f"{u.email:40} {u.given_name or ''} {u.family_name or ''}")


@users_app.command("purge-unconfirmed")
def users_purge_unconfirmed(
    older_than: Annotated[float | None, typer.Option(
        "--older-than", help="Âge en heures (défaut : durée du lien de confirmation + 24 h).",
    )] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Lister sans supprimer.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Delete the accounts whose address was never confirmed (audited; also done at most
    once an hour by registrations)."""
    from datetime import timedelta

    if older_than is not None and not 0 <= older_than <= 24 * 3650:
        _fail("--older-than : un nombre d'heures positif est attendu")
    emails = _provider().accounts.purge_unconfirmed(
        older_than=timedelta(hours=older_than) if older_than is not None else None,
        dry_run=dry_run, actor="cli")
    if as_json:
        _print_json({"dry_run": dry_run, "accounts": emails})
        return
    verb = "à supprimer" if dry_run else "supprimé(s)"
    typer.echo(f"{len(emails)} compte(s) jamais confirmé(s) {verb}")
    for email in emails:
        typer.echo(f"  {email}")


# --- organisations and roles ----------------------------------------------------------------


@orgs_app.command("list")
def orgs_list(
    kind: Annotated[str | None, typer.Option(help="commune, epci, ctm, sdis, other")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    if kind is not None and kind not in ("commune", "epci", "ctm", "sdis", "other"):
        _fail(f"type inconnu : {kind} (commune, epci, ctm, sdis, other)")
    orgs = _provider().organisations.list(kind)
    rows = [{"id": str(o.id), "slug": o.slug, "name": o.name, "kind": o.kind, "insee": o.insee,
             "population": o.population, "population_source": o.population_source,
             "parent": o.parent_slug} for o in orgs]
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['slug']:20} {row['kind']:8} {row['insee'] or '-':6} {row['name']}")


@orgs_app.command("seed")
def orgs_seed() -> None:
    """Create or update the reference organisations from the CSV shipped with the project."""
    typer.echo(f"{_provider().organisations.seed()} organisations à jour")


EmailOpt = Annotated[str, typer.Option(help="Adresse du compte.")]
OrgOpt = Annotated[str, typer.Option(help="Organisation (slug, voir `orgs list`).")]
RoleOpt = Annotated[str, typer.Option(help="Rôle (org_admin, archivist, buyer, viewer, …).")]
ReasonOpt = Annotated[str | None, typer.Option(help="Motif, gardé au journal d'audit.")]


def _change_role(action: str, email: str, org: str, role: str, reason: str | None) -> None:
    provider = _provider()
    user = provider.users.get_by_email(email)
    if user is None:
        _fail(f"aucun compte pour {email}")
    change = provider.organisations.grant if action == "grant" else provider.organisations.revoke
    change(user.id, org, role, actor="cli", reason=reason)
    typer.echo(f"{email} : {role} {'accordé' if action == 'grant' else 'retiré'} ({org})")


@members_app.command("grant")
def members_grant(email: EmailOpt, org: OrgOpt, role: RoleOpt, reason: ReasonOpt = None) -> None:
    _change_role("grant", email, org, role, reason)


@members_app.command("revoke")
def members_revoke(email: EmailOpt, org: OrgOpt, role: RoleOpt, reason: ReasonOpt = None) -> None:
    _change_role("revoke", email, org, role, reason)


@members_app.command("list")
def members_list(
    org: Annotated[str, typer.Option()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    members = _provider().organisations.members(org)
    rows = [{"email": u.email, "user_id": str(u.id), "role": role} for u, role in members]
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['email']:40} {row['role']}")


# --- audit, tokens -----------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit journal's hash chain; exit 1 naming the first broken entry."""
    from sqlmodel import Session

    from plateforme.audit import verify_chain

    _, engine = _engine()
    with Session(engine) as session:
        report = verify_chain(session)
    if report.ok:
        typer.echo(f"journal d'audit intègre : {report.checked} entrées vérifiées")
        return
    typer.echo(
        f"journal d'audit ROMPU à l'entrée {report.first_broken} : {report.reason} "
        f"({report.checked} entrées intègres avant)", err=True,
    )
    raise typer.Exit(1)


@tokens_app.command("purge")
def tokens_purge() -> None:
    """Delete expired refresh tokens and revocation entries."""
    typer.echo(f"{_provider().tokens.purge()} entrées expirées supprimées")


# --- certs -------------------------------------------------------------------------------------


@certs_app.command("dev")
def certs_dev(
    out: Annotated[Path, typer.Option(help="Dossier de sortie.")] = Path("certs/dev"),
    name: Annotated[list[str] | None, typer.Option(
        help="Nom DNS ou adresse IP du serveur (répétable ; défaut : localhost, 127.0.0.1, ::1)."
    )] = None,
    days: Annotated[int, typer.Option(help="Validité du certificat serveur, en jours.")] = 397,
    new_ca: Annotated[bool, typer.Option("--new-ca", help="Remplacer l'AC existante.")] = False,
) -> None:
    """Create a local CA (kept if present) and a TLS server certificate signed by it."""
    from martinique_connect.certs import DEFAULT_NAMES, create_dev_certificates

    try:
        made = create_dev_certificates(out, tuple(name or DEFAULT_NAMES), days=days,
                                       new_ca=new_ca)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(f"autorité de certification : {made.ca_cert}"
               f"{' (créée)' if made.ca_created else ' (existante, gardée)'}")
    typer.echo(f"certificat serveur : {made.server_cert} ; clé : {made.server_key} ; "
               f"chaîne : {made.server_chain}")
    typer.echo(f"servir en https : uvicorn … --ssl-certfile {made.server_chain} "
               f"--ssl-keyfile {made.server_key} ; faire confiance à {made.ca_cert}")

# --- backup, restore ----------------------------------------------------------------------------


@app.command("backup")
def backup_command(
    to: Annotated[Path, typer.Option("--to", help="Dossier de la sauvegarde (vide ou absent).")],
) -> None:
    """Back up the database, the key material and the blob manifests (docs/exploitation.md)."""
    from martinique_connect.backup import BackupError, backup

    settings, engine = _engine()
    try:
        manifest = backup(engine, settings, to)
    except BackupError as exc:
        _fail(str(exc))
    rows = sum(manifest["database"]["tables"].values())
    typer.echo(f"sauvegarde écrite dans {to} : {len(manifest['database']['tables'])} tables, "
               f"{rows} lignes, {manifest['audit']['entries']} entrées du journal d'audit")
    if manifest["secret_key"]["source"] == "file":
        typer.echo("attention : la sauvegarde contient la clé secrète (secret_key) ; "
                   "conservez-la chiffrée")


@app.command("restore")
def restore_command(
    source: Annotated[Path, typer.Option("--from", help="Dossier d'une sauvegarde.",
                                         exists=True, file_okay=False)],
    force: Annotated[bool, typer.Option(
        "--force", help="Remplacer les données d'une instance qui en contient déjà.")] = False,
) -> None:
    """Restore a backup into the instance the MC_* settings point to, then verify it."""
    from martinique_connect.backup import BackupError, restore

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = _make_engine(settings.sqlalchemy_url)
    try:
        report = restore(engine, settings, source, force=force,
                         make_engine=lambda: _make_engine(settings.sqlalchemy_url))
    except BackupError as exc:
        _fail(str(exc))
    typer.echo(f"restauré : {len(report.tables)} tables, {sum(report.tables.values())} lignes, "
               f"journal d'audit vérifié sur {report.audit_entries} entrées")
    if not report.ok:
        for problem in report.problems:
            typer.echo(f"PROBLÈME : {problem}", err=True)
        raise typer.Exit(1)
    typer.echo("vérifications : journal d'audit intègre, clés de signature déchiffrables"
               + (", parties " + ", ".join(report.parts) if report.parts else ""))


# --- demo --------------------------------------------------------------------------------------


@demo_app.command("seed")
def demo_seed(
    output: Annotated[Path | None, typer.Option(help="Fichier des identifiants des démos.")] = None,
) -> None:
    """Create the demo accounts and the two demo relying parties (idempotent). The staff
    accounts get an authenticator app (the console requires two factors): its key is
    printed with a command that gives the current code."""
    from martinique_connect.demo import seed

    provider = _provider(console=True)
    path = output or provider.settings.data_dir / "demo.json"
    result = seed(provider, path)
    _services(provider).seed(sites=True)  # the catalogue and the communes' demo sites
    for login in result["logins"]:
        role = f"  ({login['role']}, console : {provider.issuer}/admin/)" if login.get("role") \
            else ""
        typer.echo(f"compte de démonstration : {login['email']} / {login['password']}{role}")
        if login.get("totp"):
            secret = login["totp"]["secret"]
            typer.echo(f"    second facteur (application d'authentification), clé : {secret}")
            typer.echo(f"    code du moment : {_totp_command(secret)}")
            typer.echo(f"                ou : oathtool --totp -b {secret}")
    if any(login.get("totp") for login in result["logins"]):
        typer.echo(f"(clés et URI otpauth:// des comptes du personnel dans {path} : ajoutez-les "
                   "à une application d'authentification pour avoir les codes sur un téléphone)")
    from martinique_connect.demo import seed_archives
    from martinique_connect.wiring import build_archives

    archives = build_archives(provider.settings, provider.engine, provider)
    archives.start()
    demo_archives = seed_archives(provider, archives, path)
    expired = sum(u["final_action"] == "détruire" for u in demo_archives["units"])
    typer.echo(f"archives de démonstration (Le Lamentin) : {len(demo_archives['units'])} "
               f"documents, dont {expired} à DUA échue et sort final « détruire »")
    typer.echo(f"    API : client {demo_archives['client']['client_id']} / "
               f"{demo_archives['client']['client_secret']} (client_credentials, "
               "archives:read archives:write)")


def _totp_command(secret: str) -> str:
    """A command line that prints the current code of ``secret`` with this installation's
    Python (which has pyotp)."""
    import shlex

    python = sys.executable
    try:
        relative = os.path.relpath(python)
        if not relative.startswith(".."):
            python = relative
    except ValueError:  # another drive
        pass
    # A base32 key (A-Z, 2-7) needs no quoting of its own.
    return f"{shlex.quote(python)} -c \"import pyotp; print(pyotp.TOTP('{secret}').now())\""


# --- services (the service catalogue) ------------------------------------------------------

services_app = typer.Typer(no_args_is_help=True, help="Catalogue de services mutualisés.")
services_catalogue_app = typer.Typer(no_args_is_help=True, help="Offres du catalogue.")
services_orders_app = typer.Typer(no_args_is_help=True, help="Commandes.")
services_app.add_typer(services_catalogue_app, name="catalogue")
services_app.add_typer(services_orders_app, name="orders")
app.add_typer(services_app, name="services")


def _services(provider: Any | None = None) -> Any:
    from martinique_connect.wiring import build_services

    provider = provider or _provider()
    settings = provider.settings
    return build_services(provider, settings, provider.engine, _make_store(settings))


def _operator() -> Any:
    """The command line acts as the platform's operator (it runs on the server)."""
    from services_mutualises import Principal

    return Principal(subject="cli", org="ctm", roles=frozenset({"ctm_admin"}))


@services_app.command("seed")
def services_seed() -> None:
    """Create the catalogue, the fibre reserves and the demo sites (idempotent)."""
    _services().seed(sites=True)
    typer.echo("catalogue, réserves de fibre et sites de démonstration en place")


@services_catalogue_app.command("list")
def services_catalogue_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The offerings, with their active version and prices (euros excluding VAT)."""
    from services_mutualises import euros

    offerings = _services().catalogue.list(_operator())
    if as_json:
        _print_json([o.model_dump(mode="json") for o in offerings])
        return
    for o in offerings:
        v = o.active_version
        price = (f"{euros(v.one_off_cents)} € + {euros(v.monthly_cents)} €/mois"
                 if v else "aucune version active")
        typer.echo(f"{o.code:22} {o.name} — {price}")


@services_orders_app.command("list")
def services_orders_list(
    state: Annotated[str | None, typer.Option(help="held, inProgress, completed…")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every order (newest first)."""
    orders = _services().orders.list(_operator(), state=state)
    if as_json:
        _print_json([o.model_dump(mode="json") for o in orders])
        return
    for o in orders:
        names = ", ".join(i.offering_name for i in o.items)
        typer.echo(f"{o.id}  {o.organisation:16} {o.state:12} {names}")


services_statement_app = typer.Typer(help="Relevés mensuels (sans sous-commande : "
                                     "afficher le relevé d'un mois).")
services_app.add_typer(services_statement_app, name="statement")


@services_statement_app.callback(invoke_without_command=True)
def services_statement(
    ctx: typer.Context,
    month: Annotated[str | None, typer.Option("--month", help="Mois AAAA-MM.")] = None,
    org: Annotated[str | None, typer.Option("--org", help="Organisation (vide : la CTM).")]
    = None,
    as_csv: Annotated[bool, typer.Option("--csv")] = False,
) -> None:
    """A month's cost statement: what each member pays, alone, the saving."""
    from services_mutualises import euros

    if ctx.invoked_subcommand is not None:
        return
    if month is None:
        raise BadInput("--month est requis (AAAA-MM)")
    services = _services()
    statement = services.statements.compute(_operator(), month, org)
    if as_csv:
        typer.echo(services.statements.to_csv(statement), nl=False)
        return
    for m in statement.members:
        typer.echo(f"{m.organisation_name:32} paie {euros(m.share_cents):>12} €   "
                   f"seul {euros(m.alone_cents):>12} €   économie {euros(m.saving_cents):>12} €")
    typer.echo(f"{'TOTAL':32} paie {euros(statement.total_cents):>12} €   "
               f"seul {euros(statement.alone_cents):>12} €   "
               f"économie {euros(statement.saving_cents):>12} €")


@services_app.command("sweep")
def services_sweep(
    older_than: Annotated[int, typer.Option(
        "--older-than", min=0, help="Minutes depuis le dernier changement d'une commande "
        "« en cours » pour la reprendre.")] = 10,
) -> None:
    """Take up orders interrupted between allocation and activation; release fibre pairs
    held by subscriptions that will not come into service."""
    from datetime import timedelta

    report = _services().orders.sweep(actor="cli", older_than=timedelta(minutes=older_than))
    for order_id, state in report.orders:
        typer.echo(f"commande {order_id} reprise : {state}")
    for sub_id, pairs in report.released:
        typer.echo(f"abonnement {sub_id} : {pairs} paire(s) libérée(s)")
    if not report.orders and not report.released:
        typer.echo("rien à reprendre")


@services_statement_app.command("close")
def services_statement_close(
    month: Annotated[str, typer.Option("--month", help="Mois terminé, AAAA-MM.")],
) -> None:
    """Issue and store a finished month's statement (left as it is if already issued)."""
    from services_mutualises import euros

    statement, issued = _services().statements.close(_operator(), month)
    when = statement.issued_at.isoformat(timespec="seconds") if statement.issued_at else ""
    typer.echo(f"relevé {month} {'émis' if issued else 'déjà émis'} le {when} : "
               f"{len(statement.lines)} lignes, total {euros(statement.total_cents)} €")


def main() -> None:
    """The console script: exit code 2 and one line on stderr for bad input (see ``_Root``)."""
    app(prog_name="martinique-connect")
