"""The provider as a relying party of an upstream OpenID provider configured like FranceConnect
v2 (identity brokering): authorization code only, ``state`` and ``nonce`` of 43 characters,
ID token and signed UserInfo JWT verified against the upstream's published keys, ``acr``
checked, RP-initiated logout at the upstream.

Authlib's client builds the authorization URL and exchanges the code; ``joserfc`` verifies
the JWTs. Framework-free.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

# FranceConnect's levels (eIDAS low, substantial, high) and the level each maps to here.
UPSTREAM_ACR_RANK = {"eidas1": 1, "eidas2": 2, "eidas3": 3}
ACR_MAPPING = {"eidas1": "eidas1", "eidas2": "eidas2", "eidas3": "eidas2"}
# The ``amr`` value recording a sign-in through FranceConnect (not in RFC 8176's registry,
# which allows other values; documented in docs/franceconnect.md).
AMR_FRANCECONNECT = "fc"
ALGORITHMS = ["ES256", "RS256"]
METADATA_TTL = 3600
LEEWAY = 30
# FranceConnect requires ``state`` and ``nonce`` of at least 32 characters: 32 random bytes
# give 43 URL-safe characters.
RANDOM_BYTES = 32


class UpstreamError(Exception):
    """The upstream answer cannot be trusted or was an error; ``code`` says which."""

    def __init__(self, code: str, description: str = "") -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


@dataclass(frozen=True)
class AuthorizationStart:
    """What to remember between the redirect to the upstream and the return."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class UpstreamIdentity:
    """What the upstream asserted, every signature checked."""

    issuer: str
    subject: str
    acr: str
    id_token: str
    claims: dict[str, Any]

    @property
    def local_acr(self) -> str:
        return ACR_MAPPING[self.acr]

    @property
    def amr(self) -> list[str]:
        """``fc``, plus ``mfa`` when the upstream level is substantial or high."""
        return [AMR_FRANCECONNECT] + (["mfa"] if UPSTREAM_ACR_RANK[self.acr] >= 2 else [])


class UpstreamProvider:
    """One upstream OpenID provider, its metadata and keys cached (keys refetched once when a
    token names an unknown ``kid``: the upstream rotated its keys).

    Example::

        upstream = UpstreamProvider(issuer="https://fc.example", client_id="…",
                                    client_secret="…", scopes="openid given_name",
                                    acr_values="eidas1", redirect_uri=".../retour")
        start = upstream.start()          # redirect the browser to start.url
        identity = upstream.finish(code, start.nonce, start.code_verifier)
    """

    def __init__(
        self, *, issuer: str, client_id: str, client_secret: str, scopes: str, acr_values: str,
        redirect_uri: str, timeout: float = 10.0,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.scopes = scopes
        self.acr_values = acr_values
        self.redirect_uri = redirect_uri
        self.timeout = timeout
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None

    @property
    def minimum_rank(self) -> int:
        """The lowest level among the requested ``acr_values`` (alternatives), at least
        ``eidas1``."""
        ranks = [UPSTREAM_ACR_RANK[v] for v in self.acr_values.split() if v in UPSTREAM_ACR_RANK]
        return min(ranks) if ranks else 1

    # --- metadata and keys ----------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is None or time.time() - self._metadata_at > METADATA_TTL:
                try:
                    response = httpx.get(self.issuer + "/.well-known/openid-configuration",
                                         timeout=self.timeout)
                    response.raise_for_status()
                    meta = response.json()
                except (httpx.HTTPError, ValueError) as exc:
                    raise UpstreamError("unavailable", str(exc)) from exc
                if meta.get("issuer") != self.issuer:
                    raise UpstreamError("invalid_metadata", "issuer mismatch")
                self._metadata, self._metadata_at = meta, time.time()
                self._keys = None
            return self._metadata

    def _key_set(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            try:
                response = httpx.get(self.metadata()["jwks_uri"], timeout=self.timeout)
                response.raise_for_status()
                self._keys = KeySet.import_key_set(response.json())
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                raise UpstreamError("unavailable", f"JWKS: {exc}") from exc
        return self._keys

    def _decode(self, token: str) -> dict[str, Any]:
        """Verify the signature (ES256/RS256 only) against the upstream's keys."""
        if token.count(".") != 2 or len(token) > 16_384:
            raise UpstreamError("invalid_token", "not a signed JWT")
        for refresh in (False, True):
            try:
                return dict(jwt.decode(token, self._key_set(refresh), algorithms=ALGORITHMS).claims)
            except JoseError as exc:
                if refresh or "key" not in str(exc).lower():
                    raise UpstreamError("invalid_token", str(exc)) from exc
            except ValueError as exc:
                if refresh:
                    raise UpstreamError("invalid_token", str(exc)) from exc
        raise UpstreamError("invalid_token", "unverifiable")  # pragma: no cover

    def _client(self) -> OAuth2Client:
        return OAuth2Client(
            client_id=self.client_id, client_secret=self.client_secret, scope=self.scopes,
            redirect_uri=self.redirect_uri, token_endpoint_auth_method="client_secret_post",  # noqa: S106 - a method name
            code_challenge_method="S256", timeout=self.timeout,
        )

    # --- the journey ----------------------------------------------------------------------

    def start(self) -> AuthorizationStart:
        """The authorization request (OIDC Core §3.1.2.1) with fresh ``state``, ``nonce`` and
        a PKCE verifier."""
        state = secrets.token_urlsafe(RANDOM_BYTES)
        nonce = secrets.token_urlsafe(RANDOM_BYTES)
        verifier = secrets.token_urlsafe(48)
        with self._client() as client:
            url, _ = client.create_authorization_url(
                self.metadata()["authorization_endpoint"], state=state, nonce=nonce,
                code_verifier=verifier, acr_values=self.acr_values, prompt="login consent",
            )
        return AuthorizationStart(url=url, state=state, nonce=nonce, code_verifier=verifier)

    def finish(self, code: str, nonce: str, code_verifier: str) -> UpstreamIdentity:
        """Exchange the code, verify the ID token (``iss``, ``aud``, ``azp``, ``exp``,
        ``iat``, ``nonce``, signature) and the level reached, then read the signed UserInfo
        (OIDC Core §3.1.3.7, §5.3.2)."""
        meta = self.metadata()
        with self._client() as client:
            try:
                token = client.fetch_token(
                    meta["token_endpoint"], grant_type="authorization_code", code=code,
                    code_verifier=code_verifier,
                )
            except Exception as exc:  # noqa: BLE001 - Authlib raises OAuthError or httpx errors
                raise UpstreamError("token_error", str(exc)[:200]) from exc
        id_token = token.get("id_token")
        access_token = token.get("access_token")
        if not isinstance(id_token, str) or not isinstance(access_token, str):
            raise UpstreamError("token_error", "no id_token or access_token")
        claims = self._decode(id_token)
        self._check_claims(claims, nonce)
        acr = claims.get("acr")
        if acr not in UPSTREAM_ACR_RANK or UPSTREAM_ACR_RANK[acr] < self.minimum_rank:
            raise UpstreamError("insufficient_acr", f"acr {acr!r} below {self.acr_values!r}")
        userinfo = self.userinfo(access_token)
        if userinfo.get("sub") != claims["sub"]:
            raise UpstreamError("invalid_userinfo", "sub differs from the ID token's")
        return UpstreamIdentity(issuer=self.issuer, subject=str(claims["sub"]), acr=acr,
                                id_token=id_token, claims=userinfo)

    def _check_claims(self, claims: dict[str, Any], nonce: str) -> None:
        now = time.time()
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else list(aud or [])
        if claims.get("iss") != self.issuer:
            raise UpstreamError("invalid_token", "iss")
        if self.client_id not in audiences or (
                len(audiences) > 1 and claims.get("azp") != self.client_id):
            raise UpstreamError("invalid_token", "aud")
        if not isinstance(claims.get("exp"), int) or claims["exp"] < now - LEEWAY:
            raise UpstreamError("invalid_token", "exp")
        if not isinstance(claims.get("iat"), int) or claims["iat"] > now + LEEWAY:
            raise UpstreamError("invalid_token", "iat")
        if not claims.get("sub"):
            raise UpstreamError("invalid_token", "sub")
        if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise UpstreamError("invalid_nonce", "nonce mismatch")

    def userinfo(self, access_token: str) -> dict[str, Any]:
        """UserInfo answered as a signed JWT (``application/jwt``): signature, ``iss`` and
        ``aud`` checked. A plain JSON answer is refused."""
        try:
            response = httpx.get(self.metadata()["userinfo_endpoint"], timeout=self.timeout,
                                 headers={"Authorization": f"Bearer {access_token}"})
        except httpx.HTTPError as exc:
            raise UpstreamError("unavailable", str(exc)) from exc
        if response.status_code != 200:
            raise UpstreamError("invalid_userinfo", f"HTTP {response.status_code}")
        if response.headers.get("content-type", "").split(";")[0].strip() != "application/jwt":
            raise UpstreamError("invalid_userinfo", "UserInfo is not a signed JWT")
        claims = self._decode(response.text.strip())
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else list(aud or [])
        if claims.get("iss") != self.issuer or self.client_id not in audiences:
            raise UpstreamError("invalid_userinfo", "iss or aud")
        return claims

    def end_session_url(self, *, id_token_hint: str, state: str,
                        post_logout_redirect_uri: str) -> str | None:
        """OIDC RP-Initiated Logout §2 at the upstream, or None if it offers none."""
        endpoint = self.metadata().get("end_session_endpoint")
        if not endpoint:
            return None
        query = urlencode({"id_token_hint": id_token_hint, "state": state,
                           "post_logout_redirect_uri": post_logout_redirect_uri})
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


__all__ = [
    "ACR_MAPPING",
    "AMR_FRANCECONNECT",
    "AuthorizationStart",
    "UpstreamError",
    "UpstreamIdentity",
    "UpstreamProvider",
]
