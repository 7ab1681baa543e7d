"""Tables of the service catalogue (prefix ``svc_``): sites, offerings and their versions,
sharing rules, issued statements, orders and their items, subscriptions, the fibre reserves,
work orders and the history of every state change.

Money is held in integer euro cents; characteristics and allocated resources as JSON text.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Column, Date, DateTime, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from plateforme.clock import utcnow

# TMF620 lifecycle of an offering version.
VERSION_STATES = ("draft", "active", "retired")
# TMF622 product order states.
ORDER_STATES = ("acknowledged", "held", "inProgress", "completed", "failed", "rejected",
                "cancelled")
ORDER_ITEM_ACTIONS = ("add", "modify", "delete")
# TMF637 product states.
SUBSCRIPTION_STATES = ("created", "pendingActive", "active", "suspended", "pendingTerminate",
                       "terminated")
SHARING_METHODS = ("equal", "population", "usage", "subscriber")
PAIR_STATES = ("free", "allocated", "out_of_service")
# What provisions an offering (see services_mutualises.provisioners).
PROVISIONER_KINDS = ("oidc_client", "archive_space", "fibre", "network_team", "datacentre_team")


def _json(value: str) -> Any:
    return json.loads(value) if value else None


class Site(SQLModel, table=True):
    """A place of an organisation (town hall, school, fire station...)."""

    __tablename__ = "svc_site"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    organisation: str = Field(index=True, max_length=100)
    name: str = Field(max_length=200)
    address: str = Field(max_length=300)
    latitude: float
    longitude: float
    fibre_reachable: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class Offering(SQLModel, table=True):
    """A product offering of the catalogue; what it is sold as lives in its versions."""

    __tablename__ = "svc_offering"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    code: str = Field(unique=True, index=True, max_length=60)
    name: str = Field(max_length=200)
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    provisioner: str = Field(max_length=30)
    two_sites: bool = False  # a link between two sites of the organisation
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class OfferingVersion(SQLModel, table=True):
    """One version of an offering: characteristics, prices, lifecycle state.

    ``characteristics`` is a JSON list of ``{"name", "label", "values", "default"}``; prices
    are in cents; ``alone_*`` is what a member would pay buying the same service alone (the
    reference of the saving); ``usage_characteristic`` names the characteristic whose value
    weighs a subscription under the « by usage » sharing key.
    """

    __tablename__ = "svc_offering_version"
    __table_args__ = (UniqueConstraint("offering_id", "version"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    offering_id: uuid.UUID = Field(index=True, foreign_key="svc_offering.id")
    version: int
    state: str = Field(default="draft", max_length=20)
    characteristics: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    one_off_cents: int = 0
    monthly_cents: int = 0
    alone_one_off_cents: int = 0
    alone_monthly_cents: int = 0
    usage_characteristic: str | None = Field(default=None, max_length=60)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    activated_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    retired_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]

    def characteristic_specs(self) -> list[dict[str, Any]]:
        return list(_json(self.characteristics) or [])


class SharingRule(SQLModel, table=True):
    """A version of an offering's cost-sharing key, applying from the first day of a month.
    Rules are only ever added, from a month that has not started: past statements keep the
    rule they were computed with."""

    __tablename__ = "svc_sharing_rule"
    __table_args__ = (UniqueConstraint("offering_id", "effective_from"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    offering_id: uuid.UUID = Field(index=True, foreign_key="svc_offering.id")
    method: str = Field(max_length=20)
    effective_from: date = Field(sa_column=Column(Date, nullable=False))
    created_by: str | None = Field(default=None, max_length=255)
    reason: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class IssuedStatement(SQLModel, table=True):
    """A month's statement once the month is over, issued and stored for good: every line
    (per organisation and offering, with the names as they were) and the inputs it was
    computed from (the sharing key version of each offering, the populations and the usage
    of each subscription). It is served as stored; nothing read later changes it."""

    __tablename__ = "svc_statement"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    month: str = Field(unique=True, index=True, max_length=7)
    lines: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    inputs: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    total_cents: int
    issued_by: str = Field(max_length=255)
    issued_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class Order(SQLModel, table=True):
    """A product order (TMF622) of one organisation."""

    __tablename__ = "svc_order"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    organisation: str = Field(index=True, max_length=100)
    state: str = Field(default="acknowledged", index=True, max_length=20)
    requested_by: str = Field(max_length=255)
    note: str | None = None
    state_reason: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    completed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class OrderItem(SQLModel, table=True):
    """One line of an order: add a new subscription, modify or delete an existing one."""

    __tablename__ = "svc_order_item"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    order_id: uuid.UUID = Field(index=True, foreign_key="svc_order.id")
    position: int = 1
    action: str = Field(max_length=10)
    offering_version_id: uuid.UUID = Field(foreign_key="svc_offering_version.id")
    subscription_id: uuid.UUID | None = Field(default=None, index=True)
    site_id: uuid.UUID | None = Field(default=None, foreign_key="svc_site.id")
    site_b_id: uuid.UUID | None = Field(default=None, foreign_key="svc_site.id")
    characteristics: str = Field(default="{}", sa_column=Column(Text, nullable=False))

    def values(self) -> dict[str, str]:
        return dict(_json(self.characteristics) or {})


class Subscription(SQLModel, table=True):
    """A product in the inventory (TMF637/TMF638): what an organisation holds and what was
    allocated for it."""

    __tablename__ = "svc_subscription"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    organisation: str = Field(index=True, max_length=100)
    offering_id: uuid.UUID = Field(index=True, foreign_key="svc_offering.id")
    offering_version_id: uuid.UUID = Field(foreign_key="svc_offering_version.id")
    order_id: uuid.UUID = Field(foreign_key="svc_order.id")
    state: str = Field(default="created", index=True, max_length=20)
    site_id: uuid.UUID | None = Field(default=None, foreign_key="svc_site.id")
    site_b_id: uuid.UUID | None = Field(default=None, foreign_key="svc_site.id")
    characteristics: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    resources: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    activated_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    terminated_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]

    def values(self) -> dict[str, str]:
        return dict(_json(self.characteristics) or {})

    def allocated(self) -> dict[str, Any]:
        return dict(_json(self.resources) or {})


class StateChange(SQLModel, table=True):
    """One transition of an order or a subscription: from, to, when, by whom, why."""

    __tablename__ = "svc_state_change"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    entity: str = Field(max_length=20)  # "order" | "subscription"
    entity_id: uuid.UUID = Field(index=True)
    from_state: str | None = Field(default=None, max_length=20)
    to_state: str = Field(max_length=20)
    actor: str = Field(max_length=255)
    reason: str | None = None
    at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class FibrePop(SQLModel, table=True):
    """A point of presence of the fibre reserves."""

    __tablename__ = "svc_fibre_pop"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    code: str = Field(unique=True, index=True, max_length=40)
    name: str = Field(max_length=200)
    delegation: str = Field(max_length=100)
    latitude: float
    longitude: float


class FibreCable(SQLModel, table=True):
    """A cable between two points of presence."""

    __tablename__ = "svc_fibre_cable"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    code: str = Field(unique=True, index=True, max_length=40)
    pop_a_id: uuid.UUID = Field(foreign_key="svc_fibre_pop.id")
    pop_b_id: uuid.UUID = Field(foreign_key="svc_fibre_pop.id")
    length_km: float
    delegation: str = Field(max_length=100)


class FibrePair(SQLModel, table=True):
    """One pair of fibres of a cable, free or allocated to a subscription."""

    __tablename__ = "svc_fibre_pair"
    __table_args__ = (UniqueConstraint("cable_id", "number"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    cable_id: uuid.UUID = Field(index=True, foreign_key="svc_fibre_cable.id")
    number: int
    state: str = Field(default="free", index=True, max_length=20)
    subscription_id: uuid.UUID | None = Field(default=None, index=True)
    allocated_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class WorkOrder(SQLModel, table=True):
    """A ticket for a technical team (network, data centre): what it must set up or remove.
    ``key`` makes issuing it idempotent."""

    __tablename__ = "svc_work_order"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    key: str = Field(unique=True, max_length=120)
    subscription_id: uuid.UUID = Field(index=True)
    team: str = Field(max_length=100)
    kind: str = Field(max_length=20)  # "install" | "remove"
    description: str = Field(sa_column=Column(Text, nullable=False))
    resources: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
