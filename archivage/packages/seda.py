"""SEDA 2.2 (Standard d'échange de données pour l'archivage): transfers, replies, exports.

* :func:`read_seda_zip` reads an ``ArchiveTransfer`` ZIP (``manifest.xml`` plus the files),
  validates the manifest against the official XSD when a schema folder is given, and always
  checks the required elements, the references, the sizes and the digests itself. Every
  reason to refuse is collected.
* :func:`seda_reply` writes the ``ArchiveTransferReply`` (ReplyCode ``OK``/``KO``).
* :func:`seda_manifest_for_export` describes archive units and their files as an
  ``ArchiveTransfer`` (re-ingestible by another archival system: reversibility).
* :func:`build_seda_zip` produces valid transfers (tests, demo data).

Untrusted XML is parsed with entity resolution, DTD loading and network access disabled, and
any document carrying a DTD is refused (XXE, billion laughs). The XSD is compiled once per
folder, offline: the two W3C imports are mapped to the local copies (see the schema README).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from lxml import etree

from archivage.packages.model import (
    SEDA_RULE_ELEMENTS,
    Package,
    PackageFile,
    PackageRefused,
    PackageRule,
    PackageUnit,
    Reason,
)
from archivage.packages.safezip import ExtractedFile, ZipLimits, safe_extract

SEDA_VERSION = "2.2"
NS = "fr:gouv:culture:archivesdefrance:seda:v2.2"
XLINK = "http://www.w3.org/1999/xlink"
MANIFEST = "manifest.xml"
#: The tag file holding the SEDA manifest of an exported unit in a bag.
SEDA_TAG_FILE = "metadata/manifest.xml"
_NS_PATTERN = re.compile(r"^fr:gouv:culture:archivesdefrance:seda:v(2\.[0-9])$")
_REMOTE = {"http://www.w3.org/2001/xml.xsd": "xml.xsd",
           "http://www.w3.org/1999/xlink.xsd": "xlink.xsd"}
_NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")
_LANGUAGE = re.compile(r"^[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*$")
_LEVELS = {"Fonds", "Subfonds", "Class", "Collection", "Series", "Subseries", "RecordGrp",
           "SubGrp", "File", "Item", "OtherLevel"}
_WEAK = {"md5", "sha1"}
_MAX_SCHEMA_ERRORS = 50


# --------------------------------------------------------------------------- XML and XSD


_DTD_REFUSED = Reason("seda.dtd", "manifest.xml contient une DTD (déclaration DOCTYPE ou "
                                  "entités) : refusé.")


def safe_parser() -> etree.XMLParser:
    """A parser for untrusted XML: no entities resolved, no DTD, no network, no huge trees."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False)


def parse_untrusted(data: bytes) -> etree._Element:
    """Parse ``data``; refuse a document carrying a DTD. Raises :class:`PackageRefused`."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise PackageRefused([_DTD_REFUSED])
    try:
        tree = etree.fromstring(data, safe_parser()).getroottree()
    except etree.XMLSyntaxError as exc:
        raise PackageRefused([Reason("seda.xml", f"manifest.xml n'est pas du XML valide : "
                                                 f"{exc}.")]) from None
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:  # e.g. UTF-16 documents
        raise PackageRefused([_DTD_REFUSED])
    return tree.getroot()


class _LocalSchemas(etree.Resolver):
    def __init__(self, schema_dir: Path) -> None:
        super().__init__()
        self.schema_dir = schema_dir

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        if system_url in _REMOTE:
            return self.resolve_filename(str(self.schema_dir / _REMOTE[system_url]), context)
        if system_url.startswith(("http:", "https:", "ftp:")):
            raise ValueError(f"network schema resolution refused: {system_url}")
        return None


@dataclass
class SedaSchema:
    """The compiled SEDA 2.2 XSD (thread-safe: validations are serialised)."""

    schema: etree.XMLSchema
    lock: threading.Lock = field(default_factory=threading.Lock)

    def errors(self, element: etree._Element) -> list[str]:
        """Schema violations of ``element``'s document, as ``line N: message``."""
        with self.lock:
            if self.schema.validate(element):
                return []
            return [f"ligne {e.line} : {e.message}" for e in self.schema.error_log]


@lru_cache(maxsize=4)
def load_schema(schema_dir: Path) -> SedaSchema:
    """Compile ``seda-2.2-main.xsd`` from ``schema_dir`` (cached), offline."""
    schema_dir = Path(schema_dir).resolve()
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_LocalSchemas(schema_dir))
    document = etree.parse(str(schema_dir / "seda-2.2-main.xsd"), parser)
    return SedaSchema(etree.XMLSchema(document))


def validate_seda(xml: bytes | etree._Element, schema_dir: Path) -> list[str]:
    """XSD violations of a SEDA 2.2 message (empty list: valid)."""
    element = parse_untrusted(xml) if isinstance(xml, bytes) else xml
    return load_schema(Path(schema_dir).resolve()).errors(element)


# --------------------------------------------------------------------------- reading


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _text(element: etree._Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    value = " ".join(element.text.split())
    return value or None


def _parse_date(value: str | None) -> date | None:
    """SEDA's DateType (date, dateTime, gYear, gYearMonth): the day it starts."""
    if value is None:
        return None
    match = re.match(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", value.strip())
    if not match:
        raise ValueError(value)
    year, month, day = match.groups()
    return date(int(year), int(month or 1), int(day or 1))


def _parse_datetime(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _digest_hex(value: str, algorithm: str) -> str | None:
    """A MessageDigest (hexBinary or base64Binary) as lowercase hex, or None if neither."""
    value = value.strip()
    size = hashlib.new(algorithm).digest_size
    if re.fullmatch(r"[0-9A-Fa-f]+", value) and len(value) == 2 * size:
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == size else None


@dataclass
class _DataObject:
    identifier: str
    group: str | None
    uri: str | None
    algorithm: str | None
    digest: str | None
    size: int | None
    mime_type: str | None
    format_id: str | None
    filename: str | None
    physical: bool = False


class _ManifestReader:
    """Reads an ``ArchiveTransfer``: header, data objects and the archive-unit tree, collecting
    every problem in ``reasons``."""

    def __init__(self, root: etree._Element) -> None:
        self.root = root
        self.reasons: list[Reason] = []
        match = _NS_PATTERN.match(etree.QName(root).namespace or "")
        self.version = match.group(1) if match else None
        self.ns = etree.QName(root).namespace or ""
        self._paths: dict[str, str] = {}

    def refuse(self, code: str, message: str, path: str | None = None) -> None:
        self.reasons.append(Reason(code, message, path))

    def _path(self, path: str) -> str:
        qualified = self._paths.get(path)
        if qualified is None:
            qualified = self._paths[path] = path.replace("{}", "{" + self.ns + "}")
        return qualified

    def find(self, element: etree._Element, path: str) -> etree._Element | None:
        return element.find(self._path(path))

    def findall(self, element: etree._Element, path: str) -> list[etree._Element]:
        return list(element.iterfind(self._path(path)))

    def header(self) -> dict[str, Any]:
        root = self.root
        values: dict[str, Any] = {}
        raw_date = _text(self.find(root, "{}Date"))
        if raw_date is None:
            self.refuse("seda.required", "Élément obligatoire absent : Date.")
        else:
            try:
                values["date"] = _parse_datetime(raw_date)
            except ValueError:
                self.refuse("seda.bad_date", f"Date du message invalide : {raw_date!r}.")
        for name, key in (("MessageIdentifier", "message_identifier"),
                          ("ArchivalAgency/{}Identifier", "archival_agency"),
                          ("TransferringAgency/{}Identifier", "transferring_agency")):
            value = _text(self.find(root, "{}" + name))
            if value is None:
                label = name.replace("/{}", "/")
                self.refuse("seda.required", f"Élément obligatoire absent : {label}.")
            values[key] = value
        values["comment"] = _text(self.find(root, "{}Comment"))
        values["archival_agreement"] = _text(self.find(root, "{}ArchivalAgreement"))
        package = self.find(root, "{}DataObjectPackage")
        if package is None:
            self.refuse("seda.required", "Élément obligatoire absent : DataObjectPackage.")
        else:
            for name in ("OriginatingAgencyIdentifier", "SubmissionAgencyIdentifier"):
                values[name] = _text(self.find(package, "{}ManagementMetadata/{}" + name))
        return values

    def data_objects(self) -> tuple[dict[str, _DataObject], dict[str, list[str]]]:
        objects: dict[str, _DataObject] = {}
        groups: dict[str, list[str]] = {}
        package = self.find(self.root, "{}DataObjectPackage")
        if package is None:
            return objects, groups
        for group in self.findall(package, "{}DataObjectGroup"):
            group_id = group.get("id")
            if group_id is None:
                self.refuse("seda.required", "DataObjectGroup sans attribut id.")
                continue
            if group_id in groups:
                self.refuse("seda.duplicate_id", f"Identifiant en double : {group_id}.")
            groups[group_id] = []
            for element in group:
                if not isinstance(element.tag, str):
                    continue
                name = etree.QName(element).localname
                if name in ("BinaryDataObject", "PhysicalDataObject"):
                    self._data_object(element, group_id, objects, groups)
        for element in package:
            if not isinstance(element.tag, str):
                continue
            name = etree.QName(element).localname
            if name in ("BinaryDataObject", "PhysicalDataObject"):
                group_id = (_text(self.find(element, "{}DataObjectGroupReferenceId"))
                            or _text(self.find(element, "{}DataObjectGroupId")))
                if group_id is not None:
                    groups.setdefault(group_id, [])
                self._data_object(element, group_id, objects, groups)
        return objects, groups

    def _data_object(self, element: etree._Element, group_id: str | None,
                     objects: dict[str, _DataObject], groups: dict[str, list[str]]) -> None:
        identifier = element.get("id")
        if identifier is None:
            self.refuse("seda.required", "Objet-données sans attribut id.")
            return
        if identifier in objects or identifier in groups:
            self.refuse("seda.duplicate_id", f"Identifiant en double : {identifier}.")
        if group_id is not None:
            groups[group_id].append(identifier)
        if etree.QName(element).localname == "PhysicalDataObject":
            objects[identifier] = _DataObject(identifier, group_id, None, None, None, None, None,
                                              None, None, physical=True)
            return
        if self.find(element, "{}Attachment") is not None:
            self.refuse("seda.unsupported",
                        f"{identifier} : les objets joints dans le manifeste (Attachment) ne "
                        "sont pas acceptés ; joindre le fichier dans le ZIP (Uri).")
        uri = _text(self.find(element, "{}Uri"))
        if uri is None:
            self.refuse("seda.required", f"{identifier} : Uri absente.")
        digest_element = self.find(element, "{}MessageDigest")
        algorithm = digest_value = None
        if digest_element is None or not _text(digest_element):
            self.refuse("seda.required", f"{identifier} : MessageDigest absent.")
        else:
            declared = digest_element.get("algorithm") or ""
            try:
                algorithm = _normalise(declared)
            except ValueError:
                self.refuse("seda.digest_algorithm",
                            f"{identifier} : algorithme d'empreinte non pris en charge "
                            f"({declared!r}).")
            else:
                if algorithm in _WEAK:
                    self.refuse("seda.digest_algorithm",
                                f"{identifier} : algorithme d'empreinte trop faible ({declared}); "
                                "utiliser SHA-256 ou SHA-512.")
                    algorithm = None
                else:
                    digest_value = _digest_hex(_text(digest_element) or "", algorithm)
                    if digest_value is None:
                        self.refuse("seda.digest_format",
                                    f"{identifier} : empreinte {declared} mal formée.")
        raw_size = _text(self.find(element, "{}Size"))
        size = None
        if raw_size is None:
            self.refuse("seda.required", f"{identifier} : Size absent.")
        elif not raw_size.isdigit():
            self.refuse("seda.bad_size", f"{identifier} : Size invalide ({raw_size!r}).")
        else:
            size = int(raw_size)
        objects[identifier] = _DataObject(
            identifier=identifier, group=group_id, uri=uri, algorithm=algorithm,
            digest=digest_value, size=size,
            mime_type=_text(self.find(element, "{}FormatIdentification/{}MimeType")),
            format_id=_text(self.find(element, "{}FormatIdentification/{}FormatId")),
            filename=_text(self.find(element, "{}FileInfo/{}Filename")))

    def units(self, objects: Mapping[str, _DataObject], groups: Mapping[str, list[str]],
              uri_to_path: Mapping[str, str]) -> tuple[list[PackageUnit], set[str]]:
        """The unit tree and the ids of the data objects it references."""
        referenced: set[str] = set()
        seen: set[str] = set()
        descriptive = self.find(self.root, "{}DataObjectPackage/{}DescriptiveMetadata")
        units = []
        if descriptive is not None:
            for element in self.findall(descriptive, "{}ArchiveUnit"):
                unit = self._unit(element, objects, groups, uri_to_path, referenced, seen)
                if unit is not None:
                    units.append(unit)
        if not units:
            self.refuse("seda.no_unit", "Aucune unité d'archives (ArchiveUnit) décrite.")
        return units, referenced

    def _unit(self, element: etree._Element, objects: Mapping[str, _DataObject],
              groups: Mapping[str, list[str]], uri_to_path: Mapping[str, str],
              referenced: set[str], seen: set[str]) -> PackageUnit | None:
        identifier = element.get("id") or f"(unité {len(seen) + 1})"
        if identifier in seen:
            self.refuse("seda.duplicate_id", f"Identifiant en double : {identifier}.")
        seen.add(identifier)
        if self.find(element, "{}ArchiveUnitRefId") is not None:
            self.refuse("seda.unsupported",
                        f"{identifier} : les références à des unités (ArchiveUnitRefId) ne sont "
                        "pas acceptées.")
            return None
        content = self.find(element, "{}Content")
        if content is None:
            self.refuse("seda.required", f"{identifier} : Content absent.")
            return None
        titles = [_text(t) for t in self.findall(content, "{}Title")]
        title = next((t for t in titles if t), None)
        if title is None:
            self.refuse("seda.required", f"{identifier} : Title absent (Content/Title).")
        dates: dict[str, date | None] = {}
        for name in ("StartDate", "EndDate"):
            raw = _text(self.find(content, "{}" + name))
            try:
                dates[name] = _parse_date(raw)
            except ValueError:
                self.refuse("seda.bad_date", f"{identifier} : {name} invalide ({raw!r}).")
                dates[name] = None
        unit = PackageUnit(
            identifier=identifier, title=title or "",
            description=_text(self.find(content, "{}Description")),
            level=_text(self.find(content, "{}DescriptionLevel")),
            start_date=dates["StartDate"], end_date=dates["EndDate"],
            keywords=[k for k in (_text(e) for e in
                                  self.findall(content, "{}Keyword/{}KeywordContent")) if k],
            classification=_text(self.find(content, "{}FilePlanPosition")),
            language=_text(self.find(content, "{}Language")),
            document_type=_text(self.find(content, "{}DocumentType")),
            originating_agency=_text(self.find(content, "{}OriginatingAgency/{}Identifier")),
            system_id=_text(self.find(content, "{}SystemId")),
            rules=self._rules(identifier, self.find(element, "{}Management")))
        for child in element:
            if not isinstance(child.tag, str):
                continue
            name = etree.QName(child).localname
            if name == "ArchiveUnit":
                sub = self._unit(child, objects, groups, uri_to_path, referenced, seen)
                if sub is not None:
                    unit.children.append(sub)
            elif name == "DataObjectReference":
                self._reference(identifier, child, unit, objects, groups, uri_to_path,
                                referenced)
        return unit

    def _reference(self, identifier: str, element: etree._Element, unit: PackageUnit,
                   objects: Mapping[str, _DataObject], groups: Mapping[str, list[str]],
                   uri_to_path: Mapping[str, str], referenced: set[str]) -> None:
        object_id = _text(self.find(element, "{}DataObjectReferenceId"))
        group_id = _text(self.find(element, "{}DataObjectGroupReferenceId"))
        if object_id is not None:
            targets = [object_id] if object_id in objects else None
        elif group_id is not None:
            targets = groups.get(group_id)
        else:
            targets = None
        if targets is None:
            self.refuse("seda.bad_reference",
                        f"{identifier} : référence à un objet inconnu "
                        f"({object_id or group_id or 'vide'}).")
            return
        for target in targets:
            referenced.add(target)
            uri = objects[target].uri
            if uri is not None and uri in uri_to_path:
                path = uri_to_path[uri]
                if path not in unit.file_refs:
                    unit.file_refs.append(path)

    def _rules(self, identifier: str, management: etree._Element | None) -> list[PackageRule]:
        rules: list[PackageRule] = []
        if management is None:
            return rules
        for kind, name in SEDA_RULE_ELEMENTS.items():
            category = self.find(management, "{}" + name)
            if category is None:
                continue
            final_action = _text(self.find(category, "{}FinalAction"))
            if kind == "appraisal" and final_action not in ("Keep", "Destroy"):
                self.refuse("seda.bad_rule",
                            f"{identifier} : AppraisalRule sans FinalAction Keep ou Destroy.")
            prevent = (_text(self.find(category, "{}PreventInheritance")) or "") in ("true", "1")
            non_rules = [v for v in (_text(e) for e in
                                     self.findall(category, "{}RefNonRuleId")) if v]
            current: PackageRule | None = None
            found = False
            for child in category:
                if not isinstance(child.tag, str):
                    continue
                local = etree.QName(child).localname
                value = _text(child)
                if local == "Rule":
                    if value is None:
                        self.refuse("seda.bad_rule", f"{identifier} : {name}/Rule vide.")
                        continue
                    current = PackageRule(kind=kind, rule_id=value, final_action=final_action,
                                          prevent_inheritance=prevent,
                                          ref_non_rule_ids=non_rules)
                    rules.append(current)
                    found = True
                elif current is not None and local in ("StartDate", "HoldEndDate"):
                    try:
                        parsed = date.fromisoformat(value) if value else None
                    except ValueError:
                        self.refuse("seda.bad_date",
                                    f"{identifier} : {name}/{local} invalide ({value!r}).")
                        continue
                    if local == "StartDate":
                        current.start_date = parsed
                    else:
                        current.hold_end_date = parsed
                elif current is not None and local == "HoldReason":
                    current.hold_reason = value
            if not found and (prevent or non_rules):
                rules.append(PackageRule(kind=kind, rule_id=None, final_action=final_action,
                                         prevent_inheritance=prevent,
                                         ref_non_rule_ids=non_rules))
        return rules


def _normalise(algorithm: str) -> str:
    name = algorithm.lower().replace("-", "").replace("_", "")
    if name.startswith("sha3"):
        name = "sha3_" + name[4:]
    if name not in hashlib.algorithms_guaranteed or name.startswith("shake"):
        raise ValueError(algorithm)
    return name


def _check_manifest(root: etree._Element, schema_dir: Path | None) -> _ManifestReader:
    reader = _ManifestReader(root)
    if etree.QName(root).localname != "ArchiveTransfer" or reader.version is None:
        raise PackageRefused([Reason("seda.not_transfer",
                                     "manifest.xml n'est pas un ArchiveTransfer SEDA 2.x "
                                     f"(racine {root.tag}).")])
    if schema_dir is not None:
        if reader.version != SEDA_VERSION:
            reader.refuse("seda.version",
                          f"SEDA {reader.version} : seuls les bordereaux SEDA {SEDA_VERSION} "
                          "sont validés par ce service.")
        else:
            errors = validate_seda(root, schema_dir)
            for error in errors[:_MAX_SCHEMA_ERRORS]:
                reader.refuse("seda.schema", f"Non conforme au schéma SEDA 2.2 : {error}")
            if len(errors) > _MAX_SCHEMA_ERRORS:
                reader.refuse("seda.schema",
                              f"… et {len(errors) - _MAX_SCHEMA_ERRORS} autres erreurs de schéma.")
    return reader


def read_seda_zip(path: Path, schema_dir: Path | None = None, *, workdir: Path | None = None,
                  limits: ZipLimits | None = None) -> Package:
    """Read and verify a SEDA transfer: a ZIP holding ``manifest.xml`` and the files.

    The ZIP is extracted safely into a new folder of ``workdir`` (default: the system
    temporary folder), with every file's SHA-512 and SHA-256 computed on the way;
    :meth:`Package.cleanup` removes it. Checked, whatever the schema says: ``Date``,
    ``MessageIdentifier``, ``ArchivalAgency`` and ``TransferringAgency`` identifiers, a
    ``DataObjectPackage`` with at least one ``ArchiveUnit``, each unit's ``Title``, each
    ``BinaryDataObject``'s ``Uri`` (a file of the ZIP), ``MessageDigest`` (SHA-256 or
    stronger, hex or base64) and ``Size``, references between units and objects, no file
    left undeclared and no object left unattached.

    Raises:
        PackageRefused: with every reason found.
    """
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    top = Path(tempfile.mkdtemp(prefix="seda-", dir=workdir))
    try:
        extracted = {e.path: e for e in safe_extract(path, top, limits=limits)}
        if MANIFEST not in extracted:
            raise PackageRefused([Reason("seda.no_manifest",
                                         "manifest.xml absent à la racine du ZIP.")])
        root = parse_untrusted(extracted.pop(MANIFEST).source.read_bytes())
        reader = _check_manifest(root, schema_dir)
        header = reader.header()
        objects, groups = reader.data_objects()
        files, uri_to_path = _verify_files(reader, objects, extracted)
        units, referenced = reader.units(objects, groups, uri_to_path)
        for identifier, item in objects.items():
            if identifier not in referenced and not item.physical:
                reader.refuse("seda.orphan_object",
                              f"{identifier} n'est rattaché à aucune unité d'archives.")
        if reader.reasons:
            raise PackageRefused(reader.reasons,
                                 message_identifier=header.get("message_identifier"),
                                 transferring_agency=header.get("transferring_agency"))
    except BaseException:
        shutil.rmtree(top, ignore_errors=True)
        raise
    metadata = {k: v for k, v in {
        "Date": header["date"].isoformat(), "Comment": header.get("comment"),
        "ArchivalAgreement": header.get("archival_agreement"),
        "OriginatingAgencyIdentifier": header.get("OriginatingAgencyIdentifier"),
        "SubmissionAgencyIdentifier": header.get("SubmissionAgencyIdentifier"),
    }.items() if v}
    return Package(kind="seda", identifier=header["message_identifier"],
                   version=f"SEDA {reader.version}", files=files, units=units, root=top,
                   metadata=metadata, archival_agency=header["archival_agency"],
                   transferring_agency=header["transferring_agency"], date=header["date"],
                   owned_root=True)


def _verify_files(reader: _ManifestReader, objects: Mapping[str, _DataObject],
                  extracted: Mapping[str, ExtractedFile]
                  ) -> tuple[list[PackageFile], dict[str, str]]:
    files: list[PackageFile] = []
    uri_to_path: dict[str, str] = {}
    used: set[str] = set()
    listed: set[str] = set()
    for item in objects.values():
        if item.physical or item.uri is None:
            continue
        candidates = [item.uri, unquote(item.uri)]
        candidates += [c[2:] for c in candidates if c.startswith("./")]
        found = next((extracted[c] for c in candidates if c in extracted), None)
        if found is None:
            reader.refuse("seda.missing_file",
                          f"{item.identifier} : fichier « {item.uri} » absent du ZIP.", item.uri)
            continue
        uri_to_path[item.uri] = found.path
        used.add(found.path)
        if item.size is not None and item.size != found.size:
            reader.refuse("seda.size_mismatch",
                          f"{item.identifier} : taille {found.size} octets, {item.size} "
                          "déclarés.", found.path)
        if item.algorithm is not None and item.digest is not None:
            actual = found.digests.get(item.algorithm)
            if actual is None:
                with found.source.open("rb") as stream:
                    actual = hashlib.file_digest(stream, item.algorithm).hexdigest()
            if actual != item.digest:
                reader.refuse("seda.digest_mismatch",
                              f"{item.identifier} : empreinte {item.algorithm} incorrecte pour "
                              f"« {found.path} » (déclarée {item.digest}, calculée {actual}).",
                              found.path)
        if found.path in listed:
            continue
        listed.add(found.path)
        digests = dict(found.digests)
        files.append(PackageFile(path=found.path, size=found.size, digests=digests,
                                 source=found.source,
                                 declared_format=item.format_id or item.mime_type,
                                 mime_type=item.mime_type, identifier=item.identifier,
                                 filename=item.filename))
    for name in sorted(set(extracted) - used):
        reader.refuse("seda.unexpected_file",
                      f"Fichier « {name} » présent dans le ZIP mais non décrit dans le "
                      "manifeste.", name)
    return files, uri_to_path


def units_from_manifest(xml: bytes, payload_paths: set[str]) -> list[PackageUnit]:
    """The archive units of an exported bag's SEDA tag file, whose ``Uri`` values are payload
    paths of the bag (``data/…``). Raises :class:`PackageRefused`."""
    root = parse_untrusted(xml)
    reader = _check_manifest(root, None)
    objects, groups = reader.data_objects()
    uri_to_path = {o.uri: o.uri for o in objects.values() if o.uri in payload_paths}
    for item in objects.values():
        if item.uri is not None and item.uri not in payload_paths:
            reader.refuse("bagit.seda_mismatch",
                          f"{SEDA_TAG_FILE} : {item.uri} n'est pas un fichier du sac.")
    units, _ = reader.units(objects, groups, uri_to_path)
    if reader.reasons:
        raise PackageRefused(reader.reasons)
    return units


# --------------------------------------------------------------------------- writing


class _Writer:
    def __init__(self) -> None:
        self.nsmap = {None: NS, "xlink": XLINK}

    def root(self, name: str) -> etree._Element:
        return etree.Element(_q(NS, name), nsmap=self.nsmap)  # type: ignore[dict-item]

    @staticmethod
    def add(parent: etree._Element, name: str, text: str | None = None,
            **attrs: str) -> etree._Element:
        element = etree.SubElement(parent, _q(NS, name), attrs)
        if text is not None:
            element.text = text
        return element

    def organisation(self, parent: etree._Element, name: str, identifier: str) -> None:
        self.add(self.add(parent, name), "Identifier", identifier)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _serialise(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8",
                                pretty_print=True))


def _ids(units: Sequence[PackageUnit]) -> Iterator[tuple[PackageUnit, str]]:
    taken: set[str] = set()
    counter = 0
    stack = list(units)
    order = []
    while stack:
        unit = stack.pop(0)
        order.append(unit)
        stack[0:0] = unit.children
    for unit in order:
        counter += 1
        candidate = unit.identifier if _NCNAME.fullmatch(unit.identifier or "") else None
        if candidate is None or candidate in taken:
            candidate = f"AU{counter}"
            while candidate in taken:
                counter += 1
                candidate = f"AU{counter}"
        taken.add(candidate)
        yield unit, candidate


def _write_rules(w: _Writer, parent: etree._Element, rules: Sequence[PackageRule]) -> None:
    if not rules:
        return
    management = w.add(parent, "Management")
    for kind, name in SEDA_RULE_ELEMENTS.items():
        of_kind = [r for r in rules if r.kind == kind]
        if not of_kind:
            continue
        category = w.add(management, name)
        for rule in of_kind:
            if rule.rule_id is None:
                continue
            w.add(category, "Rule", rule.rule_id)
            if rule.start_date is not None:
                w.add(category, "StartDate", rule.start_date.isoformat())
            if kind == "hold":
                if rule.hold_end_date is not None:
                    w.add(category, "HoldEndDate", rule.hold_end_date.isoformat())
                if rule.hold_reason:
                    w.add(category, "HoldReason", rule.hold_reason)
        if any(r.prevent_inheritance for r in of_kind):
            w.add(category, "PreventInheritance", "true")
        else:
            for ref in dict.fromkeys(x for r in of_kind for x in r.ref_non_rule_ids):
                w.add(category, "RefNonRuleId", ref)
        if kind in ("appraisal", "storage"):
            default = "Keep" if kind == "appraisal" else "Copy"
            action = next((r.final_action for r in of_kind if r.final_action), default)
            w.add(category, "FinalAction", action)


def _write_unit(w: _Writer, parent: etree._Element, unit: PackageUnit, ids: Mapping[int, str],
                group_of: Mapping[str, str]) -> None:
    element = w.add(parent, "ArchiveUnit", id=ids[id(unit)])
    _write_rules(w, element, unit.rules)
    content = w.add(element, "Content")
    if unit.level in _LEVELS:
        w.add(content, "DescriptionLevel", unit.level)
    w.add(content, "Title", unit.title or "(sans titre)")
    if unit.classification:
        w.add(content, "FilePlanPosition", unit.classification)
    if unit.system_id:
        w.add(content, "SystemId", unit.system_id)
    if unit.description:
        w.add(content, "Description", unit.description)
    if unit.document_type:
        w.add(content, "DocumentType", unit.document_type)
    if unit.language and _LANGUAGE.fullmatch(unit.language):
        w.add(content, "Language", unit.language)
    for keyword in unit.keywords:
        w.add(w.add(content, "Keyword"), "KeywordContent", keyword)
    if unit.originating_agency:
        w.organisation(content, "OriginatingAgency", unit.originating_agency)
    if unit.start_date:
        w.add(content, "StartDate", unit.start_date.isoformat())
    if unit.end_date:
        w.add(content, "EndDate", unit.end_date.isoformat())
    for child in unit.children:
        _write_unit(w, element, child, ids, group_of)
    for ref in unit.file_refs:
        reference = w.add(element, "DataObjectReference")
        w.add(reference, "DataObjectGroupReferenceId", group_of[ref])


def _transfer(units: Sequence[PackageUnit], files: Sequence[PackageFile], *,
              message_identifier: str, archival_agency: str, transferring_agency: str,
              date: datetime | None, comment: str | None, archival_agreement: str | None,
              originating_agency: str | None, submission_agency: str | None) -> bytes:
    w = _Writer()
    root = w.root("ArchiveTransfer")
    if comment:
        w.add(root, "Comment", comment)
    w.add(root, "Date", _iso(date or datetime.now(UTC)))
    w.add(root, "MessageIdentifier", message_identifier)
    if archival_agreement:
        w.add(root, "ArchivalAgreement", archival_agreement)
    w.add(root, "CodeListVersions")
    package = w.add(root, "DataObjectPackage")
    group_of: dict[str, str] = {}
    for number, item in enumerate(files, start=1):
        if item.path in group_of:
            raise ValueError(f"duplicate file path: {item.path!r}")
        if "sha512" not in item.digests:
            raise ValueError(f"{item.path}: a SHA-512 digest is required")
        group_id = f"GOT{number}"
        group_of[item.path] = group_id
        group = w.add(package, "DataObjectGroup", id=group_id)
        obj = w.add(group, "BinaryDataObject", id=f"BDO{number}")
        w.add(obj, "DataObjectVersion", "BinaryMaster_1")
        w.add(obj, "Uri", item.path)
        w.add(obj, "MessageDigest", item.digests["sha512"], algorithm="SHA-512")
        w.add(obj, "Size", str(item.size))
        formats = []
        if item.mime_type:
            formats.append(("MimeType", item.mime_type))
        fmt = item.declared_format
        if fmt and re.fullmatch(r"(x-)?fmt/\d+", fmt):
            formats.append(("FormatId", fmt))
        if formats:
            identification = w.add(obj, "FormatIdentification")
            for name, value in formats:
                w.add(identification, name, value)
        w.add(w.add(obj, "FileInfo"), "Filename", item.name)
    descriptive = w.add(package, "DescriptiveMetadata")
    ids = {id(unit): xml_id for unit, xml_id in _ids(units)}
    for unit in units:
        for node in unit.walk():
            for ref in node.file_refs:
                if ref not in group_of:
                    raise ValueError(f"unit {node.identifier!r} refers to unknown file {ref!r}")
        _write_unit(w, descriptive, unit, ids, group_of)
    management = w.add(package, "ManagementMetadata")
    if originating_agency:
        w.add(management, "OriginatingAgencyIdentifier", originating_agency)
    if submission_agency:
        w.add(management, "SubmissionAgencyIdentifier", submission_agency)
    w.organisation(root, "ArchivalAgency", archival_agency)
    w.organisation(root, "TransferringAgency", transferring_agency)
    return _serialise(root)


def seda_manifest_for_export(units: Sequence[PackageUnit], files: Sequence[PackageFile], *,
                             message_identifier: str, archival_agency: str,
                             transferring_agency: str, date: datetime | None = None,
                             comment: str | None = None, archival_agreement: str | None = None,
                             originating_agency: str | None = None,
                             submission_agency: str | None = None) -> bytes:
    """A SEDA 2.2 ``ArchiveTransfer`` describing ``units`` (with their children, rules and
    descriptive metadata) and their ``files``, for an export or a restitution.

    Each file's ``path`` becomes its ``Uri`` (use the paths it has in the export, e.g.
    ``data/…`` in a bag) and it needs a ``sha512`` digest; units refer to files by those
    paths (``file_refs``). Unit ids that are not XML names (ARK identifiers) are replaced by
    ``AU<n>``; put the stable identifier in ``system_id`` (written as ``Content/SystemId``).
    For an export, the archival agency is usually both the ``ArchivalAgency`` and the
    ``TransferringAgency``, and the producer the ``originating_agency``.
    """
    return _transfer(units, files, message_identifier=message_identifier,
                     archival_agency=archival_agency, transferring_agency=transferring_agency,
                     date=date, comment=comment, archival_agreement=archival_agreement,
                     originating_agency=originating_agency, submission_agency=submission_agency)


def build_seda_zip(dest: Path, documents: Mapping[str, bytes], units: Sequence[PackageUnit], *,
                   message_identifier: str = "MSG-1", archival_agency: str = "CTM",
                   transferring_agency: str = "COMMUNE", date: datetime | None = None,
                   comment: str | None = None, originating_agency: str | None = None,
                   manifest: bytes | None = None) -> Path:
    """Write a valid SEDA 2.2 transfer ZIP at ``dest`` (tests and demo data).

    ``documents`` maps each file's path in the ZIP (e.g. ``content/deliberation.pdf``) to its
    bytes; units refer to them by that path. ``manifest`` replaces the generated one (to build
    deliberately broken transfers).
    """
    files = [PackageFile(path=name, size=len(data),
                         digests={"sha512": hashlib.sha512(data).hexdigest()})
             for name, data in documents.items()]
    xml = manifest if manifest is not None else _transfer(
        units, files, message_identifier=message_identifier, archival_agency=archival_agency,
        transferring_agency=transferring_agency, date=date, comment=comment,
        archival_agreement=None, originating_agency=originating_agency,
        submission_agency=None)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, xml)
        for name, data in documents.items():
            archive.writestr(name, data)
    return dest


# --------------------------------------------------------------------------- replies


def seda_reply(message_identifier: str, *, archival_agency: str, transferring_agency: str,
               accepted: bool, reasons: Sequence[Reason | str] = (),
               unit_ids: Mapping[str, str] | Sequence[str] = (),
               reply_identifier: str | None = None, date: datetime | None = None,
               grant_date: datetime | None = None, comment: str | None = None) -> bytes:
    """The ``ArchiveTransferReply`` (accusé de réception) to a transfer.

    Args:
        message_identifier: the transfer's ``MessageIdentifier`` (→ ``MessageRequestIdentifier``).
        accepted: ``ReplyCode`` ``OK`` (accepted) or ``KO`` (refused).
        reasons: refusal reasons, one ``Operation/Event`` each (``Outcome`` ``KO``).
        unit_ids: the stable identifiers given to the archive units, by the unit's id in the
            transfer (or a list); written as ``ArchiveUnit/Content/SystemId``.
        reply_identifier: this reply's ``MessageIdentifier`` (default: derived from the
            request's).
        grant_date: when the archives were taken in charge (default: now, if accepted).
    """
    now = date or datetime.now(UTC)
    w = _Writer()
    root = w.root("ArchiveTransferReply")
    if comment:
        w.add(root, "Comment", comment)
    w.add(root, "Date", _iso(now))
    w.add(root, "MessageIdentifier", reply_identifier or f"ATR-{message_identifier}")
    w.add(root, "CodeListVersions")
    mapping = (dict(unit_ids) if isinstance(unit_ids, Mapping)
               else {f"AU{n}": v for n, v in enumerate(unit_ids, start=1)})
    if mapping:
        package = w.add(root, "DataObjectPackage")
        descriptive = w.add(package, "DescriptiveMetadata")
        for number, (unit_ref, system_id) in enumerate(mapping.items(), start=1):
            xml_id = unit_ref if _NCNAME.fullmatch(unit_ref) else f"AU{number}"
            unit = w.add(descriptive, "ArchiveUnit", id=xml_id)
            w.add(w.add(unit, "Content"), "SystemId", system_id)
        w.add(package, "ManagementMetadata")
    w.add(root, "ReplyCode", "OK" if accepted else "KO")
    operation = w.add(root, "Operation")
    event = w.add(operation, "Event")
    w.add(event, "EventTypeCode", "ArchiveTransfer")
    w.add(event, "EventType", "Versement")
    w.add(event, "EventDateTime", _iso(now))
    w.add(event, "Outcome", "OK" if accepted else "KO")
    for reason in reasons:
        code = reason.code if isinstance(reason, Reason) else "KO"
        message = reason.message if isinstance(reason, Reason) else str(reason)
        event = w.add(operation, "Event")
        w.add(event, "EventTypeCode", "CHECK")
        w.add(event, "EventType", "Contrôle du versement")
        w.add(event, "EventDateTime", _iso(now))
        w.add(event, "EventDetail", message)
        w.add(event, "Outcome", "KO")
        w.add(event, "OutcomeDetail", code)
    w.add(root, "MessageRequestIdentifier", message_identifier)
    if accepted:
        w.add(root, "GrantDate", _iso(grant_date or now))
    w.organisation(root, "ArchivalAgency", archival_agency)
    w.organisation(root, "TransferringAgency", transferring_agency)
    return _serialise(root)


__all__ = [
    "SEDA_TAG_FILE",
    "MANIFEST",
    "NS",
    "SEDA_VERSION",
    "SedaSchema",
    "build_seda_zip",
    "load_schema",
    "parse_untrusted",
    "read_seda_zip",
    "safe_parser",
    "seda_manifest_for_export",
    "seda_reply",
    "units_from_manifest",
    "validate_seda",
]
