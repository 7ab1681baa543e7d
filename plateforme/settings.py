"""Settings of the whole platform, read from ``MC_*`` environment variables.

There is no module-level ``settings`` object: the composition root calls
:func:`load_settings` once and hands the result to whoever needs it.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every ``MC_*`` setting. Defaults give the embedded mode: SQLite, in-process stores."""

    model_config = SettingsConfigDict(env_prefix="MC_", extra="ignore")

    issuer: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("var")
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "mc:"
    blob_url: str | None = None
    # Blob storage (plateforme.blobs): copies required per file, S3 endpoint and credentials
    # for s3:// locations, SEDA 2.2 schema folder for validating transfers (unset: no XSD
    # validation, the required elements and digests are still checked).
    blob_min_copies: int = 2
    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str | None = None
    s3_retention_mode: Literal["COMPLIANCE", "GOVERNANCE"] = "COMPLIANCE"
    seda_schema_dir: Path | None = None
    smtp_url: str | None = None
    mail_from: str = "Martinique Connect <ne-pas-repondre@martinique-connect.localhost>"
    secret_key: str | None = None
    log_format: Literal["text", "json"] = "text"
    environment: Literal["development", "production", "test"] = "development"
    demo: bool = False
    # Proxies whose X-Forwarded-* and X-Request-ID headers are trusted (comma-separated
    # addresses or networks, e.g. "10.0.0.0/8,127.0.0.1").
    trusted_proxies: str = ""
    # /metrics: with a token, only "Authorization: Bearer <token>"; without, only loopback.
    metrics_token: str | None = None
    # One log line per request (method, route, status, duration, client, request id).
    access_log: bool = False

    # Lifetimes, in seconds.
    code_lifetime: int = 60
    access_token_lifetime: int = 600
    id_token_lifetime: int = 600
    refresh_token_lifetime: int = 30 * 24 * 3600
    session_lifetime: int = 12 * 3600
    session_idle_timeout: int = 2 * 3600
    interaction_lifetime: int = 900

    # Login throttling: failures allowed before delays start, per account and per address.
    login_free_attempts: int = 5
    login_max_delay: int = 900
    address_free_attempts: int = 30

    signing_alg: Literal["ES256", "RS256"] = "ES256"
    backchannel_logout_timeout: float = 5.0
    backchannel_logout_retries: int = 3

    # Sign-in with FranceConnect (identity brokering, docs/franceconnect.md): off when the
    # issuer is unset.
    franceconnect_issuer: str | None = None
    franceconnect_client_id: str | None = None
    franceconnect_client_secret: str | None = None
    franceconnect_scopes: str = (
        "openid given_name family_name birthdate gender birthplace birthcountry email"
    )
    franceconnect_acr_values: str = "eidas1"

    @field_validator("issuer")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        if self.environment == "production":
            if not self.issuer.startswith("https://"):
                raise ValueError("MC_ISSUER must be an https:// URL in production")
            if not self.secret_key:
                raise ValueError("MC_SECRET_KEY must be set in production")
        return self

    @property
    def secure_cookies(self) -> bool:
        return self.issuer.startswith("https://")

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{(self.data_dir / 'martinique-connect.db').resolve()}"

    def resolved_secret_key(self) -> str:
        """The secret key, generated once and kept in the data directory when unset."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(value)
        tmp.chmod(0o600)
        tmp.replace(path)
        return value


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment, with explicit overrides (tests, CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]
