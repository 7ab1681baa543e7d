"""Fixity audits (detect and repair bad copies), logbook seals, and the CLI checks."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from tests.functional.archivage.conftest import blob_paths
from tests.support.cli import CliResult, run_cli, settings_env


@contextmanager
def tampered(platform, seq: int) -> Iterator[None]:
    """Alter one logbook entry for the duration of the block, then put it back."""
    engine = platform.live.app.state.engine
    with engine.begin() as conn:
        original = conn.execute(text("SELECT detail FROM arch_logbook WHERE seq = :s"),
                                {"s": seq}).scalar_one()
        conn.execute(text("UPDATE arch_logbook SET detail = :d WHERE seq = :s"),
                     {"d": '{"falsifié": true}', "s": seq})
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE arch_logbook SET detail = :d WHERE seq = :s"),
                         {"d": original, "s": seq})


def _cli(platform, *args: str) -> CliResult:
    """``martinique-connect archives …`` (in process) on the platform's instance."""
    return run_cli(settings_env(platform.settings, MC_ENVIRONMENT="test"), "archives", *args)


def test_audit_detects_and_repairs_bad_copies(as_org, as_staff, platform) -> None:
    lamentin = as_org("lamentin")
    damaged_data, missing_data = secrets.token_bytes(5000), secrets.token_bytes(7000)
    damaged = lamentin.deposit([("a.bin", damaged_data)]).json()
    missing = lamentin.deposit([("b.bin", missing_data)]).json()
    damaged_copy = blob_paths(platform, damaged["files"][0]["sha512"])[1]
    damaged_copy.write_bytes(b"bit rot" + damaged_data[7:])
    blob_paths(platform, missing["files"][0]["sha512"])[0].unlink()

    authority = as_staff(("ctm", "archival_authority"))
    assert lamentin.post("/audits").status_code == 403  # a client of a commune may not
    response = authority.post("/audits")
    assert response.status_code == 201, response.text
    report = response.json()
    assert report["corrupt"] == 1 and report["missing"] == 1 and report["repaired"] == 2
    assert damaged_copy.read_bytes() == damaged_data
    assert all(p.read_bytes() == missing_data
               for p in blob_paths(platform, missing["files"][0]["sha512"]))
    assert report["id"] in [r["id"] for r in authority.get("/audits").json()["items"]]
    events = [e["event_type"] for e in lamentin.get(
        f"/units/{damaged['units'][0]['id']}/logbook").json()["items"]]
    assert "fixity check" in events and "replication" in events
    clean = authority.post("/audits").json()
    assert clean["corrupt"] == clean["missing"] == clean["repaired"] == 0


def test_seals_and_verification_name_the_first_broken_entry(as_org, as_staff, platform
                                                             ) -> None:
    lamentin = as_org("lamentin")
    authority = as_staff(("ctm", "archival_authority"))
    lamentin.deposit([("a.txt", b"avant scellement")])
    integrity = platform.live.app.state.archives.integrity
    seal = integrity.seal()
    assert seal is not None and seal.signature.count(".") == 2
    lamentin.deposit([("b.txt", b"apres scellement")])
    second = integrity.seal()
    assert second is not None and second.prev_hash == seal.hash
    assert second.first_seq == seal.last_seq + 1
    verified = authority.get("/logbook/verification").json()
    assert verified["ok"] and verified["seals"] >= 2, verified

    victim = seal.last_seq - 1
    with tampered(platform, victim):
        broken = authority.get("/logbook/verification").json()
        assert not broken["ok"]
        assert broken["first_broken_entry"] == victim
        cli = _cli(platform, "verify-logbook")
        assert cli.returncode == 1
        assert f"première entrée rompue : n° {victim}" in cli.stderr
    assert authority.get("/logbook/verification").json()["ok"]
    assert lamentin.get("/logbook/verification").status_code == 403


def test_cli_audit_and_verify(platform, as_org) -> None:
    as_org("lamentin").deposit([("c.txt", b"pour la ligne de commande")])
    ok = _cli(platform, "verify-logbook")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("journal intègre")
    audit = _cli(platform, "audit")
    assert audit.returncode == 0, audit.stderr
    assert "0 manquantes, 0 altérées" in audit.stdout
    unit = as_org("lamentin").deposit([("e.txt", b"a exporter")]).json()["units"][0]["id"]
    target = platform.settings.data_dir / f"cli-export-{unit}.zip"
    exported = _cli(platform, "export", unit, "--org", "lamentin", "--output", str(target))
    assert exported.returncode == 0, exported.stderr
    import zipfile

    with zipfile.ZipFile(target) as archive:
        assert any(n.endswith("data/" + unit + "/e.txt") for n in archive.namelist())
    refused = _cli(platform, "export", unit, "--org", "schoelcher", "--output",
                   str(target) + ".2")
    assert refused.returncode == 2 and "introuvable" in refused.stderr
    commands = _cli(platform, "--help").stdout.lower()
    assert not any(word in commands for word in ("delete", "supprim", "remove", "elimin",
                                                 "détrui"))


def test_scheduled_seal_and_audit(as_org, platform) -> None:
    import time

    archives = platform.live.app.state.archives
    store = platform.live.app.state.store
    as_org("lamentin").deposit([("d.txt", b"planifie")])
    previous = archives.config.audit_interval_seconds
    archives.config.audit_interval_seconds = 1
    try:
        time.sleep(1.1)
        assert store.set("archives:periodic", "busy", ttl=60, nx=True)
        assert archives.periodic(lock=store) == {}  # another worker holds the lock
        store.delete("archives:periodic")
        done = archives.periodic(lock=store)
    finally:
        archives.config.audit_interval_seconds = previous
    assert done["seal"] is not None
    [latest] = archives.integrity.reports(1)
    assert latest.id == done["audit"] and latest.trigger == "scheduled"
    assert archives.integrity.verify().ok


def test_seals_survive_key_rotation_but_not_forgery(as_org, platform) -> None:
    """A seal signed by a key retired since is reported (warning), not broken: keys rotate.
    A seal whose signature does not match under a published key breaks the verification."""
    archives = platform.live.app.state.archives
    keys = platform.provider.keys
    as_org("lamentin").deposit([("f.txt", b"avant rotation")])
    old = archives.integrity.seal()
    assert old is not None
    alg = platform.settings.signing_alg
    before = keys.signing_key(alg).kid
    keys.rotate(alg, actor="test", reason="rotation")
    keys.retire(before, actor="test", reason="retrait")
    keys.invalidate()
    report = archives.integrity.verify()
    assert report.ok, report
    assert any(f"scellement {old.seq} signé par une clé retirée" in w for w in report.warnings)

    as_org("lamentin").deposit([("g.txt", b"apres rotation")])
    fresh = archives.integrity.seal()
    assert fresh is not None
    header, payload, signature = fresh.signature.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    engine = platform.live.app.state.engine
    with engine.begin() as conn:
        conn.execute(text("UPDATE arch_logbook_seal SET signature = :s WHERE seq = :q"),
                     {"s": forged, "q": fresh.seq})
    try:
        broken = archives.integrity.verify()
        assert not broken.ok and broken.first_broken_seal == fresh.seq
        assert broken.reason == "signature invalide"
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE arch_logbook_seal SET signature = :s WHERE seq = :q"),
                         {"s": fresh.signature, "q": fresh.seq})
    assert archives.integrity.verify().ok


def test_concurrent_batched_deposits_keep_one_unbroken_chain(as_org, as_staff, platform
                                                             ) -> None:
    """Each deposit appends its events in one go (``logbook.append_many``): deposits of
    several files sent at once still give one gap-free chain, each deposit's events
    consecutive, the ingestion first."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlmodel import Session, col, select

    from archivage.models import LogbookEvent

    lamentin = as_org("lamentin")
    authority = as_staff(("ctm", "archival_authority"))

    def deposit(n: int) -> dict:
        response = lamentin.deposit([(f"lot{n}-{i}.txt", f"lot {n} pièce {i}".encode())
                                     for i in range(4)])
        assert response.status_code == 201, response.text
        return response.json()

    with ThreadPoolExecutor(4) as pool:
        acks = list(pool.map(deposit, range(6)))
    assert authority.get("/logbook/verification").json()["ok"]
    engine = platform.live.app.state.archives.deposits._engine
    with Session(engine) as session:
        for ack in acks:
            events = session.exec(select(LogbookEvent).where(
                LogbookEvent.operation_id == ack["operation_id"])
                .order_by(col(LogbookEvent.seq))).all()
            # ingestion, 5 accessions (the file and its 4 items), 4 digests
            assert [e.event_type for e in events][:1] == ["ingestion"]
            assert len(events) == 1 + 5 + 4
            seqs = [e.seq for e in events]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
            for before, after in zip(events, events[1:], strict=False):
                assert after.prev_hash == before.hash
