"""« Boîte de réception de démonstration » (``/demo/boite``): in demo mode only (``MC_DEMO``,
set by ``make run``), the messages written to the outbox (``<data_dir>/outbox/*.eml``, the
embedded default when no ``MC_SMTP_URL`` is set) can be read in the browser, so that the
registration and reset journeys work on a machine without a mail server."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

from fastapi import APIRouter, Request
from markupsafe import Markup, escape
from starlette.exceptions import HTTPException
from starlette.responses import Response

from idp.api.browser import render
from idp.api.deps import ProviderDep, TemplatesDep
from idp.i18n import N_

router = APIRouter(include_in_schema=False)

_NAME = re.compile(r"^[0-9a-f]{32}\.eml$")
_URL = re.compile(r"https?://[^\s<>\"']+")
MAX_LISTED = 100


@dataclass(frozen=True)
class OutboxMessage:
    name: str
    to: str
    subject: str
    date: datetime | None
    text: str


def _outbox(provider: object) -> Path:
    settings = provider.settings  # type: ignore[attr-defined]
    if not settings.demo:
        raise HTTPException(404)
    return Path(settings.data_dir) / "outbox"


def _read(path: Path) -> OutboxMessage:
    with open(path, "rb") as fh:
        message = BytesParser(policy=policy.default).parse(fh)
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("plain",))
    try:
        date = parsedate_to_datetime(str(message["Date"]))
    except (TypeError, ValueError):
        date = None
    return OutboxMessage(name=path.name, to=str(message["To"] or ""),
                         subject=str(message["Subject"] or ""), date=date,
                         text=body.get_content() if body is not None else "")


def linkify(text: str) -> Markup:
    """Plain text, escaped, with its web addresses made into links."""
    out, last = [], 0
    for match in _URL.finditer(text):
        out.append(escape(text[last:match.start()]))
        url = match.group(0)
        out.append(Markup('<a href="{0}">{0}</a>').format(url))
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


@router.get("/demo/boite")
def inbox(request: Request, provider: ProviderDep, templates: TemplatesDep) -> Response:
    outbox = _outbox(provider)
    paths = sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True)
    messages = [_read(p) for p in paths[:MAX_LISTED] if _NAME.match(p.name)]
    return render(request, templates, provider, "account_demo_inbox.html", {
        "title": N_("Boîte de réception de démonstration"), "messages": messages,
    })


@router.get("/demo/boite/{name}")
def inbox_message(request: Request, provider: ProviderDep, templates: TemplatesDep,
                  name: str) -> Response:
    outbox = _outbox(provider)
    if not _NAME.match(name) or not (outbox / name).is_file():
        raise HTTPException(404)
    message = _read(outbox / name)
    return render(request, templates, provider, "account_demo_message.html", {
        "title": message.subject, "message": message, "body": linkify(message.text),
    })
