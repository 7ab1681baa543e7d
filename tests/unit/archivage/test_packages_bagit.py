"""BagIt bags (RFC 8493): verified reading, exports checked by the bagit library itself."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zipfile
from datetime import date
from pathlib import Path

import bagit
import pytest

from archivage.packages import (
    DigestMismatch,
    PackageFile,
    PackageRefused,
    PackageRule,
    PackageUnit,
    read_bagit,
    seda_manifest_for_export,
    validate_seda,
    write_bagit,
    zip_bag,
)

PDF = b"%PDF-1.7\n" + b"arrete municipal\n" * 100
TXT = "Compte rendu de la réunion".encode()


def make_library_bag(folder: Path, files: dict[str, bytes],
                     checksums: tuple[str, ...] = ("sha256",)) -> Path:
    """A bag written by the reference library (bagit.make_bag), as a depositor's tool would."""
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    cwd = os.getcwd()
    try:
        bagit.make_bag(str(folder), {"Title": "Arrêtés 2025", "External-Identifier": "VERS-42",
                                     "Keywords": "voirie, arrêtés"},
                       checksums=list(checksums))
    finally:
        os.chdir(cwd)
    return folder


def codes(caught: pytest.ExceptionInfo[PackageRefused]) -> list[str]:
    return sorted(r.code for r in caught.value.reasons)


# ------------------------------------------------------------------ reading


def test_valid_bag_folder(tmp_path: Path) -> None:
    bag = make_library_bag(tmp_path / "bag", {"arrete.pdf": PDF, "notes/cr.txt": TXT})
    package = read_bagit(bag)
    assert package.kind == "bagit" and package.version == "BagIt 0.97"
    assert package.identifier == "VERS-42"
    assert [f.path for f in package.files] == ["data/arrete.pdf", "data/notes/cr.txt"]
    pdf = package.file("data/arrete.pdf")
    assert pdf.size == len(PDF)
    assert pdf.digests == {"sha256": hashlib.sha256(PDF).hexdigest(),
                           "sha512": hashlib.sha512(PDF).hexdigest()}
    [unit] = package.units
    assert unit.title == "Arrêtés 2025" and unit.keywords == ["voirie", "arrêtés"]
    assert unit.file_refs == ["data/arrete.pdf", "data/notes/cr.txt"]
    assert package.metadata["Payload-Oxum"] == f"{len(PDF) + len(TXT)}.2"
    package.cleanup()  # a folder given by the caller is not removed
    assert bag.exists()


def test_valid_bag_zip(tmp_path: Path) -> None:
    bag = make_library_bag(tmp_path / "versement", {"arrete.pdf": PDF})
    archive = zip_bag(bag, tmp_path / "versement.zip")
    package = read_bagit(archive, workdir=tmp_path / "work")
    assert package.file("data/arrete.pdf").source.read_bytes() == PDF  # type: ignore[union-attr]
    assert package.root.is_relative_to(tmp_path / "work")
    package.cleanup()
    assert list((tmp_path / "work").iterdir()) == []


def test_tampered_bag_is_refused(tmp_path: Path) -> None:
    bag = make_library_bag(tmp_path / "bag", {"arrete.pdf": PDF, "cr.txt": TXT})
    (bag / "data" / "arrete.pdf").write_bytes(PDF.replace(b"arrete", b"ARRETE", 1))
    with pytest.raises(PackageRefused) as caught:
        read_bagit(bag)
    assert codes(caught) == ["bagit.digest_mismatch"]
    assert caught.value.reasons[0].path == "data/arrete.pdf"
    assert "sha256" in caught.value.reasons[0].message


def test_missing_file_is_refused(tmp_path: Path) -> None:
    bag = make_library_bag(tmp_path / "bag", {"arrete.pdf": PDF, "cr.txt": TXT})
    (bag / "data" / "cr.txt").unlink()
    with pytest.raises(PackageRefused) as caught:
        read_bagit(bag)
    # Reported once as missing (not also as a digest mismatch), plus the Payload-Oxum count.
    assert codes(caught) == ["bagit.missing_file", "bagit.oxum"]


def test_every_reason_is_collected(tmp_path: Path) -> None:
    bag = make_library_bag(tmp_path / "bag", {"a.pdf": PDF, "b.txt": TXT, "c.txt": TXT})
    (bag / "data" / "a.pdf").write_bytes(b"altered")
    (bag / "data" / "b.txt").unlink()
    (bag / "data" / "intrus.exe").write_bytes(b"MZ")
    with pytest.raises(PackageRefused) as caught:
        read_bagit(bag)
    assert codes(caught) == ["bagit.digest_mismatch", "bagit.missing_file", "bagit.oxum",
                             "bagit.unexpected_file"]


def test_bad_bag_info_is_refused(tmp_path: Path) -> None:
    bag = make_library_bag(tmp_path / "bag", {"a.pdf": PDF})
    info = (bag / "bag-info.txt").read_text()
    info = info.replace("Bagging-Date: ", "Bagging-Date: 31/12/")
    info += "Payload-Oxum: 1.1\n"
    (bag / "bag-info.txt").write_text(info)
    with pytest.raises(PackageRefused) as caught:
        read_bagit(bag)
    # bag-info.txt changed after the tag manifest was written: that is reported too.
    assert codes(caught) == ["bagit.bag_info", "bagit.bag_info", "bagit.digest_mismatch"]


def test_fetch_txt_is_refused(tmp_path: Path) -> None:
    bag = make_library_bag(tmp_path / "bag", {"a.pdf": PDF})
    (bag / "fetch.txt").write_text("https://example.org/b.pdf 10 data/b.pdf\n")
    with pytest.raises(PackageRefused) as caught:
        read_bagit(bag)
    assert "bagit.fetch" in codes(caught)


def test_not_a_bag(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(PackageRefused) as caught:
        read_bagit(tmp_path / "folder")
    assert codes(caught) == ["bagit.structure"]


def test_symlinks_in_a_bag_are_refused(tmp_path: Path) -> None:
    bag = make_library_bag(tmp_path / "bag", {"a.pdf": PDF})
    (bag / "data" / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(PackageRefused) as caught:
        read_bagit(bag)
    assert codes(caught) == ["bagit.symlink"]


def test_zipped_bag_with_unsafe_entries_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bag.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("bag/bagit.txt",
                         "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
        archive.writestr("bag/../../escape.txt", b"x")
        link = zipfile.ZipInfo("bag/data/link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/shadow")
    work = tmp_path / "work"
    with pytest.raises(PackageRefused) as caught:
        read_bagit(path, workdir=work)
    assert codes(caught) == ["zip.symlink", "zip.unsafe_path"]
    assert list(work.iterdir()) == []
    assert not (tmp_path / "escape.txt").exists()


# ------------------------------------------------------------------ writing


def export_unit() -> tuple[list[PackageUnit], list[PackageFile]]:
    files = [PackageFile(path="data/arrete.pdf", size=len(PDF),
                         digests={"sha512": hashlib.sha512(PDF).hexdigest()},
                         mime_type="application/pdf", declared_format="fmt/276"),
             PackageFile(path="data/cr.txt", size=len(TXT),
                         digests={"sha512": hashlib.sha512(TXT).hexdigest()})]
    unit = PackageUnit(identifier="ark:/97200/x1", system_id="ark:/97200/x1",
                       title="Arrêté de voirie", keywords=["voirie"],
                       start_date=date(2025, 1, 1),
                       rules=[PackageRule("appraisal", "APP-00010", date(2025, 1, 1), "Destroy")],
                       file_refs=["data/arrete.pdf", "data/cr.txt"])
    return [unit], files


def test_export_bag_is_valid_for_the_bagit_library(tmp_path: Path,
                                                   seda_schema_dir: Path) -> None:
    units, files = export_unit()
    manifest = seda_manifest_for_export(units, files, message_identifier="EXPORT-1",
                                        archival_agency="CTM", transferring_agency="CTM")
    source = tmp_path / "cr.txt"
    source.write_bytes(TXT)
    dest = write_bagit(
        tmp_path / "export",
        [("arrete.pdf", lambda: io.BytesIO(PDF)), ("cr.txt", source)],
        {"External-Identifier": "ark:/97200/x1", "Title": "Arrêté de voirie\nsur deux lignes",
         "Source-Organization": "Commune du Lamentin"},
        {"metadata/manifest.xml": manifest, "metadata/logbook.json": b"[]"})
    assert dest == tmp_path / "export"
    bag = bagit.Bag(str(dest))
    assert bag.validate() is True
    assert bag.version_info == (1, 0)
    assert bag.algorithms == ["sha512"]
    assert bag.info["SEDA-Version"] == "2.2"
    assert bag.info["Payload-Oxum"] == f"{len(PDF) + len(TXT)}.2"
    assert bag.info["Title"] == "Arrêté de voirie sur deux lignes"
    tagged = {Path(p).as_posix() for p in bag.tagfile_entries()}
    assert {"metadata/manifest.xml", "metadata/logbook.json", "bag-info.txt"} <= tagged
    assert validate_seda((dest / "metadata/manifest.xml").read_bytes(), seda_schema_dir) == []
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]

    # The export reads back, with its units from the SEDA tag file (reversibility).
    package = read_bagit(dest)
    assert package.version == "BagIt 1.0" and package.identifier == "ark:/97200/x1"
    [unit] = package.units
    assert unit.system_id == "ark:/97200/x1" and unit.title == "Arrêté de voirie"
    assert unit.file_refs == ["data/arrete.pdf", "data/cr.txt"]
    assert unit.rules[0].final_action == "Destroy"

    archive = zip_bag(dest, tmp_path / "export.zip")
    assert zipfile.ZipFile(archive).namelist()[0].startswith("export/")
    again = read_bagit(archive, workdir=tmp_path / "work")
    assert again.file("data/arrete.pdf").digests["sha512"] == hashlib.sha512(PDF).hexdigest()
    again.cleanup()


def test_export_with_a_tampered_seda_tag_file_is_refused(tmp_path: Path) -> None:
    units, files = export_unit()
    manifest = seda_manifest_for_export(units, files, message_identifier="E",
                                        archival_agency="CTM", transferring_agency="CTM")
    dest = write_bagit(tmp_path / "export", [("arrete.pdf", lambda: io.BytesIO(PDF)),
                                             ("cr.txt", lambda: io.BytesIO(TXT))],
                       {}, {"metadata/manifest.xml": manifest})
    (dest / "metadata/manifest.xml").write_bytes(manifest.replace(b"voirie", b"VOIRIE"))
    with pytest.raises(PackageRefused) as caught:
        read_bagit(dest)
    assert codes(caught) == ["bagit.digest_mismatch"]


@pytest.mark.parametrize("name", ["../evil", "/abs", "a/../../b", "a\\b", "", "a\nb"])
def test_write_refuses_unsafe_payload_paths(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        write_bagit(tmp_path / "bag", [(name, lambda: io.BytesIO(b"x"))], {})
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_reserved_tag_files_and_existing_dest(tmp_path: Path) -> None:
    for name in ("bag-info.txt", "data/x", "manifest-sha512.txt"):
        with pytest.raises(ValueError, match="reserved"):
            write_bagit(tmp_path / "bag", [], {}, {name: b"x"})
    (tmp_path / "bag").mkdir()
    with pytest.raises(FileExistsError):
        write_bagit(tmp_path / "bag", [], {})


def test_write_is_all_or_nothing(tmp_path: Path) -> None:
    def broken() -> io.BytesIO:
        raise OSError("blob unreadable")

    with pytest.raises(OSError, match="unreadable"):
        write_bagit(tmp_path / "bag", [("a.txt", lambda: io.BytesIO(b"a")), ("b.txt", broken)],
                    {})
    assert list(tmp_path.iterdir()) == []


def test_write_checks_expected_digests(tmp_path: Path) -> None:
    good = hashlib.sha512(TXT).hexdigest()
    dest = write_bagit(tmp_path / "ok", [("cr.txt", lambda: io.BytesIO(TXT), good.upper())], {})
    assert bagit.Bag(str(dest)).validate() is True
    with pytest.raises(DigestMismatch) as caught:  # a damaged copy is never exported
        write_bagit(tmp_path / "bad", [("cr.txt", lambda: io.BytesIO(TXT + b"!"), good)], {})
    assert caught.value.path == "cr.txt" and caught.value.expected == good
    assert not (tmp_path / "bad").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ok"]


def test_empty_export_is_a_valid_bag(tmp_path: Path) -> None:
    dest = write_bagit(tmp_path / "bag", [], {"External-Identifier": "ark:/97200/none"})
    assert bagit.Bag(str(dest)).validate() is True
    package = read_bagit(dest)
    assert package.files == [] and package.units[0].identifier == "ark:/97200/none"
