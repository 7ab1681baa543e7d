"""``create_app(settings)``: the whole platform as one ASGI application (embedded default)."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import httpx
from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.engine import Engine
from starlette.responses import JSONResponse, Response

import idp
import idp.i18n
import plateforme
from admin_ui import TEMPLATES_DIR as ADMIN_TEMPLATES
from admin_ui import ConsoleSessionMiddleware, console_client
from admin_ui import router as admin_router
from archivage.api import router as archives_router
from idp.api import router as idp_router
from idp.api.cors import PublicClientCORS
from idp.api.discovery import WellKnownMiddleware
from idp.api.franceconnect import franceconnect_upstream
from idp.oauth2.integration import OAuth2EndpointsMiddleware, StarletteServer
from martinique_connect import errors, wiring
from martinique_connect.wiring import install_services
from plateforme import metrics
from plateforme.audit import AuditRecord
from plateforme.audit import add_listener as add_audit_listener
from plateforme.db import make_engine
from plateforme.health import Readiness
from plateforme.kv import KeyValueStore, make_store
from plateforme.logs import configure_logging
from plateforme.metrics import MetricsMiddleware
from plateforme.settings import Settings, load_settings
from plateforme.web import (
    Csrf,
    ProxyHeadersMiddleware,
    SecurityHeadersMiddleware,
    TrustedProxies,
    UnavailableMiddleware,
    client_address,
)

log = logging.getLogger("martinique_connect")


def _templates() -> Jinja2Templates:
    dirs = [Path(plateforme.__file__).parent / "templates", Path(idp.__file__).parent / "templates",
            ADMIN_TEMPLATES]
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(str(d)) for d in dirs]),
        autoescape=select_autoescape(["html"]), auto_reload=False,
        extensions=["jinja2.ext.i18n"],
    )
    # Pages mark their text with {{ _("…") }}; each page is in its context's ``lang``.
    idp.i18n.install(env)
    return Jinja2Templates(env=env)


def create_app(
    settings: Settings | None = None, *, store: KeyValueStore | None = None,
    http: httpx.Client | None = None, initialise: bool = True,
) -> FastAPI:
    """Build the application. ``initialise`` applies migrations and creates missing signing
    keys (done once by ``serve`` before it starts several workers)."""
    settings = settings or load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url)
    if initialise:
        from martinique_connect.database import upgrade  # Alembic: not in serve's workers

        upgrade(engine)
    store = store or make_store(settings.redis_url, prefix=settings.redis_prefix)
    provider = idp.Provider(settings=settings, engine=engine, store=store, http=http)
    if initialise:
        provider.keys.ensure_keys()
        if not provider.organisations.list():
            provider.organisations.seed()
        provider.clients.ensure(*console_client(settings), actor="initialisation")
    archives = wiring.build_archives(settings, engine, provider)
    archives.start()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        maintenance = asyncio.create_task(wiring.archives_maintenance(archives, store))
        yield
        readiness.close()
        maintenance.cancel()
        provider.close()
        engine.dispose()

    app = FastAPI(
        title="Martinique Connect", version="0.1.0", lifespan=lifespan,
        docs_url="/docs", openapi_url="/openapi.json", redoc_url=None,
        description="Fournisseur d'identité OpenID Connect et services mutualisés de la CTM.",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.store = store
    app.state.provider = provider
    app.state.archives = archives
    app.state.resource_servers = {"archives": wiring.archives_token_validator(provider)}
    app.state.oauth2_server = StarletteServer(provider)
    app.state.templates = _templates()
    app.state.franceconnect = franceconnect_upstream(settings)
    app.state.templates.env.globals["franceconnect_enabled"] = app.state.franceconnect is not None
    app.state.csrf = Csrf(settings.resolved_secret_key())
    app.state.trusted_proxies = TrustedProxies(settings.trusted_proxies)
    # /readyz: each dependency registers its check (a domain adds its own, e.g. the archive's
    # blob store: ``app.state.readiness.add("blobs", blob_store.ping)``).
    app.state.readiness = readiness = Readiness(timeout=2.0)
    readiness.add("database", lambda: _database_answers(engine))
    readiness.add("kv", store.ping)
    # deposits need min_copies answering locations
    readiness.add("blobs", lambda: sum(archives.blobs.ping().values()) >= archives.blobs.min_copies)
    add_audit_listener(count_audit_events)
    errors.install(app)
    app.mount(
        "/static/plateforme",
        StaticFiles(directory=str(Path(plateforme.__file__).parent / "static")),
        name="static",
    )
    app.include_router(idp_router)
    app.include_router(admin_router)
    app.include_router(archives_router)
    install_services(app, provider, settings, engine, store, seed=initialise,
                     archive_spaces=archives.spaces)

    @app.get("/healthz", tags=["exploitation"], response_model=Alive,
             summary="Vivacité : le processus répond (sonde liveness).")
    def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["exploitation"], response_model=Ready,
             responses={503: {"model": Ready, "description": "Une dépendance ne répond pas."}},
             summary="Disponibilité : base de données, stockage clé-valeur et autres "
                     "dépendances enregistrées (sonde readiness).")
    def readyz() -> Response:
        report = app.state.readiness.run()
        body: dict[str, object] = {"status": "ready" if report.ready else "not ready",
                                   "checks": report.checks}
        if not report.ready:
            body["failing"] = report.failing
        return JSONResponse(body, status_code=200 if report.ready else 503,
                            headers={"Cache-Control": "no-store"})

    @app.get("/metrics", include_in_schema=False)
    def metrics_endpoint(request: Request) -> Response:
        if not _metrics_allowed(request, settings.metrics_token):
            return errors.problem(
                403, "Accès refusé", "Les métriques demandent le jeton MC_METRICS_TOKEN "
                "(Authorization: Bearer) ou un appel depuis la machine elle-même.")
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

    # The last added is the outermost: the proxy headers and request id first (every layer
    # below sees the real client, scheme and host), the metrics (they time everything, the
    # prepared answers included), discovery and JWKS (prepared bytes), CORS, the security
    # headers, 503 for an unreachable dependency, then the raw token/introspection/revocation
    # route (it must stay inside the security headers), the console session and FastAPI.
    app.add_middleware(ConsoleSessionMiddleware, store=store, https=settings.secure_cookies)
    app.add_middleware(OAuth2EndpointsMiddleware, issuer=settings.issuer)
    app.add_middleware(UnavailableMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, https=settings.secure_cookies)
    app.add_middleware(PublicClientCORS)
    app.add_middleware(WellKnownMiddleware, provider=provider)
    app.add_middleware(MetricsMiddleware, access_log=settings.access_log,
                       route_paths=lambda: route_templates(app.routes))
    app.add_middleware(ProxyHeadersMiddleware, trusted=app.state.trusted_proxies)
    return app


class Alive(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, Literal["ok", "unreachable", "timeout"]] = Field(
        description="État de chaque dépendance, par nom (database, kv, blobs…).")
    failing: list[str] | None = Field(default=None,
                                      description="Les dépendances en échec (si 503).")


def route_templates(routes: Iterable[Any]) -> Iterator[str]:
    """Every route's path template, prefixes included (FastAPI keeps included routers as
    branches whose ``effective_candidates`` carry the full templates)."""
    for route in routes:
        candidates = getattr(route, "effective_candidates", None)
        if candidates is not None:
            yield from route_templates(candidates())
            continue
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        if template:
            yield str(template)


def _database_answers(engine: Engine) -> bool:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return True


def _metrics_allowed(request: Request, token: str | None) -> bool:
    """With ``MC_METRICS_TOKEN``, only a matching bearer token; without, only a caller on
    this machine (after the trusted proxies are unwrapped: a request relayed by a local
    reverse proxy comes from its real client, and is refused)."""
    if token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())
    address = client_address(request)
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


# Sign-in outcomes, read from the journal entries the provider writes (one place, after commit).
_SIGN_IN_ACTIONS = {
    "login.success": "success", "login.stepup": "stepup", "login.failure": "failure",
    "login.factor.failure": "failure", "login.throttled": "refused",
}


def count_audit_events(records: list[AuditRecord]) -> None:
    """Audit listener: every committed journal entry counts by outcome, sign-ins by outcome
    and ``acr`` (``login.lockout`` follows a counted failure: not counted twice)."""
    for record in records:
        metrics.record_audit_event(record.outcome)
        outcome = _SIGN_IN_ACTIONS.get(record.action)
        if outcome is not None:
            acr = (record.details or {}).get("acr") if outcome in ("success", "stepup") else None
            metrics.record_sign_in(outcome, acr if isinstance(acr, str) else None)


def app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory`` workers (initialisation done by ``serve``)."""
    settings = load_settings()
    configure_logging(settings.log_format, logging.INFO if settings.access_log else (
        logging.WARNING if settings.environment == "production" else logging.INFO))
    return build_routes(create_app(settings, initialise=False))


def build_routes(app: FastAPI) -> FastAPI:
    """Have FastAPI build every included route now, before the worker serves: it builds an
    included router's routes (dependencies, parameters, response fields) when a request
    first reaches them, about 0.4 s of CPU per process on this application, which the first
    requests of each worker paid (and a measurement counted)."""
    scope = {"type": "http", "method": "GET", "path": "/\x00", "root_path": "", "headers": []}
    for route in app.router.routes:
        route.matches(dict(scope))  # matches nothing, but visits every included router
    return app
