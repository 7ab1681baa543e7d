"""The operators' mandate pages: a parent recorded for a minor child without an account (on a
verified document), a guardian for an account, the list, and revocation with a reason
(delegated tokens revoked at once); every step journaled."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from sqlmodel import Session, select

from idp.models import Mandate, User
from plateforme.audit import AuditQuery
from tests.functional.admin_ui.conftest import Console


def _form(**values: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "lien": "parent", "pour": "mineur", "prenom": "Léo", "nom": "Dupont",
        "naissance": "2016-04-02", "fin": (date.today() + timedelta(days=200)).isoformat(),
        "piece": "Livret de famille n° 972-2016-0042", "motif": "pièce vue au guichet"}
    form.update(values)
    return form


def test_recording_a_parent_for_a_minor_and_revoking_it(platform, console_as) -> None:
    support: Console = console_as(("ctm", "support"))
    parent = platform.create_user(given_name="Marie", family_name="Dupont")
    cantine = platform.create_client(name="Cantine", delegation_allowed=True)
    platform.create_client(name="Sans procuration")

    page = support.get("/admin/procurations/nouvelle")
    assert page.status_code == 200 and "Cantine" in page.text
    assert "Sans procuration" not in page.text  # only clients that accept delegation
    created = support.post("/admin/procurations/nouvelle", _form(
        mandataire=parent["email"], clients=[cantine["client_id"]]))
    assert created.status_code == 303, created.text[:500]

    provider = platform.provider
    [mandate] = provider.mandates.received(parent["id"])
    assert mandate.origin == "relationship" and mandate.relationship == "parent"
    assert mandate.status == "active" and mandate.client_list() == [cantine["client_id"]]
    child = provider.users.get(mandate.mandator_id)
    assert child is not None and child.given_name == "Léo" and child.birthdate == "2016-04-02"
    assert child.email.endswith("@mineur.invalid")
    [event] = provider.journal.search(AuditQuery(action="mandate.create",
                                                 target=str(child.id)), limit=5)
    assert event.actor == str(support.user["id"]) and event.reason == "pièce vue au guichet"
    assert json.loads(event.details)["document"] == "Livret de famille n° 972-2016-0042"

    listing = support.get("/admin/procurations")
    assert "Léo Dupont" in listing.text and "Marie Dupont" in listing.text
    path = f"/admin/procurations/{mandate.id}/retirer"
    assert path in listing.text
    refused = support.post(path, {"motif": ""})
    assert refused.status_code == 422 and "motif" in refused.text
    assert provider.mandates.get(mandate.id).status == "active"  # type: ignore[union-attr]
    assert support.post(path, {"motif": "jugement de retrait"}).status_code == 303
    assert provider.mandates.get(mandate.id).status == "revoked"  # type: ignore[union-attr]
    [revoked] = provider.journal.search(AuditQuery(action="mandate.revoke",
                                                   target=str(child.id)), limit=5)
    assert revoked.reason == "jugement de retrait"
    assert path not in support.get("/admin/procurations").text


def test_recording_a_guardian_for_an_account_and_refusing_bad_input(platform, console_as
                                                                      ) -> None:
    admin: Console = console_as(("ctm", "ctm_admin"))
    ward = platform.create_user(given_name="Ernest")
    guardian = platform.create_user()
    with Session(platform.provider.engine) as session:
        minors_before = len(session.exec(select(User).where(
            User.email.endswith("@mineur.invalid"))).all())  # type: ignore[union-attr]

    bad = admin.post("/admin/procurations/nouvelle", _form(
        mandataire="personne@inconnu.mq", piece="", fin="demain",
        motif="x", pour="compte", mandant="absent@inconnu.mq"))
    assert bad.status_code == 422
    for field in ("mandataire-erreur", "piece-erreur", "fin-erreur", "motif-erreur",
                  "mandant-erreur"):
        assert f'id="{field}"' in bad.text, field
    too_long = admin.post("/admin/procurations/nouvelle", _form(
        mandataire=guardian["email"], fin=(date.today() + timedelta(days=500)).isoformat()))
    assert too_long.status_code == 422 and "un an au plus" in too_long.text
    with Session(platform.provider.engine) as session:  # nothing half-created
        assert len(session.exec(select(User).where(
            User.email.endswith("@mineur.invalid"))).all()) == minors_before  # type: ignore[union-attr]

    created = admin.post("/admin/procurations/nouvelle", _form(
        mandataire=guardian["email"], lien="guardian", pour="compte", mandant=ward["email"],
        piece="Jugement de tutelle TJ Fort-de-France 2025/118"))
    assert created.status_code == 303, created.text[:500]
    with Session(platform.provider.engine) as session:
        mandate = session.exec(select(Mandate).where(
            Mandate.mandator_id == ward["id"])).one()
    assert mandate.relationship == "guardian" and mandate.client_list() == []
    assert mandate.mandatary_id == guardian["id"]
