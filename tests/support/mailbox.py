"""A real SMTP server (aiosmtpd) on a loopback port, keeping what it receives.

The ``mailbox`` fixture points the running platform's mailer at it for one test, exactly as
``MC_SMTP_URL=smtp://127.0.0.1:<port>`` does at start-up (same :func:`make_mailer`), so the
messages travel over SMTP and the test reads them as a person's mail client would.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from html import unescape
from typing import Any

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Received:
    to: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None, "no text/plain part"
        return str(part.get_content())

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None, "no text/html part"
        return str(part.get_content())

    def link(self, path: str) -> str:
        """The link to ``path`` in the text part, checked to be in the HTML part too."""
        found = re.findall(r"https?://\S+" + re.escape(path) + r"\S*", self.text)
        assert found, f"no link to {path} in:\n{self.text}"
        assert any(unescape(href) == found[0]
                   for href in re.findall(r'href="([^"]+)"', self.html)), self.html
        return found[0]


class Mailbox:
    """The SMTP handler: every message delivered, by recipient."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = BytesParser(policy=policy.default).parsebytes(envelope.original_content
                                                                or envelope.content)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append(Received([str(r).lower() for r in envelope.rcpt_tos],
                                          message))
            self._lock.notify_all()
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if address.lower() in m.to]

    def wait_for(self, address: str, *, subject: str | None = None, count: int = 1,
                 timeout: float = 10.0) -> Received:
        """The ``count``-th message to ``address`` (with ``subject`` in its subject)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [m for m in self.messages if address.lower() in m.to
                         and (subject is None or subject in m.subject)]
                if len(found) >= count:
                    return found[count - 1]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no message #{count} to {address} (subject {subject!r}) after "
                        f"{timeout} s; received: {[(m.to, m.subject) for m in self.messages]}")
                self._lock.wait(remaining)

    def assert_none(self, address: str, *, wait: float = 0.5) -> None:
        time.sleep(wait)
        assert not self.to(address), [m.subject for m in self.to(address)]


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.mailbox = Mailbox()
        self.port = port
        self.url = f"smtp://127.0.0.1:{port}"
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
