"""Package ingest (BagIt, SEDA 2.2): 202 + operation, processed by a worker, outcome as an
ArchiveTransferReply; export of a unit as a BagIt bag."""

from __future__ import annotations

import secrets
import time
import zipfile
from datetime import date
from pathlib import Path

from archivage.packages import (
    PackageRule,
    PackageUnit,
    build_seda_zip,
    read_bagit,
    write_bagit,
    zip_bag,
)
from tests.functional.archivage.test_rules import REFERENTIEL


def _poll(client, location: str, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        operation = client.get(location.removeprefix("/api/archives")).json()
        if operation["finished_at"]:
            return operation
        time.sleep(0.3)
    raise AssertionError(f"operation {location} not finished")


def _submit(client, kind: str, path: Path):
    return client.post("/packages", params={"format": kind}, content=path.read_bytes(),
                       headers={"Content-Type": "application/zip"})


def test_seda_transfer_is_ingested_asynchronously(as_org, as_staff, tmp_path) -> None:
    as_staff(("lamentin", "archivist")).post("/rules/import", content=REFERENTIEL.encode())
    lamentin = as_org("lamentin")
    word, inside = "seda" + secrets.token_hex(3), "corps" + secrets.token_hex(3)
    units = [PackageUnit(
        identifier="AU1", title=f"Conseil municipal {word}", level="File",
        start_date=date(2024, 1, 1), end_date=date(2024, 12, 31),
        rules=[PackageRule("appraisal", "APP-10", date(2025, 1, 1), "Destroy")],
        children=[PackageUnit(identifier="AU2", title="Délibération 2024-01", level="Item",
                              file_refs=["content/deliberation.txt"])])]
    body = f"Le conseil décide {word} {inside}".encode()
    path = build_seda_zip(tmp_path / "transfer.zip", {"content/deliberation.txt": body},
                          units, message_identifier="MSG-" + secrets.token_hex(4),
                          transferring_agency="lamentin")
    response = _submit(lamentin, "seda", path)
    assert response.status_code == 202, response.text
    operation = _poll(lamentin, response.headers["location"])
    assert operation["status"] == "accepted", operation
    result = operation["result"]
    assert set(result["package_units"]) == {"AU1", "AU2"}
    reply = lamentin.get(operation["reply"].removeprefix("/api/archives"))
    assert reply.headers["content-type"].startswith("application/xml")
    assert b"ArchiveTransferReply" in reply.content
    assert b"<ReplyCode>OK</ReplyCode>" in reply.content
    [found] = lamentin.get("/units", params={"q": word, "level": "item"}).json()["items"]
    assert found["final_action"] == "détruire" and found["appraisal_end"] == "2035-01-01"
    # the file's text is indexed too (a word in the document only, not in its description)
    assert [u["id"] for u in lamentin.get("/units", params={"q": inside}).json()["items"]
            ] == [found["id"]]
    # another organisation can't poll it
    assert as_org("schoelcher").get(f"/operations/{operation['id']}").status_code == 404
    # the same transfer sent again gives the first outcome, not a second copy
    again = _poll(lamentin, _submit(lamentin, "seda", path).headers["location"])
    assert again["result"]["units"] == result["units"]


def test_bad_packages_are_refused_with_every_reason(as_org, tmp_path) -> None:
    lamentin = as_org("lamentin")
    _write(tmp_path)
    bag = write_bagit(tmp_path / "bag", [("a.txt", tmp_path / "a.txt"),
                                         ("b.txt", tmp_path / "b.txt")], {"Title": "Sac altéré"})
    (bag / "data" / "a.txt").write_bytes(b"altere")
    (bag / "data" / "b.txt").unlink()
    path = zip_bag(bag, tmp_path / "bad.zip")
    operation = _poll(lamentin, _submit(lamentin, "bagit", path).headers["location"])
    assert operation["status"] == "refused"
    reasons = " ".join(r["message"] for r in operation["result"]["reasons"])
    assert "a.txt" in reasons and "b.txt" in reasons
    reply = lamentin.get(f"/operations/{operation['id']}/reply").content
    assert b"<ReplyCode>KO</ReplyCode>" in reply

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bag/bagit.txt", "BagIt-Version: 1.0\nTag-File-Character-Encoding: "
                         "UTF-8\n")
        archive.writestr("bag/data/zeros.bin", b"\0" * (300 * 1024 * 1024))
    refused = _poll(lamentin, _submit(lamentin, "bagit", bomb).headers["location"])
    assert refused["status"] == "refused", refused


def _write(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"premier fichier")
    (tmp_path / "b.txt").write_bytes(b"second fichier")


def test_bag_ingest_and_export(as_org, tmp_path) -> None:
    lamentin = as_org("lamentin")
    _write(tmp_path)
    bag = write_bagit(tmp_path / "bag", [("a.txt", tmp_path / "a.txt"),
                                         ("b.txt", tmp_path / "b.txt")],
                      {"Title": "Sac de test", "External-Identifier": secrets.token_hex(6)})
    path = zip_bag(bag, tmp_path / "bag.zip")
    operation = _poll(lamentin, _submit(lamentin, "bagit", path).headers["location"])
    assert operation["status"] == "accepted", operation
    top = operation["result"]["units"][0]["id"]

    exported = lamentin.get(f"/units/{top}/export")
    assert exported.status_code == 200
    assert exported.headers["content-type"] == "application/zip"
    (tmp_path / "export.zip").write_bytes(exported.content)
    package = read_bagit(tmp_path / "export.zip", workdir=tmp_path / "x")
    try:
        assert sorted(f.name for f in package.files) == ["a.txt", "b.txt"]
        assert package.metadata["SEDA-Version"] == "2.2"
        assert package.units[0].title == "Sac de test"  # described by the SEDA manifest
    finally:
        package.cleanup()
    with zipfile.ZipFile(tmp_path / "export.zip") as archive:
        names = archive.namelist()
    assert any(n.endswith("metadata/manifest.xml") for n in names)
    assert any(n.endswith("metadata/logbook.json") for n in names)
    assert as_org("schoelcher").get(f"/units/{top}/export").status_code == 404
    events = [e["event_type"] for e in lamentin.get(f"/units/{top}/logbook").json()["items"]]
    assert "dissemination" in events
