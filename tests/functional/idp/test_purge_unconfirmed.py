"""Accounts whose address was never confirmed are deleted once their confirmation link has
been dead for a while: by ``martinique-connect users purge-unconfirmed`` and, at most once an
hour, by a registration. On each backend."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from sqlmodel import Session, col, select, update

from idp.models import EmailToken, User
from idp.services.accounts import Caller, Profile, Registration
from plateforme.audit import AuditEvent
from plateforme.clock import utcnow
from tests.support.cli import CliResult, run_cli, settings_env

STRONG = "Mangue-Velo-Nuage-Tambour"
CALLER = Caller(address="192.0.2.7")


def unique_email(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}@example.mq"


def registered(platform, prefix: str, *, age: timedelta | None = None,
               link_age: timedelta | None = None) -> str:
    """A registration (unconfirmed account + confirmation link), aged as asked."""
    email = unique_email(prefix)
    platform.provider.accounts.register(
        Registration(email=email, password=STRONG, password_confirmation=STRONG,
                     profile=Profile(given_name="Marie", family_name="Dupont")), CALLER)
    with Session(platform.provider.engine) as session:
        user = session.exec(select(User).where(User.email == email)).one()
        if age is not None:
            session.exec(update(User).where(col(User.id) == user.id)  # type: ignore[call-overload]
                         .values(created_at=utcnow() - age))
        if link_age is not None:
            session.exec(update(EmailToken)  # type: ignore[call-overload]
                         .where(col(EmailToken.user_id) == user.id)
                         .values(created_at=utcnow() - link_age))
        session.commit()
    return email


def exists(platform, email: str) -> bool:
    return platform.provider.users.get_by_email(email) is not None


def purge_events(platform) -> list[AuditEvent]:
    with Session(platform.provider.engine) as session:
        return list(session.exec(select(AuditEvent).where(
            AuditEvent.action == "account.purge_unconfirmed")).all())


def cli(platform, *args: str) -> CliResult:
    """The command line (in process), on the instance the platform's settings point to."""
    return run_cli(settings_env(platform.settings), *args)


def test_purge_deletes_only_long_dead_registrations(platform, user) -> None:
    stale = registered(platform, "perime", age=timedelta(hours=49), link_age=timedelta(hours=49))
    fresh = registered(platform, "recent")
    # An old registration whose person asked for a new link yesterday keeps its chance.
    resent = registered(platform, "relance", age=timedelta(days=10),
                        link_age=timedelta(hours=20))
    before = len(purge_events(platform))

    listed = platform.provider.accounts.purge_unconfirmed(dry_run=True)
    assert stale in listed and fresh not in listed and resent not in listed
    assert user["email"] not in listed
    assert exists(platform, stale), "a dry run deletes nothing"

    purged = platform.provider.accounts.purge_unconfirmed(actor="test")
    assert stale in purged
    assert not exists(platform, stale)
    assert exists(platform, fresh) and exists(platform, resent) and exists(platform, user["email"])
    events = purge_events(platform)[before:]
    assert [e.actor for e in events if e.actor == "test"], events
    assert all(e.target and e.reason for e in events)
    # The links of the deleted account went with it.
    with Session(platform.provider.engine) as session:
        orphans = session.exec(select(EmailToken).where(
            col(EmailToken.user_id).not_in(select(User.id)))).all()
    assert orphans == []


def test_a_confirmed_address_is_never_purged(platform) -> None:
    email = registered(platform, "confirme", age=timedelta(days=30), link_age=timedelta(days=30))
    with Session(platform.provider.engine) as session:
        session.exec(update(User).where(col(User.email) == email)  # type: ignore[call-overload]
                     .values(email_verified=True))
        session.commit()
    assert email not in platform.provider.accounts.purge_unconfirmed()
    assert exists(platform, email)


def test_command_line_purge(platform) -> None:
    stale = registered(platform, "ligne", age=timedelta(hours=5), link_age=timedelta(hours=5))
    dry = cli(platform, "users", "purge-unconfirmed", "--older-than", "4", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["dry_run"] is True and stale in report["accounts"]
    assert exists(platform, stale)
    # The default age (link life + margin) leaves a 5-hour-old registration alone.
    default = cli(platform, "users", "purge-unconfirmed", "--json")
    assert default.returncode == 0, default.stderr
    assert stale not in json.loads(default.stdout)["accounts"]
    done = cli(platform, "users", "purge-unconfirmed", "--older-than", "4")
    assert done.returncode == 0, done.stderr
    assert "supprimé(s)" in done.stdout and stale in done.stdout
    assert not exists(platform, stale)
    assert any(e.actor == "cli" for e in purge_events(platform))
    bad = cli(platform, "users", "purge-unconfirmed", "--older-than", "-3")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_registrations_purge_at_most_once_an_hour(platform) -> None:
    store = platform.provider.store
    store.delete("idp:purge-unconfirmed")
    stale = registered(platform, "ancien", age=timedelta(days=3), link_age=timedelta(days=3))
    # That registration ran the purge before its own account existed; the next one purges.
    store.delete("idp:purge-unconfirmed")
    registered(platform, "declencheur")
    assert not exists(platform, stale)
    assert store.ttl("idp:purge-unconfirmed") > 3000
    # Within the hour, registrations do not purge again.
    later = registered(platform, "tardif", age=timedelta(days=3), link_age=timedelta(days=3))
    registered(platform, "suivant")
    assert exists(platform, later)
