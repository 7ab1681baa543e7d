"""The language switcher of the citizen pages (``/langue``): a plain link per language, so it
works without JavaScript. The choice is kept in a cookie for a year and, during a sign-in
journey, in the pending authorization request (it then prevails over ``ui_locales``)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from idp import i18n
from idp.api.browser import LANGUAGE_COOKIE, finish, load_interaction, save_interaction
from idp.api.deps import CsrfDep, ProviderDep
from idp.api.signin import safe_return

router = APIRouter(include_in_schema=False)

YEAR = 365 * 24 * 3600


@router.get("/langue")
def switch_language(
    request: Request, provider: ProviderDep, csrf: CsrfDep, choix: str = "", retour: str = "",
) -> Response:
    back = safe_return(retour) or "/compte/"
    locale = i18n.supported(choix)
    response = RedirectResponse(back, status_code=303)
    if locale is None:
        return finish(request, response, provider)
    interaction_id = parse_qs(urlsplit(back).query).get("interaction", [""])[0]
    pending = load_interaction(request, provider, interaction_id) if interaction_id else None
    if pending is not None:
        pending.extra["locale"] = locale
        save_interaction(request, provider, csrf, query=pending.query,
                         client_id=pending.client_id, existing=pending)
    response.set_cookie(LANGUAGE_COOKIE, locale, max_age=YEAR, httponly=True, samesite="lax",
                        secure=provider.settings.secure_cookies, path="/")
    return finish(request, response, provider)
