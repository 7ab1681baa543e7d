"""Extracting untrusted ZIP files: no zip slip, no links, no zip bomb.

Every entry is inspected before anything is written, and every problem is reported (not only
the first). Then the entries are streamed to disk with their digests computed on the way, while
the real number of bytes written is counted against the limits (the sizes a ZIP declares are
not trusted).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import unicodedata
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from archivage.packages.model import PackageRefused, Reason

_CHUNK = 1024 * 1024
_SUPPORTED = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


@dataclass(frozen=True)
class ZipLimits:
    """Limits on an uploaded archive.

    Attributes:
        max_entries: number of entries (files and folders).
        max_total_bytes: total uncompressed size.
        max_ratio: uncompressed/compressed ratio allowed for an entry (and for the whole
            archive) once it exceeds ``ratio_floor`` bytes; real documents stay far below 100.
        ratio_floor: entries smaller than this are not ratio-checked (tiny text compresses well).
        max_path_bytes: length of an entry name, in UTF-8 bytes.
    """

    max_entries: int = 20_000
    max_total_bytes: int = 16 * 1024**3
    max_ratio: float = 200.0
    ratio_floor: int = 1024 * 1024
    max_path_bytes: int = 1024


@dataclass(frozen=True)
class ExtractedFile:
    """One regular file written by :func:`safe_extract`."""

    path: str
    source: Path
    size: int
    digests: dict[str, str]


def _name_problems(name: str) -> list[str]:
    problems = []
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        problems.append("caractère de contrôle dans le nom")
    if "\\" in name:
        problems.append("barre oblique inverse dans le nom")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        problems.append("chemin absolu")
    parts = name.rstrip("/").split("/")
    if ".." in parts:
        problems.append("remontée de dossier (..)")
    if any(p in ("", ".") for p in parts):
        problems.append("segment de chemin vide")
    return problems


def inspect_zip(archive: zipfile.ZipFile, limits: ZipLimits,
                archive_size: int) -> list[Reason]:
    """Every reason to refuse ``archive`` before extracting it (empty when it is acceptable)."""
    reasons: list[Reason] = []
    entries = archive.infolist()
    if len(entries) > limits.max_entries:
        reasons.append(Reason("zip.too_many_entries",
                              f"L'archive contient {len(entries)} entrées "
                              f"(maximum {limits.max_entries})."))
    total = 0
    seen: dict[str, str] = {}
    for info in entries:
        name = info.filename
        for problem in _name_problems(name):
            reasons.append(Reason("zip.unsafe_path", f"Entrée « {name!r} » refusée : {problem}.",
                                  name))
        if len(name.encode()) > limits.max_path_bytes:
            reasons.append(Reason("zip.path_too_long", f"Nom d'entrée trop long : {name[:80]}…",
                                  name))
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            reasons.append(Reason("zip.symlink", f"Lien symbolique refusé : « {name} ».", name))
        elif kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            reasons.append(Reason("zip.special_file", f"Fichier spécial refusé : « {name} ».",
                                  name))
        if info.flag_bits & 0x1:
            reasons.append(Reason("zip.encrypted", f"Entrée chiffrée refusée : « {name} ».",
                                  name))
        if info.compress_type not in _SUPPORTED:
            reasons.append(Reason("zip.compression",
                                  f"Méthode de compression non prise en charge : « {name} ».",
                                  name))
        folded = unicodedata.normalize("NFC", name.rstrip("/")).casefold()
        if folded in seen:
            reasons.append(Reason("zip.duplicate",
                                  f"Entrée en double : « {name} » (et « {seen[folded]} »).",
                                  name))
        seen[folded] = name
        if info.is_dir():
            continue
        total += info.file_size
        if (info.file_size > limits.ratio_floor
                and info.file_size > limits.max_ratio * max(info.compress_size, 1)):
            reasons.append(Reason("zip.bomb",
                                  f"Taux de compression suspect pour « {name} » "
                                  f"({info.file_size} octets pour {info.compress_size}).", name))
    if total > limits.max_total_bytes:
        reasons.append(Reason("zip.too_large",
                              f"Taille décompressée totale {total} octets "
                              f"(maximum {limits.max_total_bytes})."))
    if total > limits.ratio_floor and total > limits.max_ratio * max(archive_size, 1):
        reasons.append(Reason("zip.bomb",
                              f"Taux de compression global suspect ({total} octets décompressés "
                              f"pour une archive de {archive_size})."))
    return reasons


def safe_extract(zip_path: Path, dest: Path, *, limits: ZipLimits | None = None,
                 algorithms: Sequence[str] = ("sha512", "sha256")) -> list[ExtractedFile]:
    """Extract ``zip_path`` into ``dest`` (created, must be empty) and digest every file.

    Raises:
        PackageRefused: not a ZIP, unsafe entries, limits passed (nothing is left in ``dest``
            in that case; the caller removes ``dest`` itself).
    """
    limits = limits or ZipLimits()
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise PackageRefused([Reason("zip.invalid",
                                     f"Le fichier n'est pas une archive ZIP lisible ({exc}).")]
                             ) from None
    with archive:
        reasons = inspect_zip(archive, limits, zip_path.stat().st_size)
        if reasons:
            raise PackageRefused(reasons)
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        extracted: list[ExtractedFile] = []
        written = 0
        try:
            for info in archive.infolist():
                target = root / info.filename
                # Defence in depth after inspect_zip (no "..", no absolute path, no link).
                if not os.path.normpath(target).startswith(f"{root}{os.sep}"):
                    raise PackageRefused([Reason("zip.unsafe_path",
                                                 f"Entrée hors du dossier : {info.filename}")])
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                hashes = {a: hashlib.new(a) for a in algorithms}
                size = 0
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with archive.open(info) as src, os.fdopen(fd, "wb") as out:
                    while chunk := src.read(_CHUNK):
                        size += len(chunk)
                        written += len(chunk)
                        if size > info.file_size or written > limits.max_total_bytes:
                            raise PackageRefused([Reason(
                                "zip.bomb", f"« {info.filename} » dépasse la taille déclarée "
                                "ou la taille totale autorisée.", info.filename)])
                        for h in hashes.values():
                            h.update(chunk)
                        out.write(chunk)
                extracted.append(ExtractedFile(info.filename, target, size,
                                               {a: h.hexdigest() for a, h in hashes.items()}))
        except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as exc:
            _empty(root)
            raise PackageRefused([Reason("zip.corrupt", f"Archive ZIP corrompue ({exc}).")]
                                 ) from None
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
            _empty(root)
            raise PackageRefused([Reason("zip.conflict",
                                         f"Entrées en conflit (fichier et dossier) : {exc}.")]
                                 ) from None
        except PackageRefused:
            _empty(root)
            raise
    return extracted


def _empty(folder: Path) -> None:
    """Remove what an aborted extraction wrote."""
    for child in folder.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
