"""Token (RFC 6749 §3.2), introspection (RFC 7662), revocation (RFC 7009), UserInfo (OIDC Core
§5.3) and logout (OIDC RP-Initiated Logout 1.0) endpoints."""

from __future__ import annotations

import time
from typing import Annotated, Any

from authlib.oauth2 import OAuth2Error
from fastapi import APIRouter, Form, Request
from starlette.responses import JSONResponse, Response

from idp.api.browser import (
    address_of,
    current_session,
    ensure_csrf_cookie,
    error_page,
    finish,
    render,
)
from idp.api.deps import CsrfDep, OAuth2RequestDep, ProviderDep, ServerDep, TemplatesDep
from idp.api.franceconnect import take_upstream_session, upstream_logout
from idp.i18n import N_
from idp.oauth2.claims import sign_userinfo, user_claims
from idp.oauth2.endpoints import verify_access_token
from idp.oauth2.models import AuthContext
from plateforme.web import CSRF_COOKIE, request_id

router = APIRouter(include_in_schema=False)


@router.post("/token")
def token(oauth_req: OAuth2RequestDep, server: ServerDep) -> Response:
    """RFC 6749 §3.2: authorization_code, refresh_token, client_credentials."""
    return server.create_token_response(oauth_req)  # type: ignore[no-any-return]


@router.post("/introspect")
def introspect(oauth_req: OAuth2RequestDep, server: ServerDep) -> Response:
    """RFC 7662 §2, client-authenticated."""
    return server.create_endpoint_response("introspection", oauth_req)  # type: ignore[no-any-return]


@router.post("/revoke")
def revoke(oauth_req: OAuth2RequestDep, server: ServerDep) -> Response:
    """RFC 7009 §2."""
    return server.create_endpoint_response("revocation", oauth_req)  # type: ignore[no-any-return]


def _bearer_error(status: int, error: str, description: str) -> JSONResponse:
    """RFC 6750 §3 error with its ``WWW-Authenticate`` header."""
    header = f'Bearer error="{error}", error_description="{description}"'
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status,
        headers={"WWW-Authenticate": header, "Cache-Control": "no-store"},
    )


@router.get("/userinfo")
@router.post("/userinfo")
async def userinfo(request: Request, provider: ProviderDep) -> Response:
    """OIDC Core §5.3: the claims of the token's scopes, for the token's ``sub``."""
    auth = request.headers.get("authorization", "")
    token_value = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    if token_value is None and request.method == "POST":
        form = await request.form(max_files=0, max_fields=10)
        value = form.get("access_token")
        token_value = value if isinstance(value, str) else None
    if not token_value:
        return JSONResponse(
            {"error": "invalid_request", "error_description": "Missing access token"},
            status_code=401, headers={"WWW-Authenticate": 'Bearer realm="userinfo"'},
        )
    return _userinfo(provider, token_value)


def _userinfo(provider: Any, token_value: str) -> Response:
    claims = verify_access_token(provider, token_value)
    if claims is None or int(claims.get("exp", 0)) <= int(time.time()):
        return _bearer_error(401, "invalid_token", "The access token is invalid or expired")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else list(aud or [])
    if provider.issuer not in audiences or provider.tokens.is_revoked(claims["jti"]) or (
            "act" in claims and not provider.mandates.token_allowed(claims["jti"])):
        # A delegated token is refused as soon as its mandate ends or is withdrawn.
        return _bearer_error(401, "invalid_token", "The access token is invalid or expired")
    scope = claims.get("scope", "")
    if "openid" not in scope.split():
        return _bearer_error(403, "insufficient_scope", "The openid scope is required")
    found = provider.tokens.grant_and_user_for_jti(claims["jti"])
    grant, user = found if found is not None else (None, None)
    if grant is None or grant.revoked_at is not None or user is None or user.locked:
        return _bearer_error(401, "invalid_token", "The access token is invalid or expired")
    ctx = AuthContext(user=user, sub=claims["sub"], sid=grant.sid, auth_time=grant.auth_time,
                      acr=grant.acr or "eidas1", amr=[])
    released = user_claims(ctx, scope)
    client = provider.clients.get(claims["client_id"])
    if client is not None and client.userinfo_signed_response_alg:
        return Response(
            sign_userinfo(provider, client, released), media_type="application/jwt",
            headers={"Cache-Control": "no-store"},
        )
    return JSONResponse(released, headers={"Cache-Control": "no-store"})


@router.get("/logout")
@router.post("/logout")
def logout(
    request: Request, oauth_req: OAuth2RequestDep, provider: ProviderDep, server: ServerDep,
    templates: TemplatesDep, csrf: CsrfDep,
    confirm: Annotated[str | None, Form()] = None,
    csrf_token: Annotated[str | None, Form()] = None,
) -> Response:
    """RP-Initiated Logout: with a valid ``id_token_hint`` the session ends at once; without it
    the person confirms (a CSRF-protected form). Back-channel logout tokens go to every client
    of the session, without making the person wait."""
    try:
        end_request = server.validate_endpoint_request("end_session", oauth_req)
    except OAuth2Error as error:
        return error_page(
            request, templates, provider, heading=N_("Déconnexion impossible"),
            message=N_("La demande de déconnexion envoyée par le service n'est pas valide."),
            detail=f"{error.error}: {error.description or ''}",
        )
    sso = current_session(request, provider)
    upstream_hint: str | None = None
    if end_request.needs_confirmation:
        confirmed = (
            request.method == "POST" and confirm == "yes"
            and csrf.check(request.cookies.get(CSRF_COOKIE), csrf_token, "logout")
        )
        if not confirmed:
            cookie = ensure_csrf_cookie(request, csrf)
            params = [(k, v) for k, v in oauth_req.payload.data.items()
                      if k in ("client_id", "post_logout_redirect_uri", "state", "ui_locales",
                               "logout_hint")]
            client = end_request.client
            return render(request, templates, provider, "logout.html", {
                "title": N_("Se déconnecter"), "csrf_token": csrf.token(cookie, "logout"),
                "params": params, "client_name": client.record.name if client else None,
            })
    if sso is not None:
        hint = end_request.id_token_claims
        same_person = hint is None or hint.get("sid") == sso.sid or any(
            hint.get("sid") == d["sid"] for d in sso.delegations) or (
            end_request.client is not None
            and provider.subject_for(sso.user_id, end_request.client.record) == hint.get("sub")
        )
        if same_person:
            upstream_hint = take_upstream_session(provider, sso.sid)
            provider.end_session(sso, address=address_of(request), request_id=request_id(request))
            request.state.set_session = ""
    response = server.create_endpoint_response("end_session", end_request)
    if upstream_hint is not None:
        # Signed in through FranceConnect: log out there too, then come back here.
        then = response.headers.get("location") if response is not None else None
        upstream = upstream_logout(request, provider, upstream_hint, then)
        if upstream is not None:
            return upstream
    if response is not None:
        return finish(request, response, provider)
    return finish(request, render(request, templates, provider, "logged_out.html", {
        "title": N_("Vous êtes déconnecté")}), provider)
