"""``create_app(settings)``: the whole platform as one ASGI application (embedded default)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from sqlalchemy import text
from starlette.responses import JSONResponse, Response

import idp
import plateforme
from admin_ui import TEMPLATES_DIR as ADMIN_TEMPLATES
from admin_ui import ConsoleSessionMiddleware, console_client
from admin_ui import router as admin_router
from archivage.api import router as archives_router
from idp.api import router as idp_router
from idp.api.cors import PublicClientCORS
from idp.api.discovery import WellKnownMiddleware
from idp.oauth2.integration import OAuth2EndpointsMiddleware, StarletteServer
from martinique_connect import errors, wiring
from martinique_connect.database import upgrade
from plateforme.db import make_engine
from plateforme.kv import KeyValueStore, make_store
from plateforme.logs import configure_logging
from plateforme.settings import Settings, load_settings
from plateforme.web import Csrf, SecurityHeadersMiddleware

log = logging.getLogger("martinique_connect")


def _templates() -> Jinja2Templates:
    dirs = [Path(plateforme.__file__).parent / "templates", Path(idp.__file__).parent / "templates",
            ADMIN_TEMPLATES]
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(str(d)) for d in dirs]),
        autoescape=select_autoescape(["html"]), auto_reload=False,
        extensions=["jinja2.ext.i18n"],
    )
    # Pages mark their text with {{ _("…") }} / {% trans %}; the catalogues come with Babel.
    env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
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
    app.state.csrf = Csrf(settings.resolved_secret_key())
    app.state.trusted_proxies = frozenset(
        p.strip() for p in settings.trusted_proxies.split(",") if p.strip()
    )
    errors.install(app)
    app.mount(
        "/static/plateforme",
        StaticFiles(directory=str(Path(plateforme.__file__).parent / "static")),
        name="static",
    )
    app.include_router(idp_router)
    app.include_router(admin_router)
    app.include_router(archives_router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> Response:
        checks: dict[str, str] = {}
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            checks["database"] = "unreachable"
        checks["kv"] = "ok" if store.ping() else "unreachable"
        answering = sum(archives.blobs.ping().values())  # deposits need min_copies locations
        checks["blobs"] = "ok" if answering >= archives.blobs.min_copies else "unreachable"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                            status_code=200 if ready else 503)

    # The last added is the outermost: discovery and JWKS first (prepared bytes), CORS, the
    # security headers, then the raw token/introspection/revocation route (it must stay inside
    # the security headers), then the console session and FastAPI.
    app.add_middleware(ConsoleSessionMiddleware, store=store, https=settings.secure_cookies)
    app.add_middleware(OAuth2EndpointsMiddleware, issuer=settings.issuer)
    app.add_middleware(SecurityHeadersMiddleware, https=settings.secure_cookies)
    app.add_middleware(PublicClientCORS)
    app.add_middleware(WellKnownMiddleware, provider=provider)
    return app


def app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory`` workers (initialisation done by ``serve``)."""
    settings = load_settings()
    configure_logging(settings.log_format, logging.WARNING if settings.environment == "production"
                      else logging.INFO)
    return create_app(settings, initialise=False)
