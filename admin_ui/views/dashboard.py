"""The dashboard: who is signed in, with which roles, and where they may go."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from admin_ui.auth import signed_out_page
from admin_ui.deps import ConsoleRoute, CsrfDep, ProviderDep, get_staff, render, session_of
from admin_ui.navigation import navigation
from idp import ROLE_LABELS

router = APIRouter(route_class=ConsoleRoute)


@router.get("/", name="admin.dashboard")
async def dashboard(request: Request, provider: ProviderDep, csrf: CsrfDep) -> Response:
    if not session_of(request).get("user_id"):
        page = await signed_out_page(request)
        if page is not None:
            return page
    staff = await run_in_threadpool(get_staff, request, provider, csrf)
    roles = [(ROLE_LABELS.get(g.role, g.role), g.organisation_name) for g in staff.perms.roles]
    sections = [item for item in navigation(staff.perms) if item.section != "tableau"]
    return render(request, "admin/dashboard.html", {
        "title": "Tableau de bord", "section": "tableau", "roles": roles, "sections": sections,
    })
