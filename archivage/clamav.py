"""Virus scanning through ClamAV's daemon (``clamd``), with its INSTREAM protocol.

``MC_CLAMAV_SOCKET`` names the daemon: a unix socket path (``/run/clamav/clamd.ctl``, or
``unix:///run/clamav/clamd.ctl``) or ``tcp://host:port``. Each file is sent in chunks
(4-byte big-endian length, then the bytes; a zero length ends the stream); clamd answers
``stream: OK`` or ``stream: <signature> FOUND``. Anything else (daemon unreachable, stream
over clamd's ``StreamMaxLength``) is an error: the deposit is refused rather than stored
unscanned (fail closed).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from plateforme.errors import InvalidInput, ServiceUnavailable

CHUNK = 256 * 1024


class VirusFound(InvalidInput):
    """A file carries a virus: the whole deposit is refused, with the signature's name."""

    def __init__(self, filename: str, signature: str) -> None:
        super().__init__(f"Fichier « {filename} » refusé : virus détecté par l'antivirus "
                         f"({signature}).", field="file")
        self.filename = filename
        self.signature = signature


class ScanFailed(ServiceUnavailable):
    """The daemon could not scan the file: nothing is stored (503, to be retried)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, dependency="clamav", retry_after=30)


@dataclass(frozen=True)
class ClamdClient:
    address: str
    timeout: float = 120.0

    def _connect(self) -> socket.socket:
        if self.address.startswith("tcp://"):
            parts = urlsplit(self.address)
            if not parts.hostname or not parts.port:
                raise ValueError(f"MC_CLAMAV_SOCKET invalide : {self.address}")
            return socket.create_connection((parts.hostname, parts.port), timeout=self.timeout)
        path = self.address.removeprefix("unix://")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
        return sock

    def _command(self, sock: socket.socket, command: bytes) -> None:
        sock.sendall(b"z" + command + b"\0")

    @staticmethod
    def _reply(sock: socket.socket) -> str:
        data = b""
        while not data.endswith(b"\0"):
            block = sock.recv(4096)
            if not block:
                break
            data += block
        return data.rstrip(b"\0").decode("utf-8", "replace").strip()

    def ping(self) -> bool:
        try:
            with self._connect() as sock:
                self._command(sock, b"PING")
                return self._reply(sock) == "PONG"
        except OSError:
            return False

    def scan(self, path: Path) -> str | None:
        """The name of the signature found in the file, or None when it is clean."""
        try:
            with self._connect() as sock, open(path, "rb") as source:
                self._command(sock, b"INSTREAM")
                while block := source.read(CHUNK):
                    sock.sendall(struct.pack(">I", len(block)) + block)
                sock.sendall(struct.pack(">I", 0))
                reply = self._reply(sock)
        except OSError as exc:  # includes a daemon closing early (size limit)
            raise ScanFailed("Analyse antivirus impossible (démon ClamAV injoignable ou "
                             f"interrompu : {exc.__class__.__name__}) ; rien n'a été versé."
                             ) from exc
        if reply.endswith(" FOUND"):
            return reply.removeprefix("stream:").removesuffix(" FOUND").strip()
        if reply == "stream: OK":
            return None
        raise ScanFailed(f"Analyse antivirus impossible (réponse de ClamAV : {reply[:200]}) ; "
                         "rien n'a été versé.")
