"""« Espace d'archivage électronique » : the organisation's archive space and its quota, set
through the archival service (``ArchiveSpaces``). Suspension closes the space to new deposits
and resumption reopens it with its quota; termination closes it for good. What it holds
stays under its retention rules throughout."""

from __future__ import annotations

from plateforme.errors import Conflict, InvalidInput
from services_mutualises.interfaces import ArchiveSpaces
from services_mutualises.provisioners.base import ProvisioningRequest
from services_mutualises.schemas import ProvisionOutcome

GB = 1_000_000_000


def quota_bytes(characteristics: dict[str, str]) -> int:
    try:
        gigabytes = int(characteristics.get("quota_gb", ""))
    except ValueError as exc:
        raise InvalidInput("Le volume de l'espace d'archivage (Go) est requis.",
                           field="quota_gb") from exc
    if gigabytes <= 0:
        raise InvalidInput("Le volume de l'espace d'archivage doit être positif.",
                           field="quota_gb")
    return gigabytes * GB


class ArchiveSpaceProvisioner:
    one_per_organisation = True

    def __init__(self, spaces: ArchiveSpaces | None) -> None:
        self._spaces = spaces

    def _service(self) -> ArchiveSpaces:
        if self._spaces is None:
            raise Conflict("Le service d'archivage n'est pas raccordé à cette instance : "
                           "l'espace ne peut pas être créé.")
        return self._spaces

    def provision(self, request: ProvisioningRequest) -> ProvisionOutcome:
        quota = quota_bytes(request.characteristics)
        self._service().set_quota(request.organisation, quota, actor=request.actor,
                                  reason=f"abonnement {request.subscription_id}")
        return ProvisionOutcome({"archive_space": request.organisation, "quota_bytes": quota})

    def modify(self, request: ProvisioningRequest) -> ProvisionOutcome:
        return self.provision(request)

    def release(self, request: ProvisioningRequest, *, undo: bool = False) -> None:
        self._service().close_space(
            request.organisation, actor=request.actor,
            reason=("annulation d'une mise en service échouée" if undo
                    else f"résiliation de l'abonnement {request.subscription_id}"))

    def suspend(self, request: ProvisioningRequest) -> None:
        self._service().close_space(request.organisation, actor=request.actor,
                                    reason=f"suspension de l'abonnement "
                                           f"{request.subscription_id}")

    def resume(self, request: ProvisioningRequest) -> None:
        quota = request.resources.get("quota_bytes")
        self._service().set_quota(
            request.organisation,
            int(quota) if quota else quota_bytes(request.characteristics),
            actor=request.actor,
            reason=f"rétablissement de l'abonnement {request.subscription_id}")
