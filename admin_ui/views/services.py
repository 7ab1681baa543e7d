"""The service catalogue in the console: browse the catalogue, order, follow an order,
approve or reject, the inventory, the fibre reserves and the monthly statements.

The rules (who may order, approve, see what) are the catalogue's own: the page builds the
person's :class:`services_mutualises.Principal` from their roles and calls the catalogue; the
permission matrix only decides which pages and forms to offer.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from pydantic import ValidationError
from starlette.responses import Response

from admin_ui.deps import ConsoleRoute, FormStaffDep, Staff, StaffDep, flash, redirect, render
from admin_ui.forms import reason_error
from idp import PLATFORM_ORGANISATION, PLATFORM_ROLES
from plateforme.clock import utcnow
from plateforme.errors import Forbidden, InvalidInput
from services_mutualises import (
    METHOD_LABELS,
    ORDER_LABELS,
    SUBSCRIPTION_LABELS,
    OrderCreate,
    OrderItemCreate,
    Principal,
    ServiceCatalogue,
    euros,
)

router = APIRouter(route_class=ConsoleRoute)
SECTION = "services"


def _catalogue(request: Request) -> ServiceCatalogue:
    return request.app.state.services  # type: ignore[no-any-return]


def principal_of(staff: Staff) -> Principal:
    """The person as the catalogue sees them: the organisation they act for (their first one
    other than the CTM, else the CTM) with their roles there, plus their platform roles —
    the same rule as the ``org`` and ``roles`` claims of their access tokens."""
    grants = staff.perms.roles
    orgs = list(dict.fromkeys(g.organisation for g in grants))
    others = [o for o in orgs if o != PLATFORM_ORGANISATION]
    org = others[0] if others else (orgs[0] if orgs else None)
    roles = {g.role for g in grants if g.organisation == org}
    roles |= {g.role for g in grants if g.role in PLATFORM_ROLES}
    return Principal(subject=staff.user_id, org=org, roles=frozenset(roles))


def _common(**context: Any) -> dict[str, Any]:
    return {"section": SECTION, "euros": euros, "order_labels": ORDER_LABELS,
            "subscription_labels": SUBSCRIPTION_LABELS, "method_labels": METHOD_LABELS,
            **context}


@router.get("/services", name="admin.services.catalogue")
def catalogue_page(request: Request, staff: StaffDep) -> Response:
    staff.require_somewhere("services.view")
    principal = principal_of(staff)
    return render(request, "services/catalogue.html", _common(
        title="Catalogue des services", offerings=_catalogue(request).catalogue.list(principal),
        can_order=staff.perms.can_somewhere("services.order"),
        can_fibre=staff.perms.can_somewhere("services.fibre")))


def _order_form(request: Request, staff: Staff, code: str, values: dict[str, str],
                errors: dict[str, str], status_code: int = 200) -> Response:
    services = _catalogue(request)
    principal = principal_of(staff)
    if principal.org is None or not principal.buys_for(principal.org):
        raise Forbidden("Seuls les acheteurs d'une organisation commandent pour elle.")
    offering = services.catalogue.get(code, principal)
    sites = services.sites.list(principal)
    return render(request, "services/order_form.html", _common(
        title=("Erreur : " if errors else "") + f"Commander : {offering.name}",
        offering=offering, sites=sites, values=values, errors=errors,
        organisation=principal.org), status_code=status_code)


@router.get("/services/commander", name="admin.services.order_form")
def order_form(request: Request, staff: StaffDep,
               offre: Annotated[str, Query(max_length=60)] = "") -> Response:
    staff.require_somewhere("services.order")
    return _order_form(request, staff, offre, {}, {})


@router.post("/services/commander", name="admin.services.order")
async def place_order(request: Request, staff: FormStaffDep) -> Response:
    staff.require_somewhere("services.order")
    form = await request.form()
    values = {k: str(v) for k, v in form.items() if k != "csrf_token"}
    code = values.get("offre", "")
    characteristics = {k[4:]: v for k, v in values.items() if k.startswith("car-")}
    errors: dict[str, str] = {}
    try:
        item = OrderItemCreate(
            action="add", offering=code, characteristics=characteristics,
            site_id=uuid.UUID(values["site"]) if values.get("site") else None,
            site_b_id=uuid.UUID(values["site-b"]) if values.get("site-b") else None)
        data = OrderCreate(items=[item], note=values.get("note") or None)
    except (ValidationError, ValueError):
        errors["site"] = "Choisissez un site de la liste."
    if not errors:
        try:
            order = _catalogue(request).orders.create(principal_of(staff), data)
        except InvalidInput as exc:
            target = {"site_id": "site", "site_b_id": "site-b"}.get(
                exc.field or "", f"car-{exc.field}" if exc.field else "site")
            errors[target] = exc.message
        else:
            flash(request, "Commande enregistrée : elle attend la validation de la CTM.")
            return redirect(f"/admin/services/commandes/{order.id}")
    if not code:
        raise InvalidInput("Choisissez une offre du catalogue.")
    return _order_form(request, staff, code, values, errors, status_code=422)


@router.get("/services/commandes", name="admin.services.orders")
def orders_page(request: Request, staff: StaffDep,
                etat: Annotated[str, Query(max_length=20)] = "") -> Response:
    staff.require_somewhere("services.view")
    orders = _catalogue(request).orders.list(principal_of(staff), state=etat or None)
    return render(request, "services/orders.html", _common(
        title="Commandes de services", orders=orders, state=etat,
        can_approve=staff.perms.can_somewhere("services.approve")))


def _order_page(request: Request, staff: Staff, order_id: uuid.UUID,
                errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    services = _catalogue(request)
    principal = principal_of(staff)
    order = services.orders.get(principal, order_id)
    subscriptions = {i.subscription_id: services.inventory.get(principal, i.subscription_id)
                     for i in order.items if i.subscription_id}
    sites = {s.id: s.name for s in services.sites.list_all(principal)} if (
        principal.sees_everything or principal.org) else {}
    return render(request, "services/order.html", _common(
        title=("Erreur : " if errors else "") + f"Commande {str(order.id)[:8]}",
        order=order, subscriptions=subscriptions, sites=sites, errors=errors or {},
        can_cancel=principal.buys_for(order.organisation),
        can_approve=principal.can_approve, buyer=principal.buys_for(order.organisation)),
        status_code=status_code)


@router.get("/services/commandes/{order_id}", name="admin.services.order_page")
def order_page(order_id: uuid.UUID, request: Request, staff: StaffDep) -> Response:
    staff.require_somewhere("services.view")
    return _order_page(request, staff, order_id)


def _decide(request: Request, staff: Staff, order_id: uuid.UUID, action: str, reason: str,
            field: str) -> Response:
    error = reason_error(reason)
    if error:
        return _order_page(request, staff, order_id, {field: error}, status_code=422)
    services = _catalogue(request)
    principal = principal_of(staff)
    messages = {"approve": "Commande approuvée.", "reject": "Commande refusée.",
                "cancel": "Commande annulée."}
    if action == "approve":
        order = services.orders.approve(principal, order_id, reason.strip())
        messages["approve"] = ("Commande approuvée et mise en service." if order.state ==
                               "completed" else f"Commande approuvée ; la mise en service a "
                               f"échoué : {order.state_reason}")
    elif action == "reject":
        services.orders.reject(principal, order_id, reason.strip())
    else:
        services.orders.cancel(principal, order_id, reason.strip())
    flash(request, messages[action])
    return redirect(f"/admin/services/commandes/{order_id}")


@router.post("/services/commandes/{order_id}/approuver", name="admin.services.approve")
def approve(order_id: uuid.UUID, request: Request, staff: FormStaffDep,
            motif: Annotated[str, Form(max_length=600)] = "") -> Response:
    staff.require_somewhere("services.approve")
    return _decide(request, staff, order_id, "approve", motif, "motif-approbation")


@router.post("/services/commandes/{order_id}/refuser", name="admin.services.reject")
def reject(order_id: uuid.UUID, request: Request, staff: FormStaffDep,
           motif: Annotated[str, Form(max_length=600)] = "") -> Response:
    staff.require_somewhere("services.approve")
    return _decide(request, staff, order_id, "reject", motif, "motif-refus")


@router.post("/services/commandes/{order_id}/annuler", name="admin.services.cancel")
def cancel(order_id: uuid.UUID, request: Request, staff: FormStaffDep,
           motif: Annotated[str, Form(max_length=600)] = "") -> Response:
    staff.require_somewhere("services.order")
    return _decide(request, staff, order_id, "cancel", motif, "motif-annulation")


@router.post("/services/commandes/{order_id}/relancer", name="admin.services.retry")
def retry(order_id: uuid.UUID, request: Request, staff: FormStaffDep) -> Response:
    staff.require_somewhere("services.approve")
    order = _catalogue(request).orders.retry(principal_of(staff), order_id)
    flash(request, "Mise en service réussie." if order.state == "completed"
          else f"La mise en service a de nouveau échoué : {order.state_reason}")
    return redirect(f"/admin/services/commandes/{order_id}")


@router.post("/services/abonnements/{subscription_id}/secret", name="admin.services.secret")
def reveal_secret(subscription_id: uuid.UUID, request: Request, staff: FormStaffDep
                  ) -> Response:
    staff.require_somewhere("services.order")
    services = _catalogue(request)
    principal = principal_of(staff)
    subscription = services.inventory.get(principal, subscription_id)
    secret = services.inventory.reveal_secret(principal, subscription_id)
    return render(request, "services/secret.html", _common(
        title="Identifiants de l'application", subscription=subscription, secret=secret,
        issuer=request.app.state.settings.issuer))


@router.get("/services/inventaire", name="admin.services.inventory")
def inventory_page(request: Request, staff: StaffDep) -> Response:
    staff.require_somewhere("services.view")
    services = _catalogue(request)
    principal = principal_of(staff)
    subscriptions = services.inventory.list(principal)
    sites = {s.id: s.name for s in services.sites.list_all(principal)}
    return render(request, "services/inventory.html", _common(
        title="Inventaire des services", subscriptions=subscriptions, sites=sites,
        everyone=principal.sees_everything))


@router.get("/services/fibre", name="admin.services.fibre")
def fibre_page(request: Request, staff: StaffDep) -> Response:
    staff.require_somewhere("services.fibre")
    reserves = _catalogue(request).fibre.reserves(principal_of(staff))
    return render(request, "services/fibre.html", _common(
        title="Réserves de fibre optique", reserves=reserves,
        percent=round(reserves.use_rate * 100, 1)))


def _month(value: str) -> str:
    if value:
        return value
    now = utcnow()
    return f"{now.year:04d}-{now.month:02d}"


def _statement_scope(staff: Staff, organisation: str) -> tuple[Principal, str | None]:
    principal = principal_of(staff)
    if principal.sees_everything:
        return principal, organisation or None
    return principal, principal.org or ""


@router.get("/services/releves", name="admin.services.statements")
def statement_page(request: Request, staff: StaffDep,
                   mois: Annotated[str, Query(pattern=r"^(\d{4}-\d{2})?$")] = "",
                   organisation: Annotated[str, Query(max_length=100)] = "") -> Response:
    staff.require_somewhere("services.view")
    principal, org = _statement_scope(staff, organisation)
    month = _month(mois)
    statement = _catalogue(request).statements.compute(principal, month, org)
    rows = statement.members
    top = max([max(m.share_cents, m.alone_cents) for m in rows] or [1]) or 1
    bars = [{"name": m.organisation_name, "share": m.share_cents, "alone": m.alone_cents,
             "share_width": round(360 * m.share_cents / top, 1),
             "alone_width": round(360 * m.alone_cents / top, 1), "y": 10 + i * 56}
            for i, m in enumerate(rows)]
    query = f"mois={month}" + (f"&organisation={org}" if org else "")
    return render(request, "services/statement.html", _common(
        title=f"Relevé des coûts partagés — {month}", statement=statement, month=month,
        bars=bars, height=20 + 56 * len(bars), everyone=principal.sees_everything,
        organisation=org or "", csv_query=query))


@router.get("/services/releves.csv", name="admin.services.statements_csv")
def statement_csv(request: Request, staff: StaffDep,
                  mois: Annotated[str, Query(pattern=r"^(\d{4}-\d{2})?$")] = "",
                  organisation: Annotated[str, Query(max_length=100)] = "") -> Response:
    staff.require_somewhere("services.view")
    principal, org = _statement_scope(staff, organisation)
    month = _month(mois)
    services = _catalogue(request)
    body = services.statements.to_csv(services.statements.compute(principal, month, org))
    name = f"releve-{org or 'ctm'}-{month}.csv"
    return Response(body, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})

