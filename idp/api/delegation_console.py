"""« Procurations » in the account console (``/compte/procurations``): the mandates a person
gave (and withdraws) and received, giving one, and — for an accredited digital mediator — the
desk procedure where the person present confirms with a one-time code sent to them."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import RedirectResponse, Response

from idp.api.account import NAVIGATION, local
from idp.api.account_common import caller_of, csrf_ok, csrf_refused, csrf_token
from idp.api.browser import current_session, finish, render
from idp.api.deps import CsrfDep, ProviderDep, TemplatesDep
from idp.models import Mandate
from idp.services import Provider, SSOSession
from idp.services.mandates import (
    CODE_LIFETIME,
    DEFAULT_SCOPES,
    MEDIATOR_ROLE,
    MandateTerms,
    is_active,
)
from plateforme.errors import DomainError

router = APIRouter(include_in_schema=False)

PATH = "/compte/procurations"
MEDIATION_PATH = PATH + "/mediation"
LOCAL_TIME = "America/Martinique"
SCOPE_LABELS = {
    "profile": "nom, prénoms, date de naissance", "email": "adresse électronique",
    "phone": "numéro de téléphone", "address": "adresse postale",
}
ORIGIN_LABELS = {"self": "donnée depuis le compte", "relationship": "lien familial ou légal",
                 "mediator": "au guichet, avec un médiateur numérique"}
STATUS_LABELS = {"active": "en cours", "pending": "en attente du code",
                 "revoked": "retirée", "cancelled": "annulée", "expired": "expirée"}
DONE = {
    "donnee": "La procuration est enregistrée.",
    "retiree": "La procuration est retirée : les connexions faites avec elle sont fermées.",
    "confirmee": "La procuration est confirmée.",
}
Text = Annotated[str, Form(max_length=320)]
Token = Annotated[str, Form(max_length=128)]


def _signed_in(request: Request, provider: Provider) -> SSOSession | None:
    sso = current_session(request, provider)
    if sso is None or provider.users.get(sso.user_id) is None:
        return None
    return sso


def _login(request: Request, provider: Provider) -> Response:
    target = "/connexion?retour=" + quote(request.url.path, safe="/")
    return finish(request, RedirectResponse(target, status_code=303), provider)


def _signed_in_form(request: Request, provider: Provider, templates: Jinja2Templates,
                    csrf: Any, token: str, purpose: str) -> SSOSession | Response:
    """The signed-in person posting a form with a valid CSRF token for ``purpose``; else the
    answer to give (to the sign-in page, or the CSRF refusal)."""
    sso = _signed_in(request, provider)
    if sso is None:
        return _login(request, provider)
    if not csrf_ok(request, csrf, token, purpose):
        return csrf_refused(request, templates, provider)
    return sso


def _is_mediator(provider: Provider, user_id: uuid.UUID) -> bool:
    return any(g.role == MEDIATOR_ROLE for g in provider.organisations.roles_of(user_id))


def _delegable_clients(provider: Provider) -> list[tuple[str, str]]:
    return [(c.client_id, c.name) for c in provider.clients.list()
            if c.delegation_allowed and not c.disabled]


def _ends_at(value: str) -> datetime:
    """The end of the chosen day, Martinique time (UTC-4)."""
    from zoneinfo import ZoneInfo

    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise DomainError("Indiquez une date de fin valide.") from exc
    return datetime.combine(day, time(23, 59), tzinfo=ZoneInfo(LOCAL_TIME)).astimezone(UTC)


def _terms(provider: Provider, client: str, scopes: list[str], ends: str) -> MandateTerms:
    """The terms of a mandate from its form; a service that does not accept mandates is
    refused."""
    if client and client not in dict(_delegable_clients(provider)):
        raise DomainError("Ce service n'accepte pas les procurations.")
    return MandateTerms(clients=(client,) if client else (),
                        scopes=tuple(dict.fromkeys(["openid", *scopes])), ends_at=_ends_at(ends))


def _row(provider: Provider, mandate: Mandate, names: dict[str, str], *, other: str
         ) -> dict[str, Any]:
    person = provider.users.get(getattr(mandate, other))
    status = mandate.status
    ends = mandate.ends_at if mandate.ends_at.tzinfo else mandate.ends_at.replace(tzinfo=UTC)
    if status == "active" and not is_active(mandate) and ends <= datetime.now(UTC):
        status = "expired"
    return {
        "id": str(mandate.id), "person": person.name if person else "—",
        "origin": ORIGIN_LABELS.get(mandate.origin, mandate.origin),
        "services": ", ".join(names.get(c, c) for c in mandate.client_list())
        or "tous les services qui acceptent les procurations",
        "scopes": ", ".join(SCOPE_LABELS[s] for s in mandate.scope_list() if s in SCOPE_LABELS)
        or "identité seule",
        "ends": local(mandate.ends_at), "status": STATUS_LABELS.get(status, status),
        "revocable": mandate.status in ("active", "pending"),
    }


def _page(request: Request, templates: Jinja2Templates, provider: Provider, sso: SSOSession,
          name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    user = provider.users.require(sso.user_id)
    return render(request, templates, provider, name, {
        "navigation": NAVIGATION, "current_path": PATH, "user": user,
        "done": DONE.get(request.query_params.get("fait") or ""),
        "scope_labels": SCOPE_LABELS, "default_scopes": DEFAULT_SCOPES,
        "clients": _delegable_clients(provider), "errors": {}, **context,
    }, status_code)


def _list_page(request: Request, templates: Jinja2Templates, provider: Provider,
               sso: SSOSession, *, errors: dict[str, str] | None = None,
               values: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    names = dict(_delegable_clients(provider))
    return _page(request, templates, provider, sso, "delegation_mandates.html", {
        "title": "Procurations",
        "given": [_row(provider, m, names, other="mandatary_id")
                  for m in provider.mandates.given(sso.user_id)],
        "received": [_row(provider, m, names, other="mandator_id")
                     for m in provider.mandates.received(sso.user_id)],
        "mediator": _is_mediator(provider, sso.uid),
        "csrf_create": csrf_token(request, _csrf_of(request), "mandate-create"),
        "csrf_revoke": csrf_token(request, _csrf_of(request), "mandate-revoke"),
        "errors": errors or {}, "values": values or {},
    }, status_code)


def _csrf_of(request: Request) -> Any:
    return request.app.state.csrf


@router.get(PATH)
def mandates_page(request: Request, provider: ProviderDep, templates: TemplatesDep) -> Response:
    sso = _signed_in(request, provider)
    if sso is None:
        return _login(request, provider)
    return _list_page(request, templates, provider, sso)


@router.post(PATH)
def mandate_create(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    mandatary: Text = "", client: Annotated[str, Form(max_length=100)] = "",
    scopes: Annotated[list[str] | None, Form()] = None,
    ends_at: Annotated[str, Form(max_length=20)] = "", csrf_token: Token = "",
) -> Response:
    """A gives B a mandate."""
    sso = _signed_in_form(request, provider, templates, csrf, csrf_token, "mandate-create")
    if isinstance(sso, Response):
        return sso
    values = {"mandatary": mandatary, "client": client, "ends_at": ends_at,
              "scopes": scopes or []}
    caller = caller_of(request)
    try:
        provider.mandates.create_self(sso.user_id, mandatary,
                                      _terms(provider, client, scopes or [], ends_at),
                                      address=caller.address, request_id=caller.request_id)
    except DomainError as exc:
        return _list_page(request, templates, provider, sso, errors={"mandatary": exc.message},
                          values=values, status_code=422)
    return finish(request, RedirectResponse(PATH + "?fait=donnee", status_code=303), provider)


@router.post(PATH + "/{mandate_id}/retirer")
def mandate_revoke(request: Request, mandate_id: str, provider: ProviderDep,
                   templates: TemplatesDep, csrf: CsrfDep, csrf_token: Token = "") -> Response:
    """A withdraws a mandate: B's delegated sessions end, their tokens are revoked."""
    sso = _signed_in_form(request, provider, templates, csrf, csrf_token, "mandate-revoke")
    if isinstance(sso, Response):
        return sso
    caller = caller_of(request)
    try:
        provider.revoke_mandate(mandate_id, sso.user_id, address=caller.address,
                                request_id=caller.request_id)
    except DomainError:
        return _list_page(request, templates, provider, sso, status_code=404)
    return finish(request, RedirectResponse(PATH + "?fait=retiree", status_code=303), provider)


# --- the mediator's desk ----------------------------------------------------------------


@router.get(MEDIATION_PATH)
def mediation_form(request: Request, provider: ProviderDep, templates: TemplatesDep) -> Response:
    sso = _signed_in(request, provider)
    if sso is None:
        return _login(request, provider)
    return _mediation_page(request, templates, provider, sso)


def _mediation_page(request: Request, templates: Jinja2Templates, provider: Provider,
                    sso: SSOSession, *, pending: str = "", person: str = "",
                    errors: dict[str, str] | None = None, values: dict[str, Any] | None = None,
                    status_code: int = 200) -> Response:
    csrf = _csrf_of(request)
    return _page(request, templates, provider, sso, "delegation_mediation.html", {
        "title": "Procuration au guichet", "mediator": _is_mediator(provider, sso.uid),
        "pending": pending, "person": person, "minutes": int(CODE_LIFETIME.total_seconds() // 60),
        "csrf_start": csrf_token(request, csrf, "mediation-start"),
        "csrf_confirm": csrf_token(request, csrf, "mediation-confirm"),
        "errors": errors or {}, "values": values or {},
    }, 403 if not _is_mediator(provider, sso.uid) else status_code)


@router.post(MEDIATION_PATH)
def mediation_start(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    mandator: Text = "", client: Annotated[str, Form(max_length=100)] = "",
    scopes: Annotated[list[str] | None, Form()] = None,
    ends_at: Annotated[str, Form(max_length=20)] = "", csrf_token: Token = "",
) -> Response:
    """The mediator names the person present; a code goes to the person's address."""
    sso = _signed_in_form(request, provider, templates, csrf, csrf_token, "mediation-start")
    if isinstance(sso, Response):
        return sso
    values = {"mandator": mandator, "client": client, "ends_at": ends_at,
              "scopes": scopes or []}
    caller = caller_of(request)
    try:
        terms = _terms(provider, client, scopes or [], ends_at)
        mandate, person, code = provider.mandates.start_mediation(
            sso.user_id, mandator, terms, accredited=_is_mediator(provider, sso.uid),
            address=caller.address, request_id=caller.request_id)
    except DomainError as exc:
        return _mediation_page(request, templates, provider, sso,
                               errors={"mandator": exc.message}, values=values,
                               status_code=422)
    mediator = provider.users.require(sso.user_id)
    labels = ", ".join(SCOPE_LABELS[s] for s in terms.scopes if s in SCOPE_LABELS)
    provider.accounts.mail.send(
        "mandate_code", to=person.email, locale=person.locale, name=person.given_name or "",
        mediator=mediator.name, code=code, scope=labels or "identité seule",
        ends=local(terms.ends_at).split(" à ")[0],
        minutes=int(CODE_LIFETIME.total_seconds() // 60))
    return _mediation_page(request, templates, provider, sso, pending=str(mandate.id),
                           person=person.name)


@router.post(MEDIATION_PATH + "/confirmer")
def mediation_confirm(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    mandate: Annotated[str, Form(max_length=64)] = "",
    code: Annotated[str, Form(max_length=12)] = "", csrf_token: Token = "",
) -> Response:
    """The person read out the code: the mandate is active."""
    sso = _signed_in_form(request, provider, templates, csrf, csrf_token, "mediation-confirm")
    if isinstance(sso, Response):
        return sso
    caller = caller_of(request)
    try:
        provider.mandates.confirm_mediation(mandate, sso.user_id, code, address=caller.address,
                                            request_id=caller.request_id)
    except DomainError as exc:
        found = provider.mandates.get(mandate)
        still = found is not None and found.status == "pending"
        person = provider.users.get(found.mandator_id) if found is not None else None
        return _mediation_page(request, templates, provider, sso,
                               pending=mandate if still else "",
                               person=person.name if person and still else "",
                               errors={"code" if still else "mandator": exc.message},
                               status_code=422)
    return finish(request, RedirectResponse(PATH + "?fait=confirmee", status_code=303), provider)
