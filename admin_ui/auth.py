"""The console signs its users in through Martinique Connect like any relying party.

Authorization code + PKCE S256 over HTTP against ``settings.issuer`` with Authlib's Starlette
client, as the client ``console-admin`` (first party, public subject: ``sub`` is the account
id; minimum level ``eidas2``, see :data:`REQUIRED_ACR`). Its secret is derived from the
platform's secret key, so that every worker knows it and the database keeps only its hash.
RP-initiated logout on sign-out; back-channel logout ends the console sessions of the
provider's ``sid``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from typing import Any, Final
from urllib.parse import urlencode

from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi import APIRouter, Request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from admin_ui.deps import ConsoleRoute, CsrfFailed, render, session_of
from admin_ui.sessions import ConsoleSessions
from idp import ClientCreate, Provider
from plateforme.audit import AuditRecord
from plateforme.settings import Settings
from plateforme.web import client_address, request_id

CONSOLE_CLIENT_ID = "console-admin"

# The authentication level the console requires (``acr``): ``eidas2``, two factors (a password
# and a code from an authenticator app or a recovery code, or a passkey that verified the
# person). The console asks for it twice over: its registration's minimum (``default_acr``,
# which no request can lower) and ``acr_values`` at each sign-in; then it refuses an ID token
# that does not carry it. A person without a second factor is shown the provider's page
# explaining how to add one (``/compte/securite``), and never reaches the console; a session
# opened with the password alone is stepped up (only the missing factor is asked).
REQUIRED_ACR: Final = "eidas2"
ACR_RANK = {"eidas1": 1, "eidas2": 2, "eidas3": 3}

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"

router = APIRouter(route_class=ConsoleRoute)


def console_secret(settings: Settings) -> str:
    """The console's client secret: HMAC-SHA256(secret key, "admin-console")."""
    key = settings.resolved_secret_key().encode()
    return hmac.new(key, b"admin-console", hashlib.sha256).hexdigest()


def console_client(settings: Settings) -> tuple[ClientCreate, str]:
    """The console's registration at the provider and its secret, for
    ``provider.clients.ensure(*console_client(settings))`` at initialisation."""
    issuer = settings.issuer
    return ClientCreate(
        client_id=CONSOLE_CLIENT_ID, name="Console d'administration",
        redirect_uris=[f"{issuer}/admin/auth/callback"],
        post_logout_redirect_uris=[f"{issuer}/admin/"],
        backchannel_logout_uri=f"{issuer}/admin/backchannel-logout",
        grant_types=["authorization_code"], scopes=["openid", "profile", "email"],
        token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name
        first_party=True, subject_type="public", default_acr=REQUIRED_ACR,
    ), console_secret(settings)


def _oauth_client(request: Request) -> Any:
    """Authlib's client, built once per application (it caches discovery and the JWKS)."""
    state = request.app.state
    client = getattr(state, "admin_oauth", None)
    if client is None:
        settings: Settings = state.settings
        oauth = OAuth()
        oauth.register(
            "martinique_connect",
            server_metadata_url=f"{settings.issuer}/.well-known/openid-configuration",
            client_id=CONSOLE_CLIENT_ID, client_secret=console_secret(settings),
            client_kwargs={"scope": "openid profile email", "code_challenge_method": "S256",
                           "timeout": 10},
        )
        client = state.admin_oauth = oauth.create_client("martinique_connect")
    return client


def _issuer(request: Request) -> str:
    return request.app.state.settings.issuer  # type: ignore[no-any-return]


def _provider(request: Request) -> Provider:
    return request.app.state.provider  # type: ignore[no-any-return]


def safe_next(value: str | None) -> str:
    """Only a path of the console itself is a valid destination after sign-in."""
    if value and value.startswith("/admin/") and not value.startswith("//") and (
            "\\" not in value) and len(value) < 500:
        return value
    return "/admin/"


@router.get("/connexion", name="admin.sign_in")
async def sign_in(request: Request, suite: str | None = None) -> Response:
    """Start the authorization code flow (PKCE S256, ``nonce``, ``state``, ``acr_values``)."""
    session = session_of(request)
    session["next"] = safe_next(suite)
    client = _oauth_client(request)
    return await client.authorize_redirect(  # type: ignore[no-any-return]
        request, f"{_issuer(request)}/admin/auth/callback", acr_values=REQUIRED_ACR,
    )


@router.get("/auth/callback", name="admin.callback")
async def callback(request: Request) -> Response:
    """Redirection endpoint: the code for tokens, the ID token checked (signature, ``iss``,
    ``aud``, ``nonce``, ``acr``), then a new console session."""
    client = _oauth_client(request)
    session = session_of(request)
    try:
        token = await client.authorize_access_token(
            request, claims_options={"iss": {"essential": True, "value": _issuer(request)}},
        )
    except (OAuthError, JoseError) as exc:
        message = getattr(exc, "error", None) or type(exc).__name__
        if message == "unmet_authentication_requirements":  # gave up on adding a factor
            return _second_factor_needed(request, str(message))
        return render(request, "admin/message.html", {
            "title": "Connexion impossible", "heading": "Connexion impossible",
            "message": "La connexion à la console n'a pas abouti. Recommencez.",
            "detail": str(message), "retry": True,
        }, status_code=400)
    claims = token.get("userinfo") or {}
    if ACR_RANK.get(str(claims.get("acr")), 0) < ACR_RANK[REQUIRED_ACR]:
        return _second_factor_needed(request, f"acr={claims.get('acr')}")
    try:
        user_id = str(uuid.UUID(str(claims.get("sub"))))
        if not isinstance(claims.get("sid"), str):  # the console session follows the provider's
            raise ValueError("sid")
    except ValueError:
        return render(request, "admin/message.html", {
            "title": "Connexion impossible", "heading": "Connexion impossible",
            "message": "Le jeton d'identité ne permet pas d'ouvrir une session de la console "
                       "(sub ou sid manquant).", "detail": None, "retry": True,
        }, status_code=400)
    target = safe_next(session.get("next"))
    session.clear()
    session.renew()
    session.update({
        "user_id": user_id, "sid": claims.get("sid"), "id_token": token.get("id_token"),
        "acr": claims.get("acr"), "auth_time": claims.get("auth_time"),
        "csrf": secrets.token_urlsafe(32), "_created": int(time.time()),
    })
    await run_in_threadpool(_provider(request).journal.record, AuditRecord(
        action="admin.sign_in", actor=user_id, address=_address(request),
        request_id=request_id(request), details={"acr": claims.get("acr")},
    ))
    return RedirectResponse(target, status_code=303)


def _second_factor_needed(request: Request, detail: str) -> Response:
    """No console session below :data:`REQUIRED_ACR`: say what to do about it."""
    return render(request, "admin/message.html", {
        "title": "Connexion renforcée demandée", "heading": "Connexion renforcée demandée",
        "message": "La console d'administration demande une connexion renforcée : votre mot "
                   "de passe et un second facteur (une application d'authentification ou une "
                   "clé d'accès). Ajoutez-en un sur la page « Sécurité » de votre compte "
                   "Martinique Connect, puis reconnectez-vous à la console.",
        "detail": detail, "retry": True,
        "link": {"href": "/compte/securite", "label": "Ajouter un second facteur"},
    }, status_code=403)


@router.post("/deconnexion", name="admin.sign_out")
async def sign_out(request: Request) -> Response:
    """End the console session, then the provider's (RP-initiated logout)."""
    session = session_of(request)
    form = await request.form()
    token = form.get("csrf_token")
    if not session.get("csrf") or not request.app.state.csrf.check(
            session.get("csrf"), token if isinstance(token, str) else None, "admin"):
        raise CsrfFailed()
    id_token = session.get("id_token")
    user_id = session.get("user_id")
    session.clear()
    session.renew()
    if user_id:
        await run_in_threadpool(_provider(request).journal.record, AuditRecord(
            action="admin.sign_out", actor=user_id, address=_address(request),
            request_id=request_id(request)))
    client = _oauth_client(request)
    return await client.logout_redirect(  # type: ignore[no-any-return]
        request, post_logout_redirect_uri=f"{_issuer(request)}/admin/", id_token_hint=id_token,
    )


async def signed_out_page(request: Request) -> Response | None:
    """After the provider's logout, ``/admin/?state=…``: the "signed out" page."""
    state = request.query_params.get("state")
    if not state:
        return None
    try:
        await _oauth_client(request).validate_logout_response(request)
    except OAuthError:
        return None
    return render(request, "admin/message.html", {
        "title": "Vous êtes déconnecté", "heading": "Vous êtes déconnecté",
        "message": "Votre session de la console et votre session Martinique Connect sont "
                   "terminées.", "detail": None, "retry": True,
    })


async def _logout_keys(request: Request, force: bool = False) -> KeySet:
    jwks = await _oauth_client(request).fetch_jwk_set(force=force)
    return KeySet.import_key_set(jwks)


@router.post("/backchannel-logout", name="admin.backchannel_logout")
async def backchannel_logout(request: Request) -> Response:
    """OIDC Back-Channel Logout §2.6: validate the logout token, end the console sessions
    opened under its ``sid``."""
    form = await request.form()
    token = form.get("logout_token")
    headers = {"Cache-Control": "no-store"}
    if not isinstance(token, str) or len(token) > 8192:
        return Response(status_code=400, headers=headers)
    try:
        try:
            decoded = jwt.decode(token, await _logout_keys(request), algorithms=["ES256", "RS256"])
        except JoseError:
            decoded = jwt.decode(token, await _logout_keys(request, force=True),
                                 algorithms=["ES256", "RS256"])
    except (JoseError, ValueError):
        return Response(status_code=400, headers=headers)
    claims = decoded.claims
    now = time.time()
    valid = (
        decoded.header.get("typ") == "logout+jwt"
        and claims.get("iss") == _issuer(request)
        and claims.get("aud") in (CONSOLE_CLIENT_ID, [CONSOLE_CLIENT_ID])
        and isinstance(claims.get("events"), dict) and BACKCHANNEL_EVENT in claims["events"]
        and "nonce" not in claims
        and now - 300 < float(claims.get("iat", 0)) < now + 60
        and float(claims.get("exp", now + 1)) > now - 30
        and isinstance(claims.get("sid"), str)
    )
    if not valid:
        return Response(status_code=400, headers=headers)
    sessions = ConsoleSessions(request.app.state.store)
    await run_in_threadpool(sessions.end_sid, claims["sid"])
    return Response(status_code=200, headers=headers)


def sign_in_url(path: str) -> str:
    return "/admin/connexion?" + urlencode({"suite": safe_next(path)})


def _address(request: Request) -> str:
    return client_address(request, getattr(request.app.state, "trusted_proxies", frozenset()))
