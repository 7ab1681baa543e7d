"""The sweep: a crash between the allocation of fibre pairs and the activation leaves an order
``inProgress`` and its subscription ``pendingActive`` holding pairs. The sweep (at start and
``services sweep``) takes the order up again, completing it on the pairs already allocated
(never twice), and releases the pairs of subscriptions that will not come into service; an
order still being provisioned (recent) is left alone."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from plateforme.clock import utcnow
from services_mutualises import Principal
from services_mutualises.models import Order, Subscription
from tests.functional.services_mutualises.conftest import Actors
from tests.functional.services_mutualises.test_provisioning import _isolated_link, _pairs

APPROVER = Principal(subject="valideur", org="ctm", roles=frozenset({"approver"}))


class Crash(Exception):
    pass


def _crash_after_allocation(actors: Actors, catalogue: Any, site_a: str, site_b: str,
                            minutes_ago: int) -> tuple[str, str]:
    """Place a dark-fibre order and approve it, the process dying right after the pairs are
    allocated and before the activation is recorded: order ``inProgress`` (last changed
    ``minutes_ago``), subscription ``pendingActive``, pairs allocated. Returns (order id,
    subscription id)."""
    placed = actors.buyer.post("/orders", {"items": [{
        "action": "add", "offering": "fibre-noire", "site_id": site_a, "site_b_id": site_b}]})
    assert placed.status_code == 201, placed.text
    order_id = uuid.UUID(placed.json()["id"])

    def crash(*args: Any, **kwargs: Any) -> None:
        raise Crash

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(catalogue.orders, "_finish", crash)
        with pytest.raises(Crash):
            catalogue.orders.approve(APPROVER, order_id)
    with Session(catalogue.context.engine) as session:
        order = session.get(Order, order_id)
        assert order is not None and order.state == "inProgress"
        order.updated_at = utcnow() - timedelta(minutes=minutes_ago)
        session.add(order)
        session.commit()
        sub = session.exec(select(Subscription).where(Subscription.order_id == order_id)).one()
        assert sub.state == "pendingActive"
        return str(order_id), str(sub.id)


def test_sweep_completes_an_interrupted_order_on_its_pairs(actors: Actors,
                                                           catalogue: Any) -> None:
    site_a, site_b, _, _ = _isolated_link(catalogue, "lamentin", pairs=2)
    order_id, sub_id = _crash_after_allocation(actors, catalogue, site_a, site_b, 30)
    held = _pairs(catalogue, sub_id)
    assert len(held) == 1
    # a recent one (still being provisioned, as far as anyone knows) is left alone
    recent_id, recent_sub = _crash_after_allocation(actors, catalogue, site_a, site_b, 0)
    recent_pairs = _pairs(catalogue, recent_sub)

    report = catalogue.orders.sweep(actor="test", older_than=timedelta(minutes=10))

    assert (uuid.UUID(order_id), "completed") in report.orders
    assert uuid.UUID(recent_id) not in {o for o, _ in report.orders}
    order = actors.buyer.get(f"/orders/{order_id}").json()
    assert order["state"] == "completed"
    sub = actors.buyer.get(f"/subscriptions/{sub_id}").json()
    assert sub["state"] == "active"
    # the pair allocated before the crash is the one in service; none allocated twice
    assert _pairs(catalogue, sub_id) == held
    assert [(p["cable"], p["pair"]) for p in sub["resources"]["fibre_pairs"]] == held
    assert actors.buyer.get(f"/orders/{recent_id}").json()["state"] == "inProgress"
    assert _pairs(catalogue, recent_sub) == recent_pairs
    # a second sweep finds nothing more to do with them
    again = catalogue.orders.sweep(actor="test", older_than=timedelta(minutes=10))
    assert uuid.UUID(order_id) not in {o for o, _ in again.orders}
    assert _pairs(catalogue, sub_id) == held


def test_sweep_releases_pairs_of_a_subscription_that_will_not_come_into_service(
        actors: Actors, catalogue: Any) -> None:
    site_a, site_b, _, _ = _isolated_link(catalogue, "lamentin", pairs=1)
    order_id, sub_id = _crash_after_allocation(actors, catalogue, site_a, site_b, 30)
    # the order was marked failed, but the release of its pairs never happened
    with Session(catalogue.context.engine) as session:
        order = session.get(Order, uuid.UUID(order_id))
        assert order is not None
        order.state, order.updated_at = "failed", utcnow()
        session.add(order)
        session.commit()
    assert len(_pairs(catalogue, sub_id)) == 1

    report = catalogue.orders.sweep(actor="test", older_than=timedelta(minutes=10))

    assert (uuid.UUID(sub_id), 1) in report.released
    assert _pairs(catalogue, sub_id) == []
    with Session(catalogue.context.engine) as session:
        sub = session.get(Subscription, uuid.UUID(sub_id))
        assert sub is not None and sub.state == "pendingActive"
    # the pair is free again: retrying the failed order allocates it and completes
    retried = actors.approver.post(f"/orders/{order_id}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["state"] == "completed"
    assert len(_pairs(catalogue, sub_id)) == 1
