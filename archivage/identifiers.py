"""Stable, printable identifiers (ARK) and neutralised file names."""

from __future__ import annotations

import os
import re
import unicodedata
import uuid

# Betanumeric alphabet of the ARK specification (no vowels, no "l"): no accidental words.
BETANUMERIC = "0123456789bcdfghjkmnpqrstvwxz"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_UNSAFE = re.compile(r'[\\/:*?"<>|]')


def mint(length: int = 12) -> str:
    """A new unit identifier: ``mc`` followed by random betanumeric characters."""
    return mint_many(1, length)[0]


def mint_many(count: int, length: int = 12) -> list[str]:
    """``count`` new unit identifiers (:func:`mint`), their characters drawn uniformly from
    the system's random source in one call (not one system call per character, as
    ``secrets.choice`` would make)."""
    size = len(BETANUMERIC)
    limit = 256 - 256 % size  # bytes at or above it would favour the first characters
    wanted = count * length
    chars: list[str] = []
    while len(chars) < wanted:
        chars += [BETANUMERIC[b % size] for b in os.urandom(wanted - len(chars) + 16)
                  if b < limit]
    return ["mc" + "".join(chars[i * length:(i + 1) * length]) for i in range(count)]


def uuid4_hex_many(count: int) -> list[str]:
    """``count`` random UUIDs (version 4) in hex, as ``uuid.uuid4().hex`` gives them, drawn
    from the system's random source in one call."""
    raw = os.urandom(16 * count)
    return [uuid.UUID(bytes=raw[i:i + 16], version=4).hex for i in range(0, 16 * count, 16)]


def ark(naan: str, name: str) -> str:
    return f"ark:/{naan}/{name}"


def is_unit_id(value: str) -> bool:
    return bool(re.fullmatch(r"mc[" + BETANUMERIC + r"]{6,30}", value))


def neutral_filename(raw: str | None, fallback: str = "document") -> str:
    """The last path component only, NFC, without control characters or characters that
    mean something to a file system or a shell; never empty, ``.`` or ``..``; at most
    200 characters (extension kept)."""
    name = unicodedata.normalize("NFC", raw or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _CONTROL.sub("", name)
    name = _UNSAFE.sub("_", name).strip().lstrip(".").strip()
    if not name:
        return fallback
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 200 - len(ext) - 1] + "." + ext) if dot and len(ext) <= 16 else name[:200]
    return name
