"""The account console (``/compte/``): profile, password, sessions, connected applications,
activity, « Télécharger mes données » and « Supprimer mon compte ».

Every page needs the SSO session (cookie ``mc_session``); without it the person is sent to
``/connexion?retour=<page>``. Every form carries a purpose-bound CSRF token; every change is
made by :mod:`idp.services.accounts`, which writes the audit journal.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from idp import i18n
from idp.api.account_common import (
    LABELS,
    caller_of,
    csrf_ok,
    csrf_refused,
    csrf_token,
    notice,
)
from idp.api.browser import current_session, finish, page_locale, render
from idp.api.deps import CsrfDep, ProviderDep, TemplatesDep
from idp.api.login import SCOPE_LABELS
from idp.i18n import N_, Msg
from idp.services import SSOSession
from idp.services.accounts import Profile
from idp.services.factors import ACTIVITY_LABELS
from idp.services.password_policy import MAX_LENGTH
from plateforme.errors import NotFound, TooManyRequests

router = APIRouter(include_in_schema=False)

Text = Annotated[str, Form(max_length=200)]
Password = Annotated[str, Form(max_length=MAX_LENGTH + 1)]
Token = Annotated[str, Form(max_length=128)]

try:
    LOCAL_TIME: Any = ZoneInfo("America/Martinique")
except Exception:  # noqa: BLE001 - no time-zone database: show UTC
    LOCAL_TIME = UTC

NAVIGATION = [
    ("/compte/", N_("Mon compte")), ("/compte/profil", N_("Profil")),
    ("/compte/securite", N_("Sécurité")), ("/compte/mot-de-passe", N_("Mot de passe")),
    ("/compte/sessions", N_("Sessions")), ("/compte/applications", N_("Applications connectées")),
    ("/compte/activite", N_("Activité")), ("/compte/donnees", N_("Mes données")),
    ("/compte/procurations", N_("Procurations")),
]

DONE = {
    "profil": N_("Votre profil est enregistré."),
    "adresse": N_("Si cette adresse peut être utilisée, un lien de confirmation vient d'y être "
               "envoyé. Votre adresse actuelle reste celle du compte tant que vous ne l'avez "
               "pas ouvert."),
    "mot-de-passe": N_("Votre mot de passe est modifié. Vos autres sessions ont été fermées et "
                    "les services connectés devront vous reconnecter."),
    "session": N_("La session a été fermée."),
    "sessions": N_("Toutes vos autres sessions ont été fermées."),
    "application": N_("L'accès de ce service à votre compte a été retiré."),
}

OUTCOMES = {"success": N_("réussi"), "failure": N_("échec"), "refused": N_("refusé"),
            "ignored": N_("sans effet")}


def local(value: datetime | None, locale: str = "fr") -> str:
    """A date and time of Martinique, as the pages show it (« 29/11/2026 à 14:05 »)."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(LOCAL_TIME)
    return i18n.translate(locale, Msg("%(date)s à %(time)s", date=value.strftime("%d/%m/%Y"),
                                      time=value.strftime("%H:%M")))


def activity_label(action: str) -> str:
    """The French label of a journal event (:data:`ACTIVITY_LABELS` has every action the
    platform writes; an unknown one, from a newer release, is still named)."""
    return ACTIVITY_LABELS.get(action) or Msg("Opération « %(action)s »", action=action)


def _login_redirect(request: Request, provider: Any) -> Response:
    target = "/connexion?retour=" + quote(request.url.path, safe="/")
    return finish(request, RedirectResponse(target, status_code=303), provider)


def _signed_in(request: Request, provider: Any) -> SSOSession | None:
    sso = current_session(request, provider)
    if sso is None or provider.users.get(sso.user_id) is None:
        return None
    return sso


def _page(request: Request, templates: Any, provider: Any, sso: SSOSession, name: str,
          context: dict[str, Any], status_code: int = 200) -> Response:
    user = provider.users.require(sso.user_id)
    done = request.query_params.get("fait")
    locale = page_locale(request, provider)
    return render(request, templates, provider, name, {
        "navigation": NAVIGATION, "current_path": request.url.path, "user": user,
        "done": DONE.get(done or ""), "local": lambda value: local(value, locale), **context,
    }, status_code)


def _back(request: Request, provider: Any, path: str, done: str | None = None) -> Response:
    target = path + (f"?fait={done}" if done else "")
    return finish(request, RedirectResponse(target, status_code=303), provider)


# --- home ---------------------------------------------------------------------------------


@router.get("/compte")
def account_root(request: Request, provider: ProviderDep) -> Response:
    return _back(request, provider, "/compte/")


@router.get("/compte/")
def account_home(request: Request, provider: ProviderDep, templates: TemplatesDep) -> Response:
    sso = _signed_in(request, provider)
    if sso is None:
        return _login_redirect(request, provider)
    return _page(request, templates, provider, sso, "account_home.html", {
        "title": N_("Mon compte"), "sessions": len(provider.sessions.for_user(sso.uid)),
        "apps": len(provider.consents.list(sso.uid)),
    })


# --- profile and address ---------------------------------------------------------------


def _profile_page(request: Request, templates: Any, provider: Any, csrf: Any, sso: SSOSession,
                  *, values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                  new_email: str = "", status_code: int = 200) -> Response:
    user = provider.users.require(sso.user_id)
    return _page(request, templates, provider, sso, "account_profile.html", {
        "title": N_("Profil"), "values": values or vars(Profile.of(user)), "errors": errors or {},
        "labels": LABELS, "new_email": new_email,
        "csrf_profile": csrf_token(request, csrf, "profile"),
        "csrf_email": csrf_token(request, csrf, "email-change"),
    }, status_code)


@router.get("/compte/profil")
def profile_form(request: Request, provider: ProviderDep, templates: TemplatesDep,
                 csrf: CsrfDep) -> Response:
    sso = _signed_in(request, provider)
    if sso is None:
        return _login_redirect(request, provider)
    return _profile_page(request, templates, provider, csrf, sso)


@router.post("/compte/profil")
def profile_submit(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    given_name: Text = "", family_name: Text = "",
    birthdate: Annotated[str, Form(max_length=20)] = "",
    phone_number: Annotated[str, Form(max_length=40)] = "",
    street_address: Text = "", postal_code: Annotated[str, Form(max_length=20)] = "",
    locality: Text = "", locale: Annotated[str, Form(max_length=10)] = "fr",
    csrf_token: Token = "",
) -> Response:
    sso = _signed_in(request, provider)
    if sso is None:
        return _login_redirect(request, provider)
    if not csrf_ok(request, csrf, csrf_token, "profile"):
        return csrf_refused(request, templates, provider)
    profile = Profile(given_name=given_name, family_name=family_name, birthdate=birthdate,
                      phone_number=phone_number, street_address=street_address,
                      postal_code=postal_code, locality=locality, locale=locale)
    errors = provider.accounts.update_profile(sso.user_id, profile, caller_of(request))
    if errors:
        return _profile_page(request, templates, provider, csrf, sso, values=vars(profile),
                             errors=errors, status_code=422)
    return _back(request, provider, "/compte/profil", "profil")


@router.post("/compte/adresse")
def email_change_submit(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    new_email: Annotated[str, Form(max_length=400)] = "", email_password: Password = "",
    csrf_token: Token = "",
) -> Response:
    sso = _signed_in(request, provider)
    if sso is None:
        return _login_redirect(request, provider)
    if not csrf_ok(request, csrf, csrf_token, "email-change"):
        return csrf_refused(request, templates, provider)
    errors = provider.accounts.request_email_change(sso.user_id, new_email, email_password,
                                                    caller_of(request))
    if errors:
        return _profile_page(request, templates, provider, csrf, sso, errors=errors,
                             new_email=new_email, status_code=422)
    return _back(request, provider, "/compte/profil", "adresse")


@router.get("/compte/adresse/confirmer")
def email_change_form(request: Request, provider: ProviderDep, templates: TemplatesDep,
                      csrf: CsrfDep, jeton: str = "") -> Response:
    if provider.accounts.link_user(jeton, "email") is None:
        return _invalid(request, templates, provider)
    return render(request, templates, provider, "register_confirm.html", {
        "title": N_("Confirmer votre nouvelle adresse"),
        "heading": N_("Confirmer votre nouvelle adresse électronique"),
        "message": N_("Confirmez que cette adresse devient celle de votre compte Martinique "
                   "Connect. Vous vous connecterez désormais avec elle."),
        "action": "/compte/adresse/confirmer", "token": jeton,
        "button": N_("Confirmer ma nouvelle adresse"),
        "csrf_token": csrf_token(request, csrf, "email-confirm"),
    })


@router.post("/compte/adresse/confirmer")
def email_change_confirm(request: Request, provider: ProviderDep, templates: TemplatesDep,
                         csrf: CsrfDep, jeton: Token = "", csrf_token: Token = "") -> Response:
    if not csrf_ok(request, csrf, csrf_token, "email-confirm"):
        return csrf_refused(request, templates, provider)
    if provider.accounts.confirm_email_change(jeton, caller_of(request)) is None:
        return _invalid(request, templates, provider)
    return notice(request, templates, provider, heading=N_("Adresse modifiée"), paragraphs=[
        N_("Votre nouvelle adresse électronique est confirmée : c'est désormais celle de votre "
        "compte. Un message en informe votre ancienne adresse."),
    ], action_url="/compte/profil", action_label=N_("Revenir à mon profil"))


def _invalid(request: Request, templates: Any, provider: Any) -> Response:
    return notice(request, templates, provider, heading=N_("Lien non valable"), paragraphs=[
        N_("Ce lien n'est plus valable : il a déjà servi, il a expiré ou il est incomplet. "
        "Recommencez le changement d'adresse depuis votre profil."),
    ], status_code=400, kind="alerte", links=[("/compte/profil", N_("Revenir à mon profil"))])


# --- password -----------------------------------------------------------------------------


def _password_page(request: Request, templates: Any, provider: Any, csrf: Any,
                   sso: SSOSession, *, errors: dict[str, str] | None = None,
                   strength: Any = None, status_code: int = 200) -> Response:
    return _page(request, templates, provider, sso, "account_password.html", {
        "title": N_("Changer de mot de passe"), "errors": errors or {}, "labels": LABELS,
        "strength": strength, "csrf_token": csrf_token(request, csrf, "password-change"),
    }, status_code)


@router.get("/compte/mot-de-passe")
def password_form(request: Request, provider: ProviderDep, templates: TemplatesDep,
                  csrf: CsrfDep) -> Response:
    sso = _signed_in(request, provider)
    if sso is None:
        return _login_redirect(request, provider)
    return _password_page(request, templates, provider, csrf, sso)


@router.post("/compte/mot-de-passe")
def password_submit(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    current_password: Password = "", password: Password = "",
    password_confirmation: Password = "", csrf_token: Token = "",
) -> Response:
    sso = _signed_in(request, provider)
    if sso is None:
        return _login_redirect(request, provider)
    if not csrf_ok(request, csrf, csrf_token, "password-change"):
        return csrf_refused(request, templates, provider)
    try:
        check = provider.accounts.change_password(sso, current_password, password,
                                                  password_confirmation, caller_of(request))
    except TooManyRequests as exc:
        response = _password_page(request, templates, provider, csrf, sso,
                                  errors={"current_password": exc.message}, status_code=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if not check.ok:
        return _password_page(request, templates, provider, csrf, sso, errors=check.errors,
                              strength=check.strength, status_code=422)
    return _back(request, provider, "/compte/", "mot-de-passe")


# --- sessions -----------------------------------------------------------------------------


@router.get("/compte/sessions")
def sessions_page(request: Request, provider: ProviderDep, templates: TemplatesDep,
                  csrf: CsrfDep) -> Response:
    sso = _signed_in(request, provider)
    if sso is None:
        return _login_redirect(request, provider)
    return _page(request, templates, provider, sso, "account_sessions.html", {
        "title": N_("Sessions"), "sessions": provider.accounts.sessions(sso),
        "csrf_token": csrf_token(request, csrf, "sessions"),
    })


@router.post("/compte/sessions/terminer")
def session_end(request: Request, provider: ProviderDep, templates: TemplatesDep,
                csrf: CsrfDep, session: Annotated[str, Form(max_length=40)] = "",
                csrf_token: Token = "") -> Response:
    sso = _signed_in(request, provider)
    if sso is None:
        return _login_redirect(request, provider)
    if not csrf_ok(request, csrf, csrf_token, "sessions"):
        return csrf_refused(request, templates, provider)
    provider.accounts.end_session(sso, session, caller_of(request))
    if provider.sessions.get(sso.sid) is None:  # the person closed this very session
        request.state.set_session = ""
        return notice(request, templates, provider, heading=N_("Vous êtes déconnecté"),
                      paragraphs=[N_("Cette session est fermée.")],
                      action_url="/connexion?retour=/compte/", action_label=N_("Se connecter"))
    return _back(request, provider, "/compte/sessions", "session")


@router.post("/compte/sessions/terminer-autres")
def sessions_end_others(request: Request, provider: ProviderDep, templates: TemplatesDep,
                        csrf: CsrfDep, csrf_token: Token = "") -> Response:
    sso = _signed_in(request, provider)
    if sso is None:
        return _login_redirect(request, provider)
    if not csrf_ok(request, csrf, csrf_token, "sessions"):
        return csrf_refused(request, templates, provider)
    provider.accounts.end_other_sessions(sso, caller_of(request))
    return _back(request, provider, "/compte/sessions", "sessions")


# --- connected applications ---------------------------------------------------------------


@router.get("/compte/applications")
def apps_page(request: Request, provider: ProviderDep, templates: TemplatesDep,
              csrf: CsrfDep) -> Response:
    sso = _signed_in(request, provider)
    if sso is None:
        return _login_redirect(request, provider)
    return _page(request, templates, provider, sso, "account_apps.html", {
        "title": N_("Applications connectées"), "apps": provider.accounts.connected_apps(sso.uid),
        "scope_labels": {scope: i18n.translate(page_locale(request, provider), label)
                         for scope, label in SCOPE_LABELS.items()},
        "csrf_token": csrf_token(request, csrf, "apps"),
    })


@router.post("/compte/applications/retirer")
def app_revoke(request: Request, provider: ProviderDep, templates: TemplatesDep,
               csrf: CsrfDep, client_id: Annotated[str, Form(max_length=100)] = "",
               csrf_token: Token = "") -> Response:
    sso = _signed_in(request, provider)
    if sso is None:
        return _login_redirect(request, provider)
    if not csrf_ok(request, csrf, csrf_token, "apps"):
        return csrf_refused(request, templates, provider)
    try:
        provider.accounts.revoke_app(sso, client_id, caller_of(request))
    except NotFound:
        return _back(request, provider, "/compte/applications")
    return _back(request, provider, "/compte/applications", "application")


# --- activity -----------------------------------------------------------------------------


@router.get("/compte/activite")
def activity_page(request: Request, provider: ProviderDep, templates: TemplatesDep) -> Response:
    sso = _signed_in(request, provider)
    if sso is None:
        return _login_redirect(request, provider)
    locale = page_locale(request, provider)
    events = [{
        "at": local(e.at, locale), "label": i18n.translate(locale, activity_label(e.action)),
        "outcome": i18n.translate(locale, OUTCOMES.get(e.outcome, e.outcome)),
        "failed": e.outcome == "failure",
        "address": e.address or "",
    } for e in provider.accounts.activity(sso.uid)]
    return _page(request, templates, provider, sso, "account_activity.html", {
        "title": N_("Activité du compte"), "events": events,
    })


# --- my data: export and deletion ---------------------------------------------------------


@router.get("/compte/donnees")
def data_page(request: Request, provider: ProviderDep, templates: TemplatesDep,
              csrf: CsrfDep) -> Response:
    sso = _signed_in(request, provider)
    if sso is None:
        return _login_redirect(request, provider)
    return _page(request, templates, provider, sso, "account_data.html", {
        "title": N_("Mes données"), "csrf_token": csrf_token(request, csrf, "export"),
    })


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return str(value)


@router.post("/compte/donnees/export")
def data_export(request: Request, provider: ProviderDep, templates: TemplatesDep,
                csrf: CsrfDep, csrf_token: Token = "") -> Response:
    sso = _signed_in(request, provider)
    if sso is None:
        return _login_redirect(request, provider)
    if not csrf_ok(request, csrf, csrf_token, "export"):
        return csrf_refused(request, templates, provider)
    export = provider.accounts.export(sso, caller_of(request))
    body = json.dumps(export, ensure_ascii=False, indent=2, default=_json_default)
    filename = f"martinique-connect-mes-donnees-{date.today():%Y-%m-%d}.json"
    response = Response(body.encode(), media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="{filename}"'})
    return finish(request, response, provider)


def _delete_page(request: Request, templates: Any, provider: Any, csrf: Any, sso: SSOSession,
                 *, error: str | None = None, status_code: int = 200) -> Response:
    return _page(request, templates, provider, sso, "account_delete.html", {
        "title": N_("Supprimer mon compte"), "errors": {"delete_password": error} if error else {},
        "labels": LABELS, "apps": provider.accounts.connected_apps(sso.uid),
        "csrf_token": csrf_token(request, csrf, "delete"),
    }, status_code)


@router.get("/compte/supprimer")
def delete_form(request: Request, provider: ProviderDep, templates: TemplatesDep,
                csrf: CsrfDep) -> Response:
    sso = _signed_in(request, provider)
    if sso is None:
        return _login_redirect(request, provider)
    return _delete_page(request, templates, provider, csrf, sso)


@router.post("/compte/supprimer")
def delete_submit(request: Request, provider: ProviderDep, templates: TemplatesDep,
                  csrf: CsrfDep, delete_password: Password = "",
                  csrf_token: Token = "") -> Response:
    sso = _signed_in(request, provider)
    if sso is None:
        return _login_redirect(request, provider)
    if not csrf_ok(request, csrf, csrf_token, "delete"):
        return csrf_refused(request, templates, provider)
    try:
        deleted = provider.accounts.delete_account(sso, delete_password, caller_of(request))
    except TooManyRequests as exc:
        response = _delete_page(request, templates, provider, csrf, sso, error=exc.message,
                                status_code=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if not deleted:
        return _delete_page(request, templates, provider, csrf, sso,
                            error=N_("Le mot de passe est incorrect."), status_code=401)
    request.state.set_session = ""
    return notice(request, templates, provider, heading=N_("Votre compte est supprimé"),
                  paragraphs=[
        N_("Vos données personnelles ont été effacées, vos autorisations retirées et les "
           "services auxquels vous étiez connecté en ont été informés."),
        N_("Le journal de sécurité garde, sans votre nom ni votre adresse électronique, la "
           "trace des opérations faites sur le compte."),
    ], links=[("/inscription", N_("Créer un nouveau compte"))])
