"""Languages of the citizen pages over real HTTP, on each backend: French by default, English
and kréyòl chosen by ``ui_locales`` (kept for the whole sign-in journey), by the account's
preference, by ``Accept-Language``, or with the switcher."""

from __future__ import annotations

import re
import time

import httpx
from sqlmodel import Session

from idp.models import User
from tests.conftest import CodeFlow
from tests.support.browser import Browser, query_of

STRONG = "Mangue-Velo-Nuage-Tambour"


def lang_of(html: str) -> str:
    found = re.search(r'<html lang="([^"]+)">', html)
    assert found, html[:200]
    return found.group(1)


def h1_of(html: str) -> str:
    found = re.search(r"<h1>(.*?)</h1>", html, re.S)
    assert found, html[:500]
    return found.group(1).strip()


def set_locale(platform, user_id: str, locale: str) -> None:
    with Session(platform.provider.engine) as session:
        row = session.get(User, user_id)
        assert row is not None
        row.locale = locale
        session.add(row)
        session.commit()


def test_french_is_the_default(platform, browser: Browser) -> None:
    page = browser.get(f"{platform.url}/connexion")
    assert lang_of(page.text) == "fr"
    assert h1_of(page.text) == "Se connecter"
    assert "Mot de passe oublié ?" in page.text


def test_accept_language_chooses_english(platform) -> None:
    page = httpx.get(f"{platform.url}/connexion",
                     headers={"Accept-Language": "de-DE, en-GB;q=0.8, fr;q=0.5"})
    assert lang_of(page.text) == "en"
    assert h1_of(page.text) == "Sign in"
    assert '<label for="password">Password</label>' in page.text
    assert "<title>Sign in — Martinique Connect</title>" in page.text
    # An unsupported language alone falls back to French.
    page = httpx.get(f"{platform.url}/connexion", headers={"Accept-Language": "de, es"})
    assert lang_of(page.text) == "fr"


def test_ui_locales_holds_for_the_whole_sign_in_journey(
    platform, flow: CodeFlow, user, browser: Browser,
) -> None:
    page = flow.start(ui_locales="en-US fr")
    assert "/connexion?" in str(page.url)
    assert lang_of(page.text) == "en"
    assert "to access <strong>Application de test</strong>" in page.text
    # The links leaving the page keep the language.
    assert 'href="/inscription?ui_locales=en"' in page.text
    # A wrong password: the page comes back in English, with the error in English.
    fields = browser.form_fields(page.text, "/connexion")
    fields.update(email=user["email"], password="not-the-password")
    failed = browser.post(f"{platform.url}/connexion", fields)
    assert failed.status_code == 401
    assert lang_of(failed.text) == "en"
    assert "Incorrect email address or password." in failed.text
    # Then the consent page, still in English, whatever the browser says.
    done = browser.login(failed, user["email"], user["password"], stop_at=flow.redirect_uri)
    assert "/connexion/consentement" in str(done.url)
    assert lang_of(done.text) == "en"
    assert h1_of(done.text) == "Authorise Application de test"
    assert "know your email address" in done.text
    assert '<button type="submit" name="decision" value="accept">Authorise</button>' in done.text


def test_ui_locales_kreyol_on_the_sign_in_and_registration_pages(
    platform, flow: CodeFlow, browser: Browser,
) -> None:
    page = flow.start(ui_locales="gcf")
    assert lang_of(page.text) == "gcf"
    assert h1_of(page.text) == "Konèkté"
    assert "Adrès imèl" in page.text
    register = browser.get(f"{platform.url}/inscription?ui_locales=gcf")
    assert lang_of(register.text) == "gcf"
    assert h1_of(register.text) == "Kréyé kont ou"
    # The form posts back with the journey's language: its errors are in kréyòl too.
    assert 'action="/inscription?ui_locales=gcf"' in register.text
    fields = browser.form_fields(register.text, "/inscription?ui_locales=gcf")
    fields.update(given_name="", family_name="Dupont", email="pa-bon", password="kout",
                  password_confirmation="kout", locale="fr")
    refused = browser.post(f"{platform.url}/inscription?ui_locales=gcf", fields)
    assert refused.status_code == 422
    assert lang_of(refused.text) == "gcf"
    assert "Antré ti-non-w." in refused.text
    assert "Mo-pas-la dwèt ni o mwens 12 karaktè (i ni 4 kounyéa)." in refused.text
    # Accepted: the next page keeps the journey's language.
    fields.update(given_name="Marie", email=f"kreyol-{time.time_ns()}@example.mq",
                  password=STRONG, password_confirmation=STRONG)
    sent = browser.post(f"{platform.url}/inscription?ui_locales=gcf", fields, follow=False)
    assert sent.status_code == 303
    assert sent.headers["location"] == "/inscription/envoye?ui_locales=gcf"
    forgot = browser.get(f"{platform.url}/mot-de-passe/oublie?ui_locales=en")
    assert 'action="/mot-de-passe/oublie?ui_locales=en"' in forgot.text


def test_account_preference_chooses_the_language_once_signed_in(
    platform, user, browser: Browser,
) -> None:
    set_locale(platform, user["id"], "en")
    page = browser.get(f"{platform.url}/connexion?retour=/compte/")
    assert lang_of(page.text) == "fr"  # nobody is signed in yet
    home = browser.login(page, user["email"], user["password"])
    assert str(home.url).endswith("/compte/")
    assert lang_of(home.text) == "en"
    assert h1_of(home.text) == "My account"
    assert "1 open session." in home.text
    activity = browser.get(f"{platform.url}/compte/activite")
    assert "Account activity" in activity.text
    assert re.search(r"<td>\d\d/\d\d/\d{4} at \d\d:\d\d</td>", activity.text)
    # Accept-Language comes after the account's preference.
    response = browser.request("GET", f"{platform.url}/compte/",
                               headers={"Accept-Language": "fr"})
    assert lang_of(response.text) == "en"


def test_switcher_sets_a_cookie_and_wins_over_the_browser(platform, browser: Browser) -> None:
    page = browser.get(f"{platform.url}/connexion")
    switcher = re.search(r'<nav class="langues" aria-label="Langue">(.*?)</nav>', page.text, re.S)
    assert switcher, "no language switcher"
    links = {code: href.replace("&amp;", "&") for href, code in re.findall(
        r'<a href="([^"]+)" lang="([^"]+)" hreflang="[^"]+"', switcher.group(1))}
    assert set(links) == {"fr", "en", "gcf"}
    assert 'lang="fr" hreflang="fr" aria-current="true">Français</a>' in switcher.group(1)
    switched = browser.get(platform.url + links["en"], follow=False)
    assert switched.status_code == 303
    assert switched.headers["location"] == "/connexion"
    cookie = switched.headers["set-cookie"]
    assert cookie.startswith("mc_langue=en;") and "HttpOnly" in cookie and "Max-Age=" in cookie
    page = browser.get(f"{platform.url}/connexion")
    assert lang_of(page.text) == "en"
    assert 'aria-current="true">English</a>' in page.text
    # An explicit choice prevails over Accept-Language.
    page = browser.request("GET", f"{platform.url}/inscription",
                           headers={"Accept-Language": "fr"})
    assert lang_of(page.text) == "en"
    assert h1_of(page.text) == "Create your account"


def test_switcher_during_a_journey_overrides_ui_locales(
    platform, flow: CodeFlow, browser: Browser,
) -> None:
    page = flow.start(ui_locales="en")
    interaction = query_of(str(page.url))["interaction"]
    browser.get(f"{platform.url}/langue?choix=gcf&retour=/connexion?interaction={interaction}",
                follow=False)
    page = browser.get(f"{platform.url}/connexion?interaction={interaction}")
    assert lang_of(page.text) == "gcf"


def test_switcher_never_leaves_the_site(platform, browser: Browser) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = browser.get(f"{platform.url}/langue?choix=en&retour={target}", follow=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/compte/"
    unknown = browser.get(f"{platform.url}/langue?choix=xx&retour=/connexion", follow=False)
    assert "set-cookie" not in unknown.headers or "mc_langue" not in unknown.headers["set-cookie"]


def test_password_meter_answers_in_the_page_language(platform) -> None:
    response = httpx.post(f"{platform.url}/inscription/robustesse",
                          data={"password": "abc", "lang": "en"})
    body = response.json()
    assert body["label"] == "Very weak"
    assert body["problems"][0] == "The password must have at least 12 characters (3 now)."


def test_discovery_lists_the_supported_languages(platform) -> None:
    metadata = httpx.get(f"{platform.url}/.well-known/openid-configuration").json()
    assert metadata["ui_locales_supported"] == ["fr", "en", "gcf"]


def test_registration_defaults_the_message_language_to_the_page(
    platform, browser: Browser,
) -> None:
    page = browser.request("GET", f"{platform.url}/inscription",
                           headers={"Accept-Language": "en"})
    assert re.search(r'<option value="en" lang="en" selected>English</option>', page.text)
    assert "Format attendu" not in page.text


def test_switching_away_from_a_ui_locales_page_takes_effect(platform, browser: Browser) -> None:
    page = browser.get(f"{platform.url}/inscription?ui_locales=gcf")
    assert lang_of(page.text) == "gcf"
    link = re.search(r'<a href="([^"]+)" lang="en"', page.text)
    assert link
    english = browser.get(platform.url + link.group(1).replace("&amp;", "&"))
    assert str(english.url).endswith("/inscription")
    assert lang_of(english.text) == "en"
