"""Settings of the archival service, read from ``MC_ARCHIVES_*`` environment variables
(the platform's own settings, such as ``MC_BLOB_URL`` and ``MC_DATA_DIR``, stay in
``plateforme.settings``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ArchivesSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MC_ARCHIVES_", extra="ignore",
                                      populate_by_name=True)

    # ARK Name Assigning Authority Number; 99999 is the test NAAN of the ARK specification.
    naan: str = "99999"
    # Largest accepted deposit (all files of one request), in bytes.
    max_deposit_bytes: int = 4 * 1024**3
    # Quota of a space created on first deposit (None: no limit until the catalogue sets one).
    default_quota_bytes: int | None = None
    # Blob intents and staging folders older than this are a crash's leftovers (seconds).
    orphan_grace_seconds: int = 900
    # Largest text document whose content is indexed for full-text search.
    fulltext_max_bytes: int = 2 * 1024**2
    # Periodic work of the maintenance task (seconds; 0 disables): logbook seals, fixity audit.
    seal_interval_seconds: int = 3600
    audit_interval_seconds: int = 24 * 3600
    # How often each worker looks for package ingest operations to process (seconds).
    operations_poll_seconds: float = 1.0
    # ClamAV's daemon (a unix socket path, or tcp://host:port): when set, every file of a
    # deposit or package is scanned before it is stored (``archivage/clamav.py``).
    clamav_socket: str | None = Field(default=None, validation_alias="MC_CLAMAV_SOCKET")
