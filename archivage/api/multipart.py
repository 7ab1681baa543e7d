"""A streaming ``multipart/form-data`` reader: each file part goes to a staging file, with its
digests; nothing is held whole in memory, and the size budget is enforced while the bytes
arrive.

A part is first kept in memory; once it passes :data:`SMALL_PART` bytes it is handed to
:func:`plateforme.blobs.receive` (a task hashing and writing in a worker thread). Parts that
end below that size wait in memory, up to :data:`SMALL_BATCH` bytes in all, and are then
written together by :func:`plateforme.blobs.stage_many` in one worker thread. A deposit of
a hundred small documents then costs a few thread hops instead of a task and a hop per
document: each hop waited for the GIL behind the deposits being recorded, and reading such
a deposit took longer than recording it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from archivage.formats import identify_head
from archivage.services import IncomingFile
from plateforme.blobs import StagedFile, TooLarge, receive, stage_many
from plateforme.errors import InvalidInput

MAX_FIELD_BYTES = 1024 * 1024
SMALL_PART = 256 * 1024  # a file part up to this size is kept in memory, then written whole
SMALL_BATCH = 1024 * 1024  # small parts written together once they hold this much
FILE_FIELDS = ("file", "files")


async def _drain(queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while True:
        item = await queue.get()
        if item is None:
            return
        yield item


async def _put(queue: asyncio.Queue[bytes | None], task: asyncio.Task[StagedFile],
               item: bytes | None) -> None:
    """Hand ``item`` to the receiving task, or raise what made it stop (a size limit)."""
    if task.done():
        task.result()
        raise RuntimeError("upload receiver stopped early")
    put = asyncio.ensure_future(queue.put(item))
    done, _ = await asyncio.wait({put, task}, return_when=asyncio.FIRST_COMPLETED)
    if put not in done:
        put.cancel()
        task.result()
        raise RuntimeError("upload receiver stopped early")


class _Part:
    def __init__(self, name: str, filename: str | None) -> None:
        self.name = name
        self.filename = filename
        self.value = bytearray()
        self.queue: asyncio.Queue[bytes | None] | None = None
        self.task: asyncio.Task[StagedFile] | None = None


async def read_deposit(request: Request, directory: Path, *, max_bytes: int
                       ) -> tuple[bytes | None, list[IncomingFile]]:
    """The ``metadata`` field (JSON bytes) and the staged ``file`` parts, in order."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidInput("Le versement s'envoie en multipart/form-data (champs « metadata » "
                           "et « file »).")
    events: list[tuple[str, Any]] = []
    header_name = bytearray()
    header_value = bytearray()
    headers: dict[bytes, bytes] = {}

    def on_header_end() -> None:
        headers[bytes(header_name).lower()] = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        events.append(("headers", dict(headers)))
        headers.clear()

    def extend(target: bytearray) -> Callable[[bytes, int, int], None]:
        return lambda data, start, end: target.extend(data[start:end])

    callbacks: Any = {
        "on_header_field": extend(header_name), "on_header_value": extend(header_value),
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
        "on_part_data": lambda data, start, end: events.append(("data", data[start:end])),
        "on_part_end": lambda: events.append(("end", None)),
    }
    parser = MultipartParser(boundary, callbacks)
    metadata: bytes | None = None
    files: list[IncomingFile] = []
    used = 0
    part: _Part | None = None
    small: list[tuple[str | None, bytes]] = []  # small parts received, not yet written
    small_bytes = 0

    def stage_all(batch: list[tuple[str | None, bytes]]) -> list[IncomingFile]:
        staged = stage_many([data for _, data in batch], directory)
        # identified now, from the bytes at hand, rather than read again from the file
        return [IncomingFile(filename, file, identify_head(data))
                for (filename, data), file in zip(batch, staged, strict=True)]

    async def flush() -> None:
        nonlocal small_bytes
        if small:
            batch = small.copy()
            small.clear()
            small_bytes = 0
            files.extend(await asyncio.to_thread(stage_all, batch))

    async def handle(kind: str, value: Any) -> None:
        nonlocal part, metadata, used, small_bytes
        if kind == "headers":
            disposition, options = parse_options_header(value.get(b"content-disposition", b""))
            name = options.get(b"name", b"").decode("utf-8", "replace")
            raw_filename = options.get(b"filename")
            filename = raw_filename.decode("utf-8", "replace") if raw_filename is not None \
                else None
            if disposition != b"form-data" or name not in ("metadata", *FILE_FIELDS):
                raise InvalidInput(f"Champ « {name[:50]} » inattendu : seuls « metadata » et "
                                   "« file » sont lus.")
            part = _Part(name, filename)
        elif kind == "data" and part is not None:
            if part.task is not None and part.queue is not None:
                await _put(part.queue, part.task, bytes(value))
                return
            part.value.extend(value)
            if part.name not in FILE_FIELDS:
                if len(part.value) > MAX_FIELD_BYTES:
                    raise InvalidInput("Le champ « metadata » dépasse 1 Mio.")
            elif used + len(part.value) > max_bytes:
                raise TooLarge(max_bytes)
            elif len(part.value) > SMALL_PART:  # a large file: streamed from now on
                await flush()  # the files stay in the order they were sent
                part.queue = asyncio.Queue(maxsize=16)
                part.task = asyncio.create_task(
                    receive(_drain(part.queue), directory, max_bytes=max_bytes - used))
                await _put(part.queue, part.task, bytes(part.value))
                part.value = bytearray()
        elif kind == "end" and part is not None:
            if part.task is not None and part.queue is not None:
                await _put(part.queue, part.task, None)
                staged = await part.task
                used += staged.size
                files.append(IncomingFile(part.filename, staged))
            elif part.name in FILE_FIELDS:
                small.append((part.filename, bytes(part.value)))
                used += len(part.value)
                small_bytes += len(part.value)
                if small_bytes >= SMALL_BATCH:
                    await flush()
            else:
                metadata = bytes(part.value)
            part = None

    try:
        async for chunk in request.stream():
            parser.write(chunk)
            for kind, value in events:
                await handle(kind, value)
            events.clear()
        parser.finalize()
        for kind, value in events:
            await handle(kind, value)
        await flush()
    except BaseException:
        if part is not None and part.task is not None:
            part.task.cancel()
            with contextlib.suppress(BaseException):
                await part.task
        for incoming in files:
            incoming.staged.discard()
        raise
    if part is not None:
        raise InvalidInput("Corps multipart incomplet.")
    return metadata, files


__all__ = ["TooLarge", "read_deposit"]
