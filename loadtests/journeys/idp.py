"""Journeys of the OpenID provider, over HTTP exactly as a browser and a relying party do.

Each ``TaskSet`` has one task: one complete journey per iteration, reported to locust as a
``JOURNEY`` entry (see ``common.Journey``) beside the statistics of every hop.
"""

from __future__ import annotations

import itertools
import secrets
from typing import Any

from common import (
    App,
    Config,
    Journey,
    JourneyFailed,
    authorize_url,
    config,
    form_fields,
    pkce_pair,
    query_of,
)
from locust import TaskSet, task

FIRST_SIGN_IN = "premiere connexion (authorize, connexion, consentement, token, userinfo)"
SSO_FIRST = "sso : connexion a l'application A"
SSO_SECOND = "sso : seconde application sans mot de passe (authorize, token, userinfo)"
RESOURCE_SERVER = "serveur de ressources (client_credentials, introspection)"
REPORTED = [FIRST_SIGN_IN, SSO_FIRST, SSO_SECOND, RESOURCE_SERVER]  # the JOURNEY entries

# Each simulated person gets an account of their own (in this locust process), as in real
# life: one person does not sign in from several browsers at the same instant.
_accounts = itertools.count()


def own_account(cfg: Config) -> str:
    return cfg.users[next(_accounts) % len(cfg.users)]


def code_flow(journey: Journey, cfg: Config, app: App, email: str, *, expect_login: bool,
              prompt: str | None = None) -> dict[str, Any]:
    """Authorization code + PKCE from ``/authorize`` to ``/userinfo``; returns the claims.

    ``expect_login``: the password form must (True) or must not (False, SSO) be shown.
    Consent is given whenever the provider asks for it."""
    tokens = code_flow_tokens(journey, cfg, app, email, expect_login=expect_login,
                              prompt=prompt)
    claims: dict[str, Any] = journey.call(
        "GET", cfg.issuer + "/userinfo", expect=(200,),
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    ).json()
    if claims.get("email") != email:
        raise JourneyFailed("userinfo does not name the person who signed in")
    return claims


def code_flow_tokens(journey: Journey, cfg: Config, app: App, email: str, *,
                     expect_login: bool, prompt: str | None = None,
                     scope: str = "openid profile email") -> dict[str, Any]:
    """Authorization code + PKCE from ``/authorize`` to the token response."""
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    url = authorize_url(cfg.issuer, app, challenge, state, nonce, scope=scope)
    if prompt:
        url += f"&prompt={prompt}"
    page, where = journey.browse(url, stop_at=app.redirect_uri)
    if "/connexion?" in where or where.endswith("/connexion"):
        if not expect_login:
            raise JourneyFailed("password asked again although the session is open")
        fields = form_fields(page.text, "/connexion")
        fields.update(email=email, password=cfg.password)
        page, where = journey.post_form(cfg.issuer + "/connexion", fields,
                                        stop_at=app.redirect_uri)
    elif expect_login:
        raise JourneyFailed(f"expected the sign-in form, got {where}")
    if "/connexion/consentement" in where:
        fields = form_fields(page.text, "/connexion/consentement")
        fields["decision"] = "accept"
        page, where = journey.post_form(cfg.issuer + "/connexion/consentement", fields,
                                        stop_at=app.redirect_uri)
    if not where.startswith(app.redirect_uri):
        raise JourneyFailed(f"no redirect back to the application (ended on {where})")
    answer = query_of(where)
    if answer.get("state") != state or "code" not in answer or answer.get("iss") != cfg.issuer:
        raise JourneyFailed(f"bad authorization response: {sorted(answer)}")
    tokens: dict[str, Any] = journey.call("POST", cfg.issuer + "/token", expect=(200,),
                                          name="/token (authorization_code)", data={
        "grant_type": "authorization_code", "code": answer["code"],
        "redirect_uri": app.redirect_uri, "code_verifier": verifier,
    }, auth=(app.client_id, app.client_secret)).json()
    if "id_token" not in tokens or "access_token" not in tokens:
        raise JourneyFailed("token response without id_token or access_token")
    return tokens


class FirstSignIn(TaskSet):
    """A citizen with no session signs in to application A: authorize, the sign-in form
    (CSRF token from the page), consent (``prompt=consent``: asked every time, as at a first
    visit), the code exchanged with PKCE, then userinfo."""

    def on_start(self) -> None:
        self.email = own_account(config())

    @task
    def first_sign_in(self) -> None:
        cfg = config()
        self.client.cookies.clear()
        with Journey(self.user, FIRST_SIGN_IN) as journey:
            code_flow(journey, cfg, cfg.apps[0], self.email, expect_login=True,
                      prompt="consent")


class SsoSecondApplication(TaskSet):
    """A citizen signs in to application A, then opens application B: the provider's
    session answers without a password (single sign-on). Both halves are reported."""

    def on_start(self) -> None:
        self.email = own_account(config())

    @task
    def sso(self) -> None:
        cfg = config()
        email = self.email
        self.client.cookies.clear()
        with Journey(self.user, SSO_FIRST) as first:
            code_flow(first, cfg, cfg.apps[0], email, expect_login=True)
        if not first.ok:
            return
        with Journey(self.user, SSO_SECOND) as second:
            code_flow(second, cfg, cfg.apps[1], email, expect_login=False)


class ResourceServer(TaskSet):
    """A resource server (the archival service, the catalogue) gets a token with
    ``client_credentials`` and checks it at the introspection endpoint (RFC 7662)."""

    @task
    def client_credentials_and_introspection(self) -> None:
        cfg = config()
        rs = cfg.resource_server
        with Journey(self.user, RESOURCE_SERVER) as journey:
            token = journey.call("POST", cfg.issuer + "/token", expect=(200,),
                                 name="/token (client_credentials)",
                                 data={"grant_type": "client_credentials"},
                                 auth=(rs.client_id, rs.client_secret)).json()
            answer = journey.call("POST", cfg.issuer + "/introspect", expect=(200,),
                                  data={"token": token["access_token"]},
                                  auth=(rs.client_id, rs.client_secret)).json()
            if answer.get("active") is not True:
                raise JourneyFailed("introspection says the fresh token is not active")
