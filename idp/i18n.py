"""Languages of the citizen pages: French (the source strings), English, and Martinican
Creole (``gcf``, sign-in and registration pages only, awaiting review by native speakers).

The catalogues are ``idp/locales/<lang>/LC_MESSAGES/messages.po`` (Babel/gettext). They are
compiled in memory when first used, so a fresh clone needs no build step; ``make messages``
extracts the strings, updates the catalogues and compiles ``.mo`` files, which are used when
they are newer than their ``.po``.

Code that produces a sentence a citizen reads marks it with :func:`N_` (extraction only: the
msgid is the French text) or builds a :class:`Msg` when it has values to insert; the page
layer translates both for the request's language (``idp.api.browser.render``). No web
framework here: services use the markers too.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from gettext import NullTranslations
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALE_DIR = Path(__file__).parent / "locales"
DEFAULT_LOCALE = "fr"
# What the pages are offered in (discovery's ui_locales_supported). Kréyòl covers the sign-in
# and registration pages; its other strings fall back to French.
LOCALES = ("fr", "en", "gcf")
# How each language names itself (the switcher shows names in their own language).
NAMES = {"fr": "Français", "en": "English", "gcf": "Kréyòl"}
# The language of the page being rendered, for the macros a template imports (they do not see
# the page's context).
_RENDERING: ContextVar[str] = ContextVar("rendering_locale", default=DEFAULT_LOCALE)
_TAG = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")


def N_(message: str) -> str:  # noqa: N802 - the gettext convention
    """Mark a French sentence for extraction; it is translated where it is shown."""
    return message


class Msg(str):
    """A sentence with values: a ``str`` (the French text, for logs and code that never
    translates) that remembers its msgid (``%(name)s`` placeholders) and values, so the page
    layer can translate it."""

    msgid: str
    values: dict[str, Any]

    def __new__(cls, msgid: str, **values: Any) -> Msg:
        self = super().__new__(cls, msgid % values if values else msgid)
        self.msgid = msgid
        self.values = values
        return self

    @classmethod
    def join(cls, parts: Iterable[str]) -> Msg:
        """Sentences shown together, each translated on its own."""
        values = {f"p{i}": p if isinstance(p, Msg) else cls(p) for i, p in enumerate(parts)}
        return cls(" ".join(f"%({name})s" for name in values), **values)


class _French(NullTranslations):
    """The source strings, with French plurals (0 and 1 take the singular)."""

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        return msgid1 if n <= 1 else msgid2


@lru_cache(maxsize=8)
def translations(locale: str) -> NullTranslations:
    """The catalogue of ``locale`` (French and unknown languages: the source strings)."""
    if locale not in LOCALES or locale == DEFAULT_LOCALE:
        return _French()
    folder = LOCALE_DIR / locale / "LC_MESSAGES"
    po, mo = folder / "messages.po", folder / "messages.mo"
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as fp:
            return Translations(fp, domain="messages")
    if not po.exists():
        return NullTranslations()
    with po.open("rb") as fp:
        catalog = read_po(fp, locale=None, domain="messages")
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain="messages")


def translate(locale: str, text: str | Msg) -> str:
    """``text`` in ``locale`` (the French text when there is no translation)."""
    catalogue = translations(locale)
    if isinstance(text, Msg):
        translated = catalogue.gettext(text.msgid)
        if not text.values:
            return translated
        return translated % {k: translate(locale, v) if isinstance(v, Msg) else v
                             for k, v in text.values.items()}
    return catalogue.gettext(text) if text else text


def supported(tag: str | None) -> str | None:
    """The supported language a BCP 47 tag designates (``en-GB`` → ``en``), or None."""
    if not tag or len(tag) > 35 or not _TAG.match(tag):
        return None
    primary = tag.split("-")[0].lower()
    return primary if primary in LOCALES else None


def first_supported(tags: Iterable[str]) -> str | None:
    for tag in tags:
        found = supported(tag)
        if found:
            return found
    return None


def ui_locales(value: str | None) -> str | None:
    """OIDC Core §3.1.2.1 ``ui_locales``: space-separated tags in order of preference."""
    return first_supported((value or "").split()[:10])


def accept_language(header: str | None) -> str | None:
    """The preferred supported language of an ``Accept-Language`` header (RFC 9110 §12.5.4)."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate((header or "").split(",")[:30]):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0 and tag.strip() and tag.strip() != "*":
            ranked.append((-quality, position, tag.strip()))
    return first_supported(tag for _, _, tag in sorted(ranked))


# Keys of a page's context that hold sentences produced by code (msgids or Msg), translated
# before the template sees them; templates mark their own text with {{ _("…") }}.
_SENTENCES = ("title", "heading", "message", "error", "done", "action_label", "button",
              "intro")
_SENTENCE_LISTS = ("paragraphs", "scopes")
_SENTENCE_MAPS = ("errors", "labels")


def localise(context: Mapping[str, Any], locale: str) -> dict[str, Any]:
    """A copy of a page's context with the code-produced sentences in ``locale``."""
    out = dict(context)

    def tr(value: Any) -> Any:
        return translate(locale, value) if isinstance(value, str | Msg) else value

    for key in _SENTENCES:
        if key in out:
            out[key] = tr(out[key])
    for key in _SENTENCE_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [tr(v) for v in out[key]]
    for key in _SENTENCE_MAPS:
        if isinstance(out.get(key), Mapping):
            out[key] = {k: tr(v) for k, v in out[key].items()}
    strength = out.get("strength")
    if strength is not None and hasattr(strength, "advice"):
        out["strength"] = {"score": strength.score, "label": tr(strength.label),
                           "advice": [tr(a) for a in strength.advice]}
    if isinstance(out.get("links"), list):
        out["links"] = [(href, tr(label)) for href, label in out["links"]]
    if isinstance(out.get("navigation"), list):
        out["navigation"] = [(href, tr(label)) for href, label in out["navigation"]]
    return out


@contextmanager
def rendering(locale: str) -> Iterator[None]:
    """Render templates in ``locale`` within this block."""
    token = _RENDERING.set(locale)
    try:
        yield
    finally:
        _RENDERING.reset(token)


def install(env: Any) -> None:
    """Give a Jinja environment (with ``jinja2.ext.i18n``) ``_``/``gettext``/``ngettext``
    that follow each page's ``lang`` (else the :func:`rendering` block's language; French
    by default: the console)."""
    from jinja2 import pass_context
    from markupsafe import Markup

    def _locale(context: Any) -> str:
        lang = context.get("lang")
        return lang if isinstance(lang, str) else _RENDERING.get()

    @pass_context
    def gettext(context: Any, message: str) -> str:
        return translations(_locale(context)).gettext(message)

    @pass_context
    def ngettext(context: Any, singular: str, plural: str, n: int) -> str:
        return translations(_locale(context)).ngettext(singular, plural, n)

    env.install_gettext_callables(gettext, ngettext, newstyle=True)
    # A value set in bold inside a translated sentence: {{ _("… %(x)s", x=name|strong) }}.
    env.filters["strong"] = lambda value: Markup("<strong>%s</strong>") % value
