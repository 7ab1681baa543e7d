"""Every query on the ``svc_`` tables. Keyword-only functions, session first."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import func, update
from sqlmodel import Session, col, select

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
    WorkOrder,
)

# -- sites ------------------------------------------------------------------------------------


def list_sites(*, session: Session, organisation: str | None = None) -> Sequence[Site]:
    query = select(Site).order_by(col(Site.organisation), col(Site.name))
    if organisation is not None:
        query = query.where(Site.organisation == organisation)
    return session.exec(query).all()


def get_site(*, session: Session, site_id: uuid.UUID) -> Site | None:
    return session.get(Site, site_id)


def find_site(*, session: Session, organisation: str, name: str) -> Site | None:
    return session.exec(select(Site).where(Site.organisation == organisation,
                                           Site.name == name)).first()


# -- catalogue --------------------------------------------------------------------------------


def list_offerings(*, session: Session) -> Sequence[Offering]:
    return session.exec(select(Offering).order_by(col(Offering.name))).all()


def get_offering(*, session: Session, code: str) -> Offering | None:
    return session.exec(select(Offering).where(Offering.code == code)).first()


def get_offering_by_id(*, session: Session, offering_id: uuid.UUID) -> Offering | None:
    return session.get(Offering, offering_id)


def list_versions(*, session: Session, offering_id: uuid.UUID) -> Sequence[OfferingVersion]:
    return session.exec(select(OfferingVersion).where(OfferingVersion.offering_id == offering_id)
                        .order_by(col(OfferingVersion.version))).all()


def get_version(*, session: Session, version_id: uuid.UUID) -> OfferingVersion | None:
    return session.get(OfferingVersion, version_id)


def active_version(*, session: Session, offering_id: uuid.UUID) -> OfferingVersion | None:
    return session.exec(select(OfferingVersion).where(
        OfferingVersion.offering_id == offering_id, OfferingVersion.state == "active")
        .order_by(col(OfferingVersion.version).desc())).first()


def list_rules(*, session: Session, offering_id: uuid.UUID) -> Sequence[SharingRule]:
    return session.exec(select(SharingRule).where(SharingRule.offering_id == offering_id)
                        .order_by(col(SharingRule.effective_from))).all()


def rule_on(*, session: Session, offering_id: uuid.UUID, day: date) -> SharingRule | None:
    """The sharing rule in force on ``day`` (the latest one effective on or before it)."""
    return session.exec(select(SharingRule).where(
        SharingRule.offering_id == offering_id, col(SharingRule.effective_from) <= day)
        .order_by(col(SharingRule.effective_from).desc())).first()


def get_issued_statement(*, session: Session, month: str) -> IssuedStatement | None:
    return session.exec(select(IssuedStatement).where(IssuedStatement.month == month)).first()


# -- orders and subscriptions -----------------------------------------------------------------


def get_order(*, session: Session, order_id: uuid.UUID, lock: bool = False) -> Order | None:
    query = select(Order).where(Order.id == order_id)
    if lock:
        query = query.with_for_update()
    return session.exec(query).first()


def list_orders(*, session: Session, organisation: str | None = None,
                state: str | None = None) -> Sequence[Order]:
    query = select(Order).order_by(col(Order.created_at).desc())
    if organisation is not None:
        query = query.where(Order.organisation == organisation)
    if state is not None:
        query = query.where(Order.state == state)
    return session.exec(query).all()


def list_items(*, session: Session, order_id: uuid.UUID) -> Sequence[OrderItem]:
    return session.exec(select(OrderItem).where(OrderItem.order_id == order_id)
                        .order_by(col(OrderItem.position))).all()


def list_changes(*, session: Session, entity_id: uuid.UUID) -> Sequence[StateChange]:
    return session.exec(select(StateChange).where(StateChange.entity_id == entity_id)
                        .order_by(col(StateChange.at), col(StateChange.to_state))).all()


def get_subscription(*, session: Session, subscription_id: uuid.UUID, lock: bool = False
                     ) -> Subscription | None:
    query = select(Subscription).where(Subscription.id == subscription_id)
    if lock:
        query = query.with_for_update()
    return session.exec(query).first()


def list_subscriptions(*, session: Session, organisation: str | None = None,
                       states: Sequence[str] | None = None) -> Sequence[Subscription]:
    query = select(Subscription).order_by(col(Subscription.created_at))
    if organisation is not None:
        query = query.where(Subscription.organisation == organisation)
    if states is not None:
        query = query.where(col(Subscription.state).in_(list(states)))
    return session.exec(query).all()


def subscriptions_in_period(*, session: Session, start: datetime, end: datetime
                            ) -> Sequence[Subscription]:
    """Subscriptions active at some time in [start, end): activated before the end and not
    terminated before the start."""
    return session.exec(select(Subscription).where(
        col(Subscription.activated_at).is_not(None), col(Subscription.activated_at) < end,
        (col(Subscription.terminated_at).is_(None)) | (col(Subscription.terminated_at) > start),
    ).order_by(col(Subscription.organisation))).all()


# -- fibre reserves ---------------------------------------------------------------------------


def list_pops(*, session: Session) -> Sequence[FibrePop]:
    return session.exec(select(FibrePop).order_by(col(FibrePop.code))).all()


def get_pop(*, session: Session, code: str) -> FibrePop | None:
    return session.exec(select(FibrePop).where(FibrePop.code == code)).first()


def list_cables(*, session: Session) -> Sequence[FibreCable]:
    return session.exec(select(FibreCable).order_by(col(FibreCable.code))).all()


def pair_counts(*, session: Session) -> dict[tuple[uuid.UUID, str], int]:
    """(cable id, pair state) → number of pairs."""
    rows = session.exec(select(FibrePair.cable_id, FibrePair.state, func.count())
                        .group_by(col(FibrePair.cable_id), col(FibrePair.state))).all()
    return {(cable_id, state): count for cable_id, state, count in rows}


def lock_free_pair(*, session: Session, cable_id: uuid.UUID) -> FibrePair | None:
    """One free pair of the cable, row-locked; pairs other transactions hold are skipped
    (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite serialises writers anyway)."""
    return session.exec(select(FibrePair).where(
        FibrePair.cable_id == cable_id, FibrePair.state == "free")
        .order_by(col(FibrePair.number)).limit(1).with_for_update(skip_locked=True)).first()


def claim_pair(*, session: Session, pair_id: uuid.UUID, subscription_id: uuid.UUID,
               now: datetime) -> bool:
    """Mark the pair allocated if it is still free; False when someone took it first."""
    result = session.execute(update(FibrePair).where(
        col(FibrePair.id) == pair_id, col(FibrePair.state) == "free",
    ).values(state="allocated", subscription_id=subscription_id, allocated_at=now))
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def pairs_of(*, session: Session, subscription_id: uuid.UUID) -> Sequence[FibrePair]:
    return session.exec(select(FibrePair).where(FibrePair.subscription_id == subscription_id)
                        .order_by(col(FibrePair.cable_id))).all()


def stale_orders(*, session: Session, state: str, before: datetime) -> list[uuid.UUID]:
    """Orders left in ``state`` since before ``before`` (a provisioning interrupted)."""
    return list(session.exec(select(Order.id).where(
        Order.state == state, col(Order.updated_at) < before)).all())


def orphan_pair_holders(*, session: Session) -> list[uuid.UUID]:
    """Subscriptions holding fibre pairs though nothing will bring them into service: still
    ``pendingActive`` under an order that ended without completing (failed, rejected,
    cancelled), or ``created`` / ``terminated``."""
    holders = select(FibrePair.subscription_id).where(
        col(FibrePair.subscription_id).is_not(None)).distinct()
    rows = session.exec(select(Subscription.id, Subscription.state, Order.state).where(
        col(Subscription.id).in_(holders), Subscription.order_id == Order.id)).all()
    return [sid for sid, state, order_state in rows
            if state in ("created", "terminated")
            or (state == "pendingActive" and order_state in ("failed", "rejected", "cancelled"))]


def release_pairs(*, session: Session, subscription_id: uuid.UUID) -> int:
    result = session.execute(update(FibrePair).where(
        col(FibrePair.subscription_id) == subscription_id,
    ).values(state="free", subscription_id=None, allocated_at=None))
    return int(result.rowcount)  # type: ignore[attr-defined]


# -- work orders ------------------------------------------------------------------------------


def get_work_order(*, session: Session, key: str) -> WorkOrder | None:
    return session.exec(select(WorkOrder).where(WorkOrder.key == key)).first()


def list_work_orders(*, session: Session, subscription_id: uuid.UUID) -> Sequence[WorkOrder]:
    return session.exec(select(WorkOrder).where(WorkOrder.subscription_id == subscription_id)
                        .order_by(col(WorkOrder.created_at))).all()
