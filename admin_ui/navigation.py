"""The console's navigation: one entry per section, shown when the person may open it.

The archive and catalogue pages join the console by adding their entry here.
"""

from __future__ import annotations

from dataclasses import dataclass

from admin_ui.permissions import Permissions


@dataclass(frozen=True)
class NavItem:
    section: str
    label: str
    href: str
    action: str


NAVIGATION: tuple[NavItem, ...] = (
    NavItem("tableau", "Tableau de bord", "/admin/", "dashboard.view"),
    NavItem("clients", "Applications", "/admin/clients", "clients.view"),
    NavItem("personnes", "Personnes", "/admin/personnes", "people.view"),
    NavItem("procurations", "Procurations", "/admin/procurations", "mandates.manage"),
    NavItem("organisations", "Organisations", "/admin/organisations", "orgs.view"),
    NavItem("cles", "Clés de signature", "/admin/cles", "keys.view"),
    NavItem("journal", "Journal d'audit", "/admin/journal", "audit.view"),
    NavItem("services", "Services", "/admin/services", "services.view"),
    NavItem("archives", "Archives", "/admin/archives", "archives.view"),
    NavItem("eliminations", "Éliminations", "/admin/archives/eliminations",
            "archives.visa"),
)


def navigation(perms: Permissions) -> list[NavItem]:
    return [item for item in NAVIGATION if perms.can_somewhere(item.action)]
