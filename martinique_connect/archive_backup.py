"""The archives in a backup (``martinique_connect.backup.BackupPart``), plugged by the
composition root: the blob manifest and, after a restore, the checks of the archive logbook
and of every blob in the configured stores. Kept apart from ``wiring`` so that the CLI's
backup and restore do not import the web application."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from archivage import Archives
from martinique_connect.backup import register_part
from martinique_connect.seals import JwksVerifier
from plateforme.blobs import make_blob_stores
from plateforme.settings import Settings


class StoredKeysVerifier(JwksVerifier):
    """``archivage.interfaces.Signer`` for checking seals without a running provider (after a
    restore): verifies against the public keys of the signing keys stored in the database
    that are still published (every status but ``retired``). It never signs."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _keys(self) -> dict[str, Any]:
        import json

        from sqlalchemy import text

        with self._engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT public_jwk FROM idp_signing_key WHERE status != 'retired'")).all()
        return {"keys": [json.loads(row[0]) for row in rows]}

    def sign(self, payload: bytes) -> str:
        raise RuntimeError("StoredKeysVerifier only verifies")


class ArchiveBackupPart:
    """The archives in a backup (``martinique_connect.backup.BackupPart``): the blobs stay in
    their replicated stores, the backup lists them — each object's key, SHA-512, size and the
    locations holding it — with the logbook's length, head hash and seal count.

    After a restore, :meth:`verify` checks the logbook chain and its seals (signatures
    against the restored signing keys), that the logbook still ends as when it was backed
    up, and that every blob listed is in each of its locations with the recorded digest in
    the blob stores the restored instance is configured with."""

    name = "archives"

    def manifest(self, engine: Engine, settings: Settings) -> Iterator[dict[str, Any]]:
        import json

        from sqlmodel import col, func, select

        from archivage.models import DataObject, LogbookEvent, LogbookSeal

        with Session(engine) as session:
            last = session.exec(select(LogbookEvent).order_by(
                col(LogbookEvent.seq).desc()).limit(1)).first()
            seals = session.exec(select(func.count()).select_from(LogbookSeal)).one()
            yield {"kind": "logbook", "entries": last.seq if last else 0,
                   "head_hash": last.hash if last else None, "seals": int(seals)}
            seen: set[str] = set()
            rows = session.exec(select(DataObject).where(col(DataObject.destroyed_at).is_(None))
                                .order_by(col(DataObject.blob_key)))
            for obj in rows:
                if obj.blob_key in seen:
                    continue
                seen.add(obj.blob_key)
                yield {"kind": "blob", "key": obj.blob_key, "sha512": obj.sha512,
                       "size": obj.size, "locations": json.loads(obj.locations)}

    def verify(self, engine: Engine, settings: Settings, entries: list[dict[str, Any]]
               ) -> list[str]:
        from sqlmodel import col, select

        from archivage.models import LogbookEvent

        blobs = make_blob_stores(settings)
        archives = Archives(engine=engine, blobs=blobs, data_dir=settings.data_dir,
                            signer=StoredKeysVerifier(engine))
        problems: list[str] = []
        report = archives.integrity.verify()
        if not report.ok:
            problems.append(
                f"journal des archives rompu (entrée {report.first_broken_entry}, scellement "
                f"{report.first_broken_seal}) : {report.reason}")
        for entry in entries:
            if entry.get("kind") == "logbook":
                with Session(engine) as session:
                    last = session.exec(select(LogbookEvent).where(
                        col(LogbookEvent.seq) == entry["entries"])).first()
                    count = session.exec(select(LogbookEvent.seq).order_by(
                        col(LogbookEvent.seq).desc()).limit(1)).first() or 0
                if count != entry["entries"] or (
                        entry["entries"] and (last is None or last.hash != entry["head_hash"])):
                    problems.append("le journal des archives restauré ne finit pas comme celui "
                                    f"sauvegardé ({count} entrées, {entry['entries']} "
                                    "sauvegardées)")
                if report.seals < entry["seals"]:
                    problems.append(f"scellements du journal des archives : {report.seals} "
                                    f"restaurés, {entry['seals']} sauvegardés")
        configured = set(blobs.locations)
        for entry in entries:
            if entry.get("kind") != "blob":
                continue
            states = {s.location: s.state
                      for s in blobs.check(entry["key"], "sha512", entry["sha512"])}
            for location in entry["locations"]:
                state = states.get(location) if location in configured else "non configuré"
                if state != "ok":
                    problems.append(f"blob {entry['key'][:16]}… à l'emplacement {location} : "
                                    f"{STATE_LABELS.get(state or '', state)}")
        return problems


STATE_LABELS = {"missing": "absent", "corrupt": "empreinte différente (altéré)",
                "unavailable": "emplacement injoignable"}


register_part(ArchiveBackupPart())
