"""Sign in with FranceConnect (``/connexion/franceconnect…``): the provider as a relying party
of an upstream OpenID provider configured by the ``MC_FRANCECONNECT_*`` settings.

The journey: the « S'identifier avec FranceConnect » button (``POST``, CSRF-checked) sends the
browser to the upstream with a fresh ``state``, ``nonce`` and PKCE verifier remembered for
this browser; the return checks ``state`` (single use, same browser), exchanges the code,
verifies the ID token and the signed UserInfo, and then either signs in to the linked
account, or creates one, or asks the person to sign in to the existing account that matches
before linking it (:mod:`idp.services.brokering`). The pending ``/authorize`` request, if
any, then resumes. Logging out of Martinique Connect also logs out of the upstream
(:func:`upstream_logout`), and comes back to :func:`logout_return`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import RedirectResponse, Response

from idp.api.browser import (
    address_of,
    browser_binding,
    current_session,
    ensure_csrf_cookie,
    error_page,
    finish,
    load_interaction,
    render,
)
from idp.api.deps import CsrfDep, ProviderDep, TemplatesDep
from idp.api.signin import complete_sign_in, safe_return
from idp.oauth2.upstream import UpstreamError, UpstreamIdentity, UpstreamProvider
from idp.services import Provider
from idp.services.brokering import CIVIL_STATUS_LABELS, CivilStatus, LinkRefused
from idp.services.factors.levels import combine
from plateforme.audit import AuditRecord
from plateforme.errors import Conflict
from plateforme.settings import Settings
from plateforme.web import CSRF_COOKIE, request_id

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

RETURN_PATH = "/connexion/franceconnect/retour"
LINK_PATH = "/connexion/franceconnect/relier"
LOGOUT_RETURN_PATH = "/connexion/franceconnect/deconnexion"
CSRF_FAILED = "Le formulaire a expiré. Rechargez la page et recommencez."
EXPIRED = ("Cette connexion avec FranceConnect a expiré ou n'a pas été commencée dans ce "
           "navigateur. Recommencez depuis la page de connexion.")
# What the person reads for each upstream failure (the code goes to the journal).
FAILURES = {
    "access_denied": ("Connexion avec FranceConnect annulée",
                      "Vous avez annulé la connexion avec FranceConnect. Vous pouvez vous "
                      "connecter autrement ou recommencer."),
    "insufficient_acr": ("Niveau de sécurité insuffisant",
                         "Le compte utilisé sur FranceConnect n'offre pas le niveau de sécurité "
                         "demandé. Choisissez un autre compte ou connectez-vous autrement."),
    "invalid_civil_status": ("Identité incomplète",
                             "FranceConnect n'a pas transmis votre identité complète : la "
                             "connexion n'a pas pu aboutir."),
}
GENERIC_FAILURE = ("Connexion avec FranceConnect impossible",
                   "La réponse de FranceConnect n'a pas pu être vérifiée : par sécurité, la "
                   "connexion n'a pas abouti. Recommencez depuis la page de connexion.")


def franceconnect_upstream(settings: Settings) -> UpstreamProvider | None:
    """The upstream provider configured by ``MC_FRANCECONNECT_*``, or None (off)."""
    if not (settings.franceconnect_issuer and settings.franceconnect_client_id
            and settings.franceconnect_client_secret):
        return None
    return UpstreamProvider(
        issuer=settings.franceconnect_issuer, client_id=settings.franceconnect_client_id,
        client_secret=settings.franceconnect_client_secret,
        scopes=settings.franceconnect_scopes, acr_values=settings.franceconnect_acr_values,
        redirect_uri=settings.issuer + RETURN_PATH,
    )


def _upstream(request: Request) -> UpstreamProvider | None:
    return getattr(request.app.state, "franceconnect", None)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _state_key(state: str) -> str:
    return f"idp:fc:state:{_digest(state)}"


def _link_key(binding: str) -> str:
    return f"idp:fc:link:{binding}"


def _session_key(sid: str) -> str:
    return f"idp:fc:session:{_digest(sid)}"


def _logout_key(state: str) -> str:
    return f"idp:fc:logout:{_digest(state)}"


def _journal_failure(request: Request, provider: Provider, code: str) -> None:
    provider.journal.record(AuditRecord(
        action="franceconnect.login", outcome="failure", reason=code[:60],
        address=address_of(request), request_id=request_id(request)))


def _failure(request: Request, templates: Jinja2Templates, provider: Provider, code: str,
             interaction: str = "") -> Response:
    heading, message = FAILURES.get(code, GENERIC_FAILURE)
    _journal_failure(request, provider, code)
    back = "/connexion" + ("?" + urlencode({"interaction": interaction}) if interaction else "")
    return render(request, templates, provider, "franceconnect_error.html", {
        "title": heading, "heading": heading, "message": message, "code": code,
        "back_url": back,
    }, status_code=400)


@router.post("/connexion/franceconnect")
def franceconnect_start(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    interaction: Annotated[str, Form(max_length=64)] = "",
    retour: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """The button: redirect to the upstream's authorization endpoint."""
    upstream = _upstream(request)
    if upstream is None:
        return error_page(request, templates, provider, heading="Service indisponible",
                          message="La connexion avec FranceConnect n'est pas proposée ici.",
                          status_code=404)
    if not csrf.check(request.cookies.get(CSRF_COOKIE), csrf_token, "login"):
        return error_page(request, templates, provider, heading="Formulaire expiré",
                          message=CSRF_FAILED, status_code=403)
    pending = load_interaction(request, provider, interaction) if interaction else None
    if interaction and pending is None:
        return error_page(request, templates, provider, heading="Demande expirée",
                          message=EXPIRED)
    try:
        start = upstream.start()
    except UpstreamError as exc:
        log.warning("FranceConnect unavailable: %s", exc)
        return _failure(request, templates, provider, exc.code, interaction)
    binding = browser_binding(request)
    assert binding is not None  # the CSRF check above needs the cookie
    provider.store.set(_state_key(start.state), json.dumps({
        "nonce": start.nonce, "verifier": start.code_verifier, "browser": binding,
        "interaction": pending.id if pending else "",
        "retour": safe_return(retour) if pending is None else "",
    }), ttl=provider.settings.interaction_lifetime)
    return finish(request, RedirectResponse(start.url, status_code=303), provider)


@router.get(RETURN_PATH)
def franceconnect_return(
    request: Request, provider: ProviderDep, templates: TemplatesDep, csrf: CsrfDep,
    state: str = "", code: str = "", error: str = "",
) -> Response:
    """The upstream's authorization response (OIDC Core §3.1.2.5–6)."""
    upstream = _upstream(request)
    if upstream is None or not state or len(state) > 200:
        return _failure(request, templates, provider, "invalid_state")
    raw = provider.store.take(_state_key(state))
    record = json.loads(raw) if raw else None
    if record is None or record["browser"] != browser_binding(request):
        return _failure(request, templates, provider, "invalid_state")
    interaction = record["interaction"]
    if error:
        return _failure(request, templates, provider, error[:60], interaction)
    if not code or len(code) > 512:
        return _failure(request, templates, provider, "invalid_request", interaction)
    try:
        identity = upstream.finish(code, record["nonce"], record["verifier"])
    except UpstreamError as exc:
        log.warning("FranceConnect answer refused: %s", exc)
        return _failure(request, templates, provider, exc.code, interaction)
    try:
        civil = CivilStatus.from_claims(identity.claims)
    except ValueError:
        return _failure(request, templates, provider, "invalid_civil_status", interaction)
    address, rid = address_of(request), request_id(request)
    found = provider.brokering.reconcile(identity.issuer, identity.subject, civil,
                                         address=address, request_id=rid)
    if found.user is None and found.candidate is None:
        try:
            user = provider.brokering.create_account(identity.issuer, identity.subject, civil,
                                                     address=address, request_id=rid)
        except Conflict:
            return _failure(request, templates, provider, "account_conflict", interaction)
        return _sign_in(request, provider, csrf, identity, user_id=str(user.id),
                        amr=identity.amr, interaction=interaction, retour=record["retour"])
    if found.user is not None:
        if found.user.locked:
            return _failure(request, templates, provider, "account_locked", interaction)
        return _sign_in(request, provider, csrf, identity, user_id=str(found.user.id),
                        amr=identity.amr, interaction=interaction, retour=record["retour"])
    binding = browser_binding(request)
    assert binding is not None
    provider.store.set(_link_key(binding), json.dumps({
        "issuer": identity.issuer, "subject": identity.subject, "civil": civil.as_dict(),
        "id_token": identity.id_token, "amr": identity.amr, "interaction": interaction,
        "retour": record["retour"], "created": int(time.time()),
    }), ttl=provider.settings.interaction_lifetime)
    return render(request, templates, provider, "franceconnect_link.html", {
        "title": "Relier votre identité FranceConnect", "reason": found.reason,
        "login_url": "/connexion?" + urlencode({"retour": LINK_PATH}),
        "cancel_url": "/connexion" + ("?" + urlencode({"interaction": interaction})
                                      if interaction else ""),
    })


def _sign_in(request: Request, provider: Provider, csrf: Any, identity: UpstreamIdentity, *,
             user_id: str, amr: list[str], interaction: str, retour: str) -> Response:
    """Open (or renew) the SSO session, remember the upstream ID token for its logout, and
    resume the authorization request."""
    user = provider.users.require(user_id)
    pending = load_interaction(request, provider, interaction) if interaction else None
    response = complete_sign_in(request, provider, csrf, user=user, amr=amr,
                                interaction=pending, retour=retour if pending is None else "")
    sid = getattr(request.state, "set_session", None)
    if sid:
        provider.store.set(_session_key(sid), identity.id_token,
                           ttl=provider.settings.session_lifetime)
    return response


def _pending_link(request: Request, provider: Provider) -> dict[str, Any] | None:
    binding = browser_binding(request)
    raw = provider.store.get(_link_key(binding)) if binding else None
    return json.loads(raw) if raw else None


@router.get(LINK_PATH)
def link_form(request: Request, provider: ProviderDep, templates: TemplatesDep,
              csrf: CsrfDep) -> Response:
    """After signing in to the existing account: confirm the link."""
    pending = _pending_link(request, provider)
    if pending is None:
        return error_page(request, templates, provider, heading="Demande expirée",
                          message=EXPIRED)
    sso = current_session(request, provider)
    if sso is None or sso.auth_time < pending["created"]:
        target = "/connexion?" + urlencode({"retour": LINK_PATH})
        return finish(request, RedirectResponse(target, status_code=303), provider)
    user = provider.users.require(sso.user_id)
    civil = pending["civil"]
    cookie = ensure_csrf_cookie(request, csrf)
    return render(request, templates, provider, "franceconnect_confirm.html", {
        "title": "Relier votre identité FranceConnect", "email": user.email,
        "fields": [(CIVIL_STATUS_LABELS[k], civil[k]) for k in CIVIL_STATUS_LABELS if civil[k]],
        "csrf_token": csrf.token(cookie, "fc-link"),
    })


@router.post(LINK_PATH)
def link_submit(request: Request, provider: ProviderDep, templates: TemplatesDep,
                csrf: CsrfDep, csrf_token: Annotated[str, Form(max_length=128)] = "") -> Response:
    """Link the account just signed in to, unless its civil status contradicts the
    upstream's; then continue as a FranceConnect sign-in."""
    if not csrf.check(request.cookies.get(CSRF_COOKIE), csrf_token, "fc-link"):
        return error_page(request, templates, provider, heading="Formulaire expiré",
                          message=CSRF_FAILED, status_code=403)
    pending = _pending_link(request, provider)
    sso = current_session(request, provider)
    if pending is None or sso is None or sso.auth_time < pending["created"]:
        return error_page(request, templates, provider, heading="Demande expirée",
                          message=EXPIRED)
    binding = browser_binding(request)
    assert binding is not None
    provider.store.delete(_link_key(binding))
    civil = CivilStatus(**pending["civil"])
    try:
        provider.brokering.link(sso.user_id, pending["issuer"], pending["subject"], civil,
                                address=address_of(request), request_id=request_id(request))
    except LinkRefused as exc:
        return render(request, templates, provider, "franceconnect_error.html", {
            "title": "Comptes non reliés", "heading": "Comptes non reliés",
            "message": exc.message, "code": "civil_status_mismatch",
            "back_url": "/compte/",
        }, status_code=409)
    except Conflict as exc:
        return render(request, templates, provider, "franceconnect_error.html", {
            "title": "Comptes non reliés", "heading": "Comptes non reliés",
            "message": f"Ce compte ne peut pas être relié : {exc.message}.",
            "code": "conflict", "back_url": "/compte/",
        }, status_code=409)
    identity = UpstreamIdentity(issuer=pending["issuer"], subject=pending["subject"],
                                acr="eidas1", id_token=pending["id_token"], claims={})
    return _sign_in(request, provider, csrf, identity, user_id=sso.user_id,
                    amr=combine(sso.amr, pending["amr"]), interaction=pending["interaction"],
                    retour=pending["retour"])


def take_upstream_session(provider: Provider, sid: str) -> str | None:
    """The upstream ID token of an SSO session opened through FranceConnect (forgotten)."""
    return provider.store.take(_session_key(sid))


def upstream_logout(request: Request, provider: Provider, id_token: str,
                    then: str | None) -> Response | None:
    """After our own session ended: redirect to the upstream's ``end_session_endpoint``
    (``id_token_hint``, ``state``, ``post_logout_redirect_uri``); :func:`logout_return`
    then goes to ``then`` (the client's ``post_logout_redirect_uri``) or shows the
    logged-out page. None when there is no upstream logout to do."""
    upstream = _upstream(request)
    if upstream is None:
        return None
    state = secrets.token_urlsafe(32)
    try:
        url = upstream.end_session_url(
            id_token_hint=id_token, state=state,
            post_logout_redirect_uri=provider.issuer + LOGOUT_RETURN_PATH)
    except UpstreamError as exc:
        log.warning("FranceConnect logout skipped: %s", exc)
        return None
    if url is None:
        return None
    provider.store.set(_logout_key(state), json.dumps({"then": then or ""}),
                       ttl=provider.settings.interaction_lifetime)
    return finish(request, RedirectResponse(url, status_code=303), provider)


@router.get(LOGOUT_RETURN_PATH)
def logout_return(request: Request, provider: ProviderDep, templates: TemplatesDep,
                  state: str = "") -> Response:
    """Back from the upstream's logout: finish our RP-initiated logout."""
    raw = provider.store.take(_logout_key(state)) if state and len(state) <= 200 else None
    then = json.loads(raw)["then"] if raw else ""
    if then:
        return finish(request, RedirectResponse(then, status_code=303), provider)
    return render(request, templates, provider, "logged_out.html",
                  {"title": "Vous êtes déconnecté"})
