"""A browser stand-in over real HTTP: cookies, manual redirects, form parsing.

It follows redirects across the provider and the relying parties exactly as a browser does,
so the functional tests exercise the same requests as a person would.
"""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx


class Browser:
    def __init__(self) -> None:
        self.http = httpx.Client(follow_redirects=False, timeout=15)
        self.history: list[httpx.Response] = []

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        response = self.http.request(method, url, **kwargs)  # type: ignore[arg-type]
        self.history.append(response)
        return response

    def get(self, url: str, *, follow: bool = True, stop_at: str | None = None) -> httpx.Response:
        return self.follow(self.request("GET", url), follow=follow, stop_at=stop_at)

    def post(self, url: str, data: dict[str, str], *, follow: bool = True,
             stop_at: str | None = None) -> httpx.Response:
        return self.follow(self.request("POST", url, data=data), follow=follow, stop_at=stop_at)

    def follow(self, response: httpx.Response, *, follow: bool = True,
               stop_at: str | None = None) -> httpx.Response:
        """Follow redirects; stop before requesting a URL that starts with ``stop_at``."""
        hops = 0
        while follow and response.status_code in (301, 302, 303, 307) and hops < 20:
            target = urljoin(str(response.url), response.headers["location"])
            if stop_at and target.startswith(stop_at):
                return response
            response = self.request("GET", target)
            hops += 1
        return response

    @staticmethod
    def form_fields(html: str, action: str | None = None) -> dict[str, str]:
        """Hidden and pre-filled fields of the first form (or the one posting to ``action``)."""
        forms = re.findall(r"<form[^>]*>.*?</form>", html, re.S)
        if action:
            forms = [f for f in forms if f'action="{action}"' in f]
        assert forms, "no form on the page"
        fields = {}
        for name, value in re.findall(
            r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', forms[0]
        ):
            fields[name] = unescape(value)
        return fields

    def login(self, page: httpx.Response, email: str, password: str, *,
              stop_at: str | None = None) -> httpx.Response:
        """Fill and submit the sign-in form shown by ``page``."""
        fields = self.form_fields(page.text, "/connexion")
        fields.update(email=email, password=password)
        base = f"{urlsplit(str(page.url)).scheme}://{urlsplit(str(page.url)).netloc}"
        return self.post(base + "/connexion", fields, stop_at=stop_at)

    def consent(self, page: httpx.Response, decision: str = "accept", *,
                stop_at: str | None = None) -> httpx.Response:
        fields = self.form_fields(page.text, "/connexion/consentement")
        fields["decision"] = decision
        base = f"{urlsplit(str(page.url)).scheme}://{urlsplit(str(page.url)).netloc}"
        return self.post(base + "/connexion/consentement", fields, stop_at=stop_at)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
