"""Every file of a deposit or package through the antivirus before anything is stored
(when ``MC_CLAMAV_SOCKET`` is set); an infected file refuses the whole deposit, with the
signature's name, in the audit journal and the archives logbook (PREMIS ``virus check``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Engine
from sqlmodel import Session

from archivage import logbook
from archivage.clamav import ClamdClient, VirusFound
from archivage.identifiers import neutral_filename
from archivage.schemas import Actor
from plateforme.audit import AuditRecord, append
from plateforme.blobs import StagedFile


class Antivirus:
    def __init__(self, engine: Engine, client: ClamdClient) -> None:
        self._engine = engine
        self.client = client

    def check(self, actor: Actor, organisation: str,
              files: Sequence[tuple[str | None, StagedFile]]) -> None:
        """Scan each ``(filename, staged file)``; raise :class:`VirusFound` on the first
        infected one (after recording it) and :class:`ScanFailed` when clamd can't scan."""
        for filename, staged in files:
            signature = self.client.scan(staged.path)
            if signature is None:
                continue
            name = neutral_filename(filename)
            with Session(self._engine) as session:
                logbook.append(session, "virus check", organisation=organisation,
                               agent=actor.label, outcome="failure",
                               detail={"file": name, "signature": signature,
                                       "sha512": staged.digests["sha512"]})
                append(session, AuditRecord(
                    action="archives.virus", actor=actor.label, organisation=organisation,
                    outcome="refused", address=actor.address, reason=signature,
                    details={"file": name, "sha512": staged.digests["sha512"]}))
                session.commit()
            raise VirusFound(name, signature)
