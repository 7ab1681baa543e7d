"""Dark fibre from the CTM's reserves: a path of free pairs between the points of presence
nearest to the two sites.

The path is the shortest (in kilometres) over cables that still have a free pair. Allocation
happens in one transaction: on each cable of the path one free pair is locked with
``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL) and claimed with a conditional
``UPDATE … WHERE state = 'free'``; a cable whose pairs another transaction holds is left out
and the path computed again. A pair is therefore never allocated twice, and when two orders
race for the last free pair one gets it and the other fails with a clear message.
"""

from __future__ import annotations

import heapq
import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session

from plateforme.clock import utcnow
from plateforme.errors import Conflict, InvalidInput
from services_mutualises import repository
from services_mutualises.models import FibreCable, FibrePop
from services_mutualises.provisioners.base import ProvisioningRequest, SiteRef
from services_mutualises.schemas import ProvisionOutcome

MAX_ATTEMPTS = 5


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))


def nearest_pop(site: SiteRef, pops: Iterable[FibrePop]) -> FibrePop:
    ranked = sorted(pops, key=lambda p: (distance_km(site.latitude, site.longitude,
                                                     p.latitude, p.longitude), p.code))
    if not ranked:
        raise Conflict("Aucun point de présence n'est enregistré dans les réserves de fibre.")
    return ranked[0]


@dataclass(frozen=True)
class Hop:
    cable: FibreCable
    towards: uuid.UUID


def shortest_path(start: uuid.UUID, goal: uuid.UUID, cables: Iterable[FibreCable]
                  ) -> list[FibreCable] | None:
    """Dijkstra over the given cables (undirected); None when the PoPs are not connected."""
    graph: dict[uuid.UUID, list[Hop]] = {}
    for cable in cables:
        graph.setdefault(cable.pop_a_id, []).append(Hop(cable, cable.pop_b_id))
        graph.setdefault(cable.pop_b_id, []).append(Hop(cable, cable.pop_a_id))
    best: dict[uuid.UUID, float] = {start: 0.0}
    previous: dict[uuid.UUID, FibreCable] = {}
    queue: list[tuple[float, str, uuid.UUID]] = [(0.0, str(start), start)]
    while queue:
        cost, _, node = heapq.heappop(queue)
        if node == goal:
            break
        if cost > best.get(node, math.inf):
            continue
        for hop in graph.get(node, []):
            candidate = cost + hop.cable.length_km
            if candidate < best.get(hop.towards, math.inf):
                best[hop.towards] = candidate
                previous[hop.towards] = hop.cable
                heapq.heappush(queue, (candidate, str(hop.towards), hop.towards))
    if goal not in best:
        return None
    path: list[FibreCable] = []
    node = goal
    while node != start:
        cable = previous[node]
        path.append(cable)
        node = cable.pop_a_id if cable.pop_b_id == node else cable.pop_b_id
    return list(reversed(path))


class FibreProvisioner:
    """Allocates and releases pairs of the fibre reserves."""

    one_per_organisation = False

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _resources(self, session: Session, subscription_id: uuid.UUID) -> dict[str, object]:
        pairs = repository.pairs_of(session=session, subscription_id=subscription_id)
        cables = {c.id: c for c in repository.list_cables(session=session)}
        return {"fibre_pairs": [{"cable": cables[p.cable_id].code, "pair": p.number}
                                for p in pairs],
                "length_km": round(sum(cables[p.cable_id].length_km for p in pairs), 2)}

    def provision(self, request: ProvisioningRequest) -> ProvisionOutcome:
        if request.site is None or request.site_b is None:
            raise InvalidInput("Une liaison de fibre noire relie deux sites.")
        for site in (request.site, request.site_b):
            if not site.fibre_reachable:
                raise InvalidInput(f"La fibre n'arrive pas au site « {site.name} ».")
        excluded: set[uuid.UUID] = set()
        for _ in range(MAX_ATTEMPTS):
            with Session(self._engine, expire_on_commit=False) as session:
                if repository.pairs_of(session=session,
                                       subscription_id=request.subscription_id):
                    return ProvisionOutcome(self._resources(session, request.subscription_id))
                pops = repository.list_pops(session=session)
                start = nearest_pop(request.site, pops)
                goal = nearest_pop(request.site_b, pops)
                if start.id == goal.id:
                    raise InvalidInput(
                        f"Les deux sites dépendent du même point de présence ({start.name}) : "
                        "aucune liaison à établir sur les réserves de fibre.")
                counts = repository.pair_counts(session=session)
                usable = [c for c in repository.list_cables(session=session)
                          if counts.get((c.id, "free"), 0) > 0 and c.id not in excluded]
                path = shortest_path(start.id, goal.id, usable)
                if path is None:
                    raise Conflict(
                        f"Plus aucune paire de fibre libre entre {start.name} et {goal.name} : "
                        "la liaison ne peut pas être allouée.")
                now = utcnow()
                taken = True
                for cable in path:
                    pair = repository.lock_free_pair(session=session, cable_id=cable.id)
                    if pair is None or not repository.claim_pair(
                            session=session, pair_id=pair.id,
                            subscription_id=request.subscription_id, now=now):
                        excluded.add(cable.id)
                        taken = False
                        break
                if not taken:
                    session.rollback()
                    continue
                session.commit()
                return ProvisionOutcome(self._resources(session, request.subscription_id)
                                        | {"from_pop": start.code, "to_pop": goal.code})
        raise Conflict("Les paires de fibre libres sont prises par d'autres commandes en cours : "
                       "réessayez.")

    def modify(self, request: ProvisioningRequest) -> ProvisionOutcome:
        raise InvalidInput("Une liaison de fibre noire ne se modifie pas : résiliez-la et "
                           "commandez-en une autre.")

    def release(self, request: ProvisioningRequest, *, undo: bool = False) -> None:
        with Session(self._engine) as session:
            repository.release_pairs(session=session, subscription_id=request.subscription_id)
            session.commit()

    def suspend(self, request: ProvisioningRequest) -> None:
        """The pairs stay allocated to the subscription while it is suspended (they are not
        lent to anyone else); the inventory shows them under a suspended subscription."""

    def resume(self, request: ProvisioningRequest) -> None:
        """The pairs were kept: nothing to allocate again."""
