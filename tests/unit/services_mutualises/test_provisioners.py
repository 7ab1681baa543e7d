"""Provisioners against their Protocols: the archive-space provisioner with an in-test
archival service recording its calls (the real one is wired by the composition root), the
shortest fibre path, and conformance of every provisioner to :class:`Provisioner`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from plateforme.errors import Conflict, InvalidInput
from services_mutualises.interfaces import ArchiveSpaces
from services_mutualises.models import FibreCable
from services_mutualises.provisioners import (
    ArchiveSpaceProvisioner,
    FibreProvisioner,
    OidcClientProvisioner,
    Provisioner,
    ProvisioningRequest,
    WorkOrderProvisioner,
)
from services_mutualises.provisioners.fibre import shortest_path


@dataclass
class Usage:
    used_bytes: int
    quota_bytes: int | None
    is_open: bool


@dataclass
class RecordingSpaces:
    """An archival service kept in memory, recording every call."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    spaces: dict[str, Usage] = field(default_factory=dict)

    def set_quota(self, organisation: str, quota_bytes: int, *, actor: str, reason: str
                  ) -> None:
        self.calls.append(("set_quota", organisation, quota_bytes, actor))
        self.spaces[organisation] = Usage(0, quota_bytes, True)

    def close_space(self, organisation: str, *, actor: str, reason: str) -> None:
        self.calls.append(("close_space", organisation, actor))
        self.spaces[organisation].is_open = False

    def usage(self, organisation: str) -> Usage:
        return self.spaces[organisation]


def _request(**values: str) -> ProvisioningRequest:
    return ProvisioningRequest(
        subscription_id=uuid.uuid4(), item_id=uuid.uuid4(), organisation="lamentin",
        offering_code="archivage", offering_name="Espace d'archivage électronique",
        characteristics=dict(values), actor="approbateur")


def test_archive_space_is_opened_resized_and_closed() -> None:
    spaces = RecordingSpaces()
    assert isinstance(spaces, ArchiveSpaces)
    provisioner = ArchiveSpaceProvisioner(spaces)
    outcome = provisioner.provision(_request(quota_gb="50"))
    assert outcome.resources == {"archive_space": "lamentin", "quota_bytes": 50_000_000_000}
    assert spaces.usage("lamentin").quota_bytes == 50_000_000_000
    provisioner.modify(_request(quota_gb="200"))
    assert spaces.usage("lamentin").quota_bytes == 200_000_000_000
    provisioner.release(_request(quota_gb="200"))
    assert spaces.usage("lamentin").is_open is False
    assert [c[0] for c in spaces.calls] == ["set_quota", "set_quota", "close_space"]
    with pytest.raises(InvalidInput):
        provisioner.provision(_request(quota_gb="beaucoup"))


def test_archive_space_is_closed_while_suspended_and_reopened_with_its_quota() -> None:
    spaces = RecordingSpaces()
    provisioner = ArchiveSpaceProvisioner(spaces)
    outcome = provisioner.provision(_request(quota_gb="50"))
    allocated = ProvisioningRequest(
        subscription_id=uuid.uuid4(), item_id=uuid.uuid4(), organisation="lamentin",
        offering_code="archivage", offering_name="Espace d'archivage électronique",
        characteristics={"quota_gb": "50"}, actor="valideur", resources=outcome.resources)
    provisioner.suspend(allocated)
    assert spaces.usage("lamentin").is_open is False
    provisioner.resume(allocated)
    assert spaces.usage("lamentin") == Usage(0, 50_000_000_000, True)
    assert [c[0] for c in spaces.calls] == ["set_quota", "close_space", "set_quota"]


def test_archive_space_without_an_archival_service_fails_clearly() -> None:
    with pytest.raises(Conflict, match="archivage n'est pas raccordé"):
        ArchiveSpaceProvisioner(None).provision(_request(quota_gb="50"))


def test_shortest_path_avoids_missing_cables() -> None:
    a, b, c, d = (uuid.uuid4() for _ in range(4))
    ab = FibreCable(code="ab", pop_a_id=a, pop_b_id=b, length_km=5, delegation="x")
    bd = FibreCable(code="bd", pop_a_id=b, pop_b_id=d, length_km=5, delegation="x")
    ac = FibreCable(code="ac", pop_a_id=a, pop_b_id=c, length_km=2, delegation="x")
    cd = FibreCable(code="cd", pop_a_id=d, pop_b_id=c, length_km=2, delegation="x")
    assert [x.code for x in shortest_path(a, d, [ab, bd, ac, cd]) or []] == ["ac", "cd"]
    assert [x.code for x in shortest_path(a, d, [ab, bd, ac]) or []] == ["ab", "bd"]
    assert shortest_path(a, d, [ab, ac]) is None


@pytest.mark.parametrize("provisioner", [
    ArchiveSpaceProvisioner(None), FibreProvisioner(engine=None),  # type: ignore[arg-type]
    OidcClientProvisioner(registrar=None),  # type: ignore[arg-type]
    WorkOrderProvisioner(engine=None, team="réseau"),  # type: ignore[arg-type]
], ids=lambda p: type(p).__name__)
def test_every_provisioner_implements_the_protocol(provisioner: object) -> None:
    assert isinstance(provisioner, Provisioner)
