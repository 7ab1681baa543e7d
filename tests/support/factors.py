"""Second factors in tests: a TOTP clock the test moves, a software WebAuthn authenticator
(what Chromium's virtual authenticator does, in Python), and the HTTP steps of enrolment.

One code, one use: the provider accepts a TOTP code only for a time step later than the last
one used. Rather than waiting for the next 30 seconds, tests move the provider's clock
(:class:`MovableClock`): :func:`fresh_code` moves it one step ahead and gives that step's code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import struct
import time
from datetime import UTC, datetime
from html import unescape
from typing import Any
from urllib.parse import urlsplit

import cbor2
import httpx
import pyotp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwt as jose_jwt

from idp.services.factors import Origin
from tests.support.browser import Browser, query_of


class MovableClock:
    """The provider's TOTP clock, ``offset`` seconds ahead of the real one."""

    def __init__(self) -> None:
        self.offset = 0

    def timestamp(self) -> int:
        return int(time.time()) + self.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)

    def next_step(self) -> None:
        """Move to the next 30-second step (a new code becomes valid)."""
        self.offset += 30

    def code(self, secret: str) -> str:
        return str(pyotp.TOTP(secret).at(self.timestamp()))


def provider_clock(provider: Any) -> MovableClock:
    """The provider's TOTP clock as a :class:`MovableClock`, installed at first use and kept
    for the rest of the session (it only moves forward, so a step once used stays used)."""
    totp = provider.factors.totp
    if not isinstance(totp.clock, MovableClock):
        totp.clock = MovableClock()
    return totp.clock  # type: ignore[no-any-return]


def fresh_code(clock: MovableClock, secret: str) -> str:
    """A code no earlier sign-in can have used: the next time step's."""
    clock.next_step()
    return clock.code(secret)


def add_totp(provider: Any, user_id: Any, *, name: str = "Téléphone") -> str:
    """Enrol and confirm an authenticator app for the account through the factors service
    (as ``/compte/securite`` does, audited); return its base32 key. The confirmation uses the
    current step of :func:`provider_clock`: sign in with :func:`fresh_code`."""
    clock = provider_clock(provider)
    user = provider.users.get(user_id)
    assert user is not None, user_id
    enrolment = provider.factors.begin_totp(user)
    provider.factors.confirm_totp(user, str(enrolment.factor_id), clock.code(enrolment.secret),
                                  name, origin=Origin(address="127.0.0.1"))
    return enrolment.secret


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


class SoftAuthenticator:
    """A WebAuthn authenticator with one discoverable ES256 credential (attestation "none")."""

    def __init__(self, *, user_verified: bool = True, backed_up: bool = False) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.user_verified = user_verified
        self.backed_up = backed_up
        self.sign_count = 0
        self.user_handle: bytes | None = None

    def _flags(self, *, attested: bool) -> int:
        flags = 0x01  # user present
        if self.user_verified:
            flags |= 0x04
        if self.backed_up:
            flags |= 0x08 | 0x10  # backup eligible, backed up
        if attested:
            flags |= 0x40
        return flags

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin,
                           "crossOrigin": False}).encode()

    def create(self, options: dict[str, Any], origin: str) -> dict[str, Any]:
        """The JSON a browser sends after ``navigator.credentials.create()``."""
        rp_id = options["rp"]["id"]
        self.user_handle = unb64url(options["user"]["id"])
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        auth_data = (hashlib.sha256(rp_id.encode()).digest()
                     + bytes([self._flags(attested=True)]) + struct.pack(">I", self.sign_count)
                     + bytes(16) + struct.pack(">H", len(self.credential_id))
                     + self.credential_id + self._cose_key())
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(self.credential_id), "rawId": b64url(self.credential_id),
            "type": "public-key", "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
            "response": {"clientDataJSON": b64url(client_data),
                         "attestationObject": b64url(attestation), "transports": ["internal"]},
        }

    def get(self, options: dict[str, Any], origin: str, *, rp_id: str | None = None
            ) -> dict[str, Any]:
        """The JSON a browser sends after ``navigator.credentials.get()``."""
        rp_id = rp_id or options["rpId"]
        allowed = [c["id"] for c in options.get("allowCredentials") or []]
        assert not allowed or b64url(self.credential_id) in allowed, "credential not allowed"
        self.sign_count += 1
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        auth_data = (hashlib.sha256(rp_id.encode()).digest()
                     + bytes([self._flags(attested=False)]) + struct.pack(">I", self.sign_count))
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                  ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64url(self.credential_id), "rawId": b64url(self.credential_id),
            "type": "public-key", "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
            "response": {"clientDataJSON": b64url(client_data),
                         "authenticatorData": b64url(auth_data), "signature": b64url(signature),
                         "userHandle": b64url(self.user_handle) if self.user_handle else None},
        }


# --- HTTP steps ----------------------------------------------------------------------------------


def base_of(response: httpx.Response) -> str:
    parts = urlsplit(str(response.url))
    return f"{parts.scheme}://{parts.netloc}"


def sign_in(browser: Browser, url: str, user: dict[str, Any], *,
            retour: str = "/compte/securite") -> httpx.Response:
    """Password sign-in outside any authorization request; returns the page reached."""
    page = browser.get(f"{url}/connexion?retour={retour}")
    return browser.login(page, user["email"], user["password"])


def form_of(html: str, action: str, **values: str) -> dict[str, str]:
    fields = Browser.form_fields(html, action)
    fields.update(values)
    return fields


def totp_secret(html: str) -> str:
    match = re.search(r'<code id="cle-totp"[^>]*>([^<]+)</code>', html)
    assert match, "no TOTP key on the page"
    return unescape(match.group(1)).replace(" ", "")


def recovery_codes(html: str) -> list[str]:
    block = re.search(r'<ol class="codes" id="codes-secours">(.*?)</ol>', html, re.S)
    assert block, "no recovery codes on the page"
    return re.findall(r"<code>([^<]+)</code>", block.group(1))


def enrol_totp(browser: Browser, url: str, clock: MovableClock, *, name: str = "Téléphone"
               ) -> tuple[str, httpx.Response]:
    """Add an authenticator app from ``/compte/securite/totp`` (the session must be recent);
    return its secret and the page after confirmation."""
    page = browser.get(f"{url}/compte/securite/totp")
    assert page.status_code == 200, page.text[:300]
    secret = totp_secret(page.text)
    fields = form_of(page.text, "/compte/securite/totp", code=clock.code(secret), name=name)
    return secret, browser.post(f"{url}/compte/securite/totp", fields)


def submit_factor(browser: Browser, page: httpx.Response, method: str, *, code: str = "",
                  credential: str = "", stop_at: str | None = None) -> httpx.Response:
    """Post the second-factor form shown by ``page``."""
    fields = form_of(page.text, "/connexion/facteur", method=method, code=code,
                     credential=credential)
    return browser.post(base_of(page) + "/connexion/facteur", fields, stop_at=stop_at)


def options(browser: Browser, url: str, path: str, csrf_token: str, **extra: str
            ) -> dict[str, Any]:
    response = browser.request("POST", url + path, data={"csrf_token": csrf_token, **extra})
    assert response.status_code == 200, response.text[:300]
    assert response.headers["cache-control"] == "no-store"
    return dict(response.json())


def register_passkey(browser: Browser, url: str, authenticator: SoftAuthenticator, *,
                     name: str = "Ordinateur") -> httpx.Response:
    page = browser.get(f"{url}/compte/securite/cles")
    assert page.status_code == 200, page.text[:300]
    fields = form_of(page.text, "/compte/securite/cles")
    opts = options(browser, url, "/compte/securite/cles/options", fields["csrf_token"])
    credential = authenticator.create(opts, url)
    fields.update(credential=json.dumps(credential), name=name)
    return browser.post(f"{url}/compte/securite/cles", fields)


def code_of(flow: Any, response: httpx.Response) -> str:
    """The authorization code of the redirect back to ``flow``'s client (consenting first
    if the provider asks)."""
    if "/connexion/consentement" in str(response.url):
        response = flow.browser.consent(response, stop_at=flow.redirect_uri)
    assert response.status_code in (302, 303), (response.url, response.text[:300])
    location = response.headers["location"]
    assert location.startswith(flow.redirect_uri), location
    return str(query_of(location)["code"])


def claims_of(flow: Any, tokens: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ID token's and the access token's claims, checked by python-jose."""
    jwks = httpx.get(f"{flow.platform.url}/jwks.json").json()["keys"]
    out = []
    for token, audience in ((tokens["id_token"], flow.client["client_id"]),
                            (tokens["access_token"], flow.platform.url)):
        header = jose_jwt.get_unverified_header(token)
        key = next(k for k in jwks if k["kid"] == header["kid"])
        out.append(jose_jwt.decode(token, key, algorithms=[header["alg"]], audience=audience,
                                   issuer=flow.platform.url,
                                   options={"verify_at_hash": False}))
    return out[0], out[1]
