"""Use cases of the service catalogue: sites, catalogue, orders and their provisioning,
subscriptions, inventory, fibre reserves and cost statements.

Every state change goes through :func:`check_transition` (an illegal one raises ``Conflict``
with a French message), is written with its time, author and reason (``svc_state_change``),
journaled (``plateforme.audit``) in the same transaction, and notified by e-mail to the
organisation once committed.
"""

from __future__ import annotations

import base64
import builtins
import csv
import hashlib
import io
import json
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from plateforme import metrics
from plateforme.audit import AuditRecord, append
from plateforme.clock import utcnow
from plateforme.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from plateforme.kv import KeyValueStore
from plateforme.mail import Mailer
from services_mutualises import repository
from services_mutualises.interfaces import (
    ArchiveSpaces,
    ClientRegistrar,
    OrganisationDirectory,
)
from services_mutualises.models import (
    FibreCable,
    FibrePair,
    FibrePop,
    IssuedStatement,
    Offering,
    OfferingVersion,
    Order,
    OrderItem,
    SharingRule,
    Site,
    StateChange,
    Subscription,
)
from services_mutualises.provisioners import (
    ArchiveSpaceProvisioner,
    FibreProvisioner,
    OidcClientProvisioner,
    Provisioner,
    ProvisioningRequest,
    SiteRef,
    WorkOrderProvisioner,
)
from services_mutualises.schemas import (
    CablePublic,
    CharacteristicSpec,
    FibreReservePublic,
    MemberTotal,
    OfferingPublic,
    OrderCreate,
    OrderItemCreate,
    OrderItemPublic,
    OrderPublic,
    PopPublic,
    Principal,
    ProvisionOutcome,
    SecretPublic,
    SharingRuleCreate,
    SharingRulePublic,
    SiteCreate,
    SitePublic,
    StateChangePublic,
    Statement,
    StatementLine,
    SubscriptionPublic,
    SweepReport,
    VersionPublic,
)
from services_mutualises.seed import CABLES, OFFERINGS, POPS, SITES
from services_mutualises.sharing import Charge, euros, parse_month, share

log = logging.getLogger(__name__)

ORDER_TRANSITIONS: dict[str, frozenset[str]] = {
    "acknowledged": frozenset({"held", "rejected", "cancelled"}),
    "held": frozenset({"inProgress", "rejected", "cancelled"}),
    "inProgress": frozenset({"completed", "failed"}),
    "failed": frozenset({"inProgress"}),
    "completed": frozenset(),
    "rejected": frozenset(),
    "cancelled": frozenset(),
}
SUBSCRIPTION_TRANSITIONS: dict[str, frozenset[str]] = {
    "created": frozenset({"pendingActive"}),
    "pendingActive": frozenset({"active"}),
    "active": frozenset({"suspended", "pendingTerminate"}),
    "suspended": frozenset({"active", "pendingTerminate"}),
    "pendingTerminate": frozenset({"terminated"}),
    "terminated": frozenset(),
}
ORDER_LABELS = {
    "acknowledged": "reçue", "held": "en attente de validation par la CTM",
    "inProgress": "en cours de mise en service", "completed": "terminée",
    "failed": "en échec", "rejected": "refusée", "cancelled": "annulée",
}
SUBSCRIPTION_LABELS = {
    "created": "créé", "pendingActive": "en cours d'activation", "active": "actif",
    "suspended": "suspendu", "pendingTerminate": "en cours de résiliation",
    "terminated": "résilié",
}
METHOD_LABELS = {
    "equal": "parts égales", "population": "au prorata de la population",
    "usage": "au prorata de l'usage", "subscriber": "payé par l'abonné",
}
LIVE_STATES = ("created", "pendingActive", "active", "suspended", "pendingTerminate")
SECRET_TTL = 7 * 24 * 3600
# An order still ``inProgress`` this long after its last change was interrupted (a crash
# between allocation and activation): the sweep takes it up again.
SWEEP_GRACE = timedelta(minutes=10)


def check_transition(entity: str, current: str, target: str) -> None:
    """Raise ``Conflict`` unless ``entity`` (``order`` or ``subscription``) may go from
    ``current`` to ``target``."""
    table = ORDER_TRANSITIONS if entity == "order" else SUBSCRIPTION_TRANSITIONS
    labels = ORDER_LABELS if entity == "order" else SUBSCRIPTION_LABELS
    if target not in table.get(current, frozenset()):
        what, pronoun = ("La commande", "elle") if entity == "order" else ("L'abonnement", "il")
        raise Conflict(f"{what} est « {labels.get(current, current)} » ({current}) : "
                       f"{pronoun} ne peut pas passer à « {labels.get(target, target)} » "
                       f"({target}).")


def _count_after_commit(session: Session, state: str) -> None:
    """Count the order's new state in the metrics once the transaction commits (nothing
    when it rolls back)."""
    pending: list[str] = session.info.setdefault("order_states", [])
    if not session.info.get("order_states_listening"):
        session.info["order_states_listening"] = True
        event.listen(session, "after_commit", _flush_order_states)
        event.listen(session, "after_rollback", _drop_order_states)
    pending.append(state)


def _flush_order_states(session: Session) -> None:
    states = session.info.get("order_states") or []
    session.info["order_states"] = []
    for state in states:
        metrics.record_order(state)


def _drop_order_states(session: Session) -> None:
    session.info["order_states"] = []


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class _Context:
    """What every part of the catalogue shares."""

    def __init__(self, *, engine: Engine, directory: OrganisationDirectory, mailer: Mailer,
                 store: KeyValueStore, secret_key: str) -> None:
        self.engine = engine
        self.directory = directory
        self.mailer = mailer
        self.store = store
        key = hashlib.sha256(("services-secrets:" + secret_key).encode()).digest()
        self.fernet = Fernet(base64.urlsafe_b64encode(key))

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def record(self, session: Session, *, entity: str, entity_id: uuid.UUID,
               organisation: str, current: str | None, target: str, actor: str,
               reason: str | None, details: dict[str, Any] | None = None) -> None:
        """Check, write and journal one transition (inside the caller's transaction)."""
        if current is not None:
            check_transition(entity, current, target)
        session.add(StateChange(entity=entity, entity_id=entity_id, from_state=current,
                                to_state=target, actor=actor, reason=reason))
        append(session, AuditRecord(
            action=f"services.{entity}.{target}", actor=actor, organisation=organisation,
            target=str(entity_id), reason=reason,
            details={"from": current, "to": target, **(details or {})}))
        if entity == "order":
            _count_after_commit(session, target)

    def notify(self, organisation: str, subject: str, text: str) -> None:
        """E-mail the organisation's buyers and administrators; a failure is logged, never
        undoes the change (it is committed and journaled)."""
        for address in self.directory.contacts(organisation):
            try:
                self.mailer.send(to=address, subject=subject, text=text)
            except Exception:  # noqa: BLE001 - mail is best effort after the commit
                log.exception("notification to %s failed", address)

    def org_name(self, slug: str) -> str:
        info = self.directory.get(slug)
        return info.name if info else slug


# -- views ------------------------------------------------------------------------------------


def _version_public(version: OfferingVersion) -> VersionPublic:
    return VersionPublic(
        id=version.id, version=version.version, state=version.state,  # type: ignore[arg-type]
        characteristics=[CharacteristicSpec(**c) for c in version.characteristic_specs()],
        one_off_cents=version.one_off_cents, monthly_cents=version.monthly_cents,
        alone_one_off_cents=version.alone_one_off_cents,
        alone_monthly_cents=version.alone_monthly_cents,
        usage_characteristic=version.usage_characteristic)


def _site_public(site: Site) -> SitePublic:
    return SitePublic(id=site.id, organisation=site.organisation, name=site.name,
                      address=site.address, latitude=site.latitude, longitude=site.longitude,
                      fibre_reachable=site.fibre_reachable)


def _changes(session: Session, entity_id: uuid.UUID) -> builtins.list[StateChangePublic]:
    return [StateChangePublic(from_state=c.from_state, to_state=c.to_state, actor=c.actor,
                              reason=c.reason, at=_aware(c.at) or c.at)
            for c in repository.list_changes(session=session, entity_id=entity_id)]


def _order_public(session: Session, order: Order) -> OrderPublic:
    items = []
    for item in repository.list_items(session=session, order_id=order.id):
        version = repository.get_version(session=session, version_id=item.offering_version_id)
        assert version is not None
        offering = repository.get_offering_by_id(session=session,
                                                 offering_id=version.offering_id)
        assert offering is not None
        items.append(OrderItemPublic(
            id=item.id, action=item.action, offering=offering.code,  # type: ignore[arg-type]
            offering_name=offering.name, version=version.version,
            subscription_id=item.subscription_id, site_id=item.site_id,
            site_b_id=item.site_b_id, characteristics=item.values()))
    return OrderPublic(
        id=order.id, organisation=order.organisation, state=order.state,  # type: ignore[arg-type]
        requested_by=order.requested_by, note=order.note, state_reason=order.state_reason,
        created_at=_aware(order.created_at) or order.created_at,
        updated_at=_aware(order.updated_at) or order.updated_at,
        completed_at=_aware(order.completed_at), items=items,
        history=_changes(session, order.id))


def _subscription_public(session: Session, sub: Subscription, store: KeyValueStore
                         ) -> SubscriptionPublic:
    version = repository.get_version(session=session, version_id=sub.offering_version_id)
    offering = repository.get_offering_by_id(session=session, offering_id=sub.offering_id)
    assert version is not None and offering is not None
    return SubscriptionPublic(
        id=sub.id, organisation=sub.organisation, offering=offering.code,
        offering_name=offering.name, version=version.version, order_id=sub.order_id,
        state=sub.state, site_id=sub.site_id, site_b_id=sub.site_b_id,  # type: ignore[arg-type]
        characteristics=sub.values(), resources=sub.allocated(),
        created_at=_aware(sub.created_at) or sub.created_at,
        activated_at=_aware(sub.activated_at), terminated_at=_aware(sub.terminated_at),
        secret_pending=store.get(f"svc:secret:{sub.id}") is not None)


# -- sites ------------------------------------------------------------------------------------


class SiteService:
    def __init__(self, ctx: _Context) -> None:
        self._ctx = ctx

    def list(self, principal: Principal, organisation: str | None = None
             ) -> builtins.list[SitePublic]:
        """The sites the principal may see (one organisation's, or every one's for the CTM)."""
        if organisation is None and not principal.sees_everything:
            organisation = principal.org
        if organisation is None or not principal.reads(organisation):
            raise Forbidden("Vous ne pouvez consulter que les sites de votre organisation.")
        with self._ctx.session() as session:
            return [_site_public(s) for s in repository.list_sites(
                session=session, organisation=organisation)]

    def list_all(self, principal: Principal) -> builtins.list[SitePublic]:
        if not principal.sees_everything:
            return self.list(principal)
        with self._ctx.session() as session:
            return [_site_public(s) for s in repository.list_sites(session=session)]

    def create(self, principal: Principal, organisation: str, data: SiteCreate) -> SitePublic:
        if not (principal.buys_for(organisation) or "ctm_admin" in principal.roles):
            raise Forbidden("Seuls les acheteurs et administrateurs de l'organisation "
                            "déclarent ses sites.")
        if self._ctx.directory.get(organisation) is None:
            raise NotFound(f"organisation inconnue : {organisation}")
        with self._ctx.session() as session:
            if repository.find_site(session=session, organisation=organisation,
                                    name=data.name):
                raise Conflict(f"Le site « {data.name} » existe déjà.")
            site = Site(organisation=organisation, **data.model_dump())
            session.add(site)
            append(session, AuditRecord(action="services.site.create", actor=principal.subject,
                                        organisation=organisation, target=str(site.id),
                                        details={"name": data.name}))
            session.commit()
            return _site_public(site)


# -- catalogue --------------------------------------------------------------------------------


class CatalogueService:
    def __init__(self, ctx: _Context) -> None:
        self._ctx = ctx

    def _public(self, session: Session, offering: Offering, drafts: bool) -> OfferingPublic:
        versions = [v for v in repository.list_versions(session=session,
                                                        offering_id=offering.id)
                    if drafts or v.state != "draft"]
        active = repository.active_version(session=session, offering_id=offering.id)
        return OfferingPublic(
            code=offering.code, name=offering.name, description=offering.description,
            provisioner=offering.provisioner, two_sites=offering.two_sites,
            active_version=_version_public(active) if active else None,
            versions=[_version_public(v) for v in versions],
            sharing_rules=[SharingRulePublic(method=r.method,  # type: ignore[arg-type]
                                             effective_from=r.effective_from.isoformat()[:7],
                                             reason=r.reason)
                           for r in repository.list_rules(session=session,
                                                          offering_id=offering.id)])

    def list(self, principal: Principal | None = None) -> builtins.list[OfferingPublic]:
        """Offerings with an active version; catalogue managers also see drafts and offerings
        without an active version."""
        manager = principal is not None and principal.manages_catalogue
        with self._ctx.session() as session:
            result = [self._public(session, o, manager)
                      for o in repository.list_offerings(session=session)]
        return [o for o in result if manager or o.active_version is not None]

    def get(self, code: str, principal: Principal | None = None) -> OfferingPublic:
        manager = principal is not None and principal.manages_catalogue
        with self._ctx.session() as session:
            offering = repository.get_offering(session=session, code=code)
            if offering is None:
                raise NotFound(f"offre inconnue : {code}")
            public = self._public(session, offering, manager)
        if not manager and public.active_version is None:
            raise NotFound(f"offre inconnue : {code}")
        return public

    def _manager(self, principal: Principal) -> None:
        if not principal.manages_catalogue:
            raise Forbidden("Seuls les gestionnaires du catalogue (CTM) modifient le catalogue.")

    def new_version(self, principal: Principal, code: str, *, one_off_cents: int | None = None,
                    monthly_cents: int | None = None) -> VersionPublic:
        """A draft copy of the latest version, with new prices."""
        self._manager(principal)
        with self._ctx.session() as session:
            offering = repository.get_offering(session=session, code=code)
            if offering is None:
                raise NotFound(f"offre inconnue : {code}")
            versions = repository.list_versions(session=session, offering_id=offering.id)
            latest = versions[-1]
            if any(v.state == "draft" for v in versions):
                raise Conflict("Une version en projet existe déjà pour cette offre.")
            for value in (one_off_cents, monthly_cents):
                if value is not None and value < 0:
                    raise InvalidInput("Un prix ne peut pas être négatif.")
            draft = OfferingVersion(
                offering_id=offering.id, version=latest.version + 1, state="draft",
                characteristics=latest.characteristics,
                one_off_cents=latest.one_off_cents if one_off_cents is None else one_off_cents,
                monthly_cents=latest.monthly_cents if monthly_cents is None else monthly_cents,
                alone_one_off_cents=latest.alone_one_off_cents,
                alone_monthly_cents=latest.alone_monthly_cents,
                usage_characteristic=latest.usage_characteristic)
            session.add(draft)
            append(session, AuditRecord(
                action="services.catalogue.version_create", actor=principal.subject,
                organisation=principal.org, target=f"{code}/v{draft.version}",
                details={"one_off_cents": draft.one_off_cents,
                         "monthly_cents": draft.monthly_cents}))
            session.commit()
            return _version_public(draft)

    def set_version_state(self, principal: Principal, code: str, version: int, state: str
                          ) -> VersionPublic:
        """``draft → active`` (the previously active version is retired: it keeps serving
        its subscriptions) or ``active → retired``."""
        self._manager(principal)
        with self._ctx.session() as session:
            offering = repository.get_offering(session=session, code=code)
            if offering is None:
                raise NotFound(f"offre inconnue : {code}")
            versions = {v.version: v for v in repository.list_versions(
                session=session, offering_id=offering.id)}
            target = versions.get(version)
            if target is None:
                raise NotFound(f"version inconnue : {code} v{version}")
            allowed = {("draft", "active"), ("active", "retired")}
            if (target.state, state) not in allowed:
                raise Conflict(f"La version {version} est « {target.state} » : elle ne peut "
                               f"pas passer à « {state} ».")
            now = utcnow()
            if state == "active":
                for other in versions.values():
                    if other.state == "active":
                        other.state, other.retired_at = "retired", now
                        session.add(other)
                target.activated_at = now
            else:
                target.retired_at = now
            target.state = state
            session.add(target)
            append(session, AuditRecord(
                action=f"services.catalogue.version_{state}", actor=principal.subject,
                organisation=principal.org, target=f"{code}/v{version}"))
            session.commit()
            return _version_public(target)

    def add_sharing_rule(self, principal: Principal, code: str, data: SharingRuleCreate
                         ) -> SharingRulePublic:
        """A new sharing key from the first day of a month that has not started yet: past
        and current statements keep theirs."""
        self._manager(principal)
        start, _ = parse_month(data.effective_from)
        today = utcnow().date()
        if start <= today:
            raise Conflict("Une clé de répartition s'applique à partir d'un mois à venir : "
                           "les relevés passés et en cours ne sont jamais recalculés.")
        with self._ctx.session() as session:
            offering = repository.get_offering(session=session, code=code)
            if offering is None:
                raise NotFound(f"offre inconnue : {code}")
            if any(r.effective_from == start for r in repository.list_rules(
                    session=session, offering_id=offering.id)):
                raise Conflict("Une clé de répartition commence déjà ce mois-là.")
            rule = SharingRule(offering_id=offering.id, method=data.method,
                               effective_from=start, created_by=principal.subject,
                               reason=data.reason)
            session.add(rule)
            append(session, AuditRecord(
                action="services.catalogue.sharing_rule", actor=principal.subject,
                organisation=principal.org, target=code, reason=data.reason,
                details={"method": data.method, "effective_from": data.effective_from}))
            session.commit()
        return SharingRulePublic(method=data.method, effective_from=data.effective_from,
                                 reason=data.reason)


# -- orders and provisioning ------------------------------------------------------------------


def _check_uri(uri: str) -> None:
    if not (uri.startswith("https://") or uri.startswith("http://127.0.0.1")
            or uri.startswith("http://localhost")) or "#" in uri:
        raise InvalidInput(f"Adresse de redirection invalide : {uri} (https:// exigé, sauf "
                           "en local ; pas de fragment).", field="redirect_uris")


def _characteristics(version: OfferingVersion, given: dict[str, str],
                     base: dict[str, str] | None = None) -> dict[str, str]:
    """The order's values checked against the version's characteristics (allowed values,
    required free text); unknown names are refused."""
    specs = {s["name"]: s for s in version.characteristic_specs()}
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise InvalidInput(f"Caractéristique inconnue : {', '.join(unknown)}.",
                           field=unknown[0])
    values: dict[str, str] = {}
    for name, spec in specs.items():
        value = str(given.get(name, (base or {}).get(name, spec.get("default", "")))).strip()
        if spec["values"] and value not in spec["values"]:
            raise InvalidInput(f"{spec['label']} : valeur « {value} » non proposée (valeurs : "
                               f"{', '.join(spec['values'])}).", field=name)
        if not value:
            raise InvalidInput(f"{spec['label']} : valeur requise.", field=name)
        values[name] = value
    if "redirect_uris" in values:
        uris = values["redirect_uris"].split()
        for uri in uris:
            _check_uri(uri)
        values["redirect_uris"] = " ".join(uris)
    return values


class OrderService:
    def __init__(self, ctx: _Context, provisioners: dict[str, Provisioner]) -> None:
        self._ctx = ctx
        self._provisioners = provisioners

    # -- reading --

    def get(self, principal: Principal, order_id: uuid.UUID) -> OrderPublic:
        with self._ctx.session() as session:
            order = repository.get_order(session=session, order_id=order_id)
            if order is None or not principal.reads(order.organisation):
                raise NotFound("commande introuvable")
            return _order_public(session, order)

    def list(self, principal: Principal, *, state: str | None = None,
             organisation: str | None = None) -> builtins.list[OrderPublic]:
        if not principal.sees_everything:
            if principal.org is None or not principal.reads(principal.org):
                raise Forbidden("Aucune organisation dont vous puissiez voir les commandes.")
            organisation = principal.org
        with self._ctx.session() as session:
            return [_order_public(session, o) for o in repository.list_orders(
                session=session, organisation=organisation, state=state)]

    # -- ordering --

    def _item(self, session: Session, order: Order, position: int, data: OrderItemCreate
              ) -> tuple[OrderItem, Offering]:
        org = order.organisation
        if data.action == "add":
            offering = repository.get_offering(session=session, code=data.offering or "")
            if offering is None:
                raise InvalidInput(f"Offre inconnue : {data.offering}.", field="offering")
            version = repository.active_version(session=session, offering_id=offering.id)
            if version is None:
                raise Conflict(f"L'offre « {offering.name} » n'a pas de version active : elle "
                               "ne peut pas être commandée.")
            sites = self._sites(session, org, offering, data.site_id, data.site_b_id)
            provisioner = self._provisioners[offering.provisioner]
            if provisioner.one_per_organisation and any(
                    s.offering_id == offering.id for s in repository.list_subscriptions(
                        session=session, organisation=org, states=LIVE_STATES)):
                raise Conflict(f"L'organisation a déjà « {offering.name} » : commandez une "
                               "modification de l'abonnement existant.")
            values = _characteristics(version, data.characteristics)
            return OrderItem(order_id=order.id, position=position, action="add",
                             offering_version_id=version.id,
                             site_id=sites[0], site_b_id=sites[1],
                             characteristics=json.dumps(values, ensure_ascii=False)), offering
        if data.subscription_id is None:
            raise InvalidInput("Indiquez l'abonnement à modifier ou résilier.",
                               field="subscription_id")
        sub = repository.get_subscription(session=session, subscription_id=data.subscription_id)
        if sub is None or sub.organisation != org:
            raise InvalidInput("Abonnement inconnu.", field="subscription_id")
        wanted = ("active",) if data.action == "modify" else ("active", "suspended")
        if sub.state not in wanted:
            raise Conflict(f"L'abonnement est « {SUBSCRIPTION_LABELS[sub.state]} » : il ne "
                           f"peut pas être {'modifié' if data.action == 'modify' else 'résilié'}.")
        version = repository.get_version(session=session, version_id=sub.offering_version_id)
        offering = repository.get_offering_by_id(session=session, offering_id=sub.offering_id)
        assert version is not None and offering is not None
        values = (_characteristics(version, data.characteristics, sub.values())
                  if data.action == "modify" else sub.values())
        return OrderItem(order_id=order.id, position=position, action=data.action,
                         offering_version_id=version.id,
                         subscription_id=sub.id, site_id=sub.site_id, site_b_id=sub.site_b_id,
                         characteristics=json.dumps(values, ensure_ascii=False)), offering

    @staticmethod
    def _sites(session: Session, org: str, offering: Offering, site_id: uuid.UUID | None,
               site_b_id: uuid.UUID | None) -> tuple[uuid.UUID | None, uuid.UUID | None]:
        ids = [site_id, site_b_id] if offering.two_sites else [site_id]
        for index, sid in enumerate(ids):
            field_name = "site_id" if index == 0 else "site_b_id"
            if sid is None:
                if offering.two_sites:
                    raise InvalidInput(f"« {offering.name} » relie deux sites : indiquez-les.",
                                       field=field_name)
                return None, None
            site = repository.get_site(session=session, site_id=sid)
            if site is None or site.organisation != org:
                raise InvalidInput("Site inconnu pour cette organisation.", field=field_name)
        if offering.two_sites and site_id == site_b_id:
            raise InvalidInput("Les deux sites d'une liaison doivent être différents.",
                               field="site_b_id")
        return site_id, (site_b_id if offering.two_sites else None)

    def create(self, principal: Principal, data: OrderCreate) -> OrderPublic:
        """An order of the principal's organisation: received (``acknowledged``), checked,
        then ``held`` until a CTM approver decides."""
        org = principal.org
        if org is None or not principal.buys_for(org):
            raise Forbidden("Seuls les acheteurs (ou administrateurs) d'une organisation "
                            "commandent pour elle.")
        with self._ctx.session() as session:
            order = Order(organisation=org, requested_by=principal.subject, note=data.note)
            session.add(order)
            session.flush()
            lines = [self._item(session, order, i + 1, item)
                     for i, item in enumerate(data.items)]
            for item, _ in lines:
                session.add(item)
            names = [o.name for _, o in lines]
            self._ctx.record(session, entity="order", entity_id=order.id, organisation=org,
                             current=None, target="acknowledged", actor=principal.subject,
                             reason=None, details={"offerings": names})
            self._ctx.record(session, entity="order", entity_id=order.id, organisation=org,
                             current="acknowledged", target="held", actor="catalogue",
                             reason="commande vérifiée, en attente de validation")
            order.state = "held"
            session.commit()
            public = _order_public(session, order)
        self._notify(public, "Votre commande a été reçue ; elle attend la validation de la CTM.")
        return public

    def _notify(self, order: OrderPublic, message: str) -> None:
        lines = "\n".join(f"- {i.offering_name} ({i.action})" for i in order.items)
        self._ctx.notify(
            order.organisation,
            f"Commande {str(order.id)[:8]} : {ORDER_LABELS[order.state]}",
            f"Bonjour,\n\n{message}\n\nCommande {order.id} de "
            f"{self._ctx.org_name(order.organisation)} :\n{lines}\n\nÉtat : "
            f"{ORDER_LABELS[order.state]} ({order.state})"
            + (f"\nMotif : {order.state_reason}" if order.state_reason else "")
            + "\n\nRéseau multiservices de la Collectivité Territoriale de Martinique\n")

    def _move(self, order_id: uuid.UUID, target: str, actor: str, reason: str | None,
              guard: Any = None) -> OrderPublic:
        with self._ctx.session() as session:
            order = repository.get_order(session=session, order_id=order_id, lock=True)
            if order is None:
                raise NotFound("commande introuvable")
            if guard is not None:
                guard(order)
            self._ctx.record(session, entity="order", entity_id=order.id,
                             organisation=order.organisation, current=order.state,
                             target=target, actor=actor, reason=reason)
            order.state, order.updated_at = target, utcnow()
            if target in ("rejected", "cancelled"):
                order.state_reason = reason
            session.add(order)
            session.commit()
            return _order_public(session, order)

    def cancel(self, principal: Principal, order_id: uuid.UUID, reason: str | None = None
               ) -> OrderPublic:
        """The buyer withdraws the order before provisioning."""
        def guard(order: Order) -> None:
            if not principal.reads(order.organisation):
                raise NotFound("commande introuvable")
            if not principal.buys_for(order.organisation):
                raise Forbidden("Seuls les acheteurs de l'organisation annulent ses commandes.")

        public = self._move(order_id, "cancelled", principal.subject,
                            reason or "annulée par l'acheteur", guard)
        self._notify(public, "Votre commande a été annulée.")
        return public

    def _approver(self, principal: Principal) -> None:
        if not principal.can_approve:
            raise Forbidden("Seuls les valideurs de la CTM approuvent ou refusent une commande.")

    def reject(self, principal: Principal, order_id: uuid.UUID, reason: str) -> OrderPublic:
        self._approver(principal)
        if len(reason.strip()) < 3:
            raise InvalidInput("Le motif du refus est requis.", field="reason")
        public = self._move(order_id, "rejected", principal.subject, reason.strip())
        self._notify(public, "Votre commande a été refusée par la CTM.")
        return public

    def approve(self, principal: Principal, order_id: uuid.UUID, reason: str | None = None
                ) -> OrderPublic:
        """``held → inProgress``, then provisioning: ``completed`` or ``failed``."""
        self._approver(principal)
        with self._ctx.session() as session:
            order = repository.get_order(session=session, order_id=order_id, lock=True)
            if order is None:
                raise NotFound("commande introuvable")
            self._ctx.record(session, entity="order", entity_id=order.id,
                             organisation=order.organisation, current=order.state,
                             target="inProgress", actor=principal.subject,
                             reason=reason or "approuvée")
            order.state, order.updated_at = "inProgress", utcnow()
            session.add(order)
            for item in repository.list_items(session=session, order_id=order.id):
                if item.action != "add":
                    continue
                version = repository.get_version(session=session,
                                                 version_id=item.offering_version_id)
                assert version is not None
                sub = Subscription(
                    organisation=order.organisation, offering_id=version.offering_id,
                    offering_version_id=version.id, order_id=order.id, state="created",
                    site_id=item.site_id, site_b_id=item.site_b_id,
                    characteristics=item.characteristics)
                session.add(sub)
                session.flush()
                item.subscription_id = sub.id
                session.add(item)
                self._ctx.record(session, entity="subscription", entity_id=sub.id,
                                 organisation=order.organisation, current=None,
                                 target="created", actor=principal.subject, reason=None)
            session.commit()
        return self._provision(order_id, principal.subject)

    def retry(self, principal: Principal, order_id: uuid.UUID) -> OrderPublic:
        """``failed → inProgress`` and provisioning again (what succeeded before is found,
        not allocated twice)."""
        self._approver(principal)

        def guard(order: Order) -> None:
            if order.state != "failed":
                raise Conflict("Seule une commande en échec se relance : celle-ci est "
                               f"« {ORDER_LABELS[order.state]} » ({order.state}).")

        self._move(order_id, "inProgress", principal.subject, "nouvelle tentative", guard)
        return self._provision(order_id, principal.subject)

    def _requests(self, session: Session, order: Order, actor: str
                  ) -> builtins.list[tuple[OrderItem, Subscription, Offering, ProvisioningRequest]]:
        result = []
        for item in repository.list_items(session=session, order_id=order.id):
            assert item.subscription_id is not None
            sub = repository.get_subscription(session=session,
                                              subscription_id=item.subscription_id)
            assert sub is not None
            offering = repository.get_offering_by_id(session=session,
                                                     offering_id=sub.offering_id)
            assert offering is not None
            refs = []
            for sid in (item.site_id, item.site_b_id):
                site = repository.get_site(session=session, site_id=sid) if sid else None
                refs.append(SiteRef(site.id, site.name, site.latitude, site.longitude,
                                    site.fibre_reachable) if site else None)
            result.append((item, sub, offering, ProvisioningRequest(
                subscription_id=sub.id, item_id=item.id, organisation=order.organisation,
                offering_code=offering.code, offering_name=offering.name,
                characteristics=item.values(), actor=actor, site=refs[0], site_b=refs[1],
                resources=sub.allocated())))
        return result

    def _provision(self, order_id: uuid.UUID, actor: str) -> OrderPublic:
        with self._ctx.session() as session:
            order = repository.get_order(session=session, order_id=order_id)
            assert order is not None
            work = self._requests(session, order, actor)
            try:
                for item, sub, offering, _ in work:  # subscriptions enter their pending state
                    if item.action == "modify" and sub.state != "active":
                        raise Conflict(f"{offering.name} : l'abonnement est « "
                                       f"{SUBSCRIPTION_LABELS[sub.state]} », il ne peut plus "
                                       "être modifié.")
                    target = {"add": "pendingActive",
                              "delete": "pendingTerminate"}.get(item.action)
                    if target and sub.state != target:
                        self._ctx.record(session, entity="subscription", entity_id=sub.id,
                                         organisation=order.organisation, current=sub.state,
                                         target=target, actor=actor, reason=None)
                        sub.state = target
                        session.add(sub)
            except DomainError as exc:  # the subscription changed since the order was placed
                session.rollback()
                return self._finish(order_id, actor, "failed", exc.message, [])
            session.commit()
        done: builtins.list[tuple[OrderItem, ProvisioningRequest, ProvisionOutcome | None]] = []
        failure: str | None = None
        for item, _, offering, request in work:
            provisioner = self._provisioners[offering.provisioner]
            try:
                if item.action == "add":
                    done.append((item, request, provisioner.provision(request)))
                elif item.action == "modify":
                    done.append((item, request, provisioner.modify(request)))
                else:
                    provisioner.release(request)
                    done.append((item, request, None))
            except DomainError as exc:
                failure = f"{offering.name} : {exc.message}"
            except Exception as exc:  # noqa: BLE001 - any failure leaves the order failed
                log.exception("provisioning of %s failed", request.subscription_id)
                failure = f"{offering.name} : erreur technique ({type(exc).__name__})"
            if failure:
                break
        if failure:
            kinds = {o.code: o.provisioner for _, _, o, _ in work}
            for item, request, _ in reversed(done):  # nothing stays half-allocated
                if item.action == "add":
                    try:
                        self._provisioners[kinds[request.offering_code]].release(
                            request, undo=True)
                    except Exception:  # noqa: BLE001 - logged; the retry releases again
                        log.exception("undo of %s failed", request.subscription_id)
            return self._finish(order_id, actor, "failed", failure, [])
        return self._finish(order_id, actor, "completed", None, done)

    def sweep(self, *, actor: str = "balayage", older_than: timedelta = SWEEP_GRACE
              ) -> SweepReport:
        """Put right what a crash between allocation and activation left behind (run at
        start and by ``services sweep``):

        - an order ``inProgress`` for longer than ``older_than`` is provisioned again: the
          provisioners find what the interrupted attempt allocated (keyed by subscription),
          so it completes without allocating twice, or fails and releases everything;
        - fibre pairs still held by a subscription that will never come into service (still
          ``pendingActive`` under an order that failed, was rejected or cancelled; or
          ``created`` / ``terminated``) are released.

        Each order is claimed under a row lock first, so two sweeps never take up the same
        one."""
        cutoff = utcnow() - older_than
        resumed: builtins.list[tuple[uuid.UUID, str]] = []
        with self._ctx.session() as session:
            stale = repository.stale_orders(session=session, state="inProgress", before=cutoff)
        for order_id in stale:
            with self._ctx.session() as session:
                order = repository.get_order(session=session, order_id=order_id, lock=True)
                updated = _aware(order.updated_at) if order else None
                if order is None or order.state != "inProgress" or updated is None \
                        or updated >= cutoff:
                    continue  # moved on, or taken up by another sweep meanwhile
                order.updated_at = utcnow()  # the claim
                session.add(order)
                append(session, AuditRecord(
                    action="services.order.sweep", actor=actor,
                    organisation=order.organisation, target=str(order.id),
                    reason="mise en service interrompue, reprise"))
                session.commit()
            public = self._provision(order_id, actor)
            resumed.append((order_id, public.state))
        released: builtins.list[tuple[uuid.UUID, int]] = []
        with self._ctx.session() as session:
            for sub_id in repository.orphan_pair_holders(session=session):
                count = repository.release_pairs(session=session, subscription_id=sub_id)
                sub = repository.get_subscription(session=session, subscription_id=sub_id)
                append(session, AuditRecord(
                    action="services.fibre.sweep", actor=actor,
                    organisation=sub.organisation if sub else None, target=str(sub_id),
                    reason="paires retenues par un abonnement qui ne sera pas mis en service",
                    details={"pairs": count, "state": sub.state if sub else None}))
                released.append((sub_id, count))
            session.commit()
        if resumed or released:
            log.warning("sweep: %d orders taken up again, pairs released for %d subscriptions",
                        len(resumed), len(released))
        return SweepReport(orders=resumed, released=released)

    def _finish(self, order_id: uuid.UUID, actor: str, target: str, reason: str | None,
                done: Sequence[tuple[OrderItem, ProvisioningRequest, ProvisionOutcome | None]]
                ) -> OrderPublic:
        now = utcnow()
        secrets_to_keep: builtins.list[tuple[uuid.UUID, str, str]] = []
        with self._ctx.session() as session:
            order = repository.get_order(session=session, order_id=order_id, lock=True)
            assert order is not None
            for item, request, outcome in done:
                sub = repository.get_subscription(session=session,
                                                  subscription_id=request.subscription_id)
                assert sub is not None
                if item.action == "add" and outcome is not None:
                    self._ctx.record(session, entity="subscription", entity_id=sub.id,
                                     organisation=sub.organisation, current=sub.state,
                                     target="active", actor=actor, reason=None,
                                     details={"resources": outcome.resources})
                    sub.state, sub.activated_at = "active", now
                    sub.resources = json.dumps(outcome.resources, ensure_ascii=False)
                    if outcome.secret:
                        secrets_to_keep.append((sub.id, str(outcome.resources.get(
                            "client_id", "")), outcome.secret))
                elif item.action == "modify" and outcome is not None:
                    sub.characteristics = item.characteristics
                    sub.resources = json.dumps(outcome.resources, ensure_ascii=False)
                    append(session, AuditRecord(
                        action="services.subscription.modify", actor=actor,
                        organisation=sub.organisation, target=str(sub.id),
                        details={"characteristics": item.values()}))
                elif item.action == "delete":
                    self._ctx.record(session, entity="subscription", entity_id=sub.id,
                                     organisation=sub.organisation, current=sub.state,
                                     target="terminated", actor=actor, reason=None)
                    sub.state, sub.terminated_at = "terminated", now
                session.add(sub)
            self._ctx.record(session, entity="order", entity_id=order.id,
                             organisation=order.organisation, current=order.state,
                             target=target, actor=actor, reason=reason)
            order.state, order.updated_at, order.state_reason = target, now, reason
            if target == "completed":
                order.completed_at = now
            session.add(order)
            session.commit()
            public = _order_public(session, order)
        for sub_id, client_id, secret in secrets_to_keep:
            sealed = self._ctx.fernet.encrypt(json.dumps(
                {"client_id": client_id, "client_secret": secret}).encode()).decode()
            self._ctx.store.set(f"svc:secret:{sub_id}", sealed, ttl=SECRET_TTL)
        self._notify(public, "Votre commande est mise en service." if target == "completed"
                     else "La mise en service de votre commande a échoué ; la CTM peut la "
                          "relancer.")
        return public


# -- subscriptions and inventory --------------------------------------------------------------


class InventoryService:
    def __init__(self, ctx: _Context, provisioners: dict[str, Provisioner]) -> None:
        self._ctx = ctx
        self._provisioners = provisioners

    def list(self, principal: Principal, *, organisation: str | None = None,
             include_terminated: bool = False) -> builtins.list[SubscriptionPublic]:
        if not principal.sees_everything:
            if principal.org is None or not principal.reads(principal.org):
                raise Forbidden("Aucune organisation dont vous puissiez voir l'inventaire.")
            organisation = principal.org
        states = None if include_terminated else LIVE_STATES
        with self._ctx.session() as session:
            return [_subscription_public(session, s, self._ctx.store)
                    for s in repository.list_subscriptions(
                        session=session, organisation=organisation, states=states)]

    def get(self, principal: Principal, subscription_id: uuid.UUID) -> SubscriptionPublic:
        with self._ctx.session() as session:
            sub = repository.get_subscription(session=session, subscription_id=subscription_id)
            if sub is None or not principal.reads(sub.organisation):
                raise NotFound("abonnement introuvable")
            return _subscription_public(session, sub, self._ctx.store)

    def reveal_secret(self, principal: Principal, subscription_id: uuid.UUID) -> SecretPublic:
        """The client secret an order provisioned, shown once to a buyer of the organisation
        (kept encrypted until then, at most seven days)."""
        with self._ctx.session() as session:
            sub = repository.get_subscription(session=session, subscription_id=subscription_id)
            if sub is None or not principal.reads(sub.organisation):
                raise NotFound("abonnement introuvable")
            if not principal.buys_for(sub.organisation):
                raise Forbidden("Seul un acheteur de l'organisation peut afficher le secret.")
            sealed = self._ctx.store.take(f"svc:secret:{sub.id}")
            if sealed is None:
                raise NotFound("Le secret a déjà été affiché (ou a expiré) : faites-en émettre "
                               "un nouveau depuis la page « Applications ».")
            try:
                data = json.loads(self._ctx.fernet.decrypt(sealed.encode()))
            except InvalidToken as exc:
                raise NotFound("secret illisible") from exc
            append(session, AuditRecord(action="services.subscription.secret_shown",
                                        actor=principal.subject, organisation=sub.organisation,
                                        target=str(sub.id)))
            session.commit()
        return SecretPublic(**data)

    def set_suspended(self, principal: Principal, subscription_id: uuid.UUID, suspended: bool,
                      reason: str) -> SubscriptionPublic:
        """``active ⇄ suspended`` by a CTM approver (an administrative suspension). It really
        suspends what was provisioned (the provisioner's ``suspend`` / ``resume``: the OIDC
        client disabled and its tokens revoked, then enabled again; the archive space closed,
        then reopened; fibre pairs kept allocated; a work order to the team), before the new
        state is recorded; when the provisioner fails the subscription keeps its state."""
        if not principal.can_approve:
            raise Forbidden("Seuls les valideurs de la CTM suspendent ou rétablissent un "
                            "abonnement.")
        target = "suspended" if suspended else "active"
        with self._ctx.session() as session:
            sub = repository.get_subscription(session=session, subscription_id=subscription_id)
            if sub is None:
                raise NotFound("abonnement introuvable")
            check_transition("subscription", sub.state, target)
            current = sub.state
            provisioner, request = self._provisioning(session, sub, principal.subject)
        (provisioner.suspend if suspended else provisioner.resume)(request)
        with self._ctx.session() as session:
            sub = repository.get_subscription(session=session, subscription_id=subscription_id,
                                              lock=True)
            assert sub is not None
            if sub.state != current:  # changed meanwhile: give the service back as it was
                (provisioner.resume if suspended else provisioner.suspend)(request)
                raise Conflict("L'abonnement a changé d'état entre-temps : réessayez.")
            self._ctx.record(session, entity="subscription", entity_id=sub.id,
                             organisation=sub.organisation, current=sub.state, target=target,
                             actor=principal.subject, reason=reason)
            sub.state = target
            session.add(sub)
            session.commit()
            public = _subscription_public(session, sub, self._ctx.store)
        self._ctx.notify(sub.organisation,
                         f"Abonnement {public.offering_name} : {SUBSCRIPTION_LABELS[target]}",
                         f"Bonjour,\n\nL'abonnement « {public.offering_name} » ({sub.id}) est "
                         f"{SUBSCRIPTION_LABELS[target]}.\nMotif : {reason}\n")
        return public

    def _provisioning(self, session: Session, sub: Subscription, actor: str
                      ) -> tuple[Provisioner, ProvisioningRequest]:
        """The provisioner of a subscription's offering and a request describing what was
        provisioned for it (a fresh ``item_id`` keys this change)."""
        offering = repository.get_offering_by_id(session=session, offering_id=sub.offering_id)
        assert offering is not None
        refs = []
        for sid in (sub.site_id, sub.site_b_id):
            site = repository.get_site(session=session, site_id=sid) if sid else None
            refs.append(SiteRef(site.id, site.name, site.latitude, site.longitude,
                                site.fibre_reachable) if site else None)
        return self._provisioners[offering.provisioner], ProvisioningRequest(
            subscription_id=sub.id, item_id=uuid.uuid4(), organisation=sub.organisation,
            offering_code=offering.code, offering_name=offering.name,
            characteristics=sub.values(), actor=actor, site=refs[0], site_b=refs[1],
            resources=sub.allocated())


class FibreService:
    def __init__(self, ctx: _Context) -> None:
        self._ctx = ctx

    def add_pop(self, code: str, name: str, delegation: str, latitude: float,
                longitude: float) -> None:
        with self._ctx.session() as session:
            if repository.get_pop(session=session, code=code) is None:
                session.add(FibrePop(code=code, name=name, delegation=delegation,
                                     latitude=latitude, longitude=longitude))
                session.commit()

    def add_cable(self, code: str, pop_a: str, pop_b: str, length_km: float, pairs: int,
                  used: int = 0) -> None:
        """A cable of ``pairs`` pairs, ``used`` of them already allocated outside the
        catalogue (idempotent by code)."""
        with self._ctx.session() as session:
            if any(c.code == code for c in repository.list_cables(session=session)):
                return
            a = repository.get_pop(session=session, code=pop_a)
            b = repository.get_pop(session=session, code=pop_b)
            if a is None or b is None:
                raise NotFound("point de présence inconnu")
            delegation = a.delegation if a.delegation == b.delegation else (
                f"{a.delegation} / {b.delegation}")
            cable = FibreCable(code=code, pop_a_id=a.id, pop_b_id=b.id, length_km=length_km,
                               delegation=delegation)
            session.add(cable)
            session.flush()
            for number in range(1, pairs + 1):
                session.add(FibrePair(cable_id=cable.id, number=number,
                                      state="allocated" if number <= used else "free"))
            session.commit()

    def reserves(self, principal: Principal) -> FibreReservePublic:
        """The reserves with each cable's pairs and the use rate (the CTM only)."""
        if not principal.sees_everything:
            raise Forbidden("Les réserves de fibre sont consultées par la CTM.")
        with self._ctx.session() as session:
            pops = repository.list_pops(session=session)
            codes = {p.id: p.code for p in pops}
            counts = repository.pair_counts(session=session)
            cables = []
            for c in repository.list_cables(session=session):
                free = counts.get((c.id, "free"), 0)
                allocated = counts.get((c.id, "allocated"), 0)
                out = counts.get((c.id, "out_of_service"), 0)
                cables.append(CablePublic(
                    code=c.code, from_pop=codes[c.pop_a_id], to_pop=codes[c.pop_b_id],
                    length_km=c.length_km, delegation=c.delegation,
                    pairs=free + allocated + out, free=free, allocated=allocated,
                    out_of_service=out))
        total = sum(c.pairs for c in cables)
        allocated = sum(c.allocated for c in cables)
        return FibreReservePublic(
            pops=[PopPublic(code=p.code, name=p.name, delegation=p.delegation,
                            latitude=p.latitude, longitude=p.longitude) for p in pops],
            cables=cables, pairs=total, allocated=allocated,
            use_rate=round(allocated / total, 4) if total else 0.0)


# -- cost statements --------------------------------------------------------------------------


def _month_bounds(month: str) -> tuple[date, datetime, datetime]:
    start, end = parse_month(month)
    return (start, datetime.combine(start, time(), UTC), datetime.combine(end, time(), UTC))


def _stored_statement(row: IssuedStatement) -> Statement:
    lines = [StatementLine(**li) for li in json.loads(row.lines)]
    return StatementService._assemble(row.month, None, lines, _aware(row.issued_at),
                                      json.loads(row.inputs))


class StatementService:
    """Monthly statements. A subscription active at some time during the month is charged
    its version's monthly price, plus its one-off price in the month it was activated; each
    offering's charges are shared by the sharing key in force on the first day of the
    month.

    Once a month is over its statement is issued and stored (``close``, or the first time
    it is viewed): lines, amounts, the key versions and the inputs used (populations, usage).
    From then on it is served as stored, so nothing changed later (a population, a name, a
    key) rewrites it. The current month, and those to come, are computed live."""

    def __init__(self, ctx: _Context) -> None:
        self._ctx = ctx

    def compute(self, principal: Principal, month: str, organisation: str | None = None
                ) -> Statement:
        if organisation is None:
            if not principal.sees_everything:
                raise Forbidden("Le relevé de toute la CTM est réservé à la CTM.")
        elif not principal.reads(organisation):
            raise NotFound("organisation introuvable")
        _first_day, _start, end = _month_bounds(month)
        if end <= utcnow():
            whole, _ = self._issue(month, principal.subject)
        else:
            whole = self._live(month)
        return self._for(whole, organisation)

    def close(self, principal: Principal, month: str) -> tuple[Statement, bool]:
        """Issue and store the statement of a month that is over; the stored one and
        whether it was issued now (False: it already was, and is left as it is)."""
        if not principal.sees_everything:
            raise Forbidden("La clôture d'un mois est réservée à la CTM.")
        _first_day, _start, end = _month_bounds(month)
        if end > utcnow():
            raise Conflict(f"le mois {month} n'est pas terminé : son relevé ne peut pas "
                           "encore être émis")
        return self._issue(month, principal.subject)

    def _issue(self, month: str, actor: str) -> tuple[Statement, bool]:
        with self._ctx.session() as session:
            row = repository.get_issued_statement(session=session, month=month)
            if row is not None:
                return _stored_statement(row), False
        computed = self._live(month)
        lines = [dict(li.__dict__) for li in computed.lines]
        with self._ctx.session() as session:
            session.add(IssuedStatement(
                month=month, lines=json.dumps(lines, ensure_ascii=False),
                inputs=json.dumps(computed.inputs, ensure_ascii=False),
                total_cents=computed.total_cents, issued_by=actor))
            append(session, AuditRecord(
                action="services.statement.issue", actor=actor, target=month,
                details={"total_cents": computed.total_cents, "lines": len(lines)}))
            try:
                session.commit()
                issued = True
            except IntegrityError:  # issued meanwhile by another request: that one stands
                session.rollback()
                issued = False
            row = repository.get_issued_statement(session=session, month=month)
            assert row is not None
            return _stored_statement(row), issued

    def _live(self, month: str) -> Statement:
        """The whole month's statement computed from what the database and the directory
        say now."""
        first_day, start, end = _month_bounds(month)
        lines: builtins.list[StatementLine] = []
        keys: dict[str, Any] = {}
        populations: dict[str, int | None] = {}
        used: builtins.list[dict[str, Any]] = []
        with self._ctx.session() as session:
            by_offering: dict[uuid.UUID, list[tuple[Subscription, OfferingVersion]]] = {}
            for sub in repository.subscriptions_in_period(session=session, start=start,
                                                          end=end):
                version = repository.get_version(session=session,
                                                 version_id=sub.offering_version_id)
                assert version is not None
                by_offering.setdefault(sub.offering_id, []).append((sub, version))
            for offering_id, subs in by_offering.items():
                offering = repository.get_offering_by_id(session=session,
                                                         offering_id=offering_id)
                assert offering is not None
                rule = repository.rule_on(session=session, offering_id=offering_id,
                                          day=first_day)
                method = rule.method if rule else "subscriber"
                keys[offering.code] = {
                    "rule": str(rule.id) if rule else None, "method": method,
                    "effective_from": rule.effective_from.isoformat()[:7] if rule else None}
                lines.extend(self._lines(offering, method, subs, start, end, populations,
                                         used))
        return self._assemble(month, None, lines, None, {
            "keys": dict(sorted(keys.items())), "populations": dict(sorted(populations.items())),
            "subscriptions": sorted(used, key=lambda u: (u["organisation"], u["offering"],
                                                         u["id"]))})

    @staticmethod
    def _assemble(month: str, organisation: str | None, lines: builtins.list[StatementLine],
                  issued_at: datetime | None, inputs: dict[str, Any]) -> Statement:
        names = {line.organisation: line.organisation_name for line in lines}
        members = [MemberTotal(
            organisation=org, organisation_name=names[org],
            share_cents=sum(li.share_cents for li in lines if li.organisation == org),
            alone_cents=sum(li.alone_cents for li in lines if li.organisation == org))
            for org in sorted({li.organisation for li in lines}, key=lambda o: names[o])]
        return Statement(month=month, organisation=organisation,
                         lines=sorted(lines, key=lambda li: (li.organisation_name,
                                                             li.offering_name)),
                         members=members, total_cents=sum(li.share_cents for li in lines),
                         alone_cents=sum(li.alone_cents for li in lines),
                         issued_at=issued_at, inputs=inputs)

    def _for(self, whole: Statement, organisation: str | None) -> Statement:
        """The whole month's statement, or one organisation's part of it (with only its own
        inputs: the keys of its offerings, its population, its subscriptions)."""
        if organisation is None:
            return whole
        lines = [li for li in whole.lines if li.organisation == organisation]
        offerings = {li.offering for li in lines}
        inputs = {
            "keys": {code: key for code, key in whole.inputs.get("keys", {}).items()
                     if code in offerings},
            "populations": {org: n for org, n in whole.inputs.get("populations", {}).items()
                            if org == organisation},
            "subscriptions": [u for u in whole.inputs.get("subscriptions", [])
                              if u["organisation"] == organisation]}
        return self._assemble(whole.month, organisation, lines, whole.issued_at, inputs)

    def _lines(self, offering: Offering, method: str,
               subs: builtins.list[tuple[Subscription, OfferingVersion]], start: datetime,
               end: datetime, populations: dict[str, int | None],
               used: builtins.list[dict[str, Any]]) -> builtins.list[StatementLine]:
        charges = []
        for sub, version in subs:
            activated = _aware(sub.activated_at)
            new = activated is not None and start <= activated < end
            usage = 0
            if version.usage_characteristic:
                try:
                    usage = int(sub.values().get(version.usage_characteristic, "0"))
                except ValueError:
                    usage = 0
            charge = Charge(
                organisation=sub.organisation,
                cost_cents=version.monthly_cents + (version.one_off_cents if new else 0),
                alone_cents=version.alone_monthly_cents + (
                    version.alone_one_off_cents if new else 0),
                usage=usage)
            charges.append(charge)
            used.append({"id": str(sub.id), "organisation": sub.organisation,
                         "offering": offering.code, "version": version.version,
                         "cost_cents": charge.cost_cents, "alone_cents": charge.alone_cents,
                         "usage": usage})
        orgs = sorted({c.organisation for c in charges})
        for org in orgs:
            if org not in populations:
                info = self._ctx.directory.get(org)
                populations[org] = info.population if info else None
        shares = share(method, charges, populations)
        return [StatementLine(
            organisation=org, organisation_name=self._ctx.org_name(org),
            offering=offering.code, offering_name=offering.name, method=method,
            subscriptions=sum(1 for c in charges if c.organisation == org),
            share_cents=shares[org],
            alone_cents=sum(c.alone_cents for c in charges if c.organisation == org))
            for org in orgs]

    @staticmethod
    def to_csv(statement: Statement) -> str:
        """Semicolon-separated, decimal comma (as French spreadsheets read it)."""
        out = io.StringIO()
        writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
        writer.writerow(["mois", "organisation", "nom", "offre", "cle_de_repartition",
                         "abonnements", "part_eur", "seul_eur", "economie_eur"])

        def amount(cents: int) -> str:
            return euros(cents).replace("\u202f", "")

        def cell(text: str) -> str:
            return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text

        for li in statement.lines:
            writer.writerow([statement.month, li.organisation, cell(li.organisation_name),
                             cell(li.offering_name), METHOD_LABELS[li.method],
                             li.subscriptions, amount(li.share_cents), amount(li.alone_cents),
                             amount(li.saving_cents)])
        writer.writerow([statement.month, "", "TOTAL", "", "", "",
                         amount(statement.total_cents), amount(statement.alone_cents),
                         amount(statement.saving_cents)])
        return out.getvalue()


# -- the whole ----------------------------------------------------------------------------------


class ServiceCatalogue:
    """Every service of the catalogue, built once per application.

    Example::

        catalogue = ServiceCatalogue(engine=engine, directory=..., registrar=..., mailer=...,
                                     store=store, secret_key=key, archive_spaces=None)
        catalogue.orders.create(principal, OrderCreate(items=[...]))
    """

    def __init__(self, *, engine: Engine, directory: OrganisationDirectory,
                 registrar: ClientRegistrar, mailer: Mailer, store: KeyValueStore,
                 secret_key: str, archive_spaces: ArchiveSpaces | None = None) -> None:
        self.context = _Context(engine=engine, directory=directory, mailer=mailer,
                                store=store, secret_key=secret_key)
        self.provisioners: dict[str, Provisioner] = {
            "oidc_client": OidcClientProvisioner(registrar),
            "archive_space": ArchiveSpaceProvisioner(archive_spaces),
            "fibre": FibreProvisioner(engine),
            "network_team": WorkOrderProvisioner(engine, "Équipe réseau (NOC)"),
            "datacentre_team": WorkOrderProvisioner(engine, "Équipe du data centre"),
        }
        self.sites = SiteService(self.context)
        self.catalogue = CatalogueService(self.context)
        self.orders = OrderService(self.context, self.provisioners)
        self.inventory = InventoryService(self.context, self.provisioners)
        self.fibre = FibreService(self.context)
        self.statements = StatementService(self.context)

    @property
    def mailer(self) -> Mailer:
        return self.context.mailer

    @mailer.setter
    def mailer(self, value: Mailer) -> None:
        self.context.mailer = value

    def seed(self, *, sites: bool = True, rules_from: date = date(2026, 1, 1)) -> None:
        """The catalogue and the fibre reserves, and with ``sites`` the demonstration sites
        of the organisations (idempotent)."""
        for code, name, delegation, lat, lon in POPS:
            self.fibre.add_pop(code, name, delegation, lat, lon)
        for code, a, b, km, pairs, used in CABLES:
            self.fibre.add_cable(code, a, b, km, pairs, used)
        with self.context.session() as session:
            for org, name, address, lat, lon, fibre in SITES if sites else []:
                if self.context.directory.get(org) is None:
                    continue
                if repository.find_site(session=session, organisation=org, name=name) is None:
                    session.add(Site(organisation=org, name=name, address=address,
                                     latitude=lat, longitude=lon, fibre_reachable=fibre))
            for spec in OFFERINGS:
                if repository.get_offering(session=session, code=spec["code"]) is not None:
                    continue
                offering = Offering(code=spec["code"], name=spec["name"],
                                    description=spec["description"],
                                    provisioner=spec["provisioner"],
                                    two_sites=spec["two_sites"])
                session.add(offering)
                session.flush()
                session.add(OfferingVersion(
                    offering_id=offering.id, version=1, state="active",
                    characteristics=json.dumps(spec["characteristics"], ensure_ascii=False),
                    one_off_cents=spec["one_off"], monthly_cents=spec["monthly"],
                    alone_one_off_cents=spec["alone_one_off"],
                    alone_monthly_cents=spec["alone_monthly"],
                    usage_characteristic=spec["usage"], activated_at=utcnow()))
                session.add(SharingRule(offering_id=offering.id, method=spec["sharing"],
                                        effective_from=rules_from, created_by="initialisation",
                                        reason="clé initiale du catalogue"))
                append(session, AuditRecord(action="services.catalogue.seed",
                                            actor="initialisation", target=spec["code"]))
            session.commit()
