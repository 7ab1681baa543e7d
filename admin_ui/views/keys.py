"""Signing keys: list, rotate (the pre-published key becomes active, the old one stays
published until its tokens expire), retire a retiring key."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from admin_ui.deps import (
    ConsoleRoute,
    FormStaffDep,
    ProviderDep,
    Staff,
    StaffDep,
    flash,
    redirect,
    render,
)
from admin_ui.forms import reason_error
from idp import Provider
from plateforme.errors import Conflict, NotFound

router = APIRouter(route_class=ConsoleRoute)

STATUS_LABELS = {
    "next": "prochaine (publiée, ne signe pas encore)",
    "active": "active (signe les jetons)",
    "retiring": "en retrait (publiée jusqu'à l'expiration de ses jetons)",
    "retired": "retirée (plus publiée)",
}
ALGS = ("ES256", "RS256")
Motif = Annotated[str, Form(max_length=1000)]


def _keys_page(request: Request, staff: Staff, provider: Provider,
               errors: dict[str, str] | None = None, values: dict[str, Any] | None = None,
               status_code: int = 200) -> Response:
    keys = provider.keys.list_keys()
    order = {"active": 0, "next": 1, "retiring": 2, "retired": 3}
    keys.sort(key=lambda k: (order.get(k.status, 9), k.alg, k.created_at))
    return render(request, "admin/keys.html", {
        "title": ("Erreur : " if errors else "") + "Clés de signature", "section": "cles",
        "keys": keys, "status_labels": STATUS_LABELS, "algs": ALGS,
        "can_rotate": staff.perms.can("keys.rotate"), "errors": errors or {},
        "values": values or {},
    }, status_code=status_code)


@router.get("/cles", name="admin.keys.list")
def list_keys(request: Request, staff: StaffDep, provider: ProviderDep) -> Response:
    staff.require("keys.view")
    return _keys_page(request, staff, provider)


@router.post("/cles/rotation", name="admin.keys.rotate")
def rotate(request: Request, staff: FormStaffDep, provider: ProviderDep,
           alg: Annotated[str, Form(max_length=10)] = "", motif: Motif = "") -> Response:
    staff.require("keys.rotate")
    errors: dict[str, str] = {}
    if alg not in ("", *ALGS):
        errors["rotation-alg"] = "Algorithme inconnu."
    if message := reason_error(motif):
        errors["rotation-motif"] = message
    if errors:
        return _keys_page(request, staff, provider, errors, {"alg": alg, "motif": motif}, 422)
    activated = provider.keys.rotate(alg or None, actor=staff.user_id, reason=motif.strip())
    flash(request, "Nouvelle clé active : " + ", ".join(f"{k.alg} {k.kid}" for k in activated)
          + ". L'ancienne reste publiée jusqu'à l'expiration des jetons qu'elle a signés.")
    return redirect("/admin/cles")


@router.post("/cles/{kid}/retrait", name="admin.keys.retire")
def retire(kid: str, request: Request, staff: FormStaffDep, provider: ProviderDep,
           motif: Motif = "") -> Response:
    staff.require("keys.rotate")
    if message := reason_error(motif):
        return _keys_page(request, staff, provider, {f"motif-{kid}": message}, None, 422)
    try:
        provider.keys.retire(kid, actor=staff.user_id, reason=motif.strip())
    except LookupError:
        raise NotFound(f"clé inconnue : {kid}") from None
    except ValueError as exc:
        raise Conflict(str(exc)) from None
    flash(request, f"La clé {kid} est retirée : elle n'est plus publiée.")
    return redirect("/admin/cles")
