"""What the registration pages and the account console share: field labels, the caller's
description, page helpers."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from idp.api.browser import address_of, ensure_csrf_cookie, error_page, render
from idp.i18n import N_
from idp.services import Provider
from idp.services.accounts import Caller
from plateforme.web import CSRF_COOKIE, Csrf, request_id

CSRF_FAILED = N_("Le formulaire a expiré. Rechargez la page et recommencez.")

LABELS = {
    "given_name": N_("Prénom"), "family_name": N_("Nom"), "email": N_("Adresse électronique"),
    "password": N_("Mot de passe"), "password_confirmation": N_("Confirmation du mot de passe"),
    "birthdate": N_("Date de naissance"), "phone_number": N_("Numéro de téléphone"),
    "street_address": N_("Adresse (numéro et voie)"), "postal_code": N_("Code postal"),
    "locality": N_("Commune"), "locale": N_("Langue des messages"),
    "current_password": N_("Mot de passe actuel"), "new_email": N_("Nouvelle adresse électronique"),
    "email_password": N_("Mot de passe actuel"), "delete_password": N_("Mot de passe"),
}


def caller_of(request: Request) -> Caller:
    return Caller(address=address_of(request), request_id=request_id(request),
                  user_agent=request.headers.get("user-agent"))


def csrf_token(request: Request, csrf: Csrf, purpose: str) -> str:
    return csrf.token(ensure_csrf_cookie(request, csrf), purpose)


def csrf_ok(request: Request, csrf: Csrf, token: str, purpose: str) -> bool:
    return csrf.check(request.cookies.get(CSRF_COOKIE), token, purpose)


def csrf_refused(request: Request, templates: Jinja2Templates, provider: Provider) -> Response:
    return error_page(request, templates, provider, heading=N_("Formulaire expiré"),
                      message=CSRF_FAILED, status_code=403)


def notice(request: Request, templates: Jinja2Templates, provider: Provider, *, heading: str,
           paragraphs: list[str], status_code: int = 200, kind: str = "info",
           action_url: str | None = None, action_label: str | None = None,
           links: list[tuple[str, str]] | None = None) -> Response:
    """A page that tells one thing (sent, done, expired), with an optional next step."""
    context: dict[str, Any] = {
        "title": heading, "heading": heading, "paragraphs": paragraphs, "kind": kind,
        "action_url": action_url, "action_label": action_label, "links": links or [],
    }
    return render(request, templates, provider, "account_notice.html", context, status_code)
