"""Backup and restore, proven: a backup of the running platform restored into a fresh data
directory (and, on PostgreSQL, a fresh database) keeps a valid audit journal and the keys
that verify the tokens signed before."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from martinique_connect.app import create_app
from plateforme.audit import AuditRecord
from tests.conftest import PG_ADMIN_URL, Backend, Platform, make_settings
from tests.functional.platform.conftest import cli_env, run_cli
from tests.support.browser import Browser
from tests.support.live import free_port, serve


@pytest.fixture
def fresh_backend(backend: Backend) -> Iterator[Backend]:
    """An empty target: a new database on PostgreSQL (and its own Redis prefix)."""
    if backend.database_url is None:
        yield Backend("embedded")
        return
    import psycopg

    name = f"mc_restore_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield Backend("postgres", database_url=f"{base}/{name}", redis_url=backend.redis_url,
                  redis_prefix=backend.redis_prefix + "restore:")
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_backup_restore_keeps_journal_and_keys(backend: Backend, platform: Platform,
                                               fresh_backend: Backend, tmp_path: Path) -> None:
    client = platform.create_client(grant_types=["client_credentials"], scopes=["archives:read"])
    issued = httpx.post(platform.url + "/token", data={
        "grant_type": "client_credentials", "scope": "archives:read"},
        auth=(client["client_id"], client["client_secret"]))
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    user = platform.create_user()
    browser = Browser()
    page = browser.get(platform.url + "/connexion")
    browser.login(page, user["email"], user["password"])
    browser.close()

    secret = platform.settings.secret_key
    assert secret
    source = cli_env(backend, platform.settings.data_dir, MC_SECRET_KEY=secret,
                     MC_ISSUER=platform.settings.issuer)
    folder = tmp_path / "sauvegarde"
    done = run_cli(source, "backup", "--to", str(folder))
    assert done.returncode == 0, done.stderr
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["secret_key"]["source"] == "environment"
    assert secret not in (folder / "manifest.json").read_text()
    assert manifest["audit"]["entries"] >= 3
    assert manifest["database"]["tables"]["idp_signing_key"] >= 2
    assert (folder.stat().st_mode & 0o077) == 0
    refused = run_cli(source, "backup", "--to", str(folder))
    assert refused.returncode == 2 and "n'est pas vide" in refused.stderr

    target_dir = tmp_path / "cible"
    target = cli_env(fresh_backend, target_dir, MC_SECRET_KEY=secret,
                     MC_ISSUER=platform.settings.issuer,
                     MC_BLOB_URL=blob_url(platform.settings.data_dir))
    wrong_key = run_cli({**target, "MC_SECRET_KEY": "une-autre-cle"}, "restore", "--from",
                        str(folder))
    assert wrong_key.returncode == 2 and "MC_SECRET_KEY" in wrong_key.stderr
    restored = run_cli(target, "restore", "--from", str(folder))
    assert restored.returncode == 0, restored.stderr
    assert f"journal d'audit vérifié sur {manifest['audit']['entries']} entrées" in \
        restored.stdout
    again = run_cli(target, "restore", "--from", str(folder))
    assert again.returncode == 2 and "--force" in again.stderr
    forced = run_cli(target, "restore", "--from", str(folder), "--force")
    assert forced.returncode == 0, forced.stderr
    verified = run_cli(target, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert f"{manifest['audit']['entries']} entrées vérifiées" in verified.stdout

    # The restored instance serves the keys that verify the token signed before the backup,
    # and knows the client that token was issued to.
    port = free_port()
    settings = make_settings(fresh_backend, target_dir, port, secret_key=secret,
                             issuer=platform.settings.issuer)
    with serve(create_app(settings), port) as live:
        keys = KeySet.import_key_set(httpx.get(live.url + "/jwks.json").json())
        claims = jwt.decode(token, keys).claims
        assert claims["client_id"] == client["client_id"]
        introspected = httpx.post(live.url + "/introspect", data={"token": token},
                                  auth=(client["client_id"], client["client_secret"]))
        assert introspected.json()["active"] is True
        # New entries chain onto the restored journal.
        journal = live.app.state.provider.journal
        journal.record(AuditRecord(action="test.after_restore", actor="test"))
        report = journal.verify()
        assert report.ok and report.checked == manifest["audit"]["entries"] + 1


def test_a_tampered_backup_is_refused(backend: Backend, fresh_backend: Backend,
                                      tmp_path: Path) -> None:
    """The secret key kept in the data directory travels with the backup; a modified file
    is detected before anything is written."""
    source = cli_env(fresh_backend, tmp_path / "source", MC_ISSUER="http://127.0.0.1:8000")
    assert run_cli(source, "db", "upgrade").returncode == 0
    folder = tmp_path / "sauvegarde"
    done = run_cli(source, "backup", "--to", str(folder))
    assert done.returncode == 0, done.stderr
    assert "clé secrète" in done.stdout
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["secret_key"]["source"] == "file"
    assert (folder / "secret_key").read_text() == (tmp_path / "source" / "secret_key").read_text()

    name = next(n for n in manifest["files"] if n != "secret_key")
    original = (folder / name).read_bytes()
    (folder / name).write_bytes(original + b" ")
    # A new data directory; on PostgreSQL the same (non-empty) database.
    target = cli_env(fresh_backend, tmp_path / "cible", MC_ISSUER="http://127.0.0.1:8000")
    tampered = run_cli(target, "restore", "--from", str(folder), "--force")
    assert tampered.returncode == 2 and "altérée" in tampered.stderr
    assert not (tmp_path / "cible" / "secret_key").exists()
    (folder / name).write_bytes(original)
    restored = run_cli(target, "restore", "--from", str(folder), "--force")
    assert restored.returncode == 0, restored.stderr
    assert (tmp_path / "cible" / "secret_key").read_text() == \
        (tmp_path / "source" / "secret_key").read_text()
    # The signing keys decrypt with the key that came with the backup.
    assert "clés de signature déchiffrables" in restored.stdout


def blob_url(data_dir: Path) -> str:
    """``MC_BLOB_URL`` naming the default locations of the instance in ``data_dir``."""
    return ",".join(f"{(data_dir / 'blobs' / n).resolve().as_uri()}#{n}" for n in ("a", "b"))


def test_backup_lists_the_archive_blobs_and_restore_checks_them(
        backend: Backend, platform: Platform, fresh_backend: Backend, tmp_path: Path) -> None:
    """The blobs stay in their replicated stores: the backup lists them, the restored
    instance (configured with the same locations) checks the archive logbook and its seals,
    and every blob's copies; a corrupt or missing copy is reported."""
    from tests.functional.archivage.conftest import blob_paths, client_token

    token = client_token(platform, "lamentin", ["archives:read", "archives:write"])
    data = [secrets.token_bytes(3000), secrets.token_bytes(5000)]
    sha512 = []
    for index, content in enumerate(data):
        done = httpx.post(
            platform.url + "/api/archives/deposits", headers={"Authorization": f"Bearer {token}"},
            files=[("metadata", (None, json.dumps({"title": f"Sauvegarde {index}"}),
                                 "application/json")),
                   ("file", (f"f{index}.bin", content, "application/octet-stream"))],
            timeout=60)
        assert done.status_code == 201, done.text
        sha512.append(done.json()["files"][0]["sha512"])
    assert platform.live.app.state.archives.integrity.seal() is not None

    secret = platform.settings.secret_key
    assert secret
    source = cli_env(backend, platform.settings.data_dir, MC_SECRET_KEY=secret,
                     MC_ISSUER=platform.settings.issuer)
    folder = tmp_path / "sauvegarde"
    done = run_cli(source, "backup", "--to", str(folder))
    assert done.returncode == 0, done.stderr
    manifest = json.loads((folder / "manifest.json").read_text())
    part = manifest["parts"]["archives"]
    entries = [json.loads(line) for line in (folder / part["file"]).read_text().splitlines()]
    assert part["entries"] == len(entries)
    [logbook] = [e for e in entries if e["kind"] == "logbook"]
    assert logbook["entries"] > 0 and logbook["seals"] >= 1 and logbook["head_hash"]
    blobs = {e["key"]: e for e in entries if e["kind"] == "blob"}
    for digest, content in zip(sha512, data, strict=True):
        assert blobs[digest]["sha512"] == digest
        assert blobs[digest]["size"] == len(content)
        assert blobs[digest]["locations"] == ["a", "b"]

    target = cli_env(fresh_backend, tmp_path / "cible", MC_SECRET_KEY=secret,
                     MC_ISSUER=platform.settings.issuer,
                     MC_BLOB_URL=blob_url(platform.settings.data_dir))
    restored = run_cli(target, "restore", "--from", str(folder))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "parties archives" in restored.stdout

    corrupt, missing = blob_paths(platform, sha512[0])[1], blob_paths(platform, sha512[1])[0]
    kept = corrupt.read_bytes(), missing.read_bytes()
    corrupt.write_bytes(b"alteration" + data[0][10:])
    missing.unlink()
    try:
        damaged = run_cli(target, "restore", "--from", str(folder), "--force")
    finally:
        corrupt.write_bytes(kept[0])
        missing.write_bytes(kept[1])
    assert damaged.returncode == 1, damaged.stdout + damaged.stderr
    assert f"blob {sha512[0][:16]}… à l'emplacement b : empreinte différente" in damaged.stderr
    assert f"blob {sha512[1][:16]}… à l'emplacement a : absent" in damaged.stderr

    # restored without the blob locations (a fresh data dir's own empty folders): reported
    elsewhere = run_cli({**target, "MC_BLOB_URL": ""}, "restore", "--from", str(folder),
                        "--force")
    assert elsewhere.returncode == 1
    assert f"blob {sha512[0][:16]}… à l'emplacement a : absent" in elsewhere.stderr
