"""Fixtures of the archivage unit tests: the official SEDA 2.2 schemas."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def find_seda_schema_dir() -> Path | None:
    """``MC_SEDA_SCHEMA_DIR``, else ``shared/seda-2.2`` beside the checkout or its parents."""
    candidates = [os.environ.get("MC_SEDA_SCHEMA_DIR")]
    candidates += [str(parent / "shared" / "seda-2.2") for parent in ROOT.parents]
    for candidate in candidates:
        if candidate and (Path(candidate) / "seda-2.2-main.xsd").is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def seda_schema_dir() -> Path:
    found = find_seda_schema_dir()
    if found is None:
        pytest.fail("the SEDA 2.2 schemas are required: set MC_SEDA_SCHEMA_DIR "
                    "(see shared/seda-2.2/README.md)")
    return found
