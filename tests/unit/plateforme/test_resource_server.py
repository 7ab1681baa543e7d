"""Resource-server token checks: every way a token can be wrong is refused."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from plateforme.resource_server import (
    AccessTokenValidator,
    Caller,
    InvalidToken,
    require_scopes,
)

ISSUER = "https://connect.example.mq"
AUDIENCE = ISSUER + "/api/archives"


@pytest.fixture(scope="module")
def key() -> ECKey:
    return ECKey.generate_key("P-256", private=True, parameters={"kid": "k1", "alg": "ES256"})


def _jwks(key: ECKey) -> Any:
    def provider(refresh: bool = False) -> dict[str, Any]:
        return KeySet([key]).as_dict(private=False)

    return provider


def _token(key: Any, alg: str = "ES256", typ: str = "at+jwt", **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u1", "client_id": "c1", "iat": now,
              "exp": now + 300, "jti": "j1", "scope": "archives:read", "org": "lamentin",
              "roles": ["archivist"]}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": alg, "typ": typ, "kid": "k1"}, claims, key)


def test_valid_token_yields_the_caller(key) -> None:
    caller = AccessTokenValidator(issuer=ISSUER, audience=AUDIENCE, jwks=_jwks(key)).validate(
        _token(key))
    assert caller.org == "lamentin" and caller.roles == {"archivist"}
    assert caller.scopes == {"archives:read"} and not caller.is_client


@pytest.mark.parametrize("overrides", [
    {"iss": "https://evil.example"},
    {"aud": ISSUER + "/api/services"},
    {"exp": -60},
    {"nbf": 120},
    {"jti": None},
    {"client_id": None},
])
def test_wrong_claims_are_refused(key, overrides) -> None:
    # times are offsets from now, computed when the test runs (not at collection)
    overrides = {k: int(time.time()) + v if k in ("exp", "nbf") else v
                 for k, v in overrides.items()}
    validator = AccessTokenValidator(issuer=ISSUER, audience=AUDIENCE, jwks=_jwks(key))
    with pytest.raises(InvalidToken):
        validator.validate(_token(key, **overrides))


def test_wrong_type_other_key_and_tampering_are_refused(key) -> None:
    validator = AccessTokenValidator(issuer=ISSUER, audience=AUDIENCE, jwks=_jwks(key))
    with pytest.raises(InvalidToken):
        validator.validate(_token(key, typ="JWT"))
    other = RSAKey.generate_key(2048, private=True, parameters={"kid": "k1"})
    with pytest.raises(InvalidToken):
        validator.validate(_token(other, alg="RS256"))
    header, payload, sig = _token(key).split(".")
    with pytest.raises(InvalidToken):
        validator.validate(f"{header}.{payload[:-2]}xx.{sig}")
    with pytest.raises(InvalidToken):
        validator.validate("not-a-token")


def test_leeway_is_bounded() -> None:
    with pytest.raises(ValueError, match="leeway"):
        AccessTokenValidator(issuer=ISSUER, audience=AUDIENCE, jwks=dict, leeway=300)


def test_revoked_token_is_refused(key) -> None:
    validator = AccessTokenValidator(issuer=ISSUER, audience=AUDIENCE, jwks=_jwks(key),
                                     is_revoked=lambda jti: jti == "j1")
    with pytest.raises(InvalidToken, match="revoked"):
        validator.validate(_token(key))


def test_dependency_answers_rfc6750_errors(key) -> None:
    app = FastAPI()
    app.state.resource_servers = {
        "archives": AccessTokenValidator(issuer=ISSUER, audience=AUDIENCE, jwks=_jwks(key))}

    @app.get("/read")
    def read(caller: Caller = Depends(require_scopes("archives", "archives:read"))) -> dict:
        return {"org": caller.org}

    @app.get("/write")
    def write(caller: Caller = Depends(require_scopes("archives", "archives:write"))) -> dict:
        return {"org": caller.org}

    client = TestClient(app)
    assert client.get("/read", headers={"Authorization": f"Bearer {_token(key)}"}).json() == {
        "org": "lamentin"}
    missing = client.get("/read")
    assert missing.status_code == 401 and "Bearer" in missing.headers["www-authenticate"]
    bad = client.get("/read", headers={"Authorization": "Bearer x.y.z"})
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]
    scope = client.get("/write", headers={"Authorization": f"Bearer {_token(key)}"})
    assert scope.status_code == 403
    assert 'error="insufficient_scope"' in scope.headers["www-authenticate"]
