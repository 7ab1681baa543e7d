"""BagIt bags (RFC 8493): verified reading with the ``bagit`` library, and writing exports.

Reading runs each of ``bagit``'s validation stages separately so that *every* reason to
refuse a bag is reported (wrong digest, missing file, unexpected file, bad ``bag-info.txt``),
not only the first stage that fails.

Writing does not use ``bagit.make_bag``: it changes the process's working directory
(``os.chdir``), which is unsafe in a threaded server, moves files in place, and writes
BagIt 0.97. :func:`write_bagit` streams each payload file once (copy and SHA-512 together)
and writes a BagIt 1.0 bag; the tests check every bag it writes with ``bagit`` itself.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shutil
import tempfile
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import BinaryIO

import bagit

from archivage.packages.model import Package, PackageFile, PackageRefused, PackageUnit, Reason
from archivage.packages.safezip import ZipLimits, safe_extract
from archivage.packages.seda import SEDA_TAG_FILE, SEDA_VERSION, units_from_manifest

log = logging.getLogger("archivage.packages")

BAGIT_VERSION = "1.0"
_CHUNK = 1024 * 1024
_RESERVED = {"bagit.txt", "bag-info.txt", "fetch.txt"}
_TAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

FileSource = Path | Callable[[], BinaryIO]
#: A payload entry: ``(path, source)`` or ``(path, source, expected SHA-512 hex)``.
PayloadEntry = tuple[str, FileSource] | tuple[str, FileSource, str]


class DigestMismatch(Exception):
    """A payload file's bytes do not match the SHA-512 the caller expected (a damaged copy):
    nothing was written. Repair the copy, then export again."""

    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(f"{path}: expected sha512 {expected}, read {actual}")
        self.path = path
        self.expected = expected
        self.actual = actual


# --------------------------------------------------------------------------- reading


def _refuse_unsafe_tree(root: Path) -> list[Reason]:
    reasons = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                rel = path.relative_to(root).as_posix()
                reasons.append(Reason("bagit.symlink", f"Lien symbolique refusé : {rel}.", rel))
    return reasons


def _bag_root(folder: Path) -> Path | None:
    if (folder / "bagit.txt").is_file():
        return folder
    children = [c for c in folder.iterdir() if c.is_dir()]
    files = [c for c in folder.iterdir() if not c.is_dir()]
    if len(children) == 1 and not files and (children[0] / "bagit.txt").is_file():
        return children[0]
    return None


def _first(value: str | list[str] | None) -> str | None:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _bag_info_problems(info: Mapping[str, str | list[str]]) -> list[Reason]:
    """RFC 8493 §2.2.2 reserved metadata that must appear once and be well formed."""
    reasons = []
    for tag in ("Payload-Oxum", "Bagging-Date", "Bag-Size", "Bag-Count"):
        if isinstance(info.get(tag), list):
            reasons.append(Reason("bagit.bag_info", f"bag-info.txt : « {tag} » est répété."))
    oxum = _first(info.get("Payload-Oxum"))
    if oxum is not None and not re.fullmatch(r"\d+\.\d+", oxum):
        reasons.append(Reason("bagit.bag_info",
                              f"bag-info.txt : Payload-Oxum mal formé ({oxum!r})."))
    bagging_date = _first(info.get("Bagging-Date"))
    if bagging_date is not None:
        try:
            date.fromisoformat(bagging_date)
        except ValueError:
            reasons.append(Reason("bagit.bag_info",
                                  f"bag-info.txt : Bagging-Date invalide ({bagging_date!r})."))
    return reasons


def _validation_reasons(bag: bagit.Bag) -> list[Reason]:
    """Every failure of bagit's validation stages (structure, bagit.txt, fetch, bag-info,
    Payload-Oxum, completeness, digests)."""
    reasons: list[Reason] = []
    for stage in (bag._validate_structure, bag._validate_bagittxt):  # noqa: SLF001
        try:
            stage()
        except bagit.BagError as exc:
            reasons.append(Reason("bagit.structure", f"Structure du sac invalide : {exc}."))
    if reasons:
        return reasons
    try:
        if list(bag.fetch_entries()):
            reasons.append(Reason("bagit.fetch",
                                  "fetch.txt n'est pas accepté : le sac doit contenir ses "
                                  "fichiers."))
    except (bagit.BagError, ValueError) as exc:
        reasons.append(Reason("bagit.fetch", f"fetch.txt invalide : {exc}."))
    info_problems = _bag_info_problems(bag.info)
    reasons.extend(info_problems)
    if not info_problems:
        try:
            bag._validate_oxum()  # noqa: SLF001
        except bagit.BagError as exc:
            reasons.append(Reason("bagit.oxum", f"bag-info.txt : {exc}"))
    missing: set[str] = set()
    try:
        bag._validate_completeness()  # noqa: SLF001
    except bagit.BagValidationError as exc:
        for detail in exc.details:
            path = Path(detail.path).as_posix()
            if isinstance(detail, bagit.FileMissing):
                missing.add(detail.path)
                reasons.append(Reason("bagit.missing_file",
                                      f"Fichier manquant : {path} (déclaré dans le manifeste).",
                                      path))
            elif isinstance(detail, bagit.UnexpectedFile):
                reasons.append(Reason("bagit.unexpected_file",
                                      f"Fichier non déclaré dans le manifeste : {path}.", path))
            else:
                reasons.append(Reason("bagit.invalid", str(detail), path))
    try:
        bag._validate_entries(1)  # noqa: SLF001
    except bagit.BagValidationError as exc:
        for detail in exc.details:
            if detail.path in missing:
                continue
            path = Path(detail.path).as_posix()
            if isinstance(detail, bagit.ChecksumMismatch):
                reasons.append(Reason(
                    "bagit.digest_mismatch",
                    f"Empreinte {detail.algorithm} incorrecte pour {path} : attendue "
                    f"{detail.expected}, calculée {detail.found}.", path))
            else:
                reasons.append(Reason("bagit.invalid", str(detail), path))
    return reasons


def _digests(path: Path, algorithms: Iterable[str]) -> dict[str, str]:
    hashes = {a: hashlib.new(a) for a in algorithms}
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            for h in hashes.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashes.items()}


def read_bagit(source: Path, *, workdir: Path | None = None,
               limits: ZipLimits | None = None) -> Package:
    """Read and verify a bag: a folder, or a ZIP holding the bag (at its root or in one folder).

    A ZIP is extracted safely (see :mod:`archivage.packages.safezip`) into a new folder of
    ``workdir`` (default: the system temporary folder); :meth:`Package.cleanup` removes it.
    Files get verified ``sha512`` and ``sha256`` digests (taken from the manifests when present,
    computed otherwise). When the bag carries a SEDA manifest tag file
    (``metadata/manifest.xml``, as :func:`write_bagit` exports do), its archive units describe
    the payload; otherwise the bag is one unit described by ``bag-info.txt`` (``Title``,
    ``External-Description``, ``External-Identifier``, ``Keywords``).

    Raises:
        PackageRefused: with every reason found.
    """
    owned = False
    if source.is_dir():
        root: Path | None = _bag_root(source)
        top = source
    else:
        if workdir is not None:
            workdir.mkdir(parents=True, exist_ok=True)
        top = Path(tempfile.mkdtemp(prefix="bag-", dir=workdir))
        owned = True
        try:
            safe_extract(source, top, limits=limits, algorithms=())
        except BaseException:
            shutil.rmtree(top, ignore_errors=True)
            raise
        root = _bag_root(top)
    try:
        if root is None:
            raise PackageRefused([Reason("bagit.structure",
                                         "bagit.txt introuvable : ce n'est pas un sac BagIt.")])
        reasons = _refuse_unsafe_tree(root)
        if reasons:
            raise PackageRefused(reasons)
        try:
            bag = bagit.Bag(str(root))
        except bagit.BagError as exc:
            raise PackageRefused([Reason("bagit.invalid", f"Sac BagIt invalide : {exc}.")]
                                 ) from None
        reasons = _validation_reasons(bag)
        if reasons:
            raise PackageRefused(reasons)
        package = _package_of(bag, root, top, owned)
    except BaseException:
        if owned:
            shutil.rmtree(top, ignore_errors=True)
        raise
    return package


def _package_of(bag: bagit.Bag, root: Path, top: Path, owned: bool) -> Package:
    files = []
    for entry, hashes in sorted(bag.payload_entries().items()):
        fs_name = bag.normalized_filesystem_names.get(bagit.normalize_unicode(entry), entry)
        path = root / fs_name
        digests = {a: h.lower() for a, h in hashes.items() if a in ("sha512", "sha256")}
        missing = [a for a in ("sha512", "sha256") if a not in digests]
        if missing:
            digests.update(_digests(path, missing))
        files.append(PackageFile(path=Path(entry).as_posix(), size=path.stat().st_size,
                                 digests=digests, source=path))
    info = {k: "; ".join(v) if isinstance(v, list) else v for k, v in bag.info.items()}
    identifier = info.get("External-Identifier")
    units: list[PackageUnit]
    seda = root / SEDA_TAG_FILE
    if seda.is_file() and SEDA_TAG_FILE in {Path(p).as_posix() for p in bag.tagfile_entries()}:
        units = units_from_manifest(seda.read_bytes(), {f.path for f in files})
    else:
        title = (info.get("Title") or info.get("External-Description")
                 or info.get("Internal-Sender-Description") or root.name)
        keywords = [k.strip() for k in (info.get("Keywords") or "").split(",") if k.strip()]
        units = [PackageUnit(identifier=identifier or "bag", title=title,
                             description=info.get("External-Description"), keywords=keywords,
                             file_refs=[f.path for f in files])]
    version = ".".join(str(n) for n in bag.version_info)
    return Package(kind="bagit", identifier=identifier, version=f"BagIt {version}",
                   files=files, units=units, root=top if owned else root, metadata=info,
                   owned_root=owned)


# --------------------------------------------------------------------------- writing


def _check_relative(path: str, what: str) -> str:
    parts = path.split("/")
    if (not path or path.startswith("/") or "\\" in path
            or any(p in ("", ".", "..") for p in parts)
            or any(ord(c) < 32 or ord(c) == 127 for c in path)):
        raise ValueError(f"unsafe {what} path: {path!r}")
    return unicodedata.normalize("NFC", path)


def _encode_manifest_path(path: str) -> str:
    """RFC 8493 §2.1.3: percent-encode CR, LF and ``%`` in manifest file paths."""
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _tag_line(name: str, value: str) -> str:
    if not _TAG_NAME.fullmatch(name):
        raise ValueError(f"invalid bag-info tag name: {name!r}")
    return f"{name}: {' '.join(str(value).split())}\n"


def _copy_digest(source: FileSource, dest: Path) -> tuple[int, str]:
    digest = hashlib.sha512()
    size = 0
    stream = source.open("rb") if isinstance(source, Path) else source()
    with stream, dest.open("xb") as out:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def write_bagit(dest: Path, files: Iterable[PayloadEntry],
                metadata: Mapping[str, str | Sequence[str]],
                extra_tag_files: Mapping[str, bytes] | None = None, *,
                seda_version: str = SEDA_VERSION) -> Path:
    """Write a BagIt 1.0 bag at ``dest`` (which must not exist) and return ``dest``.

    Args:
        files: ``(payload path, source)`` pairs, or ``(payload path, source, sha512)``
            triples; the path is relative to ``data/``; the source is a file path or a callable
            opening a binary stream (``lambda: blobs.open(key)``); with a SHA-512, the bytes
            read are checked against it and :class:`DigestMismatch` is raised (and nothing
            written) when they differ.
        metadata: ``bag-info.txt`` tags (e.g. ``External-Identifier``, ``Title``,
            ``Source-Organization``); values are folded onto one line.
        extra_tag_files: tag files by relative path (e.g. ``metadata/manifest.xml`` from
            :func:`~archivage.packages.seda.seda_manifest_for_export`, a logbook extract).

    The bag gets ``manifest-sha512.txt``, ``tagmanifest-sha512.txt`` and ``bag-info.txt``
    with ``Bagging-Date``, ``Payload-Oxum``, ``Bag-Software-Agent`` and ``SEDA-Version``. It is
    written in a sibling temporary folder and renamed into place: ``dest`` appears complete or
    not at all.
    """
    if dest.exists():
        raise FileExistsError(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")
    tmp.mkdir()
    try:
        payload_lines: list[str] = []
        total = count = 0
        seen: set[str] = set()
        for entry in files:
            relative, source = entry[0], entry[1]
            expected = entry[2].lower() if len(entry) == 3 else None
            relative = _check_relative(relative, "payload")
            if relative.casefold() in seen:
                raise ValueError(f"duplicate payload path: {relative!r}")
            seen.add(relative.casefold())
            target = tmp / "data" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            size, digest = _copy_digest(source, target)
            if expected is not None and digest != expected:
                raise DigestMismatch(relative, expected, digest)
            payload_lines.append(f"{digest}  {_encode_manifest_path('data/' + relative)}\n")
            total += size
            count += 1
        (tmp / "data").mkdir(exist_ok=True)
        tags: dict[str, bytes] = {
            "bagit.txt": (f"BagIt-Version: {BAGIT_VERSION}\n"
                          "Tag-File-Character-Encoding: UTF-8\n").encode(),
            "manifest-sha512.txt": "".join(sorted(payload_lines)).encode(),
        }
        info = dict(metadata)
        info.setdefault("Bagging-Date", datetime.now(UTC).date().isoformat())
        info["Payload-Oxum"] = f"{total}.{count}"
        info.setdefault("Bag-Software-Agent", "Martinique Connect (archivage)")
        info["SEDA-Version"] = seda_version
        lines = []
        for name in sorted(info):
            values = info[name]
            for value in [values] if isinstance(values, str) else values:
                lines.append(_tag_line(name, value))
        tags["bag-info.txt"] = "".join(lines).encode()
        for name, content in (extra_tag_files or {}).items():
            name = _check_relative(name, "tag file")
            if (name in _RESERVED or name.split("/")[0] == "data"
                    or re.fullmatch(r"(tag)?manifest-\w+\.txt", name)):
                raise ValueError(f"reserved tag file name: {name!r}")
            tags[name] = content
        for name, content in tags.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        tag_lines = sorted(f"{hashlib.sha512(c).hexdigest()}  {_encode_manifest_path(n)}\n"
                           for n, c in tags.items())
        (tmp / "tagmanifest-sha512.txt").write_bytes("".join(tag_lines).encode())
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def zip_bag(bag_dir: Path, zip_path: Path) -> Path:
    """Zip a bag under one top-level folder named after it (the usual serialisation, RFC 8493
    §4.2); written to a temporary name then renamed. Returns ``zip_path``."""
    tmp = zip_path.with_name(f".{zip_path.name}.{secrets.token_hex(6)}.part")
    try:
        with zipfile.ZipFile(tmp, "x", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(bag_dir.rglob("*")):
                if path.is_file():
                    arcname = f"{bag_dir.name}/{path.relative_to(bag_dir).as_posix()}"
                    archive.write(path, arcname)
        os.replace(tmp, zip_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return zip_path
