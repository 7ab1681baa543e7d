"""What every journey shares: the prepared configuration, PKCE, form parsing, and a
``Journey`` that follows redirects by hand (so each hop is named in locust's statistics and
the final redirect to the relying party, which does not run, is never requested).

A completed journey is reported to locust as one more "request" of type ``JOURNEY`` whose
time is the whole journey: locust's CSV then gives journeys per second and their latency
percentiles beside those of each request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

CONFIG_ENV = "LOADTEST_CONFIG"
JOURNEY = "JOURNEY"


@dataclass(frozen=True)
class App:
    client_id: str
    client_secret: str
    redirect_uri: str


@dataclass(frozen=True)
class Config:
    """Written by ``loadtests/prepare.py``: who signs in, with which applications; for the
    archive and catalogue journeys, the organisation they act for, its clients, and the CTM
    approver (an account signing in with ``approver_app``, same password as the others)."""

    issuer: str
    password: str
    users: list[str]
    apps: list[App]
    resource_server: App
    organisation: str
    archives_client: App
    buyer_client: App
    approver_app: App
    approver: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        return cls(
            issuer=data["issuer"], password=data["password"], users=list(data["users"]),
            apps=[App(**a) for a in data["apps"]], resource_server=App(**data["resource_server"]),
            organisation=data["organisation"], archives_client=App(**data["archives_client"]),
            buyer_client=App(**data["buyer_client"]), approver_app=App(**data["approver_app"]),
            approver=data["approver"],
        )


@lru_cache(maxsize=1)
def config() -> Config:
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise RuntimeError(f"{CONFIG_ENV} must name the file written by loadtests/prepare.py")
    return Config.from_dict(json.loads(Path(path).read_text()))


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def form_fields(html: str, action: str) -> dict[str, str]:
    """The named inputs (hidden and pre-filled) of the form posting to ``action``."""
    forms = [f for f in re.findall(r"<form[^>]*>.*?</form>", html, re.S)
             if f'action="{action}"' in f]
    if not forms:
        raise JourneyFailed(f"no form posting to {action} on the page")
    return {name: unescape(value) for name, value in
            re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', forms[0])}


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


class JourneyFailed(Exception):
    """A step answered something the journey did not expect (already counted by locust)."""


# Names under which the hops appear in the statistics: the path, without identifiers.
def hop_name(url: str) -> str:
    return urlsplit(url).path or "/"


class Journey:
    """One journey of one simulated person, on locust's HTTP client (its cookie jar is the
    person's browser). Use as a context manager: on success the whole journey is reported
    as a ``JOURNEY`` request named ``name``; on :class:`JourneyFailed` as a failed one.
    ``report=False``: a preliminary step (an approver signing in once), reported only when
    it fails; its requests are in the statistics anyway."""

    def __init__(self, user: Any, name: str, *, report: bool = True) -> None:
        self.user = user
        self.client = user.client
        self.name = name
        self.report = report
        self.ok = False
        self._start = 0.0

    def __enter__(self) -> Journey:
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        elapsed_ms = (time.perf_counter() - self._start) * 1000
        failed = exc if isinstance(exc, JourneyFailed) else None
        self.ok = exc is None
        if (exc is None and self.report) or failed is not None:
            self.user.environment.events.request.fire(
                request_type=JOURNEY, name=self.name, response_time=elapsed_ms,
                response_length=0, exception=failed, context={},
            )
        return failed is not None  # a failed step ends this journey, not the user

    def call(self, method: str, url: str, *, expect: tuple[int, ...], name: str | None = None,
             **kwargs: Any) -> Any:
        """One request; a status outside ``expect`` is a failure and ends the journey."""
        with self.client.request(method, url, name=name or hop_name(url), allow_redirects=False,
                                 catch_response=True, **kwargs) as response:
            if response.status_code not in expect:
                message = f"{method} {hop_name(url)}: HTTP {response.status_code}"
                response.failure(message)
                raise JourneyFailed(message)
            response.success()
            return response

    def browse(self, url: str, *, stop_at: str) -> tuple[Any, str]:
        """GET ``url`` and follow the redirects like a browser until a page (2xx) or until the
        next hop starts with ``stop_at`` (the relying party). Returns the last response and
        the URL it came from, or the redirect target when it stopped at ``stop_at``."""
        return self.follow(self.call("GET", url, expect=(200, 302, 303)), url, stop_at=stop_at)

    def follow(self, response: Any, url: str, *, stop_at: str) -> tuple[Any, str]:
        for _ in range(12):
            if response.status_code not in (302, 303):
                return response, url
            url = urljoin(url, response.headers["location"])
            if url.startswith(stop_at):
                return response, url
            response = self.call("GET", url, expect=(200, 302, 303))
        raise JourneyFailed("too many redirects")

    def post_form(self, url: str, data: dict[str, str], *, stop_at: str) -> tuple[Any, str]:
        response = self.call("POST", url, data=data, expect=(200, 302, 303))
        return self.follow(response, url, stop_at=stop_at)


def client_credentials(journey: Journey, cfg: Config, client: App, scope: str) -> str:
    """An access token for ``client`` (acting for its organisation) with ``scope``."""
    answer = journey.call("POST", cfg.issuer + "/token", expect=(200,),
                          name="/token (client_credentials)",
                          data={"grant_type": "client_credentials", "scope": scope},
                          auth=(client.client_id, client.client_secret)).json()
    if set(str(answer.get("scope", "")).split()) != set(scope.split()):
        raise JourneyFailed(f"token granted {answer.get('scope')!r} instead of {scope!r}")
    return str(answer["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def authorize_url(issuer: str, app: App, challenge: str, state: str, nonce: str,
                  scope: str = "openid profile email") -> str:
    return issuer + "/authorize?" + urlencode({
        "response_type": "code", "client_id": app.client_id, "redirect_uri": app.redirect_uri,
        "scope": scope, "state": state, "nonce": nonce, "code_challenge": challenge,
        "code_challenge_method": "S256",
    })
