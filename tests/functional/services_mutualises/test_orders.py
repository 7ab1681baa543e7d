"""Order lifecycle over HTTP (TMF622 states): every legal path, illegal transitions refused
with a 409 problem, attributed history, audit journal and e-mail to the organisation."""

from __future__ import annotations

from typing import Any

from jose import jwt as jose_jwt

from plateforme.audit import AuditQuery
from tests.functional.services_mutualises.conftest import Actors, site_id

PROBLEM = "application/problem+json"


def _thd_order(actors: Actors, debit: str = "500", note: str | None = None) -> dict[str, Any]:
    response = actors.buyer.post("/orders", {"note": note, "items": [{
        "action": "add", "offering": "acces-thd",
        "site_id": site_id(actors.buyer, "Hôtel de ville du Lamentin"),
        "characteristics": {"debit_mbps": debit}}]})
    assert response.status_code == 201, response.text
    return response.json()


def test_order_is_acknowledged_then_held_and_attributed(actors: Actors) -> None:
    order = _thd_order(actors, note="débit pour la mairie")
    assert order["state"] == "held"
    assert order["organisation"] == "lamentin"
    assert [(h["from_state"], h["to_state"]) for h in order["history"]] == [
        (None, "acknowledged"), ("acknowledged", "held")]
    assert order["history"][0]["actor"] == jose_jwt.get_unverified_claims(
        actors.buyer.token)["sub"]
    assert order["history"][1]["actor"] == "catalogue"
    assert order["items"][0]["characteristics"] == {"debit_mbps": "500", "sla": "standard"}


def test_approval_provisions_and_completes(platform: Any, actors: Actors,
                                           service_mailbox: Any) -> None:
    order = _thd_order(actors, debit="1000")
    approved = actors.approver.post(f"/orders/{order['id']}/approve",
                                    {"reason": "budget voté"})
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["state"] == "completed"
    assert [h["to_state"] for h in body["history"]] == [
        "acknowledged", "held", "inProgress", "completed"]
    assert body["history"][2]["reason"] == "budget voté"
    sub_id = body["items"][0]["subscription_id"]
    sub = actors.buyer.get(f"/subscriptions/{sub_id}").json()
    assert sub["state"] == "active"
    assert sub["resources"]["team"] == "Équipe réseau (NOC)"
    assert sub["resources"]["debit_mbps"] == "1000"
    mail = service_mailbox.wait_for(actors.buyer.user["email"], subject="terminée")
    assert str(order["id"]) in mail.text and "Accès Internet très haut débit" in mail.text
    journal = platform.provider.journal.search(AuditQuery(organisation="lamentin",
                                                          action="services.order."))
    assert {e.target for e in journal if e.action == "services.order.completed"} >= {
        order["id"]}
    assert platform.provider.journal.verify().ok


def test_reject_needs_a_reason_and_is_final(actors: Actors) -> None:
    order = _thd_order(actors)
    held_retry = actors.approver.post(f"/orders/{order['id']}/retry")
    assert held_retry.status_code == 409 and "en échec" in held_retry.json()["detail"]
    assert actors.approver.post(f"/orders/{order['id']}/reject", {"reason": ""}
                                ).status_code == 422
    rejected = actors.approver.post(f"/orders/{order['id']}/reject",
                                    {"reason": "hors budget 2026"})
    assert rejected.status_code == 200
    assert rejected.json()["state"] == "rejected"
    assert rejected.json()["state_reason"] == "hors budget 2026"
    for action, api in (("approve", actors.approver), ("cancel", actors.buyer)):
        refused = api.post(f"/orders/{order['id']}/{action}")
        assert refused.status_code == 409, (action, refused.text)
        assert refused.headers["content-type"].startswith(PROBLEM)
        assert "refusée" in refused.json()["detail"]


def test_buyer_cancels_before_provisioning_only(actors: Actors) -> None:
    order = _thd_order(actors)
    cancelled = actors.buyer.post(f"/orders/{order['id']}/cancel", {"reason": "doublon"})
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    again = actors.approver.post(f"/orders/{order['id']}/approve")
    assert again.status_code == 409
    completed = _thd_order(actors)
    actors.approver.post(f"/orders/{completed['id']}/approve")
    late = actors.buyer.post(f"/orders/{completed['id']}/cancel")
    assert late.status_code == 409
    assert "terminée" in late.json()["detail"]
    assert actors.approver.post(f"/orders/{completed['id']}/retry").status_code == 409


def test_roles_decide_who_orders_and_who_approves(actors: Actors) -> None:
    item = {"action": "add", "offering": "acces-thd",
            "site_id": site_id(actors.buyer, "Hôtel de ville du Lamentin")}
    assert actors.viewer.post("/orders", {"items": [item]}).status_code == 403
    assert actors.approver.post("/orders", {"items": [item]}).status_code == 403
    order = _thd_order(actors)
    assert actors.buyer.post(f"/orders/{order['id']}/approve").status_code == 403
    assert actors.manager.post(f"/orders/{order['id']}/approve").status_code == 403
    assert actors.viewer.post(f"/orders/{order['id']}/cancel").status_code == 403
    # a client acting for the organisation orders with services:order, never approves
    by_software = actors.software.post("/orders", {"items": [item]})
    assert by_software.status_code == 201
    assert actors.software.post(f"/orders/{order['id']}/approve").status_code == 403


def test_invalid_orders_are_refused_without_trace(actors: Actors) -> None:
    site = site_id(actors.buyer, "Hôtel de ville du Lamentin")
    other_site = site_id(actors.other_buyer, "Schœlcher")
    cases = [
        ({"offering": "inconnue", "site_id": site}, 422),
        ({"offering": "acces-thd", "site_id": site,
          "characteristics": {"debit_mbps": "42"}}, 422),
        ({"offering": "acces-thd", "site_id": site, "characteristics": {"couleur": "bleu"}},
         422),
        ({"offering": "acces-thd", "site_id": other_site}, 422),
        ({"offering": "fibre-noire", "site_id": site}, 422),
        ({"offering": "martinique-connect", "characteristics": {
            "application": "Cantine", "redirect_uris": "http://exemple.mq/cb"}}, 422),
    ]
    before = len(actors.buyer.get("/orders").json())
    for item, status in cases:
        response = actors.buyer.post("/orders", {"items": [{"action": "add", **item}]})
        assert response.status_code == status, (item, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
    assert len(actors.buyer.get("/orders").json()) == before


def test_modify_and_delete_items_follow_the_subscription_states(actors: Actors) -> None:
    order = _thd_order(actors, debit="100")
    done = actors.approver.post(f"/orders/{order['id']}/approve").json()
    sub_id = done["items"][0]["subscription_id"]
    modify = actors.buyer.post("/orders", {"items": [{
        "action": "modify", "subscription_id": sub_id,
        "characteristics": {"debit_mbps": "1000"}}]}).json()
    assert actors.approver.post(f"/orders/{modify['id']}/approve").json()["state"] == (
        "completed")
    sub = actors.buyer.get(f"/subscriptions/{sub_id}").json()
    assert sub["characteristics"]["debit_mbps"] == "1000" and sub["state"] == "active"
    # suspension by the CTM: active ⇄ suspended; illegal moves are 409
    assert actors.approver.post(f"/subscriptions/{sub_id}/resume",
                                {"reason": "essai"}).status_code == 409
    suspended = actors.approver.post(f"/subscriptions/{sub_id}/suspend",
                                     {"reason": "impayé"})
    assert suspended.json()["state"] == "suspended"
    assert actors.buyer.post("/orders", {"items": [{
        "action": "modify", "subscription_id": sub_id,
        "characteristics": {"debit_mbps": "500"}}]}).status_code == 409
    resumed = actors.approver.post(f"/subscriptions/{sub_id}/resume", {"reason": "réglé"})
    assert resumed.json()["state"] == "active"
    delete = actors.buyer.post("/orders", {"items": [{
        "action": "delete", "subscription_id": sub_id}]}).json()
    assert actors.approver.post(f"/orders/{delete['id']}/approve").json()["state"] == (
        "completed")
    sub = actors.buyer.get(f"/subscriptions/{sub_id}").json()
    assert sub["state"] == "terminated" and sub["terminated_at"]
    history = actors.approver.get(f"/orders/{delete['id']}").json()["history"]
    assert history[-1]["to_state"] == "completed"
    assert actors.approver.post(f"/subscriptions/{sub_id}/suspend",
                                {"reason": "trop tard"}).status_code == 409


def test_an_order_on_a_subscription_that_changed_meanwhile_fails_cleanly(
        actors: Actors) -> None:
    done = actors.approver.post(f"/orders/{_thd_order(actors)['id']}/approve").json()
    sub_id = done["items"][0]["subscription_id"]
    first, second = (actors.buyer.post("/orders", {"items": [{
        "action": "delete", "subscription_id": sub_id}]}).json() for _ in range(2))
    assert actors.approver.post(f"/orders/{first['id']}/approve").json()["state"] == (
        "completed")
    late = actors.approver.post(f"/orders/{second['id']}/approve").json()
    assert late["state"] == "failed"
    assert "résilié" in late["state_reason"]
    assert actors.buyer.get(f"/subscriptions/{sub_id}").json()["state"] == "terminated"
