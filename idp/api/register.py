"""Registration (``/inscription``), address confirmation and password reset
(``/mot-de-passe/…``): French, server-rendered, usable without JavaScript.

Every answer that could tell whether an address has an account is the same for known and
unknown addresses: registration and reset requests redirect to the same « message sent »
page, whatever happened (see :mod:`idp.services.accounts`).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from idp import i18n
from idp.api.account_common import (
    LABELS,
    caller_of,
    csrf_ok,
    csrf_refused,
    csrf_token,
    notice,
)
from idp.api.browser import finish, page_locale, render
from idp.api.deps import CsrfDep, ProviderDep, TemplatesDep
from idp.i18n import N_, Msg
from idp.services.accounts import LOCALES, Profile, Registration, check_email
from idp.services.password_policy import MAX_LENGTH, assess
from plateforme.errors import TooManyRequests

router = APIRouter(include_in_schema=False)

Text = Annotated[str, Form(max_length=200)]
Password = Annotated[str, Form(max_length=MAX_LENGTH + 1)]
Token = Annotated[str, Form(max_length=128)]

INVALID_LINK = (N_("Ce lien n'est plus valable : il a déjà servi, il a expiré ou il est incomplet. "
                "Demandez-en un nouveau."))
CHECK_MAIL = N_("Vérifiez votre messagerie")
SENT_SPAM = N_("Pensez à regarder dans le dossier des courriers indésirables.")


def _demo_links(provider: Any) -> list[tuple[str, str]]:
    if provider.settings.demo:
        return [("/demo/boite", N_("Ouvrir la boîte de réception de démonstration"))]
    return []


def _redirect(request: Request, provider: Any, target: str) -> Response:
    """To the next page, in the language the journey asked for (``ui_locales``)."""
    journey = i18n.ui_locales(request.query_params.get("ui_locales"))
    if journey:
        target += "?" + urlencode({"ui_locales": journey})
    return finish(request, RedirectResponse(target, status_code=303), provider)


# --- registration ------------------------------------------------------------------------------


def _register_page(request: Request, templates: Any, provider: Any, csrf: Any, *,
                   values: dict[str, str], errors: dict[str, str], strength: Any = None,
                   status_code: int = 200) -> Response:
    return render(request, templates, provider, "register_form.html", {
        "title": N_("Créer votre compte"), "values": values, "errors": errors,
        "labels": LABELS, "strength": strength,
        "csrf_token": csrf_token(request, csrf, "register"),
    }, status_code)


@router.get("/inscription")
def register_form(request: Request, provider: ProviderDep, templates: TemplatesDep,
                  csrf: CsrfDep) -> Response:
    # Messages are written in French or English: the page's language when it is one of them.
    locale = page_locale(request, provider)
    return _register_page(request, templates, provider, csrf,
                          values={"locale": locale if locale in LOCALES else "fr"}, errors={})


@router.post("/inscription")
def register_submit(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    given_name: Text = "", family_name: Text = "",
    email: Annotated[str, Form(max_length=400)] = "",
    password: Password = "", password_confirmation: Password = "",
    birthdate: Annotated[str, Form(max_length=20)] = "",
    phone_number: Annotated[str, Form(max_length=40)] = "",
    street_address: Text = "", postal_code: Annotated[str, Form(max_length=20)] = "",
    locality: Text = "", locale: Annotated[str, Form(max_length=10)] = "fr",
    csrf_token: Token = "",
) -> Response:
    if not csrf_ok(request, csrf, csrf_token, "register"):
        return csrf_refused(request, templates, provider)
    profile = Profile(given_name=given_name, family_name=family_name, birthdate=birthdate,
                      phone_number=phone_number, street_address=street_address,
                      postal_code=postal_code, locality=locality, locale=locale)
    data = Registration(email=email, password=password,
                        password_confirmation=password_confirmation, profile=profile)
    values = {"email": email, **{k: str(v) for k, v in vars(profile).items()}}
    check = provider.accounts.check_registration(data)
    if not check.ok:
        return _register_page(request, templates, provider, csrf, values=values,
                              errors=check.errors, strength=check.strength, status_code=422)
    caller = caller_of(request)
    try:
        provider.accounts.check_request_rate(caller)
    except TooManyRequests as exc:
        response = _register_page(request, templates, provider, csrf, values=values,
                                  errors={"email": exc.message}, status_code=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    provider.accounts.later("register", data, caller)
    return _redirect(request, provider, "/inscription/envoye")


@router.get("/inscription/envoye")
def register_sent(request: Request, provider: ProviderDep, templates: TemplatesDep) -> Response:
    return notice(request, templates, provider, heading=CHECK_MAIL, paragraphs=[
        N_("Un message vient d'être envoyé à l'adresse que vous avez indiquée. Ouvrez le lien "
           "qu'il contient pour confirmer votre adresse et activer votre compte : il reste "
           "valable 24 heures."),
        Msg.join([N_("Vous ne pourrez pas vous connecter tant que votre adresse n'est pas "
                     "confirmée."), SENT_SPAM]),
    ], links=[*_demo_links(provider),
              ("/inscription/renvoyer", N_("Je n'ai rien reçu : recevoir un nouveau lien"))])


@router.post("/inscription/robustesse")
def password_strength(
    request: Request, provider: ProviderDep,
    password: Password = "", email: Annotated[str, Form(max_length=400)] = "",
    given_name: Text = "", family_name: Text = "", lang: Annotated[str, Form(max_length=35)] = "",
) -> Response:
    """The strength meter's live update (``/static/plateforme/password-strength.js``), in the
    page's language (``lang``)."""
    strength = assess(password, user_inputs=[email, given_name, family_name])
    locale = i18n.supported(lang) or page_locale(request, provider)
    return JSONResponse(
        {"score": strength.score, "label": i18n.translate(locale, strength.label),
         "acceptable": strength.acceptable,
         "problems": [i18n.translate(locale, p) for p in strength.problems],
         "advice": [i18n.translate(locale, a) for a in strength.advice]},
        headers={"Cache-Control": "no-store"})


@router.get("/inscription/confirmer")
def verify_form(request: Request, provider: ProviderDep, templates: TemplatesDep,
                csrf: CsrfDep, jeton: str = "") -> Response:
    if provider.accounts.link_user(jeton, "verify") is None:
        return _invalid_link(request, templates, provider, "/inscription/renvoyer")
    return render(request, templates, provider, "register_confirm.html", {
        "title": N_("Confirmer votre adresse"),
        "heading": N_("Confirmer votre adresse électronique"),
        "message": N_("Confirmez votre adresse pour activer votre compte Martinique Connect."),
        "action": "/inscription/confirmer", "token": jeton, "button": N_("Confirmer mon adresse"),
        "csrf_token": csrf_token(request, csrf, "verify"),
    })


@router.post("/inscription/confirmer")
def verify_submit(request: Request, provider: ProviderDep, templates: TemplatesDep,
                  csrf: CsrfDep, jeton: Token = "", csrf_token: Token = "") -> Response:
    if not csrf_ok(request, csrf, csrf_token, "verify"):
        return csrf_refused(request, templates, provider)
    user = provider.accounts.verify_email(jeton, caller_of(request))
    if user is None:
        return _invalid_link(request, templates, provider, "/inscription/renvoyer")
    return notice(request, templates, provider, heading=N_("Adresse confirmée"), paragraphs=[
        N_("Merci ! Votre adresse électronique est confirmée et votre compte est actif. Vous "
        "pouvez maintenant vous connecter."),
    ], action_url="/connexion?retour=/compte/", action_label=N_("Se connecter"))


def _invalid_link(request: Request, templates: Any, provider: Any, again: str) -> Response:
    return notice(request, templates, provider, heading=N_("Lien non valable"),
                  paragraphs=[INVALID_LINK], status_code=400, kind="alerte",
                  links=[(again, N_("Recevoir un nouveau lien"))])


# --- emailed requests: resend the confirmation, forgotten password --------------------------


def _email_request_page(request: Request, templates: Any, provider: Any, csrf: Any, *,
                        kind: str, email: str = "", errors: dict[str, str] | None = None,
                        status_code: int = 200) -> Response:
    if kind == "reset":
        context = {"title": N_("Mot de passe oublié"), "action": "/mot-de-passe/oublie",
                   "button": N_("Recevoir un lien"),
                   "intro": N_("Indiquez l'adresse électronique de votre compte : nous y enverrons "
                            "un lien pour choisir un nouveau mot de passe.")}
    else:
        context = {"title": N_("Recevoir un nouveau lien de confirmation"),
                   "action": "/inscription/renvoyer", "button": N_("Recevoir un nouveau lien"),
                   "intro": N_("Indiquez l'adresse électronique avec laquelle vous avez créé votre "
                            "compte : si elle attend encore sa confirmation, un nouveau lien y "
                            "sera envoyé.")}
    return render(request, templates, provider, "register_email_request.html", {
        **context, "email": email, "errors": errors or {},
        "csrf_token": csrf_token(request, csrf, kind),
    }, status_code)


def _email_request_submit(request: Request, templates: Any, provider: Any, csrf: Any, *,
                          kind: str, email: str, token: str) -> Response:
    if not csrf_ok(request, csrf, token, kind):
        return csrf_refused(request, templates, provider)
    error = check_email(email)
    if error:
        return _email_request_page(request, templates, provider, csrf, kind=kind, email=email,
                                   errors={"email": error}, status_code=422)
    caller = caller_of(request)
    try:
        provider.accounts.check_request_rate(caller)
    except TooManyRequests as exc:
        response = _email_request_page(request, templates, provider, csrf, kind=kind,
                                       email=email, errors={"email": exc.message},
                                       status_code=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if kind == "reset":
        provider.accounts.later("request_reset", email, caller)
        return _redirect(request, provider, "/mot-de-passe/oublie/envoye")
    provider.accounts.later("resend_verification", email, caller)
    return _redirect(request, provider, "/inscription/envoye")


@router.get("/inscription/renvoyer")
def resend_form(request: Request, provider: ProviderDep, templates: TemplatesDep,
                csrf: CsrfDep) -> Response:
    return _email_request_page(request, templates, provider, csrf, kind="resend")


@router.post("/inscription/renvoyer")
def resend_submit(request: Request, provider: ProviderDep, templates: TemplatesDep,
                  csrf: CsrfDep, email: Annotated[str, Form(max_length=400)] = "",
                  csrf_token: Token = "") -> Response:
    return _email_request_submit(request, templates, provider, csrf, kind="resend",
                                 email=email, token=csrf_token)


@router.get("/mot-de-passe/oublie")
def reset_request_form(request: Request, provider: ProviderDep, templates: TemplatesDep,
                       csrf: CsrfDep) -> Response:
    return _email_request_page(request, templates, provider, csrf, kind="reset")


@router.post("/mot-de-passe/oublie")
def reset_request_submit(request: Request, provider: ProviderDep, templates: TemplatesDep,
                         csrf: CsrfDep, email: Annotated[str, Form(max_length=400)] = "",
                         csrf_token: Token = "") -> Response:
    return _email_request_submit(request, templates, provider, csrf, kind="reset",
                                 email=email, token=csrf_token)


@router.get("/mot-de-passe/oublie/envoye")
def reset_request_sent(request: Request, provider: ProviderDep,
                       templates: TemplatesDep) -> Response:
    return notice(request, templates, provider, heading=CHECK_MAIL, paragraphs=[
        N_("Si un compte utilise cette adresse, un message vient d'y être envoyé avec un lien "
           "pour choisir un nouveau mot de passe. Ce lien reste valable une heure et ne sert "
           "qu'une fois."),
        SENT_SPAM,
    ], links=[*_demo_links(provider), ("/connexion", N_("Revenir à la connexion"))])


# --- new password from an emailed link -------------------------------------------------------


def _reset_page(request: Request, templates: Any, provider: Any, csrf: Any, *, token: str,
                email: str, errors: dict[str, str], strength: Any = None,
                status_code: int = 200) -> Response:
    return render(request, templates, provider, "account_reset_form.html", {
        "title": N_("Choisir un nouveau mot de passe"), "token": token, "email": email,
        "errors": errors, "labels": LABELS, "strength": strength,
        "csrf_token": csrf_token(request, csrf, "reset"),
    }, status_code)


@router.get("/mot-de-passe/nouveau")
def reset_form(request: Request, provider: ProviderDep, templates: TemplatesDep,
               csrf: CsrfDep, jeton: str = "") -> Response:
    user = provider.accounts.link_user(jeton, "reset")
    if user is None:
        return _invalid_link(request, templates, provider, "/mot-de-passe/oublie")
    return _reset_page(request, templates, provider, csrf, token=jeton, email=user.email,
                       errors={})


@router.post("/mot-de-passe/nouveau")
def reset_submit(request: Request, provider: ProviderDep, templates: TemplatesDep,
                 csrf: CsrfDep, jeton: Token = "", password: Password = "",
                 password_confirmation: Password = "", csrf_token: Token = "") -> Response:
    if not csrf_ok(request, csrf, csrf_token, "reset"):
        return csrf_refused(request, templates, provider)
    user = provider.accounts.link_user(jeton, "reset")
    if user is None:
        return _invalid_link(request, templates, provider, "/mot-de-passe/oublie")
    check = provider.accounts.check_new_password(user, password, password_confirmation)
    if not check.ok:
        return _reset_page(request, templates, provider, csrf, token=jeton, email=user.email,
                           errors=check.errors, strength=check.strength, status_code=422)
    if provider.accounts.reset_password(jeton, password, caller_of(request)) is None:
        return _invalid_link(request, templates, provider, "/mot-de-passe/oublie")
    request.state.set_session = ""  # every session ended, this browser's too
    return notice(request, templates, provider, heading=N_("Mot de passe modifié"), paragraphs=[
        N_("Votre nouveau mot de passe est enregistré. Par sécurité, toutes vos sessions ont été "
        "fermées : connectez-vous avec votre nouveau mot de passe."),
    ], action_url="/connexion?retour=/compte/", action_label=N_("Se connecter"))
