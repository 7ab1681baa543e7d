"""The catalogue (TMF620-like): versions and their lifecycle, characteristics, sharing keys;
what the console shows to another organisation; the wiring's implementations conform to the
catalogue's Protocols."""

from __future__ import annotations

from typing import Any

from martinique_connect.wiring import IdpClientRegistrar, IdpOrganisations
from services_mutualises import ClientRegistrar, OrganisationDirectory
from tests.functional.admin_ui.conftest import open_console
from tests.functional.services_mutualises.conftest import Actors, site_id


def test_seeded_catalogue(actors: Actors) -> None:
    offerings = {o["code"]: o for o in actors.buyer.get("/offerings").json()}
    assert set(offerings) == {"fibre-noire", "acces-thd", "vpn-intersites",
                              "lien-secours-sdis", "hebergement", "archivage",
                              "martinique-connect"}
    thd = offerings["acces-thd"]
    assert thd["active_version"]["monthly_cents"] == 60_000
    assert {c["name"]: c["values"] for c in thd["active_version"]["characteristics"]} == {
        "debit_mbps": ["100", "500", "1000"], "sla": ["standard", "renforcé", "critique"]}
    assert thd["sharing_rules"] == [{"method": "usage", "effective_from": "2026-01",
                                     "reason": "clé initiale du catalogue"}]
    assert actors.buyer.get("/offerings/inconnue").status_code == 404


def test_version_lifecycle(actors: Actors) -> None:
    site = site_id(actors.buyer, "Hôtel de ville du Lamentin")
    order = actors.buyer.post("/orders", {"items": [{"action": "add", "offering": "vpn-intersites",
                                                     "site_id": site}]}).json()
    old = actors.approver.post(f"/orders/{order['id']}/approve").json()
    old_sub = old["items"][0]["subscription_id"]
    assert actors.buyer.post("/offerings/vpn-intersites/versions", {}).status_code == 403
    draft = actors.manager.post("/offerings/vpn-intersites/versions", {"monthly_cents": 45_000})
    assert draft.status_code == 201
    assert draft.json()["state"] == "draft" and draft.json()["version"] == 2
    # drafts are seen by catalogue managers only, and never ordered
    assert [v["version"] for v in actors.buyer.get("/offerings/vpn-intersites").json()[
        "versions"]] == [1]
    assert [v["version"] for v in actors.manager.get("/offerings/vpn-intersites").json()[
        "versions"]] == [1, 2]
    assert actors.manager.post("/offerings/vpn-intersites/versions", {}).status_code == 409
    activated = actors.manager.post("/offerings/vpn-intersites/versions/2/state",
                                    {"state": "active"})
    assert activated.json()["state"] == "active"
    offering = actors.buyer.get("/offerings/vpn-intersites").json()
    assert offering["active_version"]["version"] == 2
    assert {v["version"]: v["state"] for v in offering["versions"]} == {1: "retired",
                                                                        2: "active"}
    # the retired version keeps serving its subscription; new orders get version 2
    assert actors.buyer.get(f"/subscriptions/{old_sub}").json()["version"] == 1
    new = actors.buyer.post("/orders", {"items": [{"action": "add", "offering": "vpn-intersites",
                                                   "site_id": site}]}).json()
    assert new["items"][0]["version"] == 2
    assert actors.manager.post("/offerings/vpn-intersites/versions/1/state",
                               {"state": "active"}).status_code == 409
    retired = actors.manager.post("/offerings/vpn-intersites/versions/2/state",
                                  {"state": "retired"})
    assert retired.json()["state"] == "retired"
    assert actors.buyer.get("/offerings/vpn-intersites").status_code == 404
    refused = actors.buyer.post("/orders", {"items": [{"action": "add",
                                                       "offering": "vpn-intersites",
                                                       "site_id": site}]})
    assert refused.status_code == 409 and "pas de version active" in refused.json()["detail"]


def test_sharing_key_changes_only_from_a_month_to_come(actors: Actors) -> None:
    past = actors.manager.post("/offerings/hebergement/sharing-rules", {
        "method": "equal", "effective_from": "2026-01", "reason": "rétroactif"})
    assert past.status_code == 409
    future = actors.manager.post("/offerings/hebergement/sharing-rules", {
        "method": "equal", "effective_from": "2030-01", "reason": "délibération"})
    assert future.status_code == 201
    rules = actors.buyer.get("/offerings/hebergement").json()["sharing_rules"]
    assert [(r["method"], r["effective_from"]) for r in rules] == [
        ("usage", "2026-01"), ("equal", "2030-01")]


def test_console_hides_other_organisations_orders(platform: Any, actors: Actors) -> None:
    site = site_id(actors.other_buyer, "Schœlcher")
    theirs = actors.other_buyer.post("/orders", {"items": [{
        "action": "add", "offering": "acces-thd", "site_id": site}]}).json()
    console = open_console(platform, ("lamentin", "buyer"))
    try:
        page = console.get(f"/admin/services/commandes/{theirs['id']}")
        assert page.status_code == 404 and theirs["id"] not in page.text
        assert theirs["id"][:8] not in console.get("/admin/services/commandes").text
        refused = console.post(f"/admin/services/commandes/{theirs['id']}/annuler",
                               {"motif": "pas à moi"})
        assert refused.status_code == 404
        assert actors.other_buyer.get(f"/orders/{theirs['id']}").json()["state"] == "held"
    finally:
        console.close()


def test_wiring_implements_the_protocols(platform: Any) -> None:
    assert isinstance(IdpOrganisations(platform.provider), OrganisationDirectory)
    assert isinstance(IdpClientRegistrar(platform.provider), ClientRegistrar)
    lamentin = IdpOrganisations(platform.provider).get("lamentin")
    assert lamentin is not None and lamentin.population and lamentin.kind == "commune"
