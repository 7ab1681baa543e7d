"""Format identification by content (magic bytes), with PRONOM identifiers when known.

A small signature table covering what communes deposit; the extension is never trusted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FileFormat:
    media_type: str
    puid: str | None  # PRONOM unique identifier
    name: str


UNKNOWN = FileFormat("application/octet-stream", None, "inconnu")
TEXT = FileFormat("text/plain", "x-fmt/111", "texte brut")

# (offset, magic, format). Longest / most specific first.
SIGNATURES: tuple[tuple[int, bytes, FileFormat], ...] = (
    (0, b"%PDF-1.7", FileFormat("application/pdf", "fmt/276", "PDF 1.7")),
    (0, b"%PDF-1.4", FileFormat("application/pdf", "fmt/18", "PDF 1.4")),
    (0, b"%PDF-", FileFormat("application/pdf", None, "PDF")),
    (0, b"\x89PNG\r\n\x1a\n", FileFormat("image/png", "fmt/12", "PNG")),
    (0, b"\xff\xd8\xff", FileFormat("image/jpeg", "fmt/43", "JPEG")),
    (0, b"GIF89a", FileFormat("image/gif", "fmt/4", "GIF 89a")),
    (0, b"II*\x00", FileFormat("image/tiff", "fmt/353", "TIFF")),
    (0, b"MM\x00*", FileFormat("image/tiff", "fmt/353", "TIFF")),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", FileFormat("application/x-ole-storage", None,
                                                       "document Office 97-2003")),
    (0, b"PK\x03\x04", FileFormat("application/zip", "x-fmt/263", "ZIP")),
    (0, b"<?xml", FileFormat("application/xml", "fmt/101", "XML")),
    (0, b"\xef\xbb\xbf<?xml", FileFormat("application/xml", "fmt/101", "XML")),
)

# Inside a ZIP: the OOXML / ODF flavours, told by their first entries.
_ZIP_FLAVOURS = (
    (b"mimetypeapplication/vnd.oasis.opendocument.text",
     FileFormat("application/vnd.oasis.opendocument.text", "fmt/290", "ODF texte")),
    (b"mimetypeapplication/vnd.oasis.opendocument.spreadsheet",
     FileFormat("application/vnd.oasis.opendocument.spreadsheet", "fmt/295", "ODF tableur")),
    (b"word/", FileFormat(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "fmt/412",
        "Word 2007+")),
    (b"xl/", FileFormat(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "fmt/214",
        "Excel 2007+")),
)


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return True
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a multi-byte character cut at the end of the sample is still text
        if exc.start < len(head) - 4:
            return False
    return True


HEAD_BYTES = 8192  # what identification reads of a file


def identify(path: Path) -> FileFormat:
    fd = os.open(path, os.O_RDONLY)
    try:
        head = os.read(fd, HEAD_BYTES)
    finally:
        os.close(fd)
    return identify_head(head)


def identify_head(head: bytes) -> FileFormat:
    """The format of a file starting with ``head`` (its first :data:`HEAD_BYTES` bytes, or
    the whole file when shorter)."""
    head = head[:HEAD_BYTES]
    for offset, magic, fmt in SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            if fmt.media_type == "application/zip":
                for marker, flavour in _ZIP_FLAVOURS:
                    if marker in head:
                        return flavour
            return fmt
    if _looks_like_text(head):
        stripped = head.lstrip()
        if stripped[:1] in (b"{", b"["):
            return FileFormat("application/json", "fmt/817", "JSON")
        if stripped[:5].lower() in (b"<!doc", b"<html"):
            return FileFormat("text/html", "fmt/471", "HTML")
        return TEXT
    return UNKNOWN


def is_text(fmt: FileFormat) -> bool:
    return fmt.media_type.startswith("text/") or fmt.media_type in (
        "application/json", "application/xml")
