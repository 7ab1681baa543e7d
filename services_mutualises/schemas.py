"""Shapes that are not tables: who acts, what an order asks for, what a statement says."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

# Roles (carried by access tokens and by the console's grants).
PLATFORM_READERS = frozenset({"ctm_admin", "catalogue_manager", "approver"})
APPROVERS = frozenset({"ctm_admin", "approver"})
CATALOGUE_MANAGERS = frozenset({"ctm_admin", "catalogue_manager"})
ORG_READERS = frozenset({"buyer", "org_admin", "viewer"})
ORG_BUYERS = frozenset({"buyer", "org_admin"})


@dataclass(frozen=True)
class Principal:
    """Who acts on the catalogue: a person or a client, for one organisation, with roles.

    Built from an access token by the API (``org`` and ``roles`` claims) and from the signed-in
    person's grants by the console. A client acting for its organisation (client credentials)
    has no role: it reads and orders for its organisation when its scopes allow it.
    """

    subject: str
    org: str | None
    roles: frozenset[str] = field(default_factory=frozenset)
    is_client: bool = False

    @property
    def sees_everything(self) -> bool:
        return bool(self.roles & PLATFORM_READERS)

    @property
    def can_approve(self) -> bool:
        return bool(self.roles & APPROVERS)

    @property
    def manages_catalogue(self) -> bool:
        return bool(self.roles & CATALOGUE_MANAGERS)

    def reads(self, organisation: str) -> bool:
        if self.sees_everything:
            return True
        return self.org == organisation and (self.is_client or bool(self.roles & ORG_READERS))

    def buys_for(self, organisation: str) -> bool:
        return self.org == organisation and (self.is_client or bool(self.roles & ORG_BUYERS))


class SiteCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    address: str = Field(min_length=1, max_length=300)
    latitude: float = Field(ge=14.3, le=15.0)
    longitude: float = Field(ge=-61.3, le=-60.7)
    fibre_reachable: bool = False


class OrderItemCreate(BaseModel):
    """One line of an order. ``add`` names an offering (its active version is used) and the
    site(s); ``modify``/``delete`` name the subscription."""

    action: Literal["add", "modify", "delete"] = "add"
    offering: str | None = Field(default=None, description="code de l'offre (action add)")
    subscription_id: uuid.UUID | None = None
    site_id: uuid.UUID | None = None
    site_b_id: uuid.UUID | None = None
    characteristics: dict[str, str] = Field(default_factory=dict)


class OrderCreate(BaseModel):
    items: list[OrderItemCreate] = Field(min_length=1, max_length=10)
    note: str | None = Field(default=None, max_length=1000)


class Decision(BaseModel):
    reason: str = Field(min_length=3, max_length=1000)


class SharingRuleCreate(BaseModel):
    method: Literal["equal", "population", "usage", "subscriber"]
    effective_from: str = Field(pattern=r"^\d{4}-\d{2}$", description="mois AAAA-MM")
    reason: str = Field(min_length=3, max_length=1000)


@dataclass(frozen=True)
class ProvisionOutcome:
    """What a provisioner allocated (recorded on the subscription) and, once, a secret to
    show the buyer."""

    resources: dict[str, object]
    secret: str | None = None


@dataclass(frozen=True)
class StatementLine:
    """What one organisation pays for one offering in a month."""

    organisation: str
    organisation_name: str
    offering: str
    offering_name: str
    method: str
    subscriptions: int
    share_cents: int
    alone_cents: int

    @property
    def saving_cents(self) -> int:
        return self.alone_cents - self.share_cents


@dataclass(frozen=True)
class MemberTotal:
    organisation: str
    organisation_name: str
    share_cents: int
    alone_cents: int

    @property
    def saving_cents(self) -> int:
        return self.alone_cents - self.share_cents


@dataclass(frozen=True)
class Statement:
    """A month's cost statement, for one organisation or (``organisation`` None) the CTM."""

    month: str
    organisation: str | None
    lines: list[StatementLine]
    members: list[MemberTotal]
    total_cents: int
    alone_cents: int
    # When the month is over: the time the statement was issued and stored (None: computed
    # live, for the current month or one to come).
    issued_at: datetime | None = None
    # What it was computed from: ``keys`` (per offering: the sharing key version, its method
    # and the month it applies from), ``populations`` and ``subscriptions`` (each one's
    # organisation, offering, version, cost, alone price and usage).
    inputs: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def saving_cents(self) -> int:
        return self.alone_cents - self.total_cents


@dataclass(frozen=True)
class SweepReport:
    """What a sweep did: the orders taken up again (with the state they ended in) and the
    subscriptions whose fibre pairs were released (with how many)."""

    orders: list[tuple[uuid.UUID, str]]
    released: list[tuple[uuid.UUID, int]]


# -- what the API and the console show --------------------------------------------------------


class SitePublic(BaseModel):
    id: uuid.UUID
    organisation: str
    name: str
    address: str
    latitude: float
    longitude: float
    fibre_reachable: bool


class CharacteristicSpec(BaseModel):
    name: str
    label: str
    values: list[str] = Field(description="valeurs permises ; vide : texte libre")
    default: str = ""


class VersionPublic(BaseModel):
    id: uuid.UUID
    version: int
    state: Literal["draft", "active", "retired"]
    characteristics: list[CharacteristicSpec]
    one_off_cents: int
    monthly_cents: int
    alone_one_off_cents: int
    alone_monthly_cents: int
    usage_characteristic: str | None


class SharingRulePublic(BaseModel):
    method: Literal["equal", "population", "usage", "subscriber"]
    effective_from: str
    reason: str | None


class OfferingPublic(BaseModel):
    code: str
    name: str
    description: str
    provisioner: str
    two_sites: bool
    active_version: VersionPublic | None
    versions: list[VersionPublic]
    sharing_rules: list[SharingRulePublic]


class StateChangePublic(BaseModel):
    from_state: str | None
    to_state: str
    actor: str
    reason: str | None
    at: datetime


class OrderItemPublic(BaseModel):
    id: uuid.UUID
    action: Literal["add", "modify", "delete"]
    offering: str
    offering_name: str
    version: int
    subscription_id: uuid.UUID | None
    site_id: uuid.UUID | None
    site_b_id: uuid.UUID | None
    characteristics: dict[str, str]


class OrderPublic(BaseModel):
    id: uuid.UUID
    organisation: str
    state: Literal["acknowledged", "held", "inProgress", "completed", "failed", "rejected",
                   "cancelled"]
    requested_by: str
    note: str | None
    state_reason: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    items: list[OrderItemPublic]
    history: list[StateChangePublic]


class SubscriptionPublic(BaseModel):
    id: uuid.UUID
    organisation: str
    offering: str
    offering_name: str
    version: int
    order_id: uuid.UUID
    state: Literal["created", "pendingActive", "active", "suspended", "pendingTerminate",
                   "terminated"]
    site_id: uuid.UUID | None
    site_b_id: uuid.UUID | None
    characteristics: dict[str, str]
    resources: dict[str, Any]
    created_at: datetime
    activated_at: datetime | None
    terminated_at: datetime | None
    secret_pending: bool = Field(
        default=False, description="un secret attend d'être affiché une fois à l'acheteur")


class CablePublic(BaseModel):
    code: str
    from_pop: str
    to_pop: str
    length_km: float
    delegation: str
    pairs: int
    free: int
    allocated: int
    out_of_service: int


class PopPublic(BaseModel):
    code: str
    name: str
    delegation: str
    latitude: float
    longitude: float


class FibreReservePublic(BaseModel):
    pops: list[PopPublic]
    cables: list[CablePublic]
    pairs: int
    allocated: int
    use_rate: float = Field(description="part des paires allouées (0 à 1)")


class SecretPublic(BaseModel):
    client_id: str
    client_secret: str
