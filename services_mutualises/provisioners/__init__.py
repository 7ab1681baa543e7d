"""Provisioners: one per kind of offering, all behind :class:`Provisioner`."""

from services_mutualises.provisioners.archive_space import ArchiveSpaceProvisioner
from services_mutualises.provisioners.base import Provisioner, ProvisioningRequest, SiteRef
from services_mutualises.provisioners.fibre import FibreProvisioner
from services_mutualises.provisioners.oidc_client import OidcClientProvisioner
from services_mutualises.provisioners.work_order import WorkOrderProvisioner

__all__ = [
    "ArchiveSpaceProvisioner",
    "FibreProvisioner",
    "OidcClientProvisioner",
    "Provisioner",
    "ProvisioningRequest",
    "SiteRef",
    "WorkOrderProvisioner",
]
