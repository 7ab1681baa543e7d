"""Offerings set up by a technical team (inter-site VPN, THD access, SDIS secondary link,
hosting): provisioning issues a work order (a ticket) to the team, recorded with what it
must set up; nothing is configured on network equipment by this code. Each work order is
issued once per subscription and step (idempotent)."""

from __future__ import annotations

import json

from sqlalchemy.engine import Engine
from sqlmodel import Session

from services_mutualises import repository
from services_mutualises.models import WorkOrder
from services_mutualises.provisioners.base import ProvisioningRequest
from services_mutualises.schemas import ProvisionOutcome

KIND_LABELS = {"install": "mise en service", "modify": "modification", "remove": "résiliation",
               "suspend": "suspension", "resume": "rétablissement"}


class WorkOrderProvisioner:
    one_per_organisation = False

    def __init__(self, engine: Engine, team: str) -> None:
        self._engine = engine
        self.team = team

    def _issue(self, request: ProvisioningRequest, kind: str, key: str) -> WorkOrder:
        sites = [s.name for s in (request.site, request.site_b) if s is not None]
        description = (f"{request.offering_name} pour {request.organisation} — "
                       f"{KIND_LABELS.get(kind, kind)} ; sites : "
                       f"{', '.join(sites) or 'aucun'} ; caractéristiques : "
                       + ", ".join(f"{k}={v}" for k, v in sorted(
                           request.characteristics.items())))
        with Session(self._engine, expire_on_commit=False) as session:
            existing = repository.get_work_order(session=session, key=key)
            if existing is not None:
                return existing
            work_order = WorkOrder(
                key=key, subscription_id=request.subscription_id, team=self.team, kind=kind,
                description=description,
                resources=json.dumps({"sites": sites, **request.characteristics},
                                     ensure_ascii=False))
            session.add(work_order)
            session.commit()
            return work_order

    def provision(self, request: ProvisioningRequest) -> ProvisionOutcome:
        work_order = self._issue(request, "install", f"{request.subscription_id}:install")
        return ProvisionOutcome({"work_order": str(work_order.id), "team": self.team,
                                 **request.characteristics})

    def modify(self, request: ProvisioningRequest) -> ProvisionOutcome:
        work_order = self._issue(request, "modify",
                                 f"{request.subscription_id}:modify:{request.item_id}")
        return ProvisionOutcome({"work_order": str(work_order.id), "team": self.team,
                                 **request.characteristics})

    def release(self, request: ProvisioningRequest, *, undo: bool = False) -> None:
        self._issue(request, "remove", f"{request.subscription_id}:remove")

    def suspend(self, request: ProvisioningRequest) -> None:
        """The team cuts the service off (one work order per suspension, keyed by it)."""
        self._issue(request, "suspend", f"{request.subscription_id}:suspend:{request.item_id}")

    def resume(self, request: ProvisioningRequest) -> None:
        self._issue(request, "resume", f"{request.subscription_id}:resume:{request.item_id}")
