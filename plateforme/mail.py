"""Outgoing email: real SMTP when ``MC_SMTP_URL`` is set (``smtp://host:port`` or
``smtps://user:password@host:port``), else one ``.eml`` file per message in the data
directory's ``outbox/`` (the embedded default). Plain text plus HTML."""

from __future__ import annotations

import os
import smtplib
import ssl
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit


class Mailer(Protocol):
    def send(self, *, to: str, subject: str, text: str, html: str | None = None) -> str:
        """Send one message; return its Message-ID."""
        ...


def _message(sender: str, to: str, subject: str, text: str, html: str | None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.split("@")[-1].rstrip(">"))
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    return message


class OutboxMailer:
    """Writes each message atomically to ``outbox/<id>.eml``."""

    def __init__(self, outbox: Path, *, sender: str) -> None:
        self.outbox = outbox
        self.sender = sender

    def send(self, *, to: str, subject: str, text: str, html: str | None = None) -> str:
        self.outbox.mkdir(parents=True, exist_ok=True)
        message = _message(self.sender, to, subject, text, html)
        name = f"{uuid.uuid4().hex}.eml"
        tmp = self.outbox / (name + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(bytes(message))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.outbox / name)
        return str(message["Message-ID"])


class SmtpMailer:
    def __init__(self, url: str, *, sender: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        self._tls = parts.scheme == "smtps"
        self._starttls = parts.scheme == "smtp+starttls"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (465 if self._tls else 25)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._timeout = timeout
        self.sender = sender

    def send(self, *, to: str, subject: str, text: str, html: str | None = None) -> str:
        message = _message(self.sender, to, subject, text, html)
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self._tls:
            smtp = smtplib.SMTP_SSL(self._host, self._port, timeout=self._timeout,
                                    context=context)
        else:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        with smtp:
            if self._starttls:
                smtp.starttls(context=context)
            if self._user and self._password:
                smtp.login(self._user, self._password)
            smtp.send_message(message)
        return str(message["Message-ID"])


def make_mailer(smtp_url: str | None, data_dir: Path, *, sender: str) -> Mailer:
    if smtp_url:
        return SmtpMailer(smtp_url, sender=sender)
    return OutboxMailer(data_dir / "outbox", sender=sender)
