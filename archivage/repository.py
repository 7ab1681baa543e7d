"""Every query on the archival tables. Keyword-only functions taking the session first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, exists, func, literal, not_, or_, text
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from archivage import fulltext
from archivage.models import DataObject, Deposit, Share, Space, Unit


def active_share_condition(organisation: str, now: datetime) -> Any:
    """True for a unit shared with ``organisation`` (on it or on one of its ancestors)."""
    shared_unit = aliased(Unit)
    return exists(
        select(literal(1)).select_from(Share)
        .join(shared_unit, col(shared_unit.id) == col(Share.unit_id))
        .where(Share.grantee == organisation, col(Share.revoked_at).is_(None),
               col(Share.until) > now,
               col(Unit.path).startswith(col(shared_unit.path)))
    )


def get_unit(*, session: Session, unit_id: str) -> Unit | None:
    return session.get(Unit, unit_id)


def is_shared_with(*, session: Session, unit: Unit, organisation: str, now: datetime) -> bool:
    ancestors = [p for p in unit.path.split("/") if p]
    row = session.exec(select(Share.id).where(
        col(Share.unit_id).in_(ancestors), Share.grantee == organisation,
        col(Share.revoked_at).is_(None), col(Share.until) > now).limit(1)).first()
    return row is not None


def children(*, session: Session, unit_id: str, limit: int = 500) -> Sequence[Unit]:
    return session.exec(select(Unit).where(Unit.parent_id == unit_id)
                        .order_by(col(Unit.created_at), col(Unit.id)).limit(limit)).all()


def subtree(*, session: Session, unit: Unit) -> Sequence[Unit]:
    """The unit and everything below it, top first."""
    return session.exec(select(Unit).where(col(Unit.path).startswith(unit.path))
                        .order_by(func.length(Unit.path))).all()


def objects_of(*, session: Session, unit_id: str) -> Sequence[DataObject]:
    return session.exec(select(DataObject).where(DataObject.unit_id == unit_id)
                        .order_by(col(DataObject.stored_at), col(DataObject.id))).all()


def live_references(*, session: Session, blob_key: str) -> int:
    return int(session.exec(select(func.count()).select_from(DataObject).where(
        DataObject.blob_key == blob_key, col(DataObject.destroyed_at).is_(None))).one())


def _describes(words: list[str]) -> Any:
    """Every word appears in the unit's description (what any reader of it already sees)."""
    described = func.lower(
        col(Unit.title) + " " + func.coalesce(Unit.description, "") + " " + col(Unit.keywords)
        + " " + func.coalesce(Unit.producer, "") + " " + func.coalesce(Unit.classification, "")
        + " " + func.coalesce(Unit.document_type, ""))
    return and_(*(described.contains(w.lower(), autoescape=True) for w in words))


def search_units(
    *, session: Session, organisation: str, now: datetime, query: str | None = None,
    producer: str | None = None, classification: str | None = None,
    document_type: str | None = None, level: str | None = None, since: date | None = None,
    until: date | None = None, final_action: str | None = None, owned_only: bool = False,
    limit: int = 50, offset: int = 0,
) -> Sequence[Unit]:
    visible = col(Unit.organisation) == organisation
    statement = select(Unit).where(
        visible if owned_only else or_(visible, active_share_condition(organisation, now)))
    if query:
        clause = fulltext.match_clause(session, query)
        if clause is not None:
            # the indexed text holds the documents' content: a match in a shared unit still
            # under its communicability delay (units.closed_until) would tell the reader what
            # the closed document says, so such a unit is found by its description only
            closed = and_(col(Unit.organisation) != organisation,
                          col(Unit.access_rule).is_not(None),
                          or_(col(Unit.access_end).is_(None), col(Unit.access_end) > now.date()))
            statement = statement.where(or_(
                and_(not_(closed), text(clause[0]).bindparams(**clause[1])),
                and_(closed, _describes(fulltext.words(query)))))
    if producer:
        statement = statement.where(func.lower(Unit.producer).contains(producer.lower()))
    if classification:
        statement = statement.where(col(Unit.classification).startswith(classification))
    if document_type:
        statement = statement.where(Unit.document_type == document_type)
    if level:
        statement = statement.where(Unit.level == level)
    if final_action:
        statement = statement.where(Unit.final_action == final_action)
    if since:  # units whose dates reach ``since`` or later
        statement = statement.where(or_(col(Unit.end_date) >= since,
                                        and_(col(Unit.end_date).is_(None),
                                             col(Unit.start_date) >= since)))
    if until:
        statement = statement.where(col(Unit.start_date) <= until)
    statement = statement.order_by(col(Unit.created_at).desc(), col(Unit.id)).offset(offset)
    return session.exec(statement.limit(limit)).all()


def get_deposit_by_key(*, session: Session, organisation: str, deposit_key: str
                       ) -> Deposit | None:
    return session.exec(select(Deposit).where(Deposit.organisation == organisation,
                                              Deposit.deposit_key == deposit_key)).first()


def shares_of(*, session: Session, unit_id: str) -> Sequence[Share]:
    return session.exec(select(Share).where(Share.unit_id == unit_id)
                        .order_by(col(Share.created_at))).all()


def get_space(*, session: Session, organisation: str) -> Space | None:
    return session.get(Space, organisation)
