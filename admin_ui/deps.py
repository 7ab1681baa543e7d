"""What every console page depends on: the signed-in person and their permissions (read again
at every request), the CSRF check of every form, rendering, and HTML error pages.

    @router.post("/clients/{client_id}/secret")
    def rotate(request: Request, staff: FormStaffDep, provider: ProviderDep, ...) -> Response:
        staff.require("clients.manage", client.organisation)   # 403 page otherwise
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Form, Request
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from admin_ui.navigation import navigation
from admin_ui.permissions import ACTIONS, Permissions
from admin_ui.sessions import ConsoleSession
from idp import Provider
from plateforme.audit import AuditRecord
from plateforme.errors import DomainError, Forbidden, NotFound
from plateforme.web import Csrf, client_address, request_id

CSRF_PURPOSE = "admin"


class SignInRequired(Exception):
    """No console session (or it ended): go through the provider's sign-in."""


class CsrfFailed(Exception):
    """A form without the session's CSRF token."""


def session_of(request: Request) -> ConsoleSession:
    session = request.scope.get("session")
    if not isinstance(session, ConsoleSession):
        raise RuntimeError("ConsoleSessionMiddleware is not installed in front of /admin")
    return session


def get_provider(request: Request) -> Provider:
    return request.app.state.provider  # type: ignore[no-any-return]


def get_templates(request: Request) -> Jinja2Templates:
    return request.app.state.templates  # type: ignore[no-any-return]


def get_csrf(request: Request) -> Csrf:
    return request.app.state.csrf  # type: ignore[no-any-return]


ProviderDep = Annotated[Provider, Depends(get_provider)]
CsrfDep = Annotated[Csrf, Depends(get_csrf)]


@dataclass
class Staff:
    """The signed-in person, as the console sees them during one request."""

    user_id: str
    email: str
    name: str
    perms: Permissions
    session: ConsoleSession
    csrf_token: str
    address: str

    def require(self, action: str, organisation: str | None = None) -> None:
        if not self.perms.can(action, organisation):
            raise Forbidden(f"action non autorisée : {ACTIONS[action]}")

    def require_somewhere(self, action: str) -> None:
        if not self.perms.can_somewhere(action):
            raise Forbidden(f"action non autorisée : {ACTIONS[action]}")


def _signed_in(request: Request, provider: Provider, csrf: Csrf) -> Staff:
    """The signed-in person, whatever their roles. The console session ends as soon as the
    provider's session is over or the account is locked or deleted."""
    session = session_of(request)
    user_id, sid = session.get("user_id"), session.get("sid")
    if not user_id:
        raise SignInRequired()
    if not sid or provider.sessions.get(sid) is None:
        session.clear()
        raise SignInRequired()
    user = provider.users.get(uuid.UUID(user_id))
    if user is None or user.locked:
        session.clear()
        raise SignInRequired()
    staff = Staff(
        user_id=user_id, email=user.email, name=user.name,
        perms=Permissions.from_grants(provider.organisations.roles_of(user.id)),
        session=session, csrf_token=csrf.token(session["csrf"], CSRF_PURPOSE),
        address=client_address(request, getattr(request.app.state, "trusted_proxies",
                                                frozenset())),
    )
    request.state.staff = staff
    return staff


def get_member(request: Request, provider: ProviderDep, csrf: CsrfDep) -> Staff:
    """Any signed-in person (the invitation page: no role yet)."""
    return _signed_in(request, provider, csrf)


def get_staff(request: Request, provider: ProviderDep, csrf: CsrfDep) -> Staff:
    """A signed-in person holding at least one role that opens the console."""
    staff = _signed_in(request, provider, csrf)
    staff.require_somewhere("dashboard.view")
    return staff


def check_csrf(staff: Staff, csrf: Csrf, token: str) -> None:
    if not csrf.check(staff.session.get("csrf"), token, CSRF_PURPOSE):
        raise CsrfFailed()


def get_form_staff(request: Request, provider: ProviderDep, csrf: CsrfDep,
                   csrf_token: Annotated[str, Form(max_length=128)] = "") -> Staff:
    """A console person posting a form of this session."""
    staff = get_staff(request, provider, csrf)
    check_csrf(staff, csrf, csrf_token)
    return staff


def get_form_member(request: Request, provider: ProviderDep, csrf: CsrfDep,
                    csrf_token: Annotated[str, Form(max_length=128)] = "") -> Staff:
    staff = get_member(request, provider, csrf)
    check_csrf(staff, csrf, csrf_token)
    return staff


MemberDep = Annotated[Staff, Depends(get_member)]
StaffDep = Annotated[Staff, Depends(get_staff)]
FormStaffDep = Annotated[Staff, Depends(get_form_staff)]
FormMemberDep = Annotated[Staff, Depends(get_form_member)]


def requires(action: str) -> Any:
    """A dependency: a console person allowed ``action`` in at least one organisation."""

    def dependency(staff: StaffDep) -> Staff:
        staff.require_somewhere(action)
        return staff

    return Depends(dependency)


# --- rendering -------------------------------------------------------------------------------


def flash(request: Request, message: str) -> None:
    """A message shown once on the next page (after a redirect)."""
    session_of(request)["flash"] = message


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200
           ) -> Response:
    staff: Staff | None = getattr(request.state, "staff", None)
    session = request.scope.get("session")
    message = session.pop("flash", None) if isinstance(session, dict) and staff else None
    templates = get_templates(request)
    response = templates.TemplateResponse(request, name, {
        "staff": staff, "nav": navigation(staff.perms) if staff else [],
        "csrf_token": staff.csrf_token if staff else "", "flash": message, "errors": {},
        **context,
    }, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def redirect(path: str) -> Response:
    return RedirectResponse(path, status_code=303)


def _error_page(request: Request, status: int, heading: str, message: str) -> Response:
    return render(request, "admin/message.html", {
        "title": heading, "heading": heading, "message": message, "detail": None,
        "retry": False,
    }, status_code=status)


class ConsoleRoute(APIRoute):
    """Console routes answer HTML: a sign-in redirect, the French 403/404 pages, the message
    of a refused action; refused and failed actions are written to the audit journal."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        route_name = self.name

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                target = request.url.path if request.method == "GET" else "/admin/"
                if request.method == "GET" and request.url.query:
                    target += "?" + request.url.query
                return redirect("/admin/connexion?" + urlencode({"suite": target}))
            except CsrfFailed:
                return _error_page(request, 403, "Formulaire expiré",
                                   "Le formulaire a expiré ou ne vient pas de la console. "
                                   "Rechargez la page et recommencez.")
            except DomainError as exc:
                if request.method == "POST":
                    await run_in_threadpool(_record_failure, request, route_name, exc)
                if isinstance(exc, Forbidden):
                    return _error_page(request, 403, "Accès refusé",
                                       "Vos rôles ne vous permettent pas d'accéder à cette page "
                                       "ou de faire cette action.")
                if isinstance(exc, NotFound):
                    return _error_page(request, 404, "Page introuvable", exc.message)
                return _error_page(request, exc.status, "Action impossible", exc.message)

        return guarded


def _record_failure(request: Request, route_name: str, exc: DomainError) -> None:
    staff: Staff | None = getattr(request.state, "staff", None)
    get_provider(request).journal.record(AuditRecord(
        action="admin.refused" if isinstance(exc, Forbidden) else "admin.failed",
        actor=staff.user_id if staff else None, target=request.url.path,
        outcome="refused" if isinstance(exc, Forbidden) else "failure",
        address=staff.address if staff else None, request_id=request_id(request),
        reason=exc.message, details={"route": route_name},
    ))
