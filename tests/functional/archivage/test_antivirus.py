"""Virus scanning with the real ClamAV daemon: ``clamd`` started here on a unix socket and a
TCP port, with a signature database of our own holding the EICAR test signature (signature
downloads are not possible here). Skipped when clamd isn't installed, except under CI=true
where it fails (``make browser`` installs clamav-daemon)."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from archivage.clamav import ClamdClient
from archivage.config import ArchivesSettings
from archivage.packages import write_bagit, zip_bag
from archivage.services.antivirus import Antivirus
from archivage.services.deposits import DepositService
from plateforme.audit import AuditQuery
from tests.functional.archivage.conftest import blob_paths
from tests.functional.archivage.test_packages_ingest import _poll, _submit

# The EICAR test file, assembled here so that this source file isn't itself "infected".
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS" + b"-TEST-FILE!$H+H*")
SIGNATURE = "Eicar-Test-Signature"


@pytest.fixture(scope="module")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    binary = shutil.which("clamd") or ("/usr/sbin/clamd" if Path("/usr/sbin/clamd").exists()
                                       else None)
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true and clamd is not installed (apt-get install clamav-daemon)")
        pytest.skip("clamd is not installed (apt-get install clamav-daemon)")
    work = tmp_path_factory.mktemp("clamd")
    database = work / "db"
    database.mkdir()
    # a body signature (.ndb: name, any target, any offset, hex): found anywhere in a file
    (database / "eicar.ndb").write_text(f"{SIGNATURE}:0:*:{EICAR.hex()}\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sock = work / "clamd.sock"
    config = work / "clamd.conf"
    config.write_text(f"Foreground yes\nLocalSocket {sock}\nTCPSocket {port}\n"
                      f"TCPAddr 127.0.0.1\nDatabaseDirectory {database}\n"
                      f"LogFile {work / 'clamd.log'}\nStreamMaxLength 64M\n")
    process = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        client = ClamdClient(str(sock))
        deadline = time.time() + 60
        while not client.ping():
            if process.poll() is not None or time.time() > deadline:
                log = (work / "clamd.log").read_text() if (work / "clamd.log").exists() else ""
                pytest.fail(f"clamd did not start: {log[-2000:]}")
            time.sleep(0.2)
        yield {"unix": str(sock), "tcp": f"tcp://127.0.0.1:{port}"}
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def scanning(platform, clamd) -> Iterator[Antivirus]:
    """The running platform's deposits go through the test daemon for this test."""
    deposits = platform.live.app.state.archives.deposits
    before = deposits.antivirus
    deposits.antivirus = Antivirus(platform.live.app.state.archives.engine,
                                   ClamdClient(clamd["unix"]))
    yield deposits.antivirus
    deposits.antivirus = before


def test_the_client_speaks_instream_over_unix_and_tcp(clamd, tmp_path) -> None:
    clean = tmp_path / "clean.txt"
    clean.write_bytes(b"rien a signaler\n" * 100000)  # several chunks
    infected = tmp_path / "infected.txt"
    infected.write_bytes(b"debut " + EICAR + b" fin")
    for address in (clamd["unix"], clamd["tcp"], "unix://" + clamd["unix"]):
        client = ClamdClient(address)
        assert client.ping()
        assert client.scan(clean) is None
        found = client.scan(infected)
        assert found is not None and found.startswith(SIGNATURE), found


def test_settings_plug_the_antivirus(platform, clamd) -> None:
    archives = platform.live.app.state.archives
    os.environ["MC_CLAMAV_SOCKET"] = clamd["tcp"]
    try:
        config = ArchivesSettings()
    finally:
        del os.environ["MC_CLAMAV_SOCKET"]
    service = DepositService(archives.engine, archives.blobs, data_dir=Path("/nonexistent"),
                             config=config)
    assert service.antivirus is not None and service.antivirus.client.address == clamd["tcp"]
    assert DepositService(archives.engine, archives.blobs, data_dir=Path("/nonexistent"),
                          config=ArchivesSettings()).antivirus is None


def test_an_infected_deposit_is_refused_audited_and_not_stored(platform, as_org,
                                                               scanning) -> None:
    lamentin = as_org("lamentin")
    clean = lamentin.deposit([("note.txt", b"note propre")])
    assert clean.status_code == 201, clean.text
    infected = lamentin.deposit([("propre.txt", b"autre note"),
                                 ("piece-jointe.txt", b"x" + EICAR)])
    assert infected.status_code == 422
    problem = infected.json()
    assert SIGNATURE in problem["detail"] and "piece-jointe.txt" in problem["detail"]
    for data in (b"autre note", b"x" + EICAR):  # nothing of the deposit was stored
        digest = hashlib.sha512(data).hexdigest()
        assert not any(p.exists() for p in blob_paths(platform, digest))
    events = platform.provider.journal.search(AuditQuery(action="archives.virus"), limit=500)
    assert any(e.organisation == "lamentin" and e.outcome == "refused"
               and SIGNATURE in (e.reason or "") for e in events)


def test_an_infected_package_is_refused_with_the_signature(platform, as_org, scanning,
                                                           tmp_path) -> None:
    (tmp_path / "a.txt").write_bytes(b"premier")
    (tmp_path / "b.bin").write_bytes(EICAR)
    bag = write_bagit(tmp_path / "bag", [("a.txt", tmp_path / "a.txt"),
                                         ("b.bin", tmp_path / "b.bin")], {"Title": "Sac"})
    lamentin = as_org("lamentin")
    operation = _poll(lamentin, _submit(lamentin, "bagit", zip_bag(bag, tmp_path / "v.zip")
                                        ).headers["location"])
    assert operation["status"] == "refused", operation
    [reason] = operation["result"]["reasons"]
    assert reason["code"] == "file.virus" and SIGNATURE in reason["message"]


def test_an_unreachable_daemon_refuses_rather_than_stores(platform, as_org, tmp_path) -> None:
    deposits = platform.live.app.state.archives.deposits
    before = deposits.antivirus
    deposits.antivirus = Antivirus(platform.live.app.state.archives.engine,
                                   ClamdClient(str(tmp_path / "absent.sock")))
    try:
        response = as_org("lamentin").deposit([("n.txt", b"non analyse")])
    finally:
        deposits.antivirus = before
    assert response.status_code == 503 and "Retry-After" in response.headers
    assert "antivirus" in response.json()["detail"]
