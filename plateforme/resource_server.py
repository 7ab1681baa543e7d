"""Resource-server side of the platform's OAuth 2.0: RFC 9068 JWT access tokens verified
locally against the IdP's published keys, and one FastAPI dependency that yields the caller.

Every verification option is written out (as Warehouse does): signature with ES256/RS256 only,
``typ`` ``at+jwt``, ``iss``, ``aud``, ``exp``/``nbf``/``iat`` with at most 30 s of leeway,
``jti`` present, then the required scopes. Failures answer RFC 6750 errors with their
``WWW-Authenticate`` header.

Example::

    validator = AccessTokenValidator(issuer=..., audience=issuer + "/api/archives",
                                     jwks=HttpJWKS(issuer + "/jwks.json"))
    app.state.resource_servers = {"archives": validator}
    ArchivesReader = Annotated[Caller, Depends(require_scopes("archives", "archives:read"))]
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.exceptions import HTTPException

ALGORITHMS = ["ES256", "RS256"]
MAX_LEEWAY = 30


@dataclass(frozen=True)
class Caller:
    """Who is calling: a person (through a client) or a client acting for an organisation."""

    subject: str
    client_id: str
    org: str | None
    roles: frozenset[str]
    scopes: frozenset[str]
    acr: str | None
    token_id: str
    expires_at: int

    @property
    def is_client(self) -> bool:
        """True for ``client_credentials`` tokens (no person behind them)."""
        return self.subject == self.client_id

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))


class InvalidToken(Exception):
    """The token cannot be trusted; ``description`` says why (for the RFC 6750 header)."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class HttpJWKS:
    """The IdP's JWKS fetched over HTTP and cached; an unknown ``kid`` triggers a refresh, at
    most once per ``cooldown`` seconds (so forged ``kid`` values cannot hammer the IdP)."""

    def __init__(self, url: str, *, ttl: int = 300, cooldown: int = 60,
                 http: httpx.Client | None = None) -> None:
        self._url = url
        self._ttl = ttl
        self._cooldown = cooldown
        self._http = http or httpx.Client(timeout=5)
        self._lock = threading.Lock()
        self._keys: dict[str, Any] | None = None
        self._fetched = 0.0

    def __call__(self, *, refresh: bool = False) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            stale = self._keys is None or now - self._fetched > self._ttl
            may_refresh = refresh and now - self._fetched > self._cooldown
            if stale or may_refresh:
                response = self._http.get(self._url)
                response.raise_for_status()
                self._keys = response.json()
                self._fetched = now
            assert self._keys is not None
            return self._keys


class AccessTokenValidator:
    """Validates RFC 9068 access tokens for one audience (one resource server)."""

    def __init__(
        self, *, issuer: str, audience: str, jwks: Callable[..., dict[str, Any]],
        leeway: int = MAX_LEEWAY, is_revoked: Callable[[str], bool] | None = None,
    ) -> None:
        if leeway > MAX_LEEWAY:
            raise ValueError("leeway above 30 seconds")
        self.issuer = issuer
        self.audience = audience
        self._jwks = jwks
        self._leeway = leeway
        self._is_revoked = is_revoked

    def _keyset(self, kid: str | None) -> KeySet:
        data = self._jwks()
        if kid and not any(k.get("kid") == kid for k in data.get("keys", [])):
            with contextlib.suppress(TypeError):
                data = self._jwks(refresh=True)
        return KeySet.import_key_set(data)  # type: ignore[arg-type]

    def validate(self, token: str) -> Caller:
        if not token or token.count(".") != 2 or len(token) > 8192:
            raise InvalidToken("malformed token")
        try:
            raw = token.split(".")[0]
            header = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
            kid = header.get("kid") if isinstance(header, dict) else None
            decoded = jwt.decode(token, self._keyset(kid), algorithms=ALGORITHMS)
        except (JoseError, ValueError) as exc:
            raise InvalidToken("signature invalid") from exc
        if str(decoded.header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
            raise InvalidToken("not an access token (typ)")
        claims = dict(decoded.claims)
        registry = jwt.JWTClaimsRegistry(
            leeway=self._leeway,
            iss={"essential": True, "value": self.issuer},
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
            jti={"essential": True},
            client_id={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise InvalidToken(f"claims invalid ({exc.error})") from exc
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else list(aud or [])
        if self.audience not in audiences:
            raise InvalidToken("token not meant for this resource server (aud)")
        if self._is_revoked is not None and self._is_revoked(str(claims["jti"])):
            raise InvalidToken("token revoked")
        return Caller(
            subject=str(claims["sub"]), client_id=str(claims["client_id"]),
            org=claims.get("org"), roles=frozenset(claims.get("roles") or []),
            scopes=frozenset(str(claims.get("scope", "")).split()), acr=claims.get("acr"),
            token_id=str(claims["jti"]), expires_at=int(claims["exp"]),
        )


def _challenge(status: int, error: str, description: str, detail: str,
               scope: str | None = None) -> HTTPException:
    """RFC 6750 §3: the header carries ASCII only; the problem body says it in French."""
    header = f'Bearer error="{error}", error_description="{description}"'
    if scope:
        header += f', scope="{scope}"'
    return HTTPException(status_code=status, detail=detail, headers={"WWW-Authenticate": header})


def require_scopes(resource: str, *scopes: str) -> Callable[[Request], Caller]:
    """A FastAPI dependency: the caller of ``resource`` (a key of
    ``app.state.resource_servers``), holding every scope in ``scopes``.

    Example::

        ArchivesWriter = Annotated[Caller, Depends(require_scopes("archives", "archives:write"))]
    """

    def dependency(request: Request) -> Caller:
        validator: AccessTokenValidator = request.app.state.resource_servers[resource]
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() != "bearer " or not auth[7:].strip():
            raise HTTPException(status_code=401, detail="Jeton d'accès requis.",
                                headers={"WWW-Authenticate": 'Bearer realm="martinique-connect"'})
        try:
            caller = validator.validate(auth[7:].strip())
        except InvalidToken as exc:
            raise _challenge(401, "invalid_token", exc.description,
                             "Jeton d'accès invalide, expiré ou révoqué.") from exc
        missing = [s for s in scopes if s not in caller.scopes]
        if missing:
            raise _challenge(403, "insufficient_scope", "missing scope: " + " ".join(missing),
                             "Ce jeton n'a pas la portée nécessaire.", " ".join(scopes))
        request.state.caller = caller
        return caller

    return dependency
