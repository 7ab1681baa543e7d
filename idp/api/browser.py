"""The browser side of the provider: cookies, CSRF, pending authorization interactions."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from idp import i18n
from idp.services import Provider, SSOSession
from plateforme.web import CSRF_COOKIE, Csrf, client_address

SESSION_COOKIE = "mc_session"
# The language the person chose with the switcher (idp.api.language).
LANGUAGE_COOKIE = "mc_langue"


@dataclass
class Interaction:
    """An authorization request waiting for the person (sign-in, consent)."""

    id: str
    query: str
    client_id: str
    browser: str
    login_done: bool = False
    consent_done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _browser_hash(value: str | None) -> str:
    return hashlib.sha256((value or "").encode()).hexdigest()


def browser_id(request: Request) -> str | None:
    return request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf_cookie", None)


def browser_binding(request: Request) -> str | None:
    """What binds server-side state to this browser (a hash of its CSRF cookie), or None."""
    value = browser_id(request)
    return _browser_hash(value) if value else None


def ensure_csrf_cookie(request: Request, csrf: Csrf) -> str:
    """The browser's CSRF cookie value, created (and remembered for the response) if absent."""
    value = browser_id(request)
    if not value:
        value = csrf.new_cookie_value()
        request.state.new_csrf_cookie = value
    return value


def finish(request: Request, response: Response, provider: Provider) -> Response:
    """Set the cookies decided during the request on the outgoing response."""
    secure = provider.settings.secure_cookies
    new_csrf = getattr(request.state, "new_csrf_cookie", None)
    if new_csrf:
        response.set_cookie(
            CSRF_COOKIE, new_csrf, httponly=True, samesite="lax", secure=secure, path="/"
        )
    sid = getattr(request.state, "set_session", None)
    if sid is not None:
        if sid == "":
            response.delete_cookie(SESSION_COOKIE, path="/", secure=secure, httponly=True,
                                   samesite="lax")
        else:
            response.set_cookie(
                SESSION_COOKIE, sid, httponly=True, samesite="lax", secure=secure, path="/",
                max_age=provider.settings.session_lifetime,
            )
    response.headers["Cache-Control"] = "no-store"
    return response


def current_session(request: Request, provider: Provider) -> SSOSession | None:
    sid = request.cookies.get(SESSION_COOKIE)
    prefetched = getattr(request.state, "prefetched_session", None)
    if prefetched is not None and prefetched[0] == sid:
        # Read with the interaction (_read_with_session), nothing written since: the first
        # call only, a later one reads the store again.
        request.state.prefetched_session = None
        sso = provider.sessions.loaded(prefetched[1])
    else:
        sso = provider.sessions.get(sid)
    request.state.seen_session = sso  # reused by page_locale only (see there)
    return sso


def _read_with_session(request: Request, provider: Provider, key: str) -> str | None:
    """``key``'s value; in the same round trip, the browser's SSO session when this request
    has not read it yet: every page that loads an interaction asks for the session next
    (:func:`current_session` then takes this copy instead of a second store call)."""
    sid = request.cookies.get(SESSION_COOKIE)
    session_key = (provider.sessions.key(sid)
                   if not hasattr(request.state, "seen_session") else None)
    if session_key is None:
        return provider.store.get(key)
    raw, session_raw = provider.store.get_many(key, session_key)
    request.state.prefetched_session = (sid, session_raw)
    return raw


def save_interaction(
    request: Request, provider: Provider, csrf: Csrf, *, query: str, client_id: str,
    existing: Interaction | None = None,
) -> Interaction:
    browser = ensure_csrf_cookie(request, csrf)
    interaction = existing or Interaction(
        id=secrets.token_urlsafe(24), query=query, client_id=client_id,
        browser=_browser_hash(browser),
    )
    provider.store.set(
        f"idp:interaction:{interaction.id}", json.dumps(asdict(interaction)),
        ttl=provider.settings.interaction_lifetime,
    )
    _seen_interactions(request)[interaction.id] = interaction
    return interaction


def _seen_interactions(request: Request) -> dict[str, Interaction | None]:
    """The interactions this request already read or wrote, by id (for page_locale)."""
    seen: dict[str, Interaction | None] | None = getattr(request.state, "seen_interactions",
                                                         None)
    if seen is None:
        seen = request.state.seen_interactions = {}
    return seen


def load_interaction(request: Request, provider: Provider, interaction_id: str | None
                     ) -> Interaction | None:
    """The pending interaction, only for the browser that started it."""
    if not interaction_id or len(interaction_id) > 64:
        return None
    raw = _read_with_session(request, provider, f"idp:interaction:{interaction_id}")
    interaction = Interaction(**json.loads(raw)) if raw is not None else None
    if interaction is not None and interaction.browser != _browser_hash(browser_id(request)):
        interaction = None
    _seen_interactions(request)[interaction_id] = interaction
    return interaction


def drop_interaction(provider: Provider, interaction: Interaction) -> None:
    provider.store.delete(f"idp:interaction:{interaction.id}")


def address_of(request: Request) -> str:
    return client_address(request, request.app.state.trusted_proxies)


def page_locale(request: Request, provider: Provider, interaction_id: str | None = None
                ) -> str:
    """The language of this request's page, in order: the ``ui_locales`` of the authorization
    request being served (or the language chosen during it), a ``ui_locales`` query parameter
    (links of that journey carry it), the switcher's cookie, the signed-in account's
    preference, ``Accept-Language``, French."""
    cached: str | None = getattr(request.state, "locale", None)
    if cached:
        return cached
    locale, journey = None, False
    interaction_id = interaction_id or request.query_params.get("interaction")
    # The page's handler has usually read the interaction and the session already: their
    # copies serve here (one store round trip less each; only the language is read from them).
    seen = _seen_interactions(request)
    if interaction_id and interaction_id in seen:
        pending = seen[interaction_id]
    else:
        pending = load_interaction(request, provider, interaction_id) if interaction_id else None
    if pending is not None:
        chosen = pending.extra.get("locale")
        locale = i18n.supported(chosen) if isinstance(chosen, str) else None
        locale = locale or i18n.ui_locales(parse_qs(pending.query).get("ui_locales", [""])[0])
        journey = locale is not None
    if locale is None:
        locale = i18n.ui_locales(request.query_params.get("ui_locales"))
        journey = locale is not None
    locale = locale or i18n.supported(request.cookies.get(LANGUAGE_COOKIE))
    if locale is None and request.cookies.get(SESSION_COOKIE):
        sso = (request.state.seen_session if hasattr(request.state, "seen_session")
               else current_session(request, provider))
        user = provider.users.get(sso.user_id) if sso is not None else None
        locale = i18n.supported(user.locale) if user is not None else None
    locale = locale or i18n.accept_language(request.headers.get("accept-language"))
    locale = locale or i18n.DEFAULT_LOCALE
    request.state.locale = locale
    request.state.locale_from_journey = journey
    return locale


def text(request: Request, provider: Provider, message: str) -> str:
    """A sentence (msgid or :class:`idp.i18n.Msg`) in the request's language, for answers
    that are not pages (the JSON read by the pages' scripts)."""
    return i18n.translate(page_locale(request, provider), message)


# The query parameters a page keeps when it comes back after a change of language (not
# ui_locales, which would override the choice, nor an authorization request's parameters).
_KEPT_PARAMETERS = ("retour", "suite")


def _here(request: Request, interaction_id: str | None) -> str:
    """This page's address to come back to after switching language."""
    if interaction_id:
        return request.url.path + "?" + urlencode({"interaction": interaction_id})
    kept = {name: value for name in _KEPT_PARAMETERS
            if (value := request.query_params.get(name)) and len(value) <= 200
            and (name != "retour" or (value.startswith("/") and not value.startswith("//")
                                      and "\\" not in value))}
    return request.url.path + ("?" + urlencode(kept) if kept else "")


def language_context(request: Request, provider: Provider, interaction_id: str | None
                     ) -> dict[str, Any]:
    """What base.html needs: ``lang``, the switcher's links, and the query that keeps a
    journey's ``ui_locales`` on the links leaving the sign-in page."""
    locale = page_locale(request, provider, interaction_id)
    back = _here(request, interaction_id)
    return {
        "lang": locale,
        "languages": [
            {"code": code, "name": i18n.NAMES[code], "current": code == locale,
             "href": "/langue?" + urlencode({"choix": code, "retour": back})}
            for code in i18n.LOCALES
        ],
        "ui_query": ("?" + urlencode({"ui_locales": locale})
                     if getattr(request.state, "locale_from_journey", False) else ""),
    }


def render(
    request: Request, templates: Jinja2Templates, provider: Provider, name: str,
    context: dict[str, Any], status_code: int = 200,
) -> Response:
    """A citizen page in the request's language (see :func:`page_locale`)."""
    interaction = context.get("interaction")
    languages = language_context(request, provider,
                                 interaction if isinstance(interaction, str) else None)
    context = {**i18n.localise(context, languages["lang"]), **languages}
    with i18n.rendering(languages["lang"]):
        response = templates.TemplateResponse(request, name, context, status_code=status_code)
    return finish(request, response, provider)


def error_page(
    request: Request, templates: Jinja2Templates, provider: Provider, *, heading: str,
    message: str, detail: str | None = None, status_code: int = 400,
) -> Response:
    return render(request, templates, provider, "error.html", {
        "title": heading, "heading": heading, "message": message, "detail": detail,
    }, status_code)
