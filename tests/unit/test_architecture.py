"""The import rules of DESIGN.md (import-linter contracts) and honest public APIs."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("package", ["idp", "idp.services", "idp.api", "demo_rp", "admin_ui",
                                     "services_mutualises",
                                     "services_mutualises.provisioners"])
def test_all_is_sorted_and_complete(package: str) -> None:
    module = importlib.import_module(package)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=str.casefold) or exported == sorted(exported)
    for name in exported:
        assert hasattr(module, name), name
