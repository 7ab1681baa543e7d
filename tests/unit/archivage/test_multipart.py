"""The streaming multipart reader of deposits: small parts batched in memory, large parts
streamed, the size budget enforced while the bytes arrive."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request

from archivage.api.multipart import SMALL_BATCH, SMALL_PART, read_deposit
from archivage.formats import identify
from plateforme import blobs as blobs_module
from plateforme.blobs import TooLarge, stage_many

BOUNDARY = b"b0undary"


def _body(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else "")
        out += (b"--" + BOUNDARY + b"\r\nContent-Disposition: " + disposition.encode()
                + b"\r\n\r\n" + data + b"\r\n")
    return out + b"--" + BOUNDARY + b"--\r\n"


def _request(body: bytes, sent: list[int], chunk: int = 65536) -> Request:
    chunks: Iterator[bytes] = (body[i:i + chunk] for i in range(0, len(body), chunk))

    async def receive() -> dict[str, object]:
        data = next(chunks, b"")
        sent.append(len(data))
        return {"type": "http.request", "body": data,
                "more_body": sum(sent) < len(body)}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [
        (b"content-type", b"multipart/form-data; boundary=" + BOUNDARY)]}
    return Request(scope, receive)


def test_files_keep_their_order_and_digests(tmp_path: Path) -> None:
    small = [secrets.token_bytes(20_000) for _ in range(SMALL_BATCH // 20_000 + 3)]
    large = secrets.token_bytes(SMALL_PART * 2 + 1)
    contents = [small[0], large, *small[1:]]
    parts = [("metadata", None, b'{"title": "t"}'),
             *[("file", f"f{i}.bin", data) for i, data in enumerate(contents)]]
    metadata, files = asyncio.run(read_deposit(
        _request(_body(parts), []), tmp_path, max_bytes=10**9))
    assert metadata == b'{"title": "t"}'
    assert [f.filename for f in files] == [f"f{i}.bin" for i in range(len(contents))]
    for incoming, data in zip(files, contents, strict=True):
        assert incoming.staged.size == len(data)
        assert incoming.staged.digests["sha512"] == hashlib.sha512(data).hexdigest()
        assert incoming.staged.digests["sha256"] == hashlib.sha256(data).hexdigest()
        assert incoming.staged.path.read_bytes() == data


@pytest.mark.parametrize("large_first", [False, True])
def test_the_budget_stops_a_large_part_while_it_arrives(tmp_path: Path,
                                                        large_first: bool) -> None:
    """The budget counts the small parts already received: the large part is cut off long
    before its end, and nothing received stays on disk."""
    small = secrets.token_bytes(SMALL_PART // 2)
    large = secrets.token_bytes(SMALL_PART * 16)
    files = [("file", "gros.bin", large)] if large_first else [
        ("file", "petit.bin", small), ("file", "gros.bin", large)]
    body = _body([("metadata", None, b"{}"), *files])
    sent: list[int] = []
    with pytest.raises(TooLarge):
        asyncio.run(read_deposit(_request(body, sent), tmp_path,
                                 max_bytes=SMALL_PART * 2 - (0 if large_first else 10)))
    assert sum(sent) < len(body) // 2
    assert not list(tmp_path.iterdir())


def test_the_budget_counts_small_parts(tmp_path: Path) -> None:
    body = _body([("file", f"n{i}.bin", secrets.token_bytes(10_000)) for i in range(20)])
    with pytest.raises(TooLarge):
        asyncio.run(read_deposit(_request(body, []), tmp_path, max_bytes=95_000))
    assert not list(tmp_path.iterdir())


def test_a_large_part_gets_only_what_the_small_ones_left(tmp_path: Path) -> None:
    small = secrets.token_bytes(SMALL_PART // 2)
    large = secrets.token_bytes(SMALL_PART * 7 // 4)  # under the budget alone, not after small
    body = _body([("file", "petit.bin", small), ("file", "gros.bin", large)])
    with pytest.raises(TooLarge):
        asyncio.run(read_deposit(_request(body, []), tmp_path, max_bytes=SMALL_PART * 2))
    assert not list(tmp_path.iterdir())
    _, files = asyncio.run(read_deposit(_request(body, []), tmp_path,
                                        max_bytes=SMALL_PART * 5 // 2))
    assert [f.staged.size for f in files] == [len(small), len(large)]


def test_small_parts_are_identified_as_they_arrive(tmp_path: Path) -> None:
    """The format of a small part comes from its bytes in memory (what ``identify`` finds in
    the staged file); a large part's is left to be read from its file."""
    contents = [b"%PDF-1.7\n" + secrets.token_bytes(3000), "Procès-verbal\n".encode() * 50,
                b'{"a": 1}', b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(20_000), b"",
                secrets.token_bytes(SMALL_PART + 1)]
    parts = [("metadata", None, b"{}"),
             *[("file", f"f{i}", data) for i, data in enumerate(contents)]]
    _, files = asyncio.run(read_deposit(_request(_body(parts), []), tmp_path,
                                        max_bytes=10**9))
    assert [f.format for f in files[:-1]] == [identify(f.staged.path) for f in files[:-1]]
    assert [f.format.media_type for f in files[:-1] if f.format] == [
        "application/pdf", "text/plain", "application/json", "image/png", "text/plain"]
    assert files[-1].format is None


def test_staging_a_batch_that_fails_midway_leaves_nothing(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    real_write = os.write
    writes: list[int] = []

    def full_disk(fd: int, data: Any) -> int:
        writes.append(fd)
        if len(writes) == 3:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(blobs_module.os, "write", full_disk)
    with pytest.raises(OSError, match="No space"):
        stage_many([b"un", b"deux", b"trois", b"quatre"], tmp_path / "lot")
    assert not list((tmp_path / "lot").iterdir())
    monkeypatch.setattr(blobs_module.os, "write", real_write)
    staged = stage_many([b"un", b"deux"], tmp_path / "lot")
    assert [s.path.read_bytes() for s in staged] == [b"un", b"deux"]
    assert staged[1].digests["sha256"] == hashlib.sha256(b"deux").hexdigest()
