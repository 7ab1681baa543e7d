"""SEDA 2.2 transfers, replies and export manifests, checked against the official XSD."""

from __future__ import annotations

import base64
import hashlib
import stat
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from lxml import etree

import archivage.packages as packages_module
from archivage.packages import (
    Package,
    PackageFile,
    PackageRefused,
    PackageRule,
    PackageUnit,
    Reason,
    ZipLimits,
    build_seda_zip,
    read_seda_zip,
    seda_manifest_for_export,
    seda_reply,
    validate_seda,
)
from archivage.packages.seda import NS, units_from_manifest

PDF = b"%PDF-1.7\n" + b"deliberation du conseil municipal\n" * 50
TXT = "Procès-verbal de la séance du 12 mars 2026".encode()


def sample_units() -> list[PackageUnit]:
    return [PackageUnit(
        identifier="AU1", title="Délibérations du conseil municipal 2020", level="Series",
        description="Registre des délibérations", classification="1.2.3",
        keywords=["conseil municipal", "délibération"], language="fr",
        start_date=date(2020, 1, 1), end_date=date(2020, 12, 31),
        originating_agency="COMMUNE-97209",
        rules=[PackageRule("appraisal", "APP-00001", date(2020, 12, 31), "Destroy"),
               PackageRule("access", "ACC-00003", date(2020, 12, 31)),
               PackageRule("hold", "HOL-00001", date(2024, 5, 1), hold_reason="contentieux")],
        children=[
            PackageUnit(identifier="AU2", title="Délibération n° 2020-14", level="Item",
                        document_type="Délibération", file_refs=["content/deliberation.pdf"]),
            PackageUnit(identifier="AU3", title="Procès-verbal", level="Item",
                        rules=[PackageRule("appraisal", None, None, "Keep",
                                           prevent_inheritance=True)],
                        file_refs=["content/pv.txt"]),
        ])]


DOCUMENTS = {"content/deliberation.pdf": PDF, "content/pv.txt": TXT}


def reasons_of(excinfo: pytest.ExceptionInfo[PackageRefused]) -> list[str]:
    return [r.code for r in excinfo.value.reasons]


def valid_manifest() -> bytes:
    files = [PackageFile(path=name, size=len(data),
                         digests={"sha512": hashlib.sha512(data).hexdigest()})
             for name, data in DOCUMENTS.items()]
    return seda_manifest_for_export(sample_units(), files, message_identifier="MSG-2026-001",
                                    archival_agency="CTM", transferring_agency="COMMUNE-97209",
                                    date=datetime(2026, 3, 12, 10, 0, tzinfo=UTC))


def edit_manifest(xpath: str, action: str, value: str | None = None) -> bytes:
    """The valid manifest with one element removed or its text replaced."""
    root = etree.fromstring(valid_manifest())
    for element in root.xpath(xpath, namespaces={"s": NS}):
        if action == "remove":
            element.getparent().remove(element)
        else:
            element.text = value
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def zip_of(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


# ------------------------------------------------------------------ valid transfers


def test_valid_transfer_is_read(tmp_path: Path, seda_schema_dir: Path) -> None:
    path = build_seda_zip(tmp_path / "transfer.zip", DOCUMENTS, sample_units(),
                          message_identifier="MSG-2026-001", transferring_agency="COMMUNE-97209")
    manifest = zipfile.ZipFile(path).read("manifest.xml")
    assert validate_seda(manifest, seda_schema_dir) == []
    package = read_seda_zip(path, seda_schema_dir, workdir=tmp_path / "work")
    assert isinstance(package, Package)
    assert package.kind == "seda" and package.version == "SEDA 2.2"
    assert package.identifier == "MSG-2026-001"
    assert package.archival_agency == "CTM" and package.transferring_agency == "COMMUNE-97209"
    assert package.date is not None and package.date.tzinfo is not None
    pdf = package.file("content/deliberation.pdf")
    assert pdf.size == len(PDF)
    assert pdf.digests["sha512"] == hashlib.sha512(PDF).hexdigest()
    assert pdf.digests["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert pdf.source is not None and pdf.source.read_bytes() == PDF
    assert pdf.filename == "deliberation.pdf" and pdf.identifier == "BDO1"
    staged = pdf.staged()
    assert (staged.path, staged.size, staged.digests) == (pdf.source, pdf.size, pdf.digests)
    [series] = package.units
    assert series.title == "Délibérations du conseil municipal 2020"
    assert series.level == "Series" and series.classification == "1.2.3"
    assert series.keywords == ["conseil municipal", "délibération"]
    assert (series.start_date, series.end_date) == (date(2020, 1, 1), date(2020, 12, 31))
    assert series.language == "fr" and series.originating_agency == "COMMUNE-97209"
    kinds = {(r.kind, r.rule_id, r.start_date, r.final_action) for r in series.rules}
    assert kinds == {("appraisal", "APP-00001", date(2020, 12, 31), "Destroy"),
                     ("access", "ACC-00003", date(2020, 12, 31), None),
                     ("hold", "HOL-00001", date(2024, 5, 1), None)}
    assert [r.hold_reason for r in series.rules if r.kind == "hold"] == ["contentieux"]
    item, minutes = series.children
    assert item.file_refs == ["content/deliberation.pdf"]
    assert item.document_type == "Délibération"
    assert minutes.rules == [PackageRule("appraisal", None, None, "Keep",
                                         prevent_inheritance=True)]
    assert [u.identifier for u in package.all_units()] == ["AU1", "AU2", "AU3"]
    assert package.root.is_relative_to(tmp_path / "work")
    package.cleanup()
    assert not package.root.exists()


def test_flat_layout_sha256_and_base64_digests(tmp_path: Path, seda_schema_dir: Path) -> None:
    digest = base64.b64encode(hashlib.sha256(TXT).digest()).decode()
    manifest = f"""<?xml version="1.0" encoding="UTF-8"?>
<ArchiveTransfer xmlns="{NS}">
  <Date>2026-03-12T10:00:00</Date>
  <MessageIdentifier>MSG-FLAT</MessageIdentifier>
  <CodeListVersions/>
  <DataObjectPackage>
    <BinaryDataObject id="BDO1">
      <DataObjectGroupId>GOT1</DataObjectGroupId>
      <DataObjectVersion>BinaryMaster_1</DataObjectVersion>
      <Uri>./Content/proc%C3%A8s-verbal.txt</Uri>
      <MessageDigest algorithm="SHA-256">{digest}</MessageDigest>
      <Size>{len(TXT)}</Size>
      <FormatIdentification><MimeType>text/plain</MimeType><FormatId>x-fmt/111</FormatId>
      </FormatIdentification>
    </BinaryDataObject>
    <DescriptiveMetadata>
      <ArchiveUnit id="U1">
        <Content><Title>Procès-verbal</Title><StartDate>2026</StartDate></Content>
        <DataObjectReference><DataObjectGroupReferenceId>GOT1</DataObjectGroupReferenceId>
        </DataObjectReference>
      </ArchiveUnit>
    </DescriptiveMetadata>
    <ManagementMetadata/>
  </DataObjectPackage>
  <ArchivalAgency><Identifier>CTM</Identifier></ArchivalAgency>
  <TransferringAgency><Identifier>C1</Identifier></TransferringAgency>
</ArchiveTransfer>""".encode()
    assert validate_seda(manifest, seda_schema_dir) == []
    path = zip_of(tmp_path / "t.zip", {"manifest.xml": manifest,
                                       "Content/procès-verbal.txt": TXT})
    package = read_seda_zip(path, seda_schema_dir, workdir=tmp_path)
    [item] = package.files
    assert item.path == "Content/procès-verbal.txt"
    assert item.declared_format == "x-fmt/111" and item.mime_type == "text/plain"
    assert package.units[0].file_refs == ["Content/procès-verbal.txt"]
    assert package.units[0].start_date == date(2026, 1, 1)
    package.cleanup()


# ------------------------------------------------------------------ refused transfers


def test_wrong_digest_is_refused(tmp_path: Path, seda_schema_dir: Path) -> None:
    path = build_seda_zip(tmp_path / "t.zip", DOCUMENTS, sample_units())
    # Same manifest, one file altered after the digests were computed.
    manifest = zipfile.ZipFile(path).read("manifest.xml")
    zip_of(path, {"manifest.xml": manifest, "content/deliberation.pdf": PDF + b"x",
                  "content/pv.txt": TXT})
    work = tmp_path / "work"
    with pytest.raises(PackageRefused) as caught:
        read_seda_zip(path, seda_schema_dir, workdir=work)
    assert reasons_of(caught) == ["seda.size_mismatch", "seda.digest_mismatch"]
    assert caught.value.reasons[1].path == "content/deliberation.pdf"
    assert caught.value.status == 422
    # The header was readable: the refusal reply can answer the right transfer.
    assert caught.value.message_identifier == "MSG-1"
    assert caught.value.transferring_agency == "COMMUNE"
    assert list(work.iterdir()) == []  # nothing left behind


def test_missing_and_undeclared_files_are_refused(tmp_path: Path, seda_schema_dir: Path) -> None:
    path = build_seda_zip(tmp_path / "t.zip", DOCUMENTS, sample_units())
    manifest = zipfile.ZipFile(path).read("manifest.xml")
    zip_of(path, {"manifest.xml": manifest, "content/pv.txt": TXT, "content/extra.exe": b"MZ"})
    with pytest.raises(PackageRefused) as caught:
        read_seda_zip(path, seda_schema_dir)
    assert sorted(reasons_of(caught)) == ["seda.missing_file", "seda.unexpected_file"]


def test_missing_required_elements_are_all_reported(tmp_path: Path,
                                                    seda_schema_dir: Path) -> None:
    root = etree.fromstring(valid_manifest())
    for xpath in ("/s:ArchiveTransfer/s:MessageIdentifier", "//s:TransferringAgency",
                  "//s:ArchiveUnit[@id='AU2']/s:Content/s:Title",
                  "//s:BinaryDataObject[@id='BDO2']/s:MessageDigest"):
        for element in root.xpath(xpath, namespaces={"s": NS}):
            element.getparent().remove(element)
    manifest = etree.tostring(root)
    path = zip_of(tmp_path / "t.zip", {"manifest.xml": manifest, **DOCUMENTS})
    # Without the schema, the service's own checks find every missing element.
    with pytest.raises(PackageRefused) as caught:
        read_seda_zip(path, None)
    messages = " | ".join(r.message for r in caught.value.reasons)
    assert reasons_of(caught).count("seda.required") == 4
    for expected in ("MessageIdentifier", "TransferringAgency", "AU2 : Title absent",
                     "BDO2 : MessageDigest absent"):
        assert expected in messages
    # With the schema, the XSD violations are reported as well.
    with pytest.raises(PackageRefused) as caught:
        read_seda_zip(path, seda_schema_dir)
    assert "seda.schema" in reasons_of(caught)
    assert reasons_of(caught).count("seda.required") == 4


def test_title_and_references_are_business_rules(tmp_path: Path, seda_schema_dir: Path) -> None:
    manifest = edit_manifest("//s:ArchiveUnit[@id='AU3']/s:DataObjectReference/"
                             "s:DataObjectGroupReferenceId", "text", "GOT99")
    path = zip_of(tmp_path / "t.zip", {"manifest.xml": manifest, **DOCUMENTS})
    with pytest.raises(PackageRefused) as caught:
        read_seda_zip(path, seda_schema_dir)
    assert sorted(reasons_of(caught)) == ["seda.bad_reference", "seda.orphan_object"]


def test_bad_values_are_refused(tmp_path: Path, seda_schema_dir: Path) -> None:
    root = etree.fromstring(valid_manifest())
    ns = {"s": NS}
    root.xpath("//s:BinaryDataObject[@id='BDO1']/s:MessageDigest", namespaces=ns)[0].set(
        "algorithm", "MD5")
    root.xpath("//s:ArchiveUnit[@id='AU1']/s:Content/s:StartDate", namespaces=ns)[0].text = "hier"
    root.xpath("/s:ArchiveTransfer/s:Date", namespaces=ns)[0].text = "le 12 mars"
    path = zip_of(tmp_path / "t.zip", {"manifest.xml": etree.tostring(root), **DOCUMENTS})
    with pytest.raises(PackageRefused) as caught:
        read_seda_zip(path, None)
    assert sorted(reasons_of(caught)) == ["seda.bad_date", "seda.bad_date",
                                          "seda.digest_algorithm"]


def test_other_seda_version_is_not_validated_as_2_2(tmp_path: Path,
                                                    seda_schema_dir: Path) -> None:
    manifest = valid_manifest().replace(b"seda:v2.2", b"seda:v2.1")
    path = zip_of(tmp_path / "t.zip", {"manifest.xml": manifest, **DOCUMENTS})
    with pytest.raises(PackageRefused) as caught:
        read_seda_zip(path, seda_schema_dir)
    assert reasons_of(caught) == ["seda.version"]
    package = read_seda_zip(path, None)  # the structure itself is sound
    assert package.version == "SEDA 2.1"
    package.cleanup()


@pytest.mark.parametrize(("entries", "code"), [
    ({"content/pv.txt": TXT}, "seda.no_manifest"),
    ({"manifest.xml": b"<ArchiveTransfer"}, "seda.xml"),
    ({"manifest.xml": b"<Other xmlns='urn:x'/>"}, "seda.not_transfer"),
])
def test_not_a_transfer(tmp_path: Path, entries: dict[str, bytes], code: str) -> None:
    with pytest.raises(PackageRefused) as caught:
        read_seda_zip(zip_of(tmp_path / "t.zip", entries), None)
    assert reasons_of(caught) == [code]


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "t.zip"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(PackageRefused) as caught:
        read_seda_zip(path, None)
    assert reasons_of(caught) == ["zip.invalid"]


# ------------------------------------------------------------------ hostile packages


def test_xxe_is_refused_without_reading_the_file(tmp_path: Path, seda_schema_dir: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    manifest = valid_manifest().decode().replace(
        "<?xml version='1.0' encoding='UTF-8'?>",
        f'<?xml version="1.0"?>\n<!DOCTYPE ArchiveTransfer [<!ENTITY xxe SYSTEM '
        f'"{secret.as_uri()}">]>').replace("MSG-2026-001", "&xxe;")
    path = zip_of(tmp_path / "t.zip", {"manifest.xml": manifest.encode(), **DOCUMENTS})
    with pytest.raises(PackageRefused) as caught:
        read_seda_zip(path, seda_schema_dir)
    assert reasons_of(caught) == ["seda.dtd"]
    assert "TOP-SECRET" not in str(caught.value)


def test_dtd_in_utf16_is_refused_after_parsing(tmp_path: Path) -> None:
    manifest = ('<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE ArchiveTransfer '
                '[<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
                f'<ArchiveTransfer xmlns="{NS}"><Comment>&xxe;</Comment></ArchiveTransfer>')
    path = zip_of(tmp_path / "t.zip", {"manifest.xml": manifest.encode("utf-16")})
    with pytest.raises(PackageRefused) as caught:
        read_seda_zip(path, None)
    assert reasons_of(caught) == ["seda.dtd"]
    assert "root:" not in str(caught.value)


def test_billion_laughs_is_refused(tmp_path: Path) -> None:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10))
    manifest = (f'<?xml version="1.0"?><!DOCTYPE ArchiveTransfer [{entities}]>'
                f'<ArchiveTransfer xmlns="{NS}"><Comment>&lol9;</Comment></ArchiveTransfer>')
    path = zip_of(tmp_path / "t.zip", {"manifest.xml": manifest.encode()})
    with pytest.raises(PackageRefused) as caught:
        read_seda_zip(path, None)
    assert reasons_of(caught) == ["seda.dtd"]


def test_zip_bomb_is_refused_before_extraction(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.xml", valid_manifest())
        with archive.open("content/zeros.bin", "w") as entry:
            block = bytes(1024 * 1024)
            for _ in range(64):
                entry.write(block)
    assert path.stat().st_size < 200_000
    work = tmp_path / "work"
    with pytest.raises(PackageRefused) as caught:
        read_seda_zip(path, None, workdir=work)
    assert "zip.bomb" in reasons_of(caught)
    assert list(work.iterdir()) == []


def test_zip_limits_total_size_and_entries(tmp_path: Path) -> None:
    path = build_seda_zip(tmp_path / "t.zip", DOCUMENTS, sample_units())
    with pytest.raises(PackageRefused) as caught:
        read_seda_zip(path, None, limits=ZipLimits(max_entries=2, max_total_bytes=1000))
    assert sorted(reasons_of(caught)) == ["zip.too_large", "zip.too_many_entries"]


def test_zip_slip_absolute_paths_and_symlinks_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "slip.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("manifest.xml", valid_manifest())
        archive.writestr("../../evil.txt", b"owned")
        archive.writestr("/etc/cron.d/evil", b"owned")
        archive.writestr("content\\..\\..\\evil.txt", b"owned")
        link = zipfile.ZipInfo("content/link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    work = tmp_path / "work"
    with pytest.raises(PackageRefused) as caught:
        read_seda_zip(path, None, workdir=work)
    codes = reasons_of(caught)
    assert codes.count("zip.unsafe_path") >= 3 and "zip.symlink" in codes
    assert not (tmp_path / "evil.txt").exists() and not (work.parent / "evil.txt").exists()
    assert list(work.iterdir()) == []


# ------------------------------------------------------------------ replies and exports


def test_accepted_reply_is_valid(seda_schema_dir: Path) -> None:
    reply = seda_reply("MSG-2026-001", archival_agency="CTM",
                       transferring_agency="COMMUNE-97209", accepted=True,
                       unit_ids={"AU1": "ark:/97200/ctm1a2b", "AU2": "ark:/97200/c3"},
                       date=datetime(2026, 3, 12, 10, 5, tzinfo=UTC))
    assert validate_seda(reply, seda_schema_dir) == []
    root = etree.fromstring(reply)
    ns = {"s": NS}
    assert root.tag == f"{{{NS}}}ArchiveTransferReply"
    assert root.findtext("s:ReplyCode", namespaces=ns) == "OK"
    assert root.findtext("s:MessageRequestIdentifier", namespaces=ns) == "MSG-2026-001"
    assert root.findtext("s:GrantDate", namespaces=ns) == "2026-03-12T10:05:00+00:00"
    assert root.xpath("//s:ArchiveUnit/s:Content/s:SystemId/text()", namespaces=ns) == [
        "ark:/97200/ctm1a2b", "ark:/97200/c3"]
    assert root.findtext("s:ArchivalAgency/s:Identifier", namespaces=ns) == "CTM"


def test_refusal_reply_lists_every_reason(seda_schema_dir: Path) -> None:
    reasons: list[Reason | str] = [Reason("seda.digest_mismatch", "BDO1 : empreinte incorrecte"),
               "Fichier manquant : content/x.pdf"]
    reply = seda_reply("MSG-9", archival_agency="CTM", transferring_agency="C1",
                       accepted=False, reasons=reasons)
    assert validate_seda(reply, seda_schema_dir) == []
    root = etree.fromstring(reply)
    ns = {"s": NS}
    assert root.findtext("s:ReplyCode", namespaces=ns) == "KO"
    assert root.find("s:GrantDate", namespaces=ns) is None
    details = root.xpath("//s:Operation/s:Event/s:EventDetail/text()", namespaces=ns)
    assert details == ["BDO1 : empreinte incorrecte", "Fichier manquant : content/x.pdf"]
    assert root.xpath("//s:Event/s:OutcomeDetail/text()", namespaces=ns) == [
        "seda.digest_mismatch", "KO"]


def test_export_manifest_is_valid_and_reads_back(seda_schema_dir: Path) -> None:
    units = sample_units()
    units[0].identifier = "ark:/97200/ctm1a2b"  # not an XML id: replaced, kept as SystemId
    units[0].system_id = "ark:/97200/ctm1a2b"
    files = [PackageFile(path=f"data/{name}", size=len(data),
                         digests={"sha512": hashlib.sha512(data).hexdigest()},
                         mime_type="application/pdf" if name.endswith(".pdf") else None,
                         declared_format="fmt/276" if name.endswith(".pdf") else None)
             for name, data in DOCUMENTS.items()]
    for unit in units[0].walk():
        unit.file_refs = [f"data/{r}" for r in unit.file_refs]
    xml = seda_manifest_for_export(units, files, message_identifier="EXPORT-1",
                                   archival_agency="CTM", transferring_agency="CTM",
                                   originating_agency="COMMUNE-97209",
                                   comment="Export SEDA 2.2")
    assert validate_seda(xml, seda_schema_dir) == []
    [series] = units_from_manifest(xml, {f.path for f in files})
    assert series.identifier == "AU1" and series.system_id == "ark:/97200/ctm1a2b"
    assert series.children[0].file_refs == ["data/content/deliberation.pdf"]
    assert [r.rule_id for r in series.rules] == ["APP-00001", "ACC-00003", "HOL-00001"]


def test_export_refuses_inconsistent_input() -> None:
    unit = PackageUnit("AU1", "x", file_refs=["data/missing.pdf"])
    with pytest.raises(ValueError, match="unknown file"):
        seda_manifest_for_export([unit], [], message_identifier="E", archival_agency="CTM",
                                 transferring_agency="CTM")
    with pytest.raises(ValueError, match="SHA-512"):
        seda_manifest_for_export([], [PackageFile("data/a", 1, {"sha256": "00"})],
                                 message_identifier="E", archival_agency="CTM",
                                 transferring_agency="CTM")


def test_all_is_sorted_and_complete() -> None:
    exported = list(packages_module.__all__)
    assert exported == sorted(exported, key=str.casefold) or exported == sorted(exported)
    for name in exported:
        assert hasattr(packages_module, name)
