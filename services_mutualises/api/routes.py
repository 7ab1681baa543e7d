"""``/api/services/``: catalogue (TMF620-like), orders (TMF622 states), inventory (TMF637/638
states), fibre reserves and cost statements. Organisation from the token; a resource of
another organisation answers 404."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field
from starlette.responses import Response

from services_mutualises.api.deps import Admin, Buyer, CatalogueDep, Reader
from services_mutualises.schemas import (
    Decision,
    FibreReservePublic,
    OfferingPublic,
    OrderCreate,
    OrderPublic,
    SecretPublic,
    SharingRuleCreate,
    SharingRulePublic,
    SiteCreate,
    SitePublic,
    Statement,
    SubscriptionPublic,
    VersionPublic,
)

PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Requête mal formée (corps JSON illisible)", **PROBLEM},
    401: {"description": "Jeton absent ou invalide", **PROBLEM},
    403: {"description": "Portée ou rôle insuffisant", **PROBLEM},
    404: {"description": "Introuvable (ou d'une autre organisation)", **PROBLEM},
    409: {"description": "Transition d'état interdite ou conflit", **PROBLEM},
    422: {"description": "Données invalides", **PROBLEM},
}

router = APIRouter(prefix="/api/services", tags=["services mutualisés"], responses=ERRORS)


class NewVersion(BaseModel):
    one_off_cents: int | None = Field(default=None, ge=0)
    monthly_cents: int | None = Field(default=None, ge=0)


class VersionState(BaseModel):
    state: Literal["active", "retired"]


class OptionalReason(BaseModel):
    reason: str | None = Field(default=None, max_length=1000)


class StatementLinePublic(BaseModel):
    organisation: str
    organisation_name: str
    offering: str
    offering_name: str
    method: str
    subscriptions: int
    share_cents: int
    alone_cents: int
    saving_cents: int


class MemberTotalPublic(BaseModel):
    organisation: str
    organisation_name: str
    share_cents: int
    alone_cents: int
    saving_cents: int


class StatementPublic(BaseModel):
    month: str
    organisation: str | None
    lines: list[StatementLinePublic]
    members: list[MemberTotalPublic]
    total_cents: int
    alone_cents: int
    saving_cents: int
    issued_at: datetime | None = Field(
        default=None, description="émission du relevé stocké (mois terminé) ; vide : provisoire")
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="données de calcul : versions des clés de "
        "répartition, populations, abonnements (coût, usage)")


def _statement(s: Statement) -> StatementPublic:
    return StatementPublic(
        month=s.month, organisation=s.organisation,
        lines=[StatementLinePublic(**li.__dict__, saving_cents=li.saving_cents)
               for li in s.lines],
        members=[MemberTotalPublic(**m.__dict__, saving_cents=m.saving_cents)
                 for m in s.members],
        total_cents=s.total_cents, alone_cents=s.alone_cents, saving_cents=s.saving_cents,
        issued_at=s.issued_at, inputs=s.inputs)


# -- catalogue --


@router.get("/offerings", summary="Offres du catalogue")
def list_offerings(principal: Reader, services: CatalogueDep) -> list[OfferingPublic]:
    return services.catalogue.list(principal)


@router.get("/offerings/{code}", summary="Une offre, ses versions et ses clés de répartition")
def get_offering(code: str, principal: Reader, services: CatalogueDep) -> OfferingPublic:
    return services.catalogue.get(code, principal)


@router.post("/offerings/{code}/versions", status_code=201,
             summary="Nouvelle version (projet) d'une offre")
def new_version(code: str, data: NewVersion, principal: Admin, services: CatalogueDep
                ) -> VersionPublic:
    return services.catalogue.new_version(principal, code, one_off_cents=data.one_off_cents,
                                          monthly_cents=data.monthly_cents)


@router.post("/offerings/{code}/versions/{version}/state",
             summary="Activer ou retirer une version")
def set_version_state(code: str, version: int, data: VersionState, principal: Admin,
                      services: CatalogueDep) -> VersionPublic:
    return services.catalogue.set_version_state(principal, code, version, data.state)


@router.post("/offerings/{code}/sharing-rules", status_code=201,
             summary="Nouvelle clé de répartition, à partir d'un mois à venir")
def add_sharing_rule(code: str, data: SharingRuleCreate, principal: Admin,
                     services: CatalogueDep) -> SharingRulePublic:
    return services.catalogue.add_sharing_rule(principal, code, data)


# -- sites --


@router.get("/sites", summary="Sites de l'organisation (tous pour la CTM)")
def list_sites(principal: Reader, services: CatalogueDep) -> list[SitePublic]:
    return services.sites.list_all(principal)


@router.post("/sites", status_code=201, summary="Déclarer un site de l'organisation")
def create_site(data: SiteCreate, principal: Buyer, services: CatalogueDep) -> SitePublic:
    return services.sites.create(principal, principal.org or "", data)


# -- orders --


@router.get("/orders", summary="Commandes de l'organisation (toutes pour la CTM)")
def list_orders(principal: Reader, services: CatalogueDep,
                state: Annotated[str | None, Query(max_length=20)] = None
                ) -> list[OrderPublic]:
    return services.orders.list(principal, state=state)


@router.post("/orders", status_code=201, summary="Commander (état acknowledged puis held)")
def create_order(data: OrderCreate, principal: Buyer, services: CatalogueDep) -> OrderPublic:
    return services.orders.create(principal, data)


@router.get("/orders/{order_id}", summary="Suivre une commande")
def get_order(order_id: uuid.UUID, principal: Reader, services: CatalogueDep) -> OrderPublic:
    return services.orders.get(principal, order_id)


@router.post("/orders/{order_id}/cancel", summary="Annuler (avant la mise en service)")
def cancel_order(order_id: uuid.UUID, principal: Buyer, services: CatalogueDep,
                 data: Annotated[OptionalReason | None, Body()] = None) -> OrderPublic:
    return services.orders.cancel(principal, order_id, data.reason if data else None)


@router.post("/orders/{order_id}/approve", summary="Approuver (valideur CTM) et mettre en service")
def approve_order(order_id: uuid.UUID, principal: Admin, services: CatalogueDep,
                  data: Annotated[OptionalReason | None, Body()] = None) -> OrderPublic:
    return services.orders.approve(principal, order_id, data.reason if data else None)


@router.post("/orders/{order_id}/reject", summary="Refuser avec un motif (valideur CTM)")
def reject_order(order_id: uuid.UUID, data: Decision, principal: Admin,
                 services: CatalogueDep) -> OrderPublic:
    return services.orders.reject(principal, order_id, data.reason)


@router.post("/orders/{order_id}/retry", summary="Relancer une mise en service échouée")
def retry_order(order_id: uuid.UUID, principal: Admin, services: CatalogueDep) -> OrderPublic:
    return services.orders.retry(principal, order_id)


# -- inventory --


@router.get("/subscriptions", summary="Inventaire : abonnements de l'organisation")
def list_subscriptions(principal: Reader, services: CatalogueDep,
                       include_terminated: bool = False) -> list[SubscriptionPublic]:
    return services.inventory.list(principal, include_terminated=include_terminated)


@router.get("/subscriptions/{subscription_id}", summary="Un abonnement et ses ressources")
def get_subscription(subscription_id: uuid.UUID, principal: Reader, services: CatalogueDep
                     ) -> SubscriptionPublic:
    return services.inventory.get(principal, subscription_id)


@router.post("/subscriptions/{subscription_id}/secret",
             summary="Afficher une seule fois le secret du client OpenID Connect créé")
def reveal_secret(subscription_id: uuid.UUID, principal: Buyer, services: CatalogueDep,
                  response: Response) -> SecretPublic:
    response.headers["Cache-Control"] = "no-store"
    return services.inventory.reveal_secret(principal, subscription_id)


@router.post("/subscriptions/{subscription_id}/suspend", summary="Suspendre (valideur CTM)")
def suspend(subscription_id: uuid.UUID, data: Decision, principal: Admin,
            services: CatalogueDep) -> SubscriptionPublic:
    return services.inventory.set_suspended(principal, subscription_id, True, data.reason)


@router.post("/subscriptions/{subscription_id}/resume", summary="Rétablir (valideur CTM)")
def resume(subscription_id: uuid.UUID, data: Decision, principal: Admin,
           services: CatalogueDep) -> SubscriptionPublic:
    return services.inventory.set_suspended(principal, subscription_id, False, data.reason)


@router.get("/fibre", summary="Réserves de fibre et taux d'utilisation (CTM)")
def fibre_reserves(principal: Reader, services: CatalogueDep) -> FibreReservePublic:
    return services.fibre.reserves(principal)


# -- statements --

MONTH = Annotated[str, Query(pattern=r"^\d{4}-\d{2}$", description="mois AAAA-MM")]


@router.get("/statements", summary="Relevé mensuel (organisation, ou toute la CTM)")
def statement(principal: Reader, services: CatalogueDep, month: MONTH,
              organisation: Annotated[str | None, Query(max_length=100)] = None
              ) -> StatementPublic:
    if organisation is None and not principal.sees_everything:
        organisation = principal.org or ""
    return _statement(services.statements.compute(principal, month, organisation))


@router.get("/statements.csv", summary="Relevé mensuel en CSV",
            response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def statement_csv(principal: Reader, services: CatalogueDep, month: MONTH,
                  organisation: Annotated[str | None, Query(max_length=100)] = None
                  ) -> Response:
    if organisation is None and not principal.sees_everything:
        organisation = principal.org or ""
    body = services.statements.to_csv(services.statements.compute(principal, month,
                                                                  organisation))
    name = f"releve-{organisation or 'ctm'}-{month}.csv"
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})
