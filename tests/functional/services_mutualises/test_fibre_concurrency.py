"""The last free pair, wanted by two orders at once: exactly one gets it, the other fails
cleanly, nothing is ever allocated twice. Real concurrent transactions: HTTP approvals from
two threads against the running server (PostgreSQL: ``FOR UPDATE SKIP LOCKED``), and a lock
held by another connection while an order is provisioned."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from services_mutualises.models import FibreCable, FibrePair
from tests.functional.services_mutualises.conftest import Actors
from tests.functional.services_mutualises.test_provisioning import _isolated_link


def _order(actors: Actors, site_a: str, site_b: str) -> str:
    response = actors.buyer.post("/orders", {"items": [{
        "action": "add", "offering": "fibre-noire", "site_id": site_a, "site_b_id": site_b}]})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _pair(catalogue: Any, cable_code: str) -> FibrePair:
    with Session(catalogue.context.engine) as session:
        return session.exec(select(FibrePair).where(
            FibrePair.cable_id == FibreCable.id, FibreCable.code == cable_code)).one()


def test_two_orders_race_for_the_last_pair(actors: Actors, catalogue: Any) -> None:
    for _ in range(3):
        site_a, site_b, pop_a, _ = _isolated_link(catalogue, "lamentin", pairs=1)
        orders = [_order(actors, site_a, site_b) for _ in range(2)]
        barrier = threading.Barrier(2)
        results: dict[str, dict[str, Any]] = {}

        def approve(order_id: str, barrier: threading.Barrier,
                    results: dict[str, dict[str, Any]]) -> None:
            barrier.wait()
            results[order_id] = actors.approver.post(f"/orders/{order_id}/approve").json()

        threads = [threading.Thread(target=approve, args=(o, barrier, results))
                   for o in orders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        states = sorted(r["state"] for r in results.values())
        assert states == ["completed", "failed"], results
        winner = next(r for r in results.values() if r["state"] == "completed")
        loser = next(r for r in results.values() if r["state"] == "failed")
        assert "Plus aucune paire de fibre libre" in loser["state_reason"]
        pair = _pair(catalogue, f"C-{pop_a[:-1]}")
        assert pair.state == "allocated"
        assert str(pair.subscription_id) == winner["items"][0]["subscription_id"]
        loser_sub = actors.buyer.get(
            f"/subscriptions/{loser['items'][0]['subscription_id']}").json()
        assert loser_sub["resources"] == {}


def test_a_pair_locked_by_another_transaction_is_skipped_not_waited_for(
        backend: Any, actors: Actors, catalogue: Any) -> None:
    if backend.name != "postgres":
        pytest.skip("row locks (FOR UPDATE SKIP LOCKED) are PostgreSQL's")
    site_a, site_b, pop_a, _ = _isolated_link(catalogue, "lamentin", pairs=1)
    pair = _pair(catalogue, f"C-{pop_a[:-1]}")
    order_id = _order(actors, site_a, site_b)
    with catalogue.context.engine.connect() as holder:
        holder.begin()
        holder.execute(text("SELECT id FROM svc_fibre_pair WHERE id = :id FOR UPDATE"),
                       {"id": pair.id})
        started = time.monotonic()
        failed = actors.approver.post(f"/orders/{order_id}/approve").json()
        assert time.monotonic() - started < 10
        assert failed["state"] == "failed"
        assert "Plus aucune paire de fibre libre" in failed["state_reason"]
        holder.rollback()
    done = actors.approver.post(f"/orders/{order_id}/retry").json()
    assert done["state"] == "completed", done
    pair = _pair(catalogue, f"C-{pop_a[:-1]}")
    assert pair.subscription_id == uuid.UUID(done["items"][0]["subscription_id"])
