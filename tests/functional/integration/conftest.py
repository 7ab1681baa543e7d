"""Cross-domain tests: the archive API's and the catalogue's fixtures, over one platform."""

from __future__ import annotations

from tests.functional.archivage.conftest import as_org, as_staff

__all__ = ["as_org", "as_staff"]
