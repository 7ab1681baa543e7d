"""Unmodified standard OpenID Connect client libraries against the provider, over real HTTP.

* Authlib's client (``authlib.integrations.httpx_client.OAuth2Client``): discovery, code flow
  with PKCE S256, ``state`` and ``nonce``, ID token validation (``CodeIDToken`` over joserfc,
  against the published JWKS), UserInfo, refresh with rotation, introspection, revocation and
  RP-initiated logout, for each client authentication method (``client_secret_basic``,
  ``client_secret_post``, ``none``, ``private_key_jwt``) and for an RS256 client.
* panva's ``openid-client`` for Node.js (OpenID Certified RP library), a second, independent
  implementation driven through ``tests/interop/node/rp.mjs``.
* python-jose, an independent JOSE implementation, verifies every ID token and access token
  (RFC 9068 access tokens; ID tokens with ``at_hash``, ``auth_time``, ``acr``, ``amr``,
  ``sid``, ``nonce``).

The person's part (sign-in, consent) is played by the ``Browser`` helper, up to the redirect
to the client's ``redirect_uri``.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.integrations.httpx_client import OAuth2Client, OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oidc.core import CodeIDToken
from jose import jwt as jose_jwt
from joserfc import jwt as joserfc_jwt
from joserfc.errors import BadSignatureError, InvalidClaimError, JoseError
from joserfc.jwk import ECKey, Key, KeySet, RSAKey

from tests.support.browser import Browser, query_of

REDIRECT_URI = "http://127.0.0.1:9999/callback"
LOGGED_OUT_URI = "http://127.0.0.1:9999/logged-out"
SCOPE = "openid profile email"
DISCOVERY_PATH = "/.well-known/openid-configuration"
NODE_DIR = Path(__file__).resolve().parents[2] / "interop" / "node"
NODE_TIMEOUT = 60
NPM_CI_TIMEOUT = 300
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none", "private_key_jwt"]
CONFIDENTIAL_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")


# -- arranging -------------------------------------------------------------------------------


@dataclass
class Registration:
    """A client registered with the provider, and what the relying party keeps to itself."""

    client_id: str
    method: str
    client_secret: str | None = None
    private_key: Key | None = None
    signing_alg: str | None = None
    id_token_alg: str | None = None


def register(platform: Any, method: str, *, key_alg: str = "RS256",
             **extra: Any) -> Registration:
    """Register a client using ``method``; a ``private_key_jwt`` client gets a fresh key pair
    (``key_alg``) and only its public half is registered."""
    kwargs: dict[str, Any] = {
        "token_endpoint_auth_method": method,
        "redirect_uris": [REDIRECT_URI],
        "post_logout_redirect_uris": [LOGGED_OUT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
    }
    private_key: Key | None = None
    if method == "private_key_jwt":
        private_key = (RSAKey.generate_key(2048, private=True) if key_alg == "RS256"
                       else ECKey.generate_key("P-256", private=True))
        public = private_key.as_dict(private=False, kid=private_key.thumbprint(),
                                     alg=key_alg, use="sig")
        kwargs["jwks"] = {"keys": [public]}
    kwargs.update(extra)
    created = platform.create_client(**kwargs)
    if method in ("client_secret_basic", "client_secret_post"):
        assert created["client_secret"], "a confidential client gets a secret"
    else:
        assert not created.get("client_secret"), f"a {method} client has no secret"
    return Registration(
        client_id=created["client_id"], method=method, client_secret=created.get("client_secret"),
        private_key=private_key, signing_alg=key_alg if private_key else None,
        id_token_alg=extra.get("id_token_signed_response_alg"),
    )


def browse_to_callback(browser: Browser, url: str, user: dict[str, Any],
                       redirect_uri: str = REDIRECT_URI) -> str:
    """Play the person: open ``url``, sign in and consent when asked, and return the URL the
    provider finally redirects to (the client's callback, not requested)."""
    response = browser.get(url, stop_at=redirect_uri)
    if "/connexion?" in str(response.url):
        response = browser.login(response, user["email"], user["password"], stop_at=redirect_uri)
    if "/connexion/consentement" in str(response.url):
        response = browser.consent(response, stop_at=redirect_uri)
    assert response.status_code in (302, 303), (response.status_code, response.text[:500])
    location = urljoin(str(response.url), response.headers["location"])
    assert location.startswith(redirect_uri), location
    return location


def follow_logout(browser: Browser, url: str) -> dict[str, str]:
    """Open an end-session URL; return the query of the redirect to the logged-out page."""
    response = browser.get(url, stop_at=LOGGED_OUT_URI)
    assert response.status_code in (302, 303), (response.status_code, response.text[:500])
    location = urljoin(str(response.url), response.headers["location"])
    assert location.startswith(LOGGED_OUT_URI), location
    return query_of(location)


def assert_session_ended(browser: Browser, metadata: dict[str, Any], client_id: str) -> None:
    """After logout the browser has no session: ``prompt=none`` gets ``login_required``."""
    verifier = generate_token(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    url = add_params_to_uri(metadata["authorization_endpoint"], {
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
        "scope": SCOPE, "state": "after-logout", "prompt": "none",
        "code_challenge": challenge.rstrip(b"=").decode(), "code_challenge_method": "S256",
    })
    response = browser.get(url, stop_at=REDIRECT_URI)
    assert response.status_code in (302, 303), response.text[:300]
    params = query_of(response.headers["location"])
    assert params.get("error") == "login_required", params
    assert params.get("state") == "after-logout"


# -- independent verification with python-jose -------------------------------------------------


def jwk_for(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    header = jose_jwt.get_unverified_header(token)
    assert header.get("kid"), f"no kid in the JOSE header: {header}"
    matches = [k for k in jwks["keys"] if k.get("kid") == header["kid"]]
    assert len(matches) == 1, f"kid {header['kid']} matches {len(matches)} keys of the JWKS"
    return matches[0]


def jose_verify(token: str, jwks: dict[str, Any], *, audience: str, issuer: str,
                expected_alg: str | None = None, access_token: str | None = None,
                require: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify ``token`` with python-jose: the JWK matched by ``kid``, algorithms restricted to
    the header's ``alg`` (which must be the key's, and ``expected_alg`` when given), audience
    and issuer checked; ``access_token`` checks ``at_hash``."""
    header = jose_jwt.get_unverified_header(token)
    key = jwk_for(token, jwks)
    alg = header["alg"]
    assert alg in ("ES256", "RS256"), header
    if expected_alg is not None:
        assert alg == expected_alg, header
    if "alg" in key:
        assert key["alg"] == alg, (key, header)
    options = {f"require_{c}": True for c in require
               if c in ("aud", "iat", "exp", "nbf", "iss", "sub", "jti", "at_hash")}
    claims = jose_jwt.decode(token, key, algorithms=[alg], audience=audience, issuer=issuer,
                             access_token=access_token, options=options)
    return header, claims


def check_id_token(id_token: str, jwks: dict[str, Any], *, issuer: str, client_id: str,
                   nonce: str, access_token: str, expected_alg: str = "ES256",
                   acr_values: list[str] | None = None) -> dict[str, Any]:
    """python-jose over an ID token (OIDC Core §2, §3.1.3.6, §3.1.3.7)."""
    header, claims = jose_verify(
        id_token, jwks, audience=client_id, issuer=issuer, expected_alg=expected_alg,
        access_token=access_token,
        require=("aud", "iat", "exp", "iss", "sub", "at_hash"),
    )
    now = int(time.time())
    for name in ("at_hash", "auth_time", "acr", "amr", "sid", "nonce"):
        assert name in claims, f"ID token lacks {name}: {sorted(claims)}"
    assert claims["nonce"] == nonce
    assert isinstance(claims["auth_time"], int)
    assert now - 600 <= claims["auth_time"] <= now + 5
    assert isinstance(claims["iat"], int)
    assert abs(claims["iat"] - now) <= 30
    assert claims["exp"] > now
    assert isinstance(claims["amr"], list)
    assert claims["amr"]
    assert all(isinstance(v, str) for v in claims["amr"])
    assert isinstance(claims["sid"], str)
    assert claims["sid"]
    assert isinstance(claims["acr"], str)
    if acr_values is not None:
        assert claims["acr"] in acr_values
    if isinstance(claims["aud"], list) and len(claims["aud"]) > 1:
        assert claims.get("azp") == client_id
    return claims


def check_access_token(access_token: str, jwks: dict[str, Any], *, issuer: str,
                       audience: str, client_id: str, scope: str, user: bool = True,
                       expires_in: int | None = None) -> dict[str, Any]:
    """python-jose over an RFC 9068 JWT access token (§2.1 header, §2.2 claims)."""
    header, claims = jose_verify(
        access_token, jwks, audience=audience, issuer=issuer,
        require=("aud", "iat", "exp", "iss", "sub", "jti"),
    )
    assert str(header.get("typ", "")).lower() in ACCESS_TOKEN_TYPES, header
    for name in ("iss", "sub", "aud", "client_id", "scope", "jti", "exp", "iat"):
        assert name in claims, f"access token lacks {name}: {sorted(claims)}"
    assert claims["client_id"] == client_id
    assert set(claims["scope"].split()) == set(scope.split())
    if user:
        for name in ("auth_time", "acr"):
            assert name in claims, f"user access token lacks {name}: {sorted(claims)}"
        assert isinstance(claims["auth_time"], int)
    else:
        assert "auth_time" not in claims
    if expires_in is not None:
        assert abs((claims["exp"] - claims["iat"]) - expires_in) <= 5, (claims, expires_in)
    return claims


# -- Authlib -----------------------------------------------------------------------------------


def discover(http: OAuth2Client, issuer: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """OIDC Discovery §4: the metadata document and the JWKS it points to."""
    response = http.request("GET", issuer + DISCOVERY_PATH, withhold_token=True)
    assert response.status_code == 200, response.text
    metadata = response.json()
    assert metadata["issuer"] == issuer, "OIDC Discovery §4.3: issuer must match"
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                 "response_types_supported", "subject_types_supported",
                 "id_token_signing_alg_values_supported", "end_session_endpoint",
                 "introspection_endpoint", "revocation_endpoint"):
        assert name in metadata, f"discovery lacks {name}"
    assert "RS256" in metadata["id_token_signing_alg_values_supported"], "Discovery §3"
    assert "S256" in metadata.get("code_challenge_methods_supported", [])
    jwks_response = http.request("GET", metadata["jwks_uri"], withhold_token=True)
    assert jwks_response.status_code == 200
    jwks = jwks_response.json()
    assert jwks["keys"]
    for key in jwks["keys"]:
        assert key.get("kid")
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key), "private material published"
    return metadata, jwks


def authlib_client(registration: Registration, metadata: dict[str, Any]) -> OAuth2Client:
    """An Authlib client configured only from the registration and the discovered metadata."""
    secret: Any = registration.client_secret
    if registration.method == "private_key_jwt":
        secret = registration.private_key
    client = OAuth2Client(
        client_id=registration.client_id, client_secret=secret,
        token_endpoint_auth_method=registration.method,
        revocation_endpoint_auth_method=registration.method,
        scope=SCOPE, redirect_uri=REDIRECT_URI, code_challenge_method="S256",
        token_endpoint=metadata["token_endpoint"], timeout=15,
    )
    if registration.method == "private_key_jwt":
        assert registration.private_key is not None
        client.register_client_auth_method(PrivateKeyJWT(
            alg=registration.signing_alg, headers={"kid": registration.private_key.thumbprint()},
        ))
    return client


def validate_with_authlib(token: dict[str, Any], *, metadata: dict[str, Any],
                          jwks: dict[str, Any], client_id: str, nonce: str,
                          algorithms: list[str] | None = None) -> CodeIDToken:
    """What Authlib's OpenID integrations do: joserfc verifies the signature against the
    published keys, ``CodeIDToken`` the claims (iss, aud, exp, nonce, at_hash)."""
    decoded = joserfc_jwt.decode(
        token["id_token"], KeySet.import_key_set(jwks),  # type: ignore[arg-type]
        algorithms=algorithms or metadata["id_token_signing_alg_values_supported"],
    )
    claims = CodeIDToken(
        decoded.claims, decoded.header,
        options={
            "iss": {"essential": True, "value": metadata["issuer"]},
            "aud": {"essential": True, "value": client_id},
            "exp": {"essential": True},
            "nonce": {"essential": True, "value": nonce},
            "at_hash": {"essential": True},
            "auth_time": {"essential": True},
            "sid": {"essential": True},
        },
        params={"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
    )
    claims.validate(leeway=5)
    return claims


@dataclass
class AuthlibLogin:
    client: OAuth2Client
    registration: Registration
    metadata: dict[str, Any]
    jwks: dict[str, Any]
    nonce: str
    state: str
    callback: str
    token: dict[str, Any]
    id_claims: CodeIDToken


def authlib_login(platform: Any, browser: Browser, user: dict[str, Any],
                  registration: Registration, *, expected_alg: str = "ES256") -> AuthlibLogin:
    """Discovery, authorization URL (PKCE S256, state, nonce), the person's part, the code
    exchange and the ID token's validation, all with Authlib."""
    bootstrap = OAuth2Client(timeout=15)
    try:
        metadata, jwks = discover(bootstrap, platform.url)
    finally:
        bootstrap.close()
    client = authlib_client(registration, metadata)
    verifier = generate_token(48)
    nonce = generate_token(20)
    url, state = client.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce,
    )
    sent = query_of(url)
    assert sent["code_challenge_method"] == "S256"
    assert sent["code_challenge"] == base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert sent["nonce"] == nonce
    assert sent["state"] == state

    callback = browse_to_callback(browser, url, user)
    returned = query_of(callback)
    assert "error" not in returned, returned
    assert returned["state"] == state
    assert returned.get("iss") == metadata["issuer"], "RFC 9207 iss in the response"

    token = client.fetch_token(
        metadata["token_endpoint"], authorization_response=callback, state=state,
        code_verifier=verifier,
    )
    assert token["token_type"].lower() == "bearer"
    assert {"access_token", "id_token", "refresh_token", "expires_in"} <= set(token)
    id_claims = validate_with_authlib(token, metadata=metadata, jwks=jwks,
                                      client_id=registration.client_id, nonce=nonce)
    assert id_claims.header["alg"] == expected_alg
    return AuthlibLogin(client=client, registration=registration, metadata=metadata,
                        jwks=jwks, nonce=nonce, state=state, callback=callback, token=token,
                        id_claims=id_claims)


@pytest.fixture
def logins(platform: Any, browser: Browser, user: dict[str, Any]) -> Iterator[Any]:
    """``logins(method, **client_kwargs)`` signs ``user`` in with a fresh Authlib client."""
    opened: list[OAuth2Client] = []

    def login(method: str, *, expected_alg: str = "ES256", **client_kwargs: Any
              ) -> AuthlibLogin:
        registration = register(platform, method, **client_kwargs)
        result = authlib_login(platform, browser, user, registration,
                               expected_alg=expected_alg)
        opened.append(result.client)
        return result

    yield login
    for client in opened:
        client.close()


def introspect(login: AuthlibLogin, token: str, hint: str | None = None) -> Any:
    return login.client.introspect_token(login.metadata["introspection_endpoint"], token=token,
                                         token_type_hint=hint)


def userinfo_with(login: AuthlibLogin, access_token: str) -> Any:
    return login.client.request("GET", login.metadata["userinfo_endpoint"],
                                withhold_token=True,
                                headers={"Authorization": f"Bearer {access_token}"})


@pytest.mark.parametrize("method", AUTH_METHODS)
def test_authlib_code_flow_userinfo_refresh_and_logout(
    logins: Any, platform: Any, browser: Browser, user: dict[str, Any], method: str,
) -> None:
    login = logins(method)
    client, metadata, jwks, token = login.client, login.metadata, login.jwks, login.token
    issuer, client_id = metadata["issuer"], login.registration.client_id

    # The validation is effective: a wrong nonce or a foreign access token is caught.
    with pytest.raises(InvalidClaimError):
        validate_with_authlib(token, metadata=metadata, jwks=jwks, client_id=client_id,
                              nonce="not-the-nonce")
    with pytest.raises(InvalidClaimError):
        validate_with_authlib({**token, "access_token": token["refresh_token"]},
                              metadata=metadata, jwks=jwks, client_id=client_id,
                              nonce=login.nonce)

    # The same tokens through python-jose.
    id_claims = check_id_token(
        token["id_token"], jwks, issuer=issuer, client_id=client_id, nonce=login.nonce,
        access_token=token["access_token"], acr_values=metadata.get("acr_values_supported"),
    )
    assert id_claims["sub"] == login.id_claims["sub"]
    at_claims = check_access_token(
        token["access_token"], jwks, issuer=issuer, audience=issuer, client_id=client_id,
        scope=token.get("scope", SCOPE), expires_in=int(token["expires_in"]),
    )
    assert at_claims["sub"] == id_claims["sub"]
    assert at_claims["auth_time"] == id_claims["auth_time"]
    assert at_claims["acr"] == id_claims["acr"]

    # UserInfo (OIDC Core §5.3), with the token Authlib holds.
    response = client.get(metadata["userinfo_endpoint"])
    assert response.status_code == 200, response.text
    info = response.json()
    assert info["sub"] == id_claims["sub"], "OIDC Core §5.3.2: sub must match the ID token"
    assert info["email"] == user["email"]
    assert info["email_verified"] is True
    assert info["given_name"] == "Marie"
    assert info["family_name"] == "Dupont"

    # Refresh with rotation (RFC 6749 §6, RFC 9700 §4.14.2).
    old_refresh = token["refresh_token"]
    refreshed = client.refresh_token(metadata["token_endpoint"])
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["refresh_token"]
    assert refreshed["refresh_token"] != old_refresh
    check_access_token(
        refreshed["access_token"], jwks, issuer=issuer, audience=issuer, client_id=client_id,
        scope=refreshed.get("scope", SCOPE), expires_in=int(refreshed["expires_in"]),
    )
    if "id_token" in refreshed:  # OIDC Core §12.2
        new_id = jose_verify(refreshed["id_token"], jwks, audience=client_id, issuer=issuer)[1]
        assert new_id["sub"] == id_claims["sub"]
        assert new_id.get("auth_time") == id_claims["auth_time"]
    assert client.get(metadata["userinfo_endpoint"]).status_code == 200
    with pytest.raises(OAuthError) as replay:
        client.refresh_token(metadata["token_endpoint"], refresh_token=old_refresh)
    assert replay.value.error == "invalid_grant"
    # Reuse revoked the family: the tokens issued by the rotation are dead too.
    assert userinfo_with(login, refreshed["access_token"]).status_code == 401

    # RP-initiated logout, the URL built from end_session_endpoint as Authlib does.
    logout_state = generate_token(20)
    url = add_params_to_uri(metadata["end_session_endpoint"], {
        "id_token_hint": token["id_token"], "post_logout_redirect_uri": LOGGED_OUT_URI,
        "state": logout_state,
    })
    back = follow_logout(browser, url)
    assert back.get("state") == logout_state
    assert_session_ended(browser, metadata, client_id)


@pytest.mark.parametrize("method", CONFIDENTIAL_METHODS)
def test_authlib_introspection_then_revocation(logins: Any, method: str) -> None:
    """RFC 7662 and RFC 7009 with the method the client registered; discovery lists it in
    ``introspection_endpoint_auth_methods_supported`` and
    ``revocation_endpoint_auth_methods_supported``."""
    login = logins(method)
    metadata, token = login.metadata, login.token
    assert method in metadata["introspection_endpoint_auth_methods_supported"]
    assert method in metadata["revocation_endpoint_auth_methods_supported"]
    client_id, issuer = login.registration.client_id, metadata["issuer"]

    response = introspect(login, token["access_token"], "access_token")
    assert response.status_code == 200, response.text
    active = response.json()
    assert active["active"] is True
    assert active["client_id"] == client_id
    assert active["sub"] == login.id_claims["sub"]
    assert active["iss"] == issuer
    assert set(active["scope"].split()) == set(SCOPE.split())
    assert active["exp"] > time.time()

    response = introspect(login, token["refresh_token"], "refresh_token")
    assert response.status_code == 200, response.text
    assert response.json()["active"] is True

    response = login.client.revoke_token(metadata["revocation_endpoint"],
                                         token=token["access_token"],
                                         token_type_hint="access_token")
    assert response.status_code == 200, response.text
    response = introspect(login, token["access_token"], "access_token")
    assert response.status_code == 200
    assert response.json() == {"active": False}
    assert userinfo_with(login, token["access_token"]).status_code == 401

    # Revoking the refresh token ends the grant (RFC 7009 §2.1).
    response = login.client.revoke_token(metadata["revocation_endpoint"],
                                         token=token["refresh_token"],
                                         token_type_hint="refresh_token")
    assert response.status_code == 200, response.text
    assert introspect(login, token["refresh_token"], "refresh_token").json() == {"active": False}
    with pytest.raises(OAuthError) as refused:
        login.client.refresh_token(metadata["token_endpoint"],
                                   refresh_token=token["refresh_token"])
    assert refused.value.error == "invalid_grant"


def test_authlib_public_client_revokes_without_secret_and_cannot_introspect(
    logins: Any,
) -> None:
    """A public client may revoke its tokens (RFC 7009 §2.1, ``none`` is advertised in
    ``revocation_endpoint_auth_methods_supported``) but not introspect them (``none`` is not
    in ``introspection_endpoint_auth_methods_supported``; RFC 7662 §2.1)."""
    login = logins("none")
    metadata, token = login.metadata, login.token
    assert "none" in metadata["revocation_endpoint_auth_methods_supported"]
    assert "none" not in metadata["introspection_endpoint_auth_methods_supported"]

    response = introspect(login, token["access_token"], "access_token")
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"

    response = login.client.revoke_token(metadata["revocation_endpoint"],
                                         token=token["refresh_token"],
                                         token_type_hint="refresh_token")
    assert response.status_code == 200, response.text
    with pytest.raises(OAuthError) as refused:
        login.client.refresh_token(metadata["token_endpoint"],
                                   refresh_token=token["refresh_token"])
    assert refused.value.error == "invalid_grant"
    assert userinfo_with(login, token["access_token"]).status_code == 401


def test_authlib_rs256_client_gets_rs256_id_token(logins: Any) -> None:
    login = logins("client_secret_basic", id_token_signed_response_alg="RS256",
                   expected_alg="RS256")
    metadata, jwks, token = login.metadata, login.jwks, login.token
    header = jose_jwt.get_unverified_header(token["id_token"])
    assert header["alg"] == "RS256"
    key = jwk_for(token["id_token"], jwks)
    assert key["kty"] == "RSA"
    assert key.get("alg", "RS256") == "RS256"
    # Authlib/joserfc restricted to RS256 and to that single key.
    validate_with_authlib(token, metadata=metadata, jwks={"keys": [key]},
                          client_id=login.registration.client_id, nonce=login.nonce,
                          algorithms=["RS256"])
    check_id_token(token["id_token"], jwks, issuer=metadata["issuer"],
                   client_id=login.registration.client_id, nonce=login.nonce,
                   access_token=token["access_token"], expected_alg="RS256")
    # Another key of the JWKS does not verify it.
    others = [k for k in jwks["keys"] if k["kid"] != key["kid"] and k["kty"] == "RSA"]
    for other in others:
        with pytest.raises(BadSignatureError):
            joserfc_jwt.decode(token["id_token"], RSAKey.import_key({**other, "kid": key["kid"]}),
                               algorithms=["RS256"])
    with pytest.raises(JoseError):
        joserfc_jwt.decode(token["id_token"], KeySet.import_key_set(jwks), algorithms=["ES256"])
    response = login.client.request("GET", metadata["userinfo_endpoint"])
    assert response.status_code == 200
    assert response.json()["sub"] == login.id_claims["sub"]


def test_authlib_client_credentials_token_is_rfc9068(platform: Any) -> None:
    created = platform.create_client(
        redirect_uris=[], grant_types=["client_credentials"], scopes=["services:read"],
    )
    bootstrap = OAuth2Client(timeout=15)
    try:
        metadata, jwks = discover(bootstrap, platform.url)
    finally:
        bootstrap.close()
    with OAuth2Client(client_id=created["client_id"], client_secret=created["client_secret"],
                      token_endpoint_auth_method="client_secret_basic", timeout=15) as client:
        token = client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials",
                                   scope="services:read")
    assert "id_token" not in token
    assert "refresh_token" not in token, "RFC 6749 §4.4.3: no refresh token"
    issuer = metadata["issuer"]
    claims = check_access_token(
        token["access_token"], jwks, issuer=issuer, audience=issuer + "/api/services",
        client_id=created["client_id"], scope="services:read", user=False,
        expires_in=int(token["expires_in"]),
    )
    assert claims["sub"] == created["client_id"], "RFC 9068 §2.2: sub names the client"


# -- openid-client (Node.js) -------------------------------------------------------------------


def _npm_ci() -> None:
    """Install the locked dependencies once (a lock file keeps parallel workers apart)."""
    lock_path = Path(tempfile.gettempdir()) / (
        "mc-interop-npm-" + hashlib.sha256(str(NODE_DIR).encode()).hexdigest()[:12] + ".lock")
    marker = NODE_DIR / "node_modules" / "openid-client" / "package.json"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return
        proc = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR,
            capture_output=True, text=True, timeout=NPM_CI_TIMEOUT, check=False,
        )
        assert proc.returncode == 0, f"npm ci failed:\n{proc.stdout}\n{proc.stderr}"
        assert marker.exists()


@pytest.fixture(scope="session")
def node_rp() -> Any:
    """Run ``tests/interop/node/rp.mjs``; skipped only when node/npm are absent outside CI."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        reason = (f"{' and '.join(missing)} not installed: the openid-client (Node.js) "
                  "interoperability tests need Node.js 20+ and npm")
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    version = subprocess.run(["node", "--version"], capture_output=True, text=True,
                             timeout=30, check=True).stdout.strip()
    assert int(version.lstrip("v").split(".")[0]) >= 20, f"Node.js 20+ required, got {version}"
    _npm_ci()

    def run(command: str, payload: dict[str, Any]) -> dict[str, Any]:
        proc = subprocess.run(
            ["node", "rp.mjs", command], cwd=NODE_DIR, input=json.dumps(payload),
            capture_output=True, text=True, timeout=NODE_TIMEOUT, check=False,
        )
        assert proc.returncode == 0, f"rp.mjs {command} exited {proc.returncode}:\n{proc.stderr}"
        lines = proc.stdout.strip().splitlines()
        assert lines, f"rp.mjs {command} printed nothing:\n{proc.stderr}"
        result = json.loads(lines[-1])
        assert "fatal" not in result, result["fatal"]
        return dict(result)

    return run


NODE_CASES = [
    pytest.param("client_secret_basic", None, id="client_secret_basic"),
    pytest.param("client_secret_post", None, id="client_secret_post"),
    pytest.param("none", None, id="none"),
    pytest.param("private_key_jwt", None, id="private_key_jwt"),
    pytest.param("client_secret_basic", "RS256", id="client_secret_basic-RS256"),
]


@pytest.mark.parametrize(("method", "id_token_alg"), NODE_CASES)
def test_openid_client_node(platform: Any, browser: Browser, user: dict[str, Any],
                            node_rp: Any, method: str, id_token_alg: str | None) -> None:
    extra = {"id_token_signed_response_alg": id_token_alg} if id_token_alg else {}
    registration = register(platform, method, key_alg="ES256", **extra)
    payload: dict[str, Any] = {
        "issuer": platform.url, "client_id": registration.client_id,
        "auth_method": method, "redirect_uri": REDIRECT_URI,
        "post_logout_redirect_uri": LOGGED_OUT_URI, "scope": SCOPE, "timeout_seconds": 10,
    }
    if registration.client_secret:
        payload["client_secret"] = registration.client_secret
    if registration.private_key is not None:
        payload["private_jwk"] = registration.private_key.as_dict(
            private=True, kid=registration.private_key.thumbprint())
    if id_token_alg:
        payload["id_token_signed_response_alg"] = id_token_alg

    started = node_rp("start", payload)
    assert started["issuer"] == platform.url
    url = started["authorization_url"]
    sent = query_of(url)
    assert sent["code_challenge_method"] == "S256"
    assert sent["code_challenge"] == base64.urlsafe_b64encode(
        hashlib.sha256(started["code_verifier"].encode()).digest()).rstrip(b"=").decode()
    assert sent["state"] == started["state"]
    assert sent["nonce"] == started["nonce"]
    assert sent["client_id"] == registration.client_id

    callback = browse_to_callback(browser, url, user)
    logout_state = generate_token(20)
    result = node_rp("finish", {
        **payload, "callback_url": callback, "code_verifier": started["code_verifier"],
        "state": started["state"], "nonce": started["nonce"], "logout_state": logout_state,
    })

    # Every step at once, so that one failure does not hide the others.
    public = method == "none"
    expected = {
        "code_exchange": True, "userinfo": True, "refresh": True,
        "introspect_active": not public, "introspect_refresh_active": not public,
        "revoke": True, "introspect_revoked": not public,
        "userinfo_after_revocation": False, "refresh_replay": False, "end_session": True,
    }
    outcome = {name: result.get(name, {}).get("ok") for name in expected}
    assert outcome == expected, json.dumps(
        {k: result.get(k) for k in expected if outcome[k] != expected[k]}, indent=1)

    # The tokens openid-client accepted, verified again with python-jose.
    exchange = result["code_exchange"]
    issuer = platform.url
    jwks = _jwks(platform)
    claims = exchange["claims"]
    assert claims["nonce"] == started["nonce"]
    id_claims = check_id_token(
        exchange["id_token"], jwks, issuer=issuer, client_id=registration.client_id,
        nonce=started["nonce"], access_token=exchange["access_token"],
        expected_alg=id_token_alg or "ES256",
    )
    assert id_claims["sub"] == claims["sub"]
    check_access_token(exchange["access_token"], jwks, issuer=issuer, audience=issuer,
                       client_id=registration.client_id, scope=SCOPE,
                       expires_in=exchange["expires_in"])
    info = result["userinfo"]["claims"]
    assert info["sub"] == claims["sub"]
    assert info["email"] == user["email"]
    refreshed = result["refresh"]
    assert refreshed["refresh_token"] != exchange["refresh_token"]
    check_access_token(refreshed["access_token"], jwks, issuer=issuer, audience=issuer,
                       client_id=registration.client_id, scope=SCOPE,
                       expires_in=refreshed["expires_in"])

    if not public:
        active = result["introspect_active"]["response"]
        assert active["active"] is True
        assert active["client_id"] == registration.client_id
        assert active["sub"] == claims["sub"]
        assert result["introspect_refresh_active"]["response"]["active"] is True
        assert result["introspect_revoked"]["response"]["active"] is False
    else:
        for name in ("introspect_active", "introspect_refresh_active", "introspect_revoked"):
            error = result[name]["error"]
            assert error.get("status") == 401, error
            assert "invalid_client" in json.dumps(error), error
    denied = result["userinfo_after_revocation"]["error"]
    assert "invalid_token" in json.dumps(denied), denied
    assert result["refresh_replay"]["error"].get("error") == "invalid_grant"

    end_session = result["end_session"]["url"]
    assert end_session.startswith(_metadata(platform)["end_session_endpoint"])
    sent = query_of(end_session)
    assert sent["id_token_hint"] == exchange["id_token"]
    assert sent["post_logout_redirect_uri"] == LOGGED_OUT_URI
    back = follow_logout(browser, end_session)
    assert back.get("state") == logout_state
    assert_session_ended(browser, _metadata(platform), registration.client_id)


def _metadata(platform: Any) -> dict[str, Any]:
    with OAuth2Client(timeout=15) as http:
        response = http.request("GET", platform.url + DISCOVERY_PATH, withhold_token=True)
        return dict(response.json())


def _jwks(platform: Any) -> dict[str, Any]:
    with OAuth2Client(timeout=15) as http:
        metadata = http.request("GET", platform.url + DISCOVERY_PATH, withhold_token=True).json()
        return dict(http.request("GET", metadata["jwks_uri"], withhold_token=True).json())
