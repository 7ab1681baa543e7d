"""Standard claims per scope (OpenID Connect Core §5.4)."""

from __future__ import annotations

from typing import Any

from joserfc import jwt

from idp.models import Client
from idp.oauth2.models import AuthContext
from idp.services import Provider

SCOPE_CLAIMS = {
    # ``birthplace`` and ``birthcountry`` (INSEE codes) are FranceConnect's claims, released
    # with the profile when the account's civil status is known.
    "profile": ("name", "given_name", "family_name", "gender", "birthdate", "birthplace",
                "birthcountry", "locale", "updated_at"),
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_number_verified"),
    "address": ("address",),
}
CLAIMS_SUPPORTED = sorted(
    {"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "at_hash"}
    | {c for claims in SCOPE_CLAIMS.values() for c in claims}
)


def user_claims(ctx: AuthContext, scope: str) -> dict[str, Any]:
    """The claims released for ``scope``; absent values are left out, never sent as null."""
    user = ctx.user
    values: dict[str, Any] = {
        "name": user.name if (user.given_name or user.family_name) else None,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "birthdate": user.birthdate,
        "gender": user.gender,
        "birthplace": user.birthplace,
        "birthcountry": user.birthcountry,
        "locale": user.locale,
        "updated_at": int(user.updated_at.timestamp()) if user.updated_at else None,
        "email": user.email,
        "email_verified": user.email_verified,
        "phone_number": user.phone_number,
        "phone_number_verified": user.phone_number_verified if user.phone_number else None,
        "address": user.address_claim(),
    }
    claims: dict[str, Any] = {"sub": ctx.sub}
    scopes = set((scope or "").split())
    for name, names in SCOPE_CLAIMS.items():
        if name in scopes:
            claims.update({k: values[k] for k in names if values.get(k) is not None})
    return claims


def sign_userinfo(provider: Provider, client: Client, claims: dict[str, Any]) -> str:
    """OIDC Core §5.3.2: the UserInfo response as a JWT signed with the client's registered
    ``userinfo_signed_response_alg``, carrying ``iss`` and ``aud`` (the client)."""
    alg = client.userinfo_signed_response_alg or provider.settings.signing_alg
    key = provider.keys.signing_key(alg)
    payload = {**claims, "iss": provider.issuer, "aud": client.client_id}
    return jwt.encode({"alg": alg, "kid": key.kid or "", "typ": "JWT"}, payload, key)
