"""Prometheus metrics of the whole platform, and the small API the domains count through.

Every metric is declared here, with bounded labels: routes are labelled by their template
(``/api/archives/{ark}``), never by the raw path, and every label a domain passes is checked
against a closed list (anything else is counted as ``other``). The domains call the
``record_*`` functions; they never touch ``prometheus_client`` themselves.

Several worker processes (``serve --workers N``): ``prometheus_client``'s multiprocess mode,
switched on by the ``PROMETHEUS_MULTIPROC_DIR`` environment variable, which must be set before
this module is first imported (``martinique-connect serve`` does it, with an emptied folder
of the data directory). :func:`exposition` then sums the values of every worker. Only
counters and histograms are used, so no value depends on which worker answers the scrape.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

Scope = Any
ASGIApp = Callable[..., Any]

HTTP_REQUESTS = Counter(
    "mc_http_requests_total", "Requêtes HTTP servies, par méthode, gabarit de route et statut.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "mc_http_request_duration_seconds",
    "Durée de traitement des requêtes HTTP (secondes), par méthode et gabarit de route.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SIGN_INS = Counter(
    "mc_sign_ins_total",
    "Connexions au fournisseur d'identité, par issue (success, stepup, failure, refused) "
    "et niveau eIDAS obtenu (acr).",
    ["outcome", "acr"],
)
TOKENS = Counter(
    "mc_tokens_issued_total", "Jetons émis par le point de jeton, par type d'octroi.",
    ["grant_type"],
)
AUDIT_EVENTS = Counter(
    "mc_audit_events_total", "Entrées écrites au journal d'audit (validées), par issue.",
    ["outcome"],
)
AUDIT_FAILURES = Counter(
    "mc_audit_failures_total",
    "Contrôles d'intégrité en échec : chaîne du journal d'audit (journal), empreintes des "
    "archives (archive_fixity), journal des archives (archive_logbook).",
    ["check"],
)
DEPOSITS = Counter(
    "mc_archive_deposits_total", "Versements d'archives, par issue (accepted, rejected).",
    ["outcome"],
)
BYTES_STORED = Counter(
    "mc_archive_bytes_stored_total", "Octets écrits dans le stockage des archives.",
)
ORDERS = Counter(
    "mc_service_orders_total",
    "Commandes du catalogue de services entrées dans chaque état.",
    ["state"],
)

SIGN_IN_OUTCOMES = frozenset({"success", "stepup", "failure", "refused"})
ACR_VALUES = frozenset({"eidas1", "eidas2", "eidas3", "none"})
GRANT_TYPES = frozenset({
    "authorization_code", "refresh_token", "client_credentials",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "urn:ietf:params:oauth:grant-type:token-exchange",
    "urn:ietf:params:oauth:grant-type:device_code",
})
AUDIT_OUTCOMES = frozenset({"success", "failure", "refused", "error"})
AUDIT_CHECKS = frozenset({"journal", "archive_fixity", "archive_logbook"})
DEPOSIT_OUTCOMES = frozenset({"accepted", "rejected"})
# The product order states of services_mutualises (TMF622).
ORDER_STATES = frozenset({
    "acknowledged", "held", "inProgress", "completed", "failed", "rejected", "cancelled",
})
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "(non routée)"


def _bounded(value: str | None, allowed: frozenset[str], default: str = "other") -> str:
    return value if value in allowed else default


def record_sign_in(outcome: str, acr: str | None = None) -> None:
    """A sign-in attempt ended: ``success``, ``stepup`` (raised level), ``failure`` (wrong
    password or factor) or ``refused`` (throttled)."""
    SIGN_INS.labels(_bounded(outcome, SIGN_IN_OUTCOMES), _bounded(acr or "none", ACR_VALUES)).inc()


def record_token(grant_type: str) -> None:
    """The token endpoint issued a token for ``grant_type``."""
    TOKENS.labels(_bounded(grant_type, GRANT_TYPES)).inc()


def record_audit_event(outcome: str) -> None:
    AUDIT_EVENTS.labels(_bounded(outcome, AUDIT_OUTCOMES)).inc()


def record_audit_failure(check: str) -> None:
    """An integrity check found a problem (``journal``, ``archive_fixity``,
    ``archive_logbook``): alert on any increase."""
    AUDIT_FAILURES.labels(_bounded(check, AUDIT_CHECKS)).inc()


def record_deposit(outcome: str, size_bytes: int = 0) -> None:
    """An archive deposit ended (``accepted`` or ``rejected``); an accepted one adds
    ``size_bytes`` to the bytes stored."""
    outcome = _bounded(outcome, DEPOSIT_OUTCOMES)
    DEPOSITS.labels(outcome).inc()
    if outcome == "accepted" and size_bytes > 0:
        BYTES_STORED.inc(size_bytes)


def record_order(state: str) -> None:
    """A service order entered ``state``."""
    ORDERS.labels(_bounded(state, ORDER_STATES)).inc()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition() -> tuple[bytes, str]:
    """The text format of every metric (summed over the workers in multiprocess mode)."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


access_log = logging.getLogger("martinique_connect.access")


class MetricsMiddleware:
    """Counts and times every request under its route template; with ``access_log``, writes
    one log line per request (method, route, path, status, duration, client, request id).

    Place it just inside :class:`plateforme.web.ProxyHeadersMiddleware`, outside every other
    middleware, so that the answers of the raw middlewares (discovery, JWKS, token) count too.
    ``route_paths`` gives the templates of the application's routes (read once, at the first
    request): a path answered without going through the router (discovery, token) is labelled
    by itself when it is the path of a route without parameters, a static file by its mount
    (``/static/plateforme/{path}``), anything else ``(non routée)`` (bounded cardinality).
    """

    def __init__(self, app: ASGIApp, *, route_paths: Callable[[], Iterable[str]],
                 access_log: bool = False) -> None:
        self.app = app
        self._route_paths = route_paths
        self._known: frozenset[str] | None = None
        self._mounts: tuple[str, ...] = ()
        self._access_log = access_log

    def _template(self, scope: Scope) -> str:
        # FastAPI keeps the matched route, with its router's prefix, in its own scope entry;
        # a plain Starlette route in scope["route"].
        context = (scope.get("fastapi") or {}).get("effective_route_context")
        path = getattr(context, "path_format", None) or getattr(
            scope.get("route"), "path_format", None)
        if path:
            return str(path)
        if self._known is None:
            templates = list(self._route_paths())
            self._known = frozenset(p for p in templates if "{" not in p)
            self._mounts = tuple(p.removesuffix("{path}") for p in templates
                                 if p.endswith("/{path}") and p.count("{") == 1)
        path = scope.get("path", "")
        if path in self._known:
            return str(path)
        for prefix in self._mounts:
            if path.startswith(prefix):
                return prefix + "{path}"
        return UNMATCHED_ROUTE

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            method = _bounded(scope.get("method"), METHODS)
            route = self._template(scope)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_DURATION.labels(method, route).observe(elapsed)
            if self._access_log:
                client = scope.get("client")
                access_log.info("requête", extra={
                    "method": scope.get("method"), "route": route, "path": scope.get("path"),
                    "status": status, "duration_ms": round(elapsed * 1000, 2),
                    "client": client[0] if client else None,
                })
