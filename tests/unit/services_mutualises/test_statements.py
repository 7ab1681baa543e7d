"""Monthly statements on a real database (SQLite, migrated) against hand-computed amounts:
who pays what under which key, what each would have paid alone, the saving; a new sharing
key applies from a month to come and never changes a past statement."""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from martinique_connect.database import upgrade
from plateforme.db import make_engine
from plateforme.errors import Conflict, Forbidden, NotFound
from plateforme.kv import InProcessStore
from plateforme.mail import OutboxMailer
from services_mutualises import (
    OrganisationInfo,
    Principal,
    RegisteredClient,
    ServiceCatalogue,
    SharingRuleCreate,
)
from services_mutualises.models import (
    IssuedStatement,
    Offering,
    OfferingVersion,
    Order,
    Subscription,
)

PG_ADMIN_URL = os.environ.get("MC_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
POPULATIONS = {"lamentin": 40_000, "fort-de-france": 80_000, "robert": 20_000,
               "schoelcher": 20_000}
CTM = Principal(subject="valideur", org="ctm", roles=frozenset({"approver"}))
MANAGER = Principal(subject="gestionnaire", org="ctm", roles=frozenset({"catalogue_manager"}))


class Directory:
    def get(self, slug: str) -> OrganisationInfo | None:
        if slug not in POPULATIONS:
            return None
        return OrganisationInfo(slug, slug.replace("-", " ").title(), "commune",
                                POPULATIONS[slug])

    def all(self) -> list[OrganisationInfo]:
        return [i for s in POPULATIONS if (i := self.get(s))]

    def contacts(self, slug: str) -> list[str]:
        return []


class NoClients:
    def register(self, **kwargs: Any) -> RegisteredClient:
        raise AssertionError("not used")

    def disable(self, client_id: str, *, actor: str, reason: str) -> None:
        raise AssertionError("not used")

    def enable(self, client_id: str, *, actor: str, reason: str) -> None:
        raise AssertionError("not used")

    def set_redirect_uris(self, client_id: str, redirect_uris: list[str], *, actor: str,
                          reason: str) -> None:
        raise AssertionError("not used")

    def remove(self, client_id: str, *, actor: str, reason: str) -> None:
        raise AssertionError("not used")


def _at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[str]:
    """A fresh database on each backend (PostgreSQL when reachable, as in the migration
    tests; required under CI)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('svc') / 'svc.db'}"
        return
    try:
        import psycopg

        name = f"mc_svc_{secrets.token_hex(5)}"
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception:  # noqa: BLE001
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("PostgreSQL not reachable")
    yield PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://",
                                                 "postgresql+psycopg://") + f"/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def services(database: str, tmp_path: Path) -> Iterator[ServiceCatalogue]:
    engine = make_engine(database)
    upgrade(engine)
    with engine.begin() as conn:  # each test starts from the same rows
        for table in ("svc_statement", "svc_state_change", "svc_subscription",
                      "svc_order_item", "svc_order",
                      "svc_sharing_rule", "svc_offering_version", "svc_offering",
                      "svc_fibre_pair", "svc_fibre_cable", "svc_fibre_pop", "svc_work_order",
                      "svc_site"):
            conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed table names
    services = ServiceCatalogue(engine=engine, directory=Directory(), registrar=NoClients(),
                                mailer=OutboxMailer(tmp_path / "outbox", sender="t@demo.mq"),
                                store=InProcessStore(), secret_key="k" * 32)
    services.seed(sites=False)
    with Session(engine) as session:
        versions = {o.code: v for o, v in session.exec(select(Offering, OfferingVersion).where(
            OfferingVersion.offering_id == Offering.id)).all()}
        order = Order(organisation="x", requested_by="test", state="completed")
        session.add(order)
        session.flush()

        def add(org: str, code: str, activated: str, terminated: str | None = None,
                **values: str) -> None:
            version = versions[code]
            session.add(Subscription(
                organisation=org, offering_id=version.offering_id,
                offering_version_id=version.id, order_id=order.id,
                state="terminated" if terminated else "active",
                characteristics=json.dumps(values), activated_at=_at(activated),
                terminated_at=_at(terminated) if terminated else None))

        add("lamentin", "acces-thd", "2026-02-10", debit_mbps="500")
        add("fort-de-france", "acces-thd", "2026-03-05", debit_mbps="1000")
        add("lamentin", "martinique-connect", "2026-01-15")
        add("lamentin", "martinique-connect", "2026-01-20")
        add("robert", "martinique-connect", "2026-01-31")
        add("schoelcher", "martinique-connect", "2026-01-02", terminated="2026-02-20")
        add("lamentin", "archivage", "2026-01-10", quota_gb="50")
        add("robert", "archivage", "2026-01-10", quota_gb="50")
        session.commit()
    yield services
    engine.dispose()


def _lines(statement: Any) -> dict[tuple[str, str], tuple[int, int]]:
    return {(li.organisation, li.offering): (li.share_cents, li.alone_cents)
            for li in statement.lines}


def test_march_statement_of_the_ctm(services: ServiceCatalogue) -> None:
    statement = services.statements.compute(CTM, "2026-03")
    assert _lines(statement) == {
        # THD, by usage 500 : 1000 of 60 000 + (60 000 + 50 000 one-off) = 170 000:
        # 56 666.67 and 113 333.33 → the leftover cent to Le Lamentin (.67)
        ("lamentin", "acces-thd"): (56_667, 95_000),
        ("fort-de-france", "acces-thd"): (113_333, 95_000 + 120_000),
        # Martinique Connect, equal shares between organisations: 3 × 15 000 / 2
        # (Schœlcher's, terminated in February, is not charged in March)
        ("lamentin", "martinique-connect"): (22_500, 2 * 40_000),
        ("robert", "martinique-connect"): (22_500, 40_000),
        # archive spaces by population 40 000 : 20 000 of 2 × 30 000
        ("lamentin", "archivage"): (40_000, 90_000),
        ("robert", "archivage"): (20_000, 90_000),
    }
    assert statement.total_cents == 275_000 == 170_000 + 45_000 + 60_000
    members = {m.organisation: (m.share_cents, m.alone_cents, m.saving_cents)
               for m in statement.members}
    assert members == {"lamentin": (119_167, 265_000, 145_833),
                       "fort-de-france": (113_333, 215_000, 101_667),
                       "robert": (42_500, 130_000, 87_500)}
    assert sum(m.share_cents for m in statement.members) == statement.total_cents
    assert statement.saving_cents == 610_000 - 275_000


def test_an_organisation_sees_its_own_lines(services: ServiceCatalogue) -> None:
    buyer = Principal(subject="acheteur", org="robert", roles=frozenset({"buyer"}))
    statement = services.statements.compute(buyer, "2026-03", "robert")
    assert statement.total_cents == 42_500
    assert {li.organisation for li in statement.lines} == {"robert"}
    with pytest.raises(NotFound):
        services.statements.compute(buyer, "2026-03", "lamentin")
    with pytest.raises(Forbidden):
        services.statements.compute(buyer, "2026-03")


def test_february_charges_what_was_active_then(services: ServiceCatalogue) -> None:
    lines = _lines(services.statements.compute(CTM, "2026-02"))
    # THD: only Le Lamentin, activated in February (one-off included), pays all
    assert lines[("lamentin", "acces-thd")] == (110_000, 215_000)
    # Martinique Connect: 4 subscriptions (Schœlcher's until the 20th) over 3 organisations
    # 60 000 / 3 = 20 000 each
    assert lines[("schoelcher", "martinique-connect")] == (20_000, 40_000)
    assert lines[("lamentin", "martinique-connect")] == (20_000, 80_000)


def test_a_new_key_applies_from_a_month_to_come_only(services: ServiceCatalogue) -> None:
    march = services.statements.compute(CTM, "2026-03")
    with pytest.raises(Conflict, match="mois à venir"):
        services.catalogue.add_sharing_rule(MANAGER, "martinique-connect", SharingRuleCreate(
            method="population", effective_from="2026-03", reason="rétroactif"))
    with pytest.raises(Forbidden):
        services.catalogue.add_sharing_rule(CTM, "martinique-connect", SharingRuleCreate(
            method="population", effective_from="2031-01", reason="pas gestionnaire"))
    services.catalogue.add_sharing_rule(MANAGER, "martinique-connect", SharingRuleCreate(
        method="population", effective_from="2031-01", reason="délibération du conseil"))
    assert services.statements.compute(CTM, "2026-03") == march
    later = _lines(services.statements.compute(CTM, "2031-01"))
    # 45 000 by population 40 000 : 20 000
    assert later[("lamentin", "martinique-connect")] == (30_000, 80_000)
    assert later[("robert", "martinique-connect")] == (15_000, 40_000)
    assert later[("fort-de-france", "acces-thd")] == (80_000, 95_000)  # no one-off any more


def test_csv_sums_to_the_total_to_the_cent(services: ServiceCatalogue) -> None:
    statement = services.statements.compute(CTM, "2026-03")
    rows = list(csv.reader(io.StringIO(services.statements.to_csv(statement)),
                           delimiter=";"))
    assert rows[0][:4] == ["mois", "organisation", "nom", "offre"]
    body, total = rows[1:-1], rows[-1]
    assert len(body) == 6
    cents = sum(int(r[6].replace(",", "")) for r in body)
    assert cents == statement.total_cents
    assert total[2] == "TOTAL" and total[6] == "2750,00" and total[8] == "3350,00"
    assert ["2026-03", "lamentin", "Lamentin", "Accès Internet très haut débit",
            "au prorata de l'usage", "1", "566,67", "950,00", "383,33"] in body


def test_unknown_ids_are_not_found(services: ServiceCatalogue) -> None:
    with pytest.raises(NotFound):
        services.inventory.get(CTM, uuid.uuid4())


def test_a_finished_month_is_issued_once_and_never_rewritten(
        services: ServiceCatalogue, monkeypatch: pytest.MonkeyPatch) -> None:
    """Closing March stores its statement with the key versions and the inputs; changing
    Le Lamentin's population afterwards changes nothing in it, while the current month,
    computed live, reflects the change at once."""
    march, issued = services.statements.close(CTM, "2026-03")
    assert issued and march.issued_at is not None
    assert march.inputs["populations"] == {"fort-de-france": 80_000, "lamentin": 40_000,
                                           "robert": 20_000}
    assert march.inputs["keys"]["archivage"]["method"] == "population"
    assert march.inputs["keys"]["archivage"]["effective_from"] == "2026-01"
    usage = {(u["organisation"], u["offering"]): u["usage"]
             for u in march.inputs["subscriptions"]}
    assert usage[("fort-de-france", "acces-thd")] == 1000
    again, issued_again = services.statements.close(CTM, "2026-03")
    assert not issued_again and again == march and again.issued_at == march.issued_at
    with Session(services.context.engine) as session:
        rows = session.exec(select(IssuedStatement)).all()
        assert [r.month for r in rows] == ["2026-03"] and rows[0].total_cents == 275_000

    now = datetime.now(UTC).strftime("%Y-%m")
    current = _lines(services.statements.compute(CTM, now))
    assert current[("lamentin", "archivage")] == (40_000, 90_000)  # 40 000 : 20 000

    monkeypatch.setitem(POPULATIONS, "lamentin", 20_000)
    # the stored statement, for the CTM and for the organisation, is unchanged...
    assert services.statements.compute(CTM, "2026-03") == march
    assert _lines(services.statements.compute(CTM, "2026-03"))[("lamentin", "archivage")] \
        == (40_000, 90_000)
    buyer = Principal(subject="acheteur", org="lamentin", roles=frozenset({"buyer"}))
    own = services.statements.compute(buyer, "2026-03", "lamentin")
    assert own.total_cents == 119_167 and own.issued_at == march.issued_at
    assert {u["organisation"] for u in own.inputs["subscriptions"]} == {"lamentin"}
    assert own.inputs["populations"] == {"lamentin": 40_000}
    # ... while the current month now shares the archive spaces 20 000 : 20 000
    current = _lines(services.statements.compute(CTM, now))
    assert current[("lamentin", "archivage")] == (30_000, 90_000)
    assert current[("robert", "archivage")] == (30_000, 90_000)
    assert services.statements.compute(CTM, now).issued_at is None


def test_a_past_month_is_issued_when_first_viewed(services: ServiceCatalogue,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    buyer = Principal(subject="acheteur", org="robert", roles=frozenset({"buyer"}))
    february = services.statements.compute(buyer, "2026-02", "robert")
    assert february.issued_at is not None
    monkeypatch.setitem(POPULATIONS, "robert", 90_000)
    whole = services.statements.compute(CTM, "2026-02")
    assert whole.issued_at == february.issued_at
    # archive spaces, by population, still 40 000 : 20 000 of 60 000 as first viewed
    assert _lines(whole)[("robert", "archivage")] == (20_000, 90_000)
    assert sum(m.share_cents for m in whole.members) == whole.total_cents


def test_only_a_finished_month_can_be_closed_and_only_by_the_ctm(
        services: ServiceCatalogue) -> None:
    now = datetime.now(UTC).strftime("%Y-%m")
    with pytest.raises(Conflict, match="pas terminé"):
        services.statements.close(CTM, now)
    buyer = Principal(subject="acheteur", org="robert", roles=frozenset({"buyer"}))
    with pytest.raises(Forbidden):
        services.statements.close(buyer, "2026-03")
