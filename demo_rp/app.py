"""A small commune application integrated with Martinique Connect.

What a relying party must do, and what this one shows:
* discovery, authorization code + PKCE S256, ``state`` and ``nonce`` (Authlib does it);
* ID token checked (signature against the published JWKS, ``iss``, ``aud``, ``nonce``);
* RP-initiated logout with ``id_token_hint`` and ``post_logout_redirect_uri``;
* back-channel logout: a signed logout token ends every local session of its ``sid``.
"""

from __future__ import annotations

import html
import secrets
import time
from typing import Any

import httpx
from authlib.integrations.starlette_client import OAuth, OAuthError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"

PAGE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font-family:system-ui,Arial,sans-serif;margin:0;color:#161616}}
header{{background:{color};color:#fff;padding:1rem 1.5rem}}
header p{{margin:0;font-weight:700;font-size:1.2rem}}
main{{max-width:40rem;margin:2rem auto;padding:0 1rem}}
a.bouton,button{{display:inline-block;background:#003b80;color:#fff;padding:.7rem 1.2rem;
border:0;border-radius:4px;font-size:1rem;text-decoration:none;cursor:pointer}}
a:focus,button:focus{{outline:3px solid #0a76f6;outline-offset:2px}}
</style></head>
<body><header><p>{name}</p></header>
<main id="contenu"><h1>{title}</h1>{body}</main></body></html>"""


class LocalSessions:
    """Server-side sessions of the application, indexed by the provider's ``sid``."""

    def __init__(self) -> None:
        self.by_id: dict[str, dict[str, Any]] = {}

    def create(self, data: dict[str, Any]) -> str:
        local_id = secrets.token_urlsafe(24)
        self.by_id[local_id] = data
        return local_id

    def end_sid(self, sid: str | None, sub: str | None) -> int:
        doomed = [k for k, v in self.by_id.items()
                  if (sid and v.get("sid") == sid) or (not sid and sub and v.get("sub") == sub)]
        for key in doomed:
            del self.by_id[key]
        return len(doomed)


def create_rp(
    *, name: str, issuer: str, client_id: str, client_secret: str, base_url: str,
    color: str = "#005b4f", other_app: tuple[str, str] | None = None,
    http_verify: bool = True, payment: str | None = None,
) -> Starlette:
    """Build the application. ``other_app`` is (label, url) of a sibling service;
    ``payment`` the label of a payment the signed-in person can make (the canteen bill)."""
    sessions = LocalSessions()
    oauth = OAuth()
    oauth.register(
        "martinique_connect",
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_id=client_id, client_secret=client_secret,
        client_kwargs={"scope": "openid profile email", "code_challenge_method": "S256"},
    )
    mc = oauth.martinique_connect
    jwks_cache: dict[str, Any] = {}

    def page(title: str, body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(PAGE.format(title=html.escape(title), name=html.escape(name),
                                        body=body, color=color), status_code=status)

    def current(request: Request) -> dict[str, Any] | None:
        local_id = request.session.get("local_id")
        return sessions.by_id.get(local_id) if local_id else None

    async def home(request: Request) -> Response:
        user = current(request)
        sibling = ""
        if other_app:
            sibling = (f'<p><a href="{html.escape(other_app[1])}">'
                       f"Aller au service « {html.escape(other_app[0])} »</a></p>")
        if user is None:
            return page(name, "<p>Connectez-vous avec votre compte unique de la Collectivité.</p>"
                        '<p><a class="bouton" href="/login">Se connecter avec Martinique Connect'
                        "</a></p>" + sibling)
        who = html.escape(user.get("name") or user.get("email") or "")
        acting = ""
        if user.get("act"):
            # RFC 8693 act claim: someone acts for the person under a mandate.
            acting = ('<p class="procuration"><strong>Procuration :</strong> vous agissez pour '
                      f"le compte de {who}. Ce que vous faites ici est enregistré dans son "
                      "historique et dans le vôtre.</p>")
        pay = ""
        if payment:
            pay = ('<form method="post" action="/payer"><button type="submit">'
                   f"{html.escape(payment)}</button></form>")
        return page(f"Bonjour {who}", (
            f"<p>Vous êtes connecté à « {html.escape(name)} » avec Martinique Connect.</p>"
            + acting
            + f"<p>Identifiant pour ce service (sub) : <code>{html.escape(user['sub'])}</code></p>"
            + pay + sibling + '<form method="post" action="/logout"><button type="submit">'
            "Se déconnecter</button></form>"
        ))

    async def pay(request: Request) -> Response:
        user = current(request)
        if user is None or not payment:
            return RedirectResponse("/", status_code=303)
        who = html.escape(user.get("name") or user.get("email") or "")
        by = " (par procuration)" if user.get("act") else ""
        user.setdefault("payments", []).append(time.time())
        return page("Paiement enregistré", (
            f"<p>Paiement enregistré pour {who}{by}.</p>"
            '<p><a href="/">Revenir à l\'accueil</a></p>'))

    async def login(request: Request) -> Response:
        return await mc.authorize_redirect(request, f"{base_url}/auth/callback")  # type: ignore[no-any-return]

    async def callback(request: Request) -> Response:
        try:
            token = await mc.authorize_access_token(request)
        except OAuthError as exc:
            return page("Connexion impossible",
                        f"<p>La connexion a échoué : {html.escape(exc.error or '')}.</p>"
                        '<p><a href="/">Revenir à l\'accueil</a></p>', status=400)
        claims = token.get("userinfo") or {}
        info = await mc.userinfo(token=token)
        data = {
            "sub": claims["sub"], "sid": claims.get("sid"), "name": info.get("name"),
            "email": info.get("email"), "id_token": token.get("id_token"),
            "act": claims.get("act"),
            "at": time.time(),
        }
        request.session["local_id"] = sessions.create(data)
        return RedirectResponse("/", status_code=303)

    async def logout(request: Request) -> Response:
        user = current(request)
        request.session.pop("local_id", None)
        if user is not None:
            sessions.end_sid(user.get("sid"), user.get("sub"))
            return await mc.logout_redirect(  # type: ignore[no-any-return]
                request, post_logout_redirect_uri=f"{base_url}/",
                id_token_hint=user.get("id_token"),
            )
        return RedirectResponse("/", status_code=303)

    async def keys() -> KeySet:
        if "set" not in jwks_cache or time.time() - jwks_cache["at"] > 300:
            async with httpx.AsyncClient(timeout=5, verify=http_verify) as client:
                data = (await client.get(f"{issuer}/jwks.json")).json()
            jwks_cache.update({"set": KeySet.import_key_set(data), "at": time.time()})
        return jwks_cache["set"]  # type: ignore[no-any-return]

    async def backchannel_logout(request: Request) -> Response:
        """OIDC Back-Channel Logout §2.6: validate the logout token, end the sessions."""
        form = await request.form()
        token = form.get("logout_token")
        if not isinstance(token, str):
            return Response(status_code=400)
        try:
            decoded = jwt.decode(token, await keys(), algorithms=["ES256", "RS256"])
        except JoseError:
            jwks_cache.clear()
            try:
                decoded = jwt.decode(token, await keys(), algorithms=["ES256", "RS256"])
            except JoseError:
                return Response(status_code=400)
        claims = decoded.claims
        valid = (
            decoded.header.get("typ") == "logout+jwt"
            and claims.get("iss") == issuer
            and claims.get("aud") in (client_id, [client_id])
            and BACKCHANNEL_EVENT in (claims.get("events") or {})
            and "nonce" not in claims
            and int(claims.get("iat", 0)) > time.time() - 300
            and (claims.get("sid") or claims.get("sub"))
        )
        if not valid:
            return Response(status_code=400)
        sessions.end_sid(claims.get("sid"), claims.get("sub"))
        return Response(status_code=200, headers={"Cache-Control": "no-store"})

    app = Starlette(
        routes=[
            Route("/", home), Route("/login", login), Route("/auth/callback", callback),
            Route("/logout", logout, methods=["POST", "GET"]),
            Route("/payer", pay, methods=["POST"]),
            Route("/backchannel-logout", backchannel_logout, methods=["POST"]),
        ],
        middleware=[Middleware(
            SessionMiddleware, secret_key=secrets.token_urlsafe(32),
            session_cookie=f"rp_{client_id}", same_site="lax",
            https_only=base_url.startswith("https"),
        )],
    )
    app.state.sessions = sessions
    return app
