"""Ingest contracts: what each organisation may deposit, checked at every deposit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from archivage import logbook
from archivage.formats import FileFormat
from archivage.models import IngestContract, Unit
from archivage.schemas import Actor, ContractRequest
from plateforme.audit import AuditRecord, append
from plateforme.clock import utcnow
from plateforme.errors import DomainError, Forbidden, InvalidInput, NotFound


class OutsideContract(DomainError):
    status = 422
    title = "Versement hors contrat"


def contract_dict(contract: IngestContract | None, organisation: str) -> dict[str, Any]:
    if contract is None:
        return {"organisation": organisation, "formats": [], "max_file_bytes": None,
                "max_files": None, "attachment_unit": None}
    return {"organisation": contract.organisation, "formats": json.loads(contract.formats),
            "max_file_bytes": contract.max_file_bytes, "max_files": contract.max_files,
            "attachment_unit": contract.attachment_unit, "updated_by": contract.updated_by}


def check(session: Session, organisation: str, parent: Unit | None,
          files: Sequence[tuple[str, int, FileFormat]]) -> Unit | None:
    """Refuse a deposit outside the organisation's contract (every reason at once); returns
    the unit the deposit attaches to (the contract's attachment point when none is given)."""
    contract = session.get(IngestContract, organisation)
    if contract is None:
        return parent
    reasons: list[str] = []
    if contract.max_files is not None and len(files) > contract.max_files:
        reasons.append(f"{len(files)} fichiers pour {contract.max_files} au plus")
    accepted = set(json.loads(contract.formats))
    for name, size, fmt in files:
        if contract.max_file_bytes is not None and size > contract.max_file_bytes:
            reasons.append(f"« {name} » dépasse {contract.max_file_bytes} octets")
        if accepted and not ({fmt.puid, fmt.media_type} & accepted):
            reasons.append(f"« {name} » : format {fmt.name} ({fmt.puid or fmt.media_type}, "
                           "identifié par son contenu) non accepté")
    target = parent
    if contract.attachment_unit:
        point = session.get(Unit, contract.attachment_unit)
        if parent is None:
            target = point
        elif point is not None and not parent.path.startswith(point.path):
            reasons.append("l'unité de rattachement est hors du plan de classement prévu par "
                           "le contrat")
    if reasons:
        raise OutsideContract("Versement refusé par le contrat d'entrée : "
                              + " ; ".join(reasons) + ".")
    return target


class ContractService:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, organisation: str) -> dict[str, Any]:
        with Session(self._engine) as session:
            return contract_dict(session.get(IngestContract, organisation), organisation)

    def set(self, actor: Actor, request: ContractRequest) -> dict[str, Any]:
        """Archivists and administrators of the organisation set its contract."""
        organisation = actor.organisation
        if not organisation or actor.is_client or not (
                actor.roles & {"archivist", "org_admin"}):
            raise Forbidden("Seuls un archiviste ou un administrateur de l'organisation "
                            "fixent son contrat d'entrée.")
        formats = sorted({f.strip() for f in request.formats if f.strip()})
        with Session(self._engine, expire_on_commit=False) as session:
            if request.attachment_unit:
                unit = session.get(Unit, request.attachment_unit)
                if unit is None or unit.organisation != organisation:
                    raise NotFound("Unité de rattachement introuvable.",
                                   field="attachment_unit")
                if unit.level == "item":
                    raise InvalidInput("Une pièce ne peut pas servir de point de rattachement.",
                                       field="attachment_unit")
            contract = session.get(IngestContract, organisation) or IngestContract(
                organisation=organisation, updated_by=actor.label)
            before = contract_dict(contract, organisation)
            contract.formats = json.dumps(formats)
            contract.max_file_bytes = request.max_file_bytes
            contract.max_files = request.max_files
            contract.attachment_unit = request.attachment_unit
            contract.updated_by = actor.label
            contract.updated_at = utcnow()
            session.add(contract)
            after = contract_dict(contract, organisation)
            logbook.append(session, "policy assignment", organisation=organisation,
                           agent=actor.label, detail={"contract": after,
                                                      "reason": request.reason})
            append(session, AuditRecord(
                action="archives.contract", actor=actor.label, organisation=organisation,
                target=organisation, address=actor.address, reason=request.reason,
                details={"before": before, "after": after}))
            session.commit()
            return after
