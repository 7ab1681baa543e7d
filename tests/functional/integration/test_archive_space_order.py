"""An archive space ordered through the service catalogue is the space deposits are checked
against: the approved order opens it with the ordered quota, a deposit over the quota is
refused with a clear problem, and the termination closes it to new deposits while what it
holds stays readable."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import text

from plateforme.audit import AuditQuery
from tests.conftest import Platform
from tests.functional.archivage.conftest import ArchiveClient
from tests.functional.services_mutualises.conftest import Api, person_api

ORG = "ducos"
GB = 1_000_000_000


def _order(buyer: Api, approver: Api, item: dict[str, Any]) -> dict[str, Any]:
    created = buyer.post("/orders", {"items": [item]})
    assert created.status_code == 201, created.text
    approved = approver.post(f"/orders/{created.json()['id']}/approve")
    assert approved.status_code == 200, approved.text
    body: dict[str, Any] = approved.json()
    assert body["state"] == "completed", body
    return body


def _problem(response: Any, status: int, title: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status and problem["title"] == title, problem
    return problem


def test_the_archive_quota_created_by_an_order_is_enforced_at_deposit(
        platform: Platform, as_org: Any) -> None:
    buyer = person_api(platform, (ORG, "buyer"))
    approver = person_api(platform, ("ctm", "approver"))
    depositor: ArchiveClient = as_org(ORG)

    done = _order(buyer, approver, {"action": "add", "offering": "archivage",
                                    "characteristics": {"quota_gb": "50"}})
    sub_id = done["items"][0]["subscription_id"]
    subscription = buyer.get(f"/subscriptions/{sub_id}").json()
    assert subscription["state"] == "active"
    assert int(subscription["resources"]["quota_bytes"]) == 50 * GB
    space = depositor.get("/space").json()
    assert space == {"organisation": ORG, "used_bytes": 0, "quota_bytes": 50 * GB,
                     "is_open": True}

    kept = secrets.token_bytes(4000)
    accepted = depositor.deposit([("deliberation.bin", kept)])
    assert accepted.status_code == 201, accepted.text
    unit = accepted.json()["units"][0]["id"]
    obj = accepted.json()["files"][0]["object_id"]
    assert depositor.get("/space").json()["used_bytes"] == len(kept)

    # Arrange a space nearly full (50 GB cannot be uploaded in a test): the ordered quota
    # stays, what remains is 1,000 bytes.
    with platform.live.app.state.engine.begin() as conn:
        conn.execute(text("UPDATE arch_space SET used_bytes = :u WHERE organisation = :o"),
                     {"u": 50 * GB - 1000, "o": ORG})
    over = depositor.deposit([("trop.bin", secrets.token_bytes(5000))])
    assert "Quota dépassé" in _problem(over, 413, "Quota dépassé")["detail"]
    assert depositor.get("/space").json()["used_bytes"] == 50 * GB - 1000
    small = depositor.deposit([("petit.txt", b"tient dans le quota")])
    assert small.status_code == 201, small.text

    ended = _order(buyer, approver, {"action": "delete", "subscription_id": sub_id})
    assert ended["state"] == "completed"
    assert buyer.get(f"/subscriptions/{sub_id}").json()["state"] == "terminated"
    assert depositor.get("/space").json()["is_open"] is False

    refused = depositor.deposit([("apres.txt", b"court")])
    assert "fermé" in _problem(refused, 403, "Espace d'archives fermé")["detail"]
    assert depositor.get(f"/units/{unit}").status_code == 200
    content = depositor.get(f"/units/{unit}/objects/{obj}/content")
    assert content.status_code == 200 and content.content == kept

    journal = [e.action for e in platform.provider.journal.search(
        AuditQuery(organisation=ORG, action="archives.space."))]
    assert "archives.space.quota" in journal and "archives.space.close" in journal
