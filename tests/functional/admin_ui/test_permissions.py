"""Role checks of the console, by enumeration: every persona (no session, an account without
roles, each of the nine roles) against every page and every action.

The expectations are written out here, independently of ``admin_ui/permissions.py``:
* a page the persona may open answers 200, any other page the French 403 page;
* an action the persona may do answers 422 (its form, sent empty, comes back with errors:
  the permission check passed and nothing changed), any other action the 403 page;
* without a session, every page and action redirects to the console's sign-in.

Commune-scoped personas hold their role at Le Lamentin; the other commune is Schœlcher.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from plateforme.audit import AuditQuery
from tests.functional.admin_ui.conftest import Console, open_console
from tests.support.browser import Browser

PLATFORM_ROLES = ["ctm_admin", "support", "catalogue_manager", "approver", "archival_authority"]
COMMUNE_ROLES = ["org_admin", "viewer", "archivist", "buyer"]
PERSONAS = ["anonymous", "no_role", *PLATFORM_ROLES, *COMMUNE_ROLES]
STAFF = set(PLATFORM_ROLES) | set(COMMUNE_ROLES)
SIGNED_IN = STAFF | {"no_role"}
ADMIN = {"ctm_admin"}
PEOPLE = {"ctm_admin", "support"}
RECOVER = {"ctm_admin", "support"}  # users in difficulty: the support's job
LAMENTIN_READ = {"ctm_admin", "org_admin", "viewer"}
LAMENTIN_MANAGE = {"ctm_admin", "org_admin"}
SERVICES_VIEW = {"ctm_admin", "catalogue_manager", "approver", "org_admin", "viewer", "buyer"}
SERVICES_BUY = {"org_admin", "buyer"}  # the catalogue refuses orders from the CTM's admin
SERVICES_APPROVE = {"ctm_admin", "approver"}
SERVICES_FIBRE = {"ctm_admin", "catalogue_manager", "approver"}
ARCHIVES_VIEW = {"ctm_admin", "org_admin", "viewer", "archivist"}
ARCHIVES_MANAGE = {"org_admin", "archivist"}  # the producer's own staff deposit and manage


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # {own}: a Lamentin client, {other}: a Schœlcher client, {platform}: CTM's,
    # {person}: a citizen's account id, {member}: an account holding a role at Le Lamentin
    allowed: frozenset[str]
    data: tuple[tuple[str, str], ...] = ()
    allowed_status: int | None = None  # default: 200 for GET, 422 for POST

    @property
    def expected_when_allowed(self) -> int:
        return self.allowed_status or (200 if self.method == "GET" else 422)


def R(method: str, path: str, allowed: set[str], *data: tuple[str, str],
      status: int | None = None) -> Route:
    return Route(method, path, frozenset(allowed), tuple(data), status)


ROUTES = [
    # dashboard and invitations
    R("GET", "/admin/", STAFF),
    R("GET", "/admin/invitation/jeton-inconnu", SIGNED_IN),
    R("POST", "/admin/invitation/jeton-inconnu", SIGNED_IN, status=404),
    # clients
    R("GET", "/admin/clients", LAMENTIN_READ),
    R("GET", "/admin/clients/nouveau", LAMENTIN_MANAGE),
    R("POST", "/admin/clients/nouveau", LAMENTIN_MANAGE, ("organisation", "lamentin")),
    R("POST", "/admin/clients/nouveau", ADMIN, ("organisation", "schoelcher")),
    R("POST", "/admin/clients/nouveau", ADMIN, ("organisation", "")),
    R("POST", "/admin/clients/nouveau", ADMIN, ("organisation", "lamentin"),
      ("first_party", "on")),
    R("GET", "/admin/clients/{own}", LAMENTIN_READ),
    R("GET", "/admin/clients/{own}/integration", LAMENTIN_READ),
    R("GET", "/admin/clients/{own}/modifier", LAMENTIN_MANAGE),
    R("POST", "/admin/clients/{own}/modifier", LAMENTIN_MANAGE),
    R("POST", "/admin/clients/{own}/secret", LAMENTIN_MANAGE),
    R("POST", "/admin/clients/{own}/desactiver", LAMENTIN_MANAGE),
    R("POST", "/admin/clients/{own}/activer", LAMENTIN_MANAGE),
    R("POST", "/admin/clients/{own}/supprimer", LAMENTIN_MANAGE),
    R("GET", "/admin/clients/{other}", ADMIN),
    R("GET", "/admin/clients/{other}/integration", ADMIN),
    R("GET", "/admin/clients/{other}/modifier", ADMIN),
    R("POST", "/admin/clients/{other}/modifier", ADMIN),
    R("POST", "/admin/clients/{other}/secret", ADMIN),
    R("POST", "/admin/clients/{other}/desactiver", ADMIN),
    R("POST", "/admin/clients/{other}/activer", ADMIN),
    R("POST", "/admin/clients/{other}/supprimer", ADMIN),
    R("GET", "/admin/clients/{platform}", ADMIN),
    R("GET", "/admin/clients/{platform}/integration", ADMIN),
    R("POST", "/admin/clients/{platform}/secret", ADMIN),
    R("POST", "/admin/clients/{platform}/supprimer", ADMIN),
    # people and consents
    R("GET", "/admin/personnes", PEOPLE),
    R("GET", "/admin/personnes?q=example", PEOPLE),
    R("GET", "/admin/personnes/{person}", PEOPLE),
    R("POST", "/admin/personnes/{person}/verrouiller", PEOPLE),
    R("POST", "/admin/personnes/{person}/deverrouiller", PEOPLE),
    R("POST", "/admin/personnes/{person}/sessions", PEOPLE),
    R("POST", "/admin/personnes/{person}/verification", RECOVER),
    R("POST", "/admin/personnes/{person}/facteurs", RECOVER),
    R("POST", "/admin/personnes/{person}/supprimer", ADMIN),
    R("GET", "/admin/personnes/{person}/consentements", PEOPLE),
    R("POST", "/admin/personnes/{person}/consentements/{own}/retirer", ADMIN),
    # mandates on a verified relationship ({mandate}: one the citizen gave the member)
    R("GET", "/admin/procurations", PEOPLE),
    R("GET", "/admin/procurations/nouvelle", PEOPLE),
    R("POST", "/admin/procurations/nouvelle", PEOPLE),
    R("POST", "/admin/procurations/{mandate}/retirer", PEOPLE),
    # organisations and memberships
    R("GET", "/admin/organisations", LAMENTIN_READ),
    R("GET", "/admin/organisations/lamentin", LAMENTIN_READ),
    R("GET", "/admin/organisations/schoelcher", ADMIN),
    R("GET", "/admin/organisations/ctm", ADMIN),
    R("POST", "/admin/organisations/lamentin/roles", LAMENTIN_MANAGE, ("role", "viewer")),
    R("POST", "/admin/organisations/schoelcher/roles", ADMIN, ("role", "viewer")),
    R("POST", "/admin/organisations/ctm/roles", ADMIN, ("role", "support")),
    R("POST", "/admin/organisations/lamentin/roles/retirer", LAMENTIN_MANAGE,
      ("user_id", "{member}"), ("role", "viewer")),
    R("POST", "/admin/organisations/schoelcher/roles/retirer", ADMIN,
      ("user_id", "{member}"), ("role", "viewer")),
    R("POST", "/admin/organisations/lamentin/invitations", LAMENTIN_MANAGE,
      ("role", "viewer")),
    R("POST", "/admin/organisations/schoelcher/invitations", ADMIN, ("role", "viewer")),
    R("POST", "/admin/organisations/ctm/invitations", ADMIN, ("role", "ctm_admin")),
    # signing keys
    R("GET", "/admin/cles", ADMIN),
    R("POST", "/admin/cles/rotation", ADMIN),
    R("POST", "/admin/cles/cle-inconnue/retrait", ADMIN),
    # audit journal
    R("GET", "/admin/journal", PEOPLE),
    R("GET", "/admin/journal?action=client.", PEOPLE),
    R("GET", "/admin/journal.csv", PEOPLE),
    # service catalogue ({svc_order}: a held order of Le Lamentin, {svc_sub}: a subscription)
    R("GET", "/admin/services", SERVICES_VIEW),
    R("GET", "/admin/services/commander?offre=acces-thd", SERVICES_BUY),
    R("POST", "/admin/services/commander", SERVICES_BUY),
    R("GET", "/admin/services/commandes", SERVICES_VIEW),
    R("GET", "/admin/services/commandes?etat=held", SERVICES_VIEW),
    R("GET", "/admin/services/commandes/{svc_order}", SERVICES_VIEW),
    R("POST", "/admin/services/commandes/{svc_order}/approuver", SERVICES_APPROVE),
    R("POST", "/admin/services/commandes/{svc_order}/refuser", SERVICES_APPROVE),
    R("POST", "/admin/services/commandes/{svc_order}/relancer", SERVICES_APPROVE, status=409),
    R("POST", "/admin/services/commandes/{svc_order}/annuler", SERVICES_BUY | {"ctm_admin"}),
    R("POST", "/admin/services/abonnements/{svc_sub}/secret", SERVICES_BUY, status=404),
    R("GET", "/admin/services/inventaire", SERVICES_VIEW),
    R("GET", "/admin/services/fibre", SERVICES_FIBRE),
    R("GET", "/admin/services/releves", SERVICES_VIEW),
    R("GET", "/admin/services/releves?mois=2026-01", SERVICES_VIEW),
    R("GET", "/admin/services/releves.csv", SERVICES_VIEW),
    # archives (the unknown unit, file, share and bordereau answer 404 once allowed)
    R("GET", "/admin/archives", ARCHIVES_VIEW),
    R("GET", "/admin/archives/unites/unite-inconnue", ARCHIVES_VIEW, status=404),
    R("GET", "/admin/archives/unites/unite-inconnue/fichiers/objet-inconnu", ARCHIVES_VIEW,
      status=404),
    R("GET", "/admin/archives/versement", ARCHIVES_MANAGE),
    R("POST", "/admin/archives/versement", ARCHIVES_MANAGE),
    R("POST", "/admin/archives/unites/unite-inconnue/partages", ARCHIVES_MANAGE, status=404),
    R("POST", "/admin/archives/partages/partage-inconnu/revoquer", ARCHIVES_MANAGE,
      status=404),
    R("POST", "/admin/archives/unites/unite-inconnue/regles", ARCHIVES_MANAGE, status=404),
    R("GET", "/admin/archives/regles", ARCHIVES_VIEW | {"archival_authority"}),
    R("POST", "/admin/archives/regles", ARCHIVES_MANAGE | {"archival_authority"}),
    R("GET", "/admin/archives/contrat", ARCHIVES_VIEW),
    R("POST", "/admin/archives/contrat", ARCHIVES_MANAGE),
    R("GET", "/admin/archives/eliminations", {"archivist", "archival_authority"}),
    R("POST", "/admin/archives/eliminations", {"archivist"}),
    R("GET", "/admin/archives/eliminations/bordereau-inconnu",
      ARCHIVES_VIEW | {"archival_authority"}, status=404),
    R("POST", "/admin/archives/eliminations/bordereau-inconnu/visa", {"archival_authority"}),
    R("GET", "/admin/archives/eliminations/bordereau-inconnu/certificat",
      ARCHIVES_VIEW | {"archival_authority"}, status=404),
    R("GET", "/admin/archives/audits", {"ctm_admin", "archival_authority"}),
    R("POST", "/admin/archives/audits", {"ctm_admin", "archival_authority"}, status=303),
]


@dataclass
class World:
    """What the routes act on, and one console per persona (anonymous: no session)."""

    targets: dict[str, str]
    consoles: dict[str, Console]
    csrf: dict[str, str]
    anonymous: Browser


@pytest.fixture(scope="module")
def world(platform: Any) -> Iterator[World]:
    own = platform.create_client(name="Cantine du Lamentin", organisation="lamentin")
    other = platform.create_client(name="Cantine de Schœlcher", organisation="schoelcher")
    ctm = platform.create_client(name="Service de la CTM")
    person = platform.create_user()
    member = platform.create_user()
    platform.provider.organisations.grant(member["id"], "lamentin", "viewer")
    platform.provider.organisations.grant(member["id"], "schoelcher", "viewer")
    services = platform.live.app.state.services
    services.seed(sites=True)
    from services_mutualises import OrderCreate, OrderItemCreate, Principal

    buyer = Principal(subject="test", org="lamentin", roles=frozenset({"buyer"}))
    site = next(s.id for s in services.sites.list(buyer))
    thd = OrderCreate(items=[OrderItemCreate(offering="acces-thd", site_id=site)])
    held = services.orders.create(buyer, thd)
    done = services.orders.approve(Principal(subject="test", org="ctm",
                                             roles=frozenset({"approver"})),
                                   services.orders.create(buyer, thd).id)
    from datetime import timedelta

    from idp.services.mandates import MandateTerms
    from plateforme.clock import utcnow

    mandate = platform.provider.mandates.create_self(person["id"], member["email"], MandateTerms(
        clients=(), scopes=(), ends_at=utcnow() + timedelta(days=30)))
    targets = {"own": own["client_id"], "other": other["client_id"], "mandate": str(mandate.id),
               "platform": ctm["client_id"], "person": str(person["id"]),
               "member": str(member["id"]), "svc_order": str(held.id),
               "svc_sub": str(done.items[0].subscription_id)}
    consoles: dict[str, Console] = {}
    consoles["no_role"] = open_console(platform)
    for role in PLATFORM_ROLES:
        consoles[role] = open_console(platform, ("ctm", role))
    for role in COMMUNE_ROLES:
        consoles[role] = open_console(platform, ("lamentin", role))
    anonymous = Browser()
    yield World(targets, consoles, {p: c.csrf for p, c in consoles.items()}, anonymous)
    for console in consoles.values():
        console.close()
    anonymous.close()


def _route_id(route: Route) -> str:
    extra = ",".join(f"{k}={v}" for k, v in route.data if not v.startswith("{"))
    return f"{route.method} {route.path}" + (f" [{extra}]" if extra else "")


@pytest.mark.parametrize("route", ROUTES, ids=_route_id)
def test_each_persona_gets_what_the_table_says(world: World, platform: Any, route: Route
                                               ) -> None:
    path = route.path.format(**world.targets)
    data = {k: v.format(**world.targets) for k, v in route.data}
    failures = []
    for persona in PERSONAS:
        if persona == "anonymous":
            response = world.anonymous.request(route.method, platform.url + path, data=data
                                               if route.method == "POST" else None)
            if response.status_code != 303 or not response.headers["location"].startswith(
                    "/admin/connexion?suite="):
                failures.append(f"anonymous: {response.status_code} "
                                f"{response.headers.get('location')}")
            continue
        console = world.consoles[persona]
        if route.method == "GET":
            response = console.get(path)
        else:
            response = console.post(path, data, csrf=world.csrf[persona])
        expected = route.expected_when_allowed if persona in route.allowed else 403
        if response.status_code != expected:
            failures.append(f"{persona}: {response.status_code}, expected {expected}")
        elif expected == 403 and "<h1>Accès refusé</h1>" not in response.text:
            failures.append(f"{persona}: 403 without the French access-refused page")
    assert not failures, f"{route.method} {path}:\n  " + "\n  ".join(failures)


def _flat_routes(routes: Any, prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """Every route with its full path; FastAPI keeps an included router as one entry
    (``original_router`` under ``include_context.prefix``)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _flat_routes(included.routes, prefix + route.include_context.prefix)
        elif hasattr(route, "methods"):
            yield prefix + route.path, set(route.methods)


def test_every_console_route_is_in_the_table(platform: Any) -> None:
    """A new page or action must be added to the table above."""
    tested = {(r.method, r.path.split("?")[0]) for r in ROUTES}
    placeholders = {"{svc_order}": "{order_id}", "{svc_sub}": "{subscription_id}",
                    "{own}": "{client_id}", "{other}": "{client_id}",
                    "{platform}": "{client_id}", "{person}": "{user_id}",
                    "{mandate}": "{mandate_id}",
                    "jeton-inconnu": "{token}", "cle-inconnue": "{kid}",
                    "lamentin": "{slug}", "schoelcher": "{slug}", "/ctm": "/{slug}",
                    "unite-inconnue": "{unit_id}", "objet-inconnu": "{object_id}",
                    "partage-inconnu": "{share_id}", "bordereau-inconnu": "{elimination_id}"}
    normalised = set()
    for method, path in tested:
        for old, new in placeholders.items():
            path = path.replace(old, new)
        normalised.add((method, path))
    # signing in and out, and the provider's back-channel call, are tested in test_console_flow
    untested = {("GET", "/admin/connexion"), ("GET", "/admin/auth/callback"),
                ("POST", "/admin/deconnexion"), ("POST", "/admin/backchannel-logout")}
    routes = set()
    for path, methods in _flat_routes(platform.live.app.routes):
        if path.startswith("/admin"):
            routes |= {(method, path) for method in methods if method != "HEAD"}
    assert ("GET", "/admin/clients") in routes  # the walk below reaches included routers
    missing = routes - normalised - untested
    assert not missing, f"routes without a row in the permission table: {sorted(missing)}"


def test_lists_show_only_the_persona_s_organisations(world: World) -> None:
    org_admin = world.consoles["org_admin"]
    listed = org_admin.get("/admin/clients").text
    assert world.targets["own"] in listed
    assert world.targets["other"] not in listed
    assert world.targets["platform"] not in listed
    orgs = org_admin.get("/admin/organisations").text
    assert "Le Lamentin" in orgs
    assert "Schœlcher" not in orgs and "Fort-de-France" not in orgs
    admin = world.consoles["ctm_admin"]
    everything = admin.get("/admin/clients").text
    assert all(world.targets[k] in everything for k in ("own", "other", "platform"))
    assert admin.get("/admin/organisations").text.count('href="/admin/organisations/') == 39


def test_navigation_offers_only_what_the_persona_may_open(world: World) -> None:
    expected = {
        "ctm_admin": {"/admin/", "/admin/clients", "/admin/personnes", "/admin/procurations",
                      "/admin/organisations",
                      "/admin/cles", "/admin/journal", "/admin/services", "/admin/archives"},
        "support": {"/admin/", "/admin/personnes", "/admin/procurations", "/admin/journal"},
        "org_admin": {"/admin/", "/admin/clients", "/admin/organisations", "/admin/services",
                      "/admin/archives"},
        "viewer": {"/admin/", "/admin/clients", "/admin/organisations", "/admin/services",
                   "/admin/archives"},
        "archivist": {"/admin/", "/admin/archives"},
        "catalogue_manager": {"/admin/", "/admin/services"},
        "buyer": {"/admin/", "/admin/services"},
    }
    for persona, links in expected.items():
        page = world.consoles[persona].get("/admin/").text
        nav = page.split('<nav class="console-nav"', 1)[1].split("</nav>", 1)[0]
        shown = set(re.findall(r'<a href="([^"]+)"', nav))
        assert shown == links, persona


def test_viewer_sees_no_action_forms(world: World) -> None:
    viewer = world.consoles["viewer"]
    client_page = viewer.get(f"/admin/clients/{world.targets['own']}").text
    assert "Changer le secret" not in client_page and 'method="post"' not in client_page.split(
        "</nav>", 1)[1]
    org_page = viewer.get("/admin/organisations/lamentin").text
    assert "Inviter une personne" not in org_page


def test_org_admin_cannot_grant_platform_roles_even_at_the_ctm(platform: Any) -> None:
    console = open_console(platform, ("ctm", "org_admin"))
    try:
        someone = platform.create_user()
        refused = console.post("/admin/organisations/ctm/roles",
                               {"email": someone["email"], "role": "ctm_admin",
                                "motif": "essai d'élévation"})
        assert refused.status_code == 403
        assert platform.provider.organisations.roles_of(someone["id"]) == []
        allowed = console.post("/admin/organisations/ctm/roles",
                               {"email": someone["email"], "role": "viewer",
                                "motif": "lecture des applications"})
        assert allowed.status_code == 303
        assert [g.role for g in platform.provider.organisations.roles_of(someone["id"])] == [
            "viewer"]
    finally:
        console.close()


def test_roles_are_read_again_at_every_request(platform: Any) -> None:
    console = open_console(platform, ("lamentin", "org_admin"))
    try:
        assert console.get("/admin/clients").status_code == 200
        platform.provider.organisations.revoke(console.user["id"], "lamentin", "org_admin")
        assert console.get("/admin/clients").status_code == 403
        assert console.get("/admin/").status_code == 403
    finally:
        console.close()


def test_refused_actions_are_journaled(world: World, platform: Any) -> None:
    viewer = world.consoles["viewer"]
    motif = f"essai {secrets.token_hex(3)}"
    response = viewer.post(f"/admin/clients/{world.targets['own']}/supprimer", {"motif": motif},
                           csrf=world.csrf["viewer"])
    assert response.status_code == 403
    events = platform.provider.journal.search(AuditQuery(
        actor=str(viewer.user["id"]), action="admin.refused"))
    assert any(e.target == f"/admin/clients/{world.targets['own']}/supprimer"
               and e.outcome == "refused" for e in events)
