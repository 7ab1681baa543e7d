"""Logging setup (structlog over the standard library): readable text by default, one JSON
object per line with ``MC_LOG_FORMAT=json``.

Every line written while a request is served carries its ``request_id`` (the id
:class:`plateforme.web.ProxyHeadersMiddleware` accepted from a trusted proxy or generated, and
echoed in the ``X-Request-ID`` response header); the audit journal records the same id, so a
log line, an access-log line and a journal entry can be joined.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# The request being served (set by the outermost middleware; copied into worker threads).
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "mc_request_id", default=None)


def _add_request_id(_logger: Any, _name: str, event: MutableMapping[str, Any]
                    ) -> MutableMapping[str, Any]:
    if "request_id" not in event:
        rid = request_id_var.get()
        if rid:
            event["request_id"] = rid
    return event


def _processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
        structlog.stdlib.ExtraAdder(),
        _add_request_id,
    ]


def make_formatter(fmt: str = "text") -> logging.Formatter:
    """The formatter of the root handler: JSON lines (``time``, ``level``, ``logger``,
    ``message``, ``request_id``, extra fields, ``exception``) or a readable line."""
    if fmt == "json":
        renderers: list[Any] = [
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(ensure_ascii=False, default=str),
        ]
    else:
        renderers = [structlog.dev.ConsoleRenderer(colors=False)]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers],
    )


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Route the standard library's records (ours, uvicorn's) and structlog's through one
    handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    structlog.configure(
        processors=[*_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
