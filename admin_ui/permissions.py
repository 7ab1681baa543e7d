"""Who may do what in the console: the one permission matrix.

A role grants actions; a platform role (held at the CTM) grants them everywhere, an
organisation role only in the organisation where it is held. Every page and every action of
the console asks :class:`Permissions` (built from the person's roles, read again at every
request) and nothing else.

    perms = Permissions.from_grants(provider.organisations.roles_of(user_id))
    perms.can("clients.manage", "lamentin")   # True for an org_admin of Le Lamentin
    perms.scope("clients.view")               # None: everywhere; else the organisations
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from idp import PLATFORM_ROLES, RoleGrant

ACTIONS: dict[str, str] = {
    "dashboard.view": "voir le tableau de bord",
    "clients.view": "voir les applications clientes et leur fiche d'intégration",
    "clients.manage": "créer, modifier, désactiver, supprimer une application, changer son secret",
    "clients.first_party": "déclarer une application « première partie » (sans consentement)",
    "people.view": "rechercher et consulter les comptes",
    "people.lock": "verrouiller, déverrouiller un compte, mettre fin à ses sessions",
    "people.recover": "aider une personne en difficulté : renvoyer le courriel de vérification, "
                      "réinitialiser les seconds facteurs",
    "people.delete": "supprimer un compte",
    "consents.view": "voir les consentements d'une personne",
    "consents.revoke": "retirer un consentement",
    "mandates.manage": "enregistrer une procuration sur un lien vérifié (parent, tuteur), "
                       "consulter et retirer les procurations",
    "orgs.view": "voir une organisation et ses membres",
    "members.manage": "attribuer, retirer un rôle, inviter une personne",
    "members.platform_roles": "attribuer ou retirer un rôle de la plateforme (CTM)",
    "keys.view": "voir les clés de signature",
    "keys.rotate": "renouveler, retirer une clé de signature",
    "audit.view": "consulter et exporter le journal d'audit",
    "services.view": "voir le catalogue de services, les commandes, l'inventaire et les relevés",
    "services.order": "commander un service, annuler une commande, recevoir les identifiants",
    "services.approve": "approuver, refuser, relancer une commande ; suspendre un abonnement",
    "services.fibre": "voir les réserves de fibre et leur taux d'utilisation",
    "archives.view": "rechercher et consulter les archives de l'organisation",
    "archives.deposit": "verser des documents dans les archives de l'organisation",
    "archives.eliminate": "proposer l'élimination d'archives dont la DUA est échue",
    "archives.visa": "viser (ou refuser) les bordereaux d'élimination",
    "archives.audit": "lancer et consulter les audits d'intégrité des archives",
    "archives.manage": "partager une unité, changer ses règles, fixer le contrat d'entrée de "
                       "l'organisation",
    "archives.rules": "importer le référentiel des règles de gestion",
}

EVERYTHING = frozenset(ACTIONS)

# role -> actions. Platform roles apply everywhere, organisation roles in their organisation.
MATRIX: dict[str, frozenset[str]] = {
    # Only the archival authority visas eliminations and only the producer's archivist
    # proposes them (Code du patrimoine L212-2), whoever administers the platform.
    # The producer's archivists and administrators deposit and manage its archives (sharing,
    # rules, contract): the platform's administrator does not act for a commune.
    "ctm_admin": EVERYTHING - {"archives.visa", "archives.eliminate", "archives.manage",
                               "archives.rules", "archives.deposit"},
    "support": frozenset({
        "dashboard.view", "people.view", "people.lock", "people.recover", "consents.view",
        "audit.view", "mandates.manage",
    }),
    "catalogue_manager": frozenset({"dashboard.view", "services.view", "services.fibre"}),
    "approver": frozenset({"dashboard.view", "services.view", "services.approve",
        "services.fibre"}),
    "archival_authority": frozenset({"dashboard.view", "archives.visa", "archives.audit",
        "archives.rules"}),
    "org_admin": frozenset({"dashboard.view", "clients.view", "clients.manage", "orgs.view",
        "members.manage", "services.view", "services.order", "archives.view", "archives.deposit",
        "archives.manage", "archives.rules"}),
    "viewer": frozenset({"dashboard.view", "clients.view", "orgs.view", "services.view",
        "archives.view"}),
    "archivist": frozenset({"dashboard.view", "archives.view", "archives.eliminate",
        "archives.deposit", "archives.manage", "archives.rules"}),
    "buyer": frozenset({"dashboard.view", "services.view", "services.order"}),
}


@dataclass(frozen=True)
class Permissions:
    """What one person may do, and where."""

    everywhere: frozenset[str]
    by_organisation: dict[str, frozenset[str]]
    roles: tuple[RoleGrant, ...] = ()

    @classmethod
    def from_grants(cls, grants: Iterable[RoleGrant]) -> Permissions:
        grants = tuple(grants)
        everywhere: set[str] = set()
        local: dict[str, set[str]] = {}
        for grant in grants:
            actions = MATRIX.get(grant.role, frozenset())
            if grant.role in PLATFORM_ROLES:
                everywhere |= actions
            else:
                local.setdefault(grant.organisation, set()).update(actions)
        return cls(frozenset(everywhere), {k: frozenset(v) for k, v in local.items()}, grants)

    def can(self, action: str, organisation: str | None = None) -> bool:
        """May the person do ``action`` on something of ``organisation``? Something that
        belongs to no organisation (``None``) needs the action everywhere."""
        if action not in ACTIONS:
            raise KeyError(action)
        if action in self.everywhere:
            return True
        return organisation is not None and action in self.by_organisation.get(
            organisation, frozenset())

    def can_somewhere(self, action: str) -> bool:
        """May the person do ``action`` at least in one organisation (to show a page)?"""
        return action in self.everywhere or any(
            action in actions for actions in self.by_organisation.values())

    def scope(self, action: str) -> frozenset[str] | None:
        """``None`` when ``action`` is allowed everywhere, else the organisations where it is."""
        if action in self.everywhere:
            return None
        return frozenset(org for org, actions in self.by_organisation.items()
                         if action in actions)

    @property
    def is_staff(self) -> bool:
        return self.can_somewhere("dashboard.view")
