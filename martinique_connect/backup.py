"""Backup and restore of an instance: ``martinique-connect backup --to DIR`` and
``martinique-connect restore --from DIR [--force]``.

What a backup folder holds (``manifest.json`` lists every file with its SHA-256):

* the database: with SQLite, a copy made by SQLite's online backup API (consistent while the
  server runs); with PostgreSQL, a portable dump made through SQLAlchemy inside one
  ``REPEATABLE READ`` transaction (one consistent snapshot): one JSON-lines file per table,
  restored in foreign-key order into a database brought to the same Alembic revision. It
  needs no ``pg_dump`` of the server's exact version and restores into SQLite as well; for
  large databases the operator adds the provider's snapshots or ``pg_dump`` (docs/exploitation.md);
* the key material: the signing keys are in the database, encrypted with the secret key;
  the secret key itself is copied (``secret_key``, mode 0600) when it lives in the data
  directory, or only fingerprinted when it comes from ``MC_SECRET_KEY`` (the operator keeps
  it in the secret store; restore checks the target's key is the same one);
* the audit journal's length and head hash, checked after restore;
* the manifests of the parts registered with :func:`register_part` — the archive's blob store
  registers one (object keys and digests; the blobs themselves stay in their replicated
  stores) and checks, after a restore, its logbook and that the blobs are there with the
  digests recorded.

Restore refuses a target that already holds data unless ``force`` is given, then verifies the
audit journal's chain, that the signing keys decrypt with the target's secret key, and every
part's own checks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import MetaData, Table, func, inspect, select, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from idp.keys import KeyCipher
from martinique_connect.database import upgrade
from plateforme.audit import AuditHead, verify_chain
from plateforme.settings import Settings

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite3"
DUMP_DIR = "tables"
SECRET_FILE = "secret_key"  # noqa: S105 - a file name
ALEMBIC_TABLE = "alembic_version"


class BackupError(Exception):
    """Reported as one line (the CLI's exit code 2)."""


class BackupPart(Protocol):
    """Something besides the database a backup must describe and a restore must check (the
    archive's blob store: object keys and digests, logbook)."""

    name: str

    def manifest(self, engine: Engine, settings: Settings) -> Iterator[dict[str, Any]]:
        """The entries to keep (one JSON object per line in ``parts/<name>.jsonl``)."""
        ...

    def verify(self, engine: Engine, settings: Settings, entries: list[dict[str, Any]]
               ) -> list[str]:
        """After a restore: the problems found (empty when everything checks out)."""
        ...


_parts: list[BackupPart] = []


def register_part(part: BackupPart) -> None:
    """Called by the composition root for each domain that keeps data outside the database."""
    if all(p.name != part.name for p in _parts):
        _parts.append(part)


def registered_parts() -> list[BackupPart]:
    _register_domains()
    return list(_parts)


def _register_domains() -> None:
    """The composition root's parts (the archives) register when their module is imported;
    the CLI's backup and restore run without building the application."""
    import martinique_connect.archive_backup  # noqa: F401 - registers the archives' part


@dataclass
class RestoreReport:
    tables: dict[str, int] = field(default_factory=dict)
    audit_entries: int = 0
    parts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# --- helpers ---------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fingerprint(secret: str) -> str:
    """Identifies a secret key without revealing it."""
    return hashlib.sha256(b"martinique-connect backup\0" + secret.encode()).hexdigest()


def _revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table(ALEMBIC_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {ALEMBIC_TABLE}")).scalar()  # noqa: S608


def _encode(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return {"$t": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, Decimal):
        return {"$d": str(value)}
    return value


def _decoder(column: Any) -> Callable[[Any], Any]:
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        python_type = None

    def decode(value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            (tag, raw), = value.items()
            if tag == "$t":
                parsed = datetime.fromisoformat(raw)
                if python_type is date:
                    return parsed.date()
                if python_type is time:
                    return time.fromisoformat(raw)
                return parsed
            if tag == "$b":
                return base64.b64decode(raw)
            if tag == "$d":
                return Decimal(raw)
        if python_type is uuid.UUID and isinstance(value, str):
            return uuid.UUID(value)
        return value

    return decode


def _tables(conn: Connection) -> list[Table]:
    metadata = MetaData()
    metadata.reflect(bind=conn)
    return [t for t in metadata.sorted_tables if t.name != ALEMBIC_TABLE]


def _rows(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)


def _audit_head(engine: Engine) -> tuple[int, str | None]:
    with Session(engine) as session:
        head = session.get(AuditHead, 1)
        return (head.seq, head.hash) if head else (0, None)


# --- backup ----------------------------------------------------------------------------------


def backup(engine: Engine, settings: Settings, target: Path) -> dict[str, Any]:
    """Write a backup of the instance into ``target`` (created; must be empty)."""
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"le dossier {target} n'est pas vide")
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target, 0o700)  # a backup holds secrets: owner only
    manifest: dict[str, Any] = {
        "format": FORMAT, "created_at": datetime.now(UTC).isoformat(),
        "backend": engine.dialect.name,
    }
    if engine.dialect.name == "sqlite":
        manifest["database"] = _backup_sqlite(engine, target / SQLITE_FILE)
    else:
        manifest["database"] = _backup_portable(engine, target / DUMP_DIR)
    seq, head = _audit_head(engine)
    manifest["audit"] = {"entries": seq, "head_hash": head}
    manifest["secret_key"] = _backup_secret(settings, target)
    manifest["parts"] = {}
    for part in registered_parts():
        folder = target / "parts"
        folder.mkdir(exist_ok=True)
        path = folder / f"{part.name}.jsonl"
        count = 0
        with path.open("w") as out:
            for entry in part.manifest(engine, settings):
                out.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
                count += 1
        manifest["parts"][part.name] = {"file": str(path.relative_to(target)), "entries": count}
    manifest["files"] = {
        str(p.relative_to(target)): _sha256(p)
        for p in sorted(target.rglob("*")) if p.is_file()
    }
    tmp = target / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=2))
    tmp.replace(target / MANIFEST)
    return manifest


def _backup_sqlite(engine: Engine, path: Path) -> dict[str, Any]:
    source_path = engine.url.database
    assert source_path, "SQLite database without a file"
    with closing(sqlite3.connect(source_path)) as source, \
            closing(sqlite3.connect(path)) as copy:
        source.backup(copy)  # SQLite's online backup API: a consistent copy, server running
        revision = copy.execute(f"SELECT version_num FROM {ALEMBIC_TABLE}").fetchone()  # noqa: S608
        names = [r[0] for r in copy.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
        tables = {n: copy.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]  # noqa: S608
                  for n in names if n != ALEMBIC_TABLE}
    return {"kind": "sqlite", "file": SQLITE_FILE,
            "revision": revision[0] if revision else None, "tables": tables}


def _backup_portable(engine: Engine, folder: Path) -> dict[str, Any]:
    folder.mkdir()
    tables: dict[str, int] = {}
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, \
            conn.begin():
        revision = _revision(conn)
        for index, table in enumerate(_tables(conn)):
            count = 0
            with (folder / f"{index:03d}-{table.name}.jsonl").open("w") as out:
                result = conn.execution_options(stream_results=True, yield_per=1000).execute(
                    select(table))
                for row in result.mappings():
                    record = {k: _encode(v) for k, v in row.items()}
                    out.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
                    count += 1
            tables[table.name] = count
    return {"kind": "portable", "folder": DUMP_DIR, "revision": revision, "tables": tables}


def _backup_secret(settings: Settings, target: Path) -> dict[str, Any]:
    if settings.secret_key:
        return {"source": "environment", "fingerprint": _fingerprint(settings.secret_key)}
    path = settings.data_dir / "secret_key"
    if not path.exists():
        raise BackupError(f"clé secrète absente : ni MC_SECRET_KEY ni {path}")
    copy = target / SECRET_FILE
    shutil.copyfile(path, copy)
    copy.chmod(0o600)
    return {"source": "file", "file": SECRET_FILE,
            "fingerprint": _fingerprint(path.read_text().strip())}


# --- restore ---------------------------------------------------------------------------------


def read_manifest(source: Path) -> dict[str, Any]:
    path = source / MANIFEST
    if not path.exists():
        raise BackupError(f"{source} n'est pas une sauvegarde (pas de {MANIFEST})")
    manifest: dict[str, Any] = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"format de sauvegarde inconnu : {manifest.get('format')}")
    for name, digest in manifest["files"].items():
        file = source / name
        if not file.exists() or _sha256(file) != digest:
            raise BackupError(f"sauvegarde altérée ou incomplète : {name}")
    return manifest


def holds_data(engine: Engine, settings: Settings) -> bool:
    """True when the target already has rows in a table, or a secret key file."""
    if not settings.secret_key and (settings.data_dir / "secret_key").exists():
        return True
    with engine.connect() as conn:
        return any(_rows(conn, table) for table in _tables(conn))


def restore(engine: Engine, settings: Settings, source: Path, *, force: bool = False,
            make_engine: Callable[[], Engine] | None = None) -> RestoreReport:
    """Restore the backup in ``source`` into the instance ``engine``/``settings`` points to.

    ``make_engine`` rebuilds the engine after a SQLite file was replaced (the CLI passes it).
    """
    manifest = read_manifest(source)
    secret = manifest["secret_key"]
    if secret["source"] == "environment":
        if not settings.secret_key:
            raise BackupError("la sauvegarde a été faite avec MC_SECRET_KEY : définissez la même "
                              "clé pour restaurer")
        if _fingerprint(settings.secret_key) != secret["fingerprint"]:
            raise BackupError("MC_SECRET_KEY n'est pas la clé de l'instance sauvegardée : les clés "
                              "de signature ne pourraient pas être déchiffrées")
    elif settings.secret_key and _fingerprint(settings.secret_key) != secret["fingerprint"]:
        raise BackupError("MC_SECRET_KEY diffère de la clé secrète sauvegardée : retirez-la pour "
                          "utiliser celle de la sauvegarde, ou donnez la même")
    if holds_data(engine, settings) and not force:
        raise BackupError("l'instance cible contient déjà des données : restauration refusée "
                          "(--force pour les remplacer)")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = manifest["database"]
    if database["kind"] == "sqlite":
        if engine.dialect.name != "sqlite":
            raise BackupError("une sauvegarde SQLite se restaure dans une instance SQLite")
        engine = _restore_sqlite(engine, source / database["file"], make_engine)
    else:
        if engine.dialect.name != manifest["backend"]:
            raise BackupError(f"une sauvegarde {manifest['backend']} se restaure dans une "
                              f"instance {manifest['backend']}")
        _restore_portable(engine, source / database["folder"], database)
    upgrade(engine)  # a backup made by an older version is brought to this version's schema
    if secret["source"] == "file" and not settings.secret_key:
        path = settings.data_dir / "secret_key"
        tmp = path.with_suffix(".tmp")
        shutil.copyfile(source / secret["file"], tmp)
        tmp.chmod(0o600)
        tmp.replace(path)
    return verify(engine, settings, source, manifest)


def _restore_sqlite(engine: Engine, file: Path, make_engine: Callable[[], Engine] | None
                    ) -> Engine:
    path = engine.url.database
    assert path, "SQLite database without a file"
    engine.dispose()
    for suffix in ("-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)
    with closing(sqlite3.connect(file)) as backup_db, closing(sqlite3.connect(path)) as target:
        backup_db.backup(target)
    return make_engine() if make_engine else engine


def _restore_portable(engine: Engine, folder: Path, database: dict[str, Any]) -> None:
    with engine.begin() as conn:
        for table in reversed(_tables(conn)):
            table.drop(conn)
        if inspect(conn).has_table(ALEMBIC_TABLE):
            conn.execute(text(f"DROP TABLE {ALEMBIC_TABLE}"))
    if database["revision"]:
        upgrade(engine, database["revision"])
    files = {path.name.split("-", 1)[1].removesuffix(".jsonl"): path
             for path in folder.glob("*.jsonl")}
    with engine.begin() as conn:
        tables = {t.name: t for t in _tables(conn)}
        missing = set(files) - set(tables)
        if missing:
            raise BackupError(f"tables absentes du schéma cible : {', '.join(sorted(missing))}")
        for table in reversed(_tables(conn)):  # rows the migrations seed (the audit head…)
            conn.execute(table.delete())
        for table in _tables(conn):  # foreign-key order
            path = files.get(table.name)
            if path is None:
                continue
            decoders = {c.name: _decoder(c) for c in table.columns}
            batch: list[dict[str, Any]] = []
            with path.open() as lines:
                rows = ({k: decoders[k](v) for k, v in json.loads(line).items()}
                        for line in lines)
                for row in _parents_first(table, rows):
                    batch.append(row)
                    if len(batch) >= 1000:
                        conn.execute(table.insert(), batch)
                        batch = []
            if batch:
                conn.execute(table.insert(), batch)
        if conn.dialect.name == "postgresql":
            _reset_sequences(conn, list(tables.values()))


def _parents_first(table: Table, rows: Iterable[dict[str, Any]]
                   ) -> Iterable[dict[str, Any]]:
    """A table whose rows reference each other (archive units: series → files → items) is
    restored parents first, so that its foreign key holds at every insert; other tables
    stream as they are."""
    references = [fk.parent.name for fk in table.foreign_keys if fk.column.table is table]
    keys = list(table.primary_key.columns)
    if not references or len(keys) != 1:
        return rows
    key = keys[0].name
    pending: list[dict[str, Any]] = list(rows)
    ordered: list[dict[str, Any]] = []
    placed: set[Any] = set()
    while pending:
        ready: list[dict[str, Any]] = []
        waiting: list[dict[str, Any]] = []
        for row in pending:
            blocked = any(row.get(c) is not None and row[c] not in placed and row[c] != row[key]
                          for c in references)
            (waiting if blocked else ready).append(row)
        if not ready:  # a cycle or a dangling parent: let the database say which
            ordered += waiting
            break
        ordered += ready
        placed.update(row[key] for row in ready)
        pending = waiting
    return ordered


def _reset_sequences(conn: Connection, tables: list[Table]) -> None:
    """Rows came with their ids: move each serial sequence past the largest one."""
    for table in tables:
        for column in table.primary_key.columns:
            sequence = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                    {"t": table.name, "c": column.name}).scalar()
            if sequence:
                conn.execute(text(
                    f'SELECT setval(:s, COALESCE((SELECT MAX("{column.name}") '  # noqa: S608
                    f'FROM "{table.name}"), 0) + 1, false)'), {"s": sequence})


def verify(engine: Engine, settings: Settings, source: Path, manifest: dict[str, Any]
           ) -> RestoreReport:
    """Check a restored instance against its backup's manifest."""
    report = RestoreReport()
    with engine.connect() as conn:
        report.tables = {t.name: _rows(conn, t) for t in _tables(conn)}
    for name, count in manifest["database"]["tables"].items():
        if report.tables.get(name) != count:
            report.problems.append(
                f"table {name} : {report.tables.get(name)} lignes, {count} sauvegardées")
    with Session(engine) as session:
        chain = verify_chain(session)
    report.audit_entries = chain.checked
    if not chain.ok:
        report.problems.append(f"journal d'audit rompu à l'entrée {chain.first_broken} : "
                               f"{chain.reason}")
    seq, head = _audit_head(engine)
    if (seq, head) != (manifest["audit"]["entries"], manifest["audit"]["head_hash"]):
        report.problems.append("le journal d'audit restauré ne finit pas comme celui sauvegardé")
    report.problems.extend(_check_signing_keys(engine, settings))
    for name, info in manifest.get("parts", {}).items():
        part = next((p for p in registered_parts() if p.name == name), None)
        if part is None:
            report.problems.append(f"partie {name} sauvegardée mais inconnue de cette version")
            continue
        with (source / info["file"]).open() as lines:
            entries = [json.loads(line) for line in lines]
        report.problems.extend(part.verify(engine, settings, entries))
        report.parts.append(name)
    return report


def _check_signing_keys(engine: Engine, settings: Settings) -> list[str]:


    cipher = KeyCipher(settings.resolved_secret_key())
    problems = []
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT kid, private_jwk FROM idp_signing_key WHERE status != 'retired'")).all()
    for kid, private in rows:
        try:
            cipher.decrypt(private)
        except Exception:  # noqa: BLE001 - any failure: the key is unusable
            problems.append(f"clé de signature {kid} indéchiffrable avec la clé secrète")
    return problems
