"""The Helm chart's checks that need no Helm (it cannot be installed from the registries these
machines reach; operators run ``helm lint`` and ``helm template``, see docs/deploiement.md):
values against their schema, every ``.Values`` path used by a template present in
values.yaml, YAML lint of the plain YAML files, Chart.yaml, and the security settings."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "helm" / "martinique-connect"
TEMPLATES = CHART / "templates"
COMPONENTS = {"idp", "archivage", "services", "console"}
YAMLLINT = YamlLintConfig(
    "extends: default\n"
    "rules:\n"
    "  line-length: {max: 100}\n"
    "  document-start: disable\n"
    "  truthy: {check-keys: false}\n"
    "  comments: {min-spaces-from-content: 1}\n"
    "  comments-indentation: disable\n"
)


def values() -> dict[str, Any]:
    return dict(yaml.safe_load((CHART / "values.yaml").read_text()))


def schema() -> dict[str, Any]:
    return dict(json.loads((CHART / "values.schema.json").read_text()))


def template_texts() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(TEMPLATES.iterdir()) if p.is_file()}


def test_values_validate_against_the_schema() -> None:
    jsonschema.Draft7Validator.check_schema(schema())
    jsonschema.Draft7Validator(schema()).validate(values())


@pytest.mark.parametrize(("change", "why"), [
    (lambda v: v["image"].update(tag="latest"), "a moving tag"),
    (lambda v: v["securityContext"].update(readOnlyRootFilesystem=False), "writable root"),
    (lambda v: v["securityContext"]["capabilities"].update(drop=["NET_RAW"]), "ALL not dropped"),
    (lambda v: v["podSecurityContext"].update(runAsNonRoot=False), "root allowed"),
    (lambda v: v["components"]["idp"].update(replica=3), "a misspelt key"),
    (lambda v: v["secrets"]["database"].pop("existingSecret"), "no database secret"),
    (lambda v: v.update(environment="prod"), "an unknown environment"),
    (lambda v: v["networkPolicy"]["egress"][0].update(cidr="10.0.0.0"), "no prefix length"),
    (lambda v: v["extraConfig"].update(SESSION="1"), "not an MC_ setting"),
])
def test_the_schema_rejects_unsafe_or_wrong_values(change: Any, why: str) -> None:
    bad = copy.deepcopy(values())
    change(bad)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema())


def _has_path(data: Any, path: list[str]) -> bool:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def test_every_values_path_used_by_a_template_exists() -> None:
    used: dict[str, set[str]] = {}
    for name, text in template_texts().items():
        for match in re.finditer(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text):
            used.setdefault(match.group(1)[1:], set()).add(name)
    assert len(used) > 40  # the regular expression does find them
    v = values()
    missing = {path: sorted(files) for path, files in used.items()
               if not _has_path(v, path.split("."))}
    assert not missing, f"used by templates but absent from values.yaml: {missing}"


def test_component_fields_used_through_range_exist_in_every_component() -> None:
    """Templates read a component's settings as ``$c.x.y`` inside ``range .Values.components``."""
    fields = set()
    for text in template_texts().values():
        fields |= {m.group(1) for m in re.finditer(r"\$c((?:\.[A-Za-z_]+)+)", text)}
    assert {".enabled", ".resources", ".autoscaling.enabled", ".paths"} <= fields
    for name, component in values()["components"].items():
        for field in fields:
            assert _has_path(component, field[1:].split(".")), (name, field)
    assert set(values()["components"]) == COMPONENTS


def test_every_included_template_is_defined() -> None:
    texts = template_texts()
    defined = set(re.findall(r'\{\{-?\s*define\s+"([^"]+)"', texts["_helpers.tpl"]))
    included = {n for t in texts.values() for n in re.findall(r'include\s+"([^"]+)"', t)}
    assert included and included <= defined, included - defined


def test_template_actions_are_balanced() -> None:
    for name, text in template_texts().items():
        assert text.count("{{") == text.count("}}"), name
        opens = len(re.findall(r"\{\{-?\s*(?:if|range|with|define)\b", text))
        ends = len(re.findall(r"\{\{-?\s*end\s*-?\}\}", text))
        assert opens == ends, f"{name}: {opens} blocks opened, {ends} closed"


@pytest.mark.parametrize("path", ["Chart.yaml", "values.yaml"])
def test_plain_yaml_files_pass_yamllint(path: str) -> None:
    problems = list(linter.run((CHART / path).read_text(), YAMLLINT, str(CHART / path)))
    assert not problems, "\n".join(f"{path}:{p.line}:{p.column} {p.message}" for p in problems)


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == CHART.name
    assert chart["type"] == "application"
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])
    assert chart["appVersion"] == project["version"]
    assert chart["description"] and chart["kubeVersion"]


def test_the_deployments_probe_health_and_readiness_and_run_hardened() -> None:
    v = values()
    assert v["probes"]["liveness"]["path"] == "/healthz"
    assert v["probes"]["readiness"]["path"] == "/readyz"
    deployment = template_texts()["deployment.yaml"]
    for needle in ("livenessProbe", "readinessProbe", "startupProbe", "resources:",
                   "$.Values.securityContext", "$.Values.podSecurityContext",
                   "automountServiceAccountToken: false",
                   'include "martinique-connect.secretEnv"'):
        assert needle in deployment, needle
    assert v["securityContext"]["readOnlyRootFilesystem"] is True
    assert v["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert v["podSecurityContext"]["runAsNonRoot"] is True


def test_secrets_come_from_existing_secrets_only() -> None:
    helpers = template_texts()["_helpers.tpl"]
    for env in ("MC_SECRET_KEY", "MC_DATABASE_URL", "MC_REDIS_URL", "MC_S3_ACCESS_KEY",
                "MC_S3_SECRET_KEY", "MC_METRICS_TOKEN", "MC_SMTP_URL"):
        block = helpers.split(f"- name: {env}", 1)[1].split("- name:", 1)[0]
        assert "secretKeyRef" in block and ".existingSecret" in block, env
    config_block = helpers.split('define "martinique-connect.config"', 1)[1]
    config_block = config_block.split("{{- end }}\n\n", 1)[0]
    assert "SECRET" not in config_block and "DATABASE" not in config_block
    assert not any(p.name.startswith("secret") for p in TEMPLATES.iterdir())
    assert not re.search(r"(?i)password|secret_?key:\s*\S", (CHART / "values.yaml").read_text()
                         .split("secrets:", 1)[0])


def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook() -> None:
    job = template_texts()["migration-job.yaml"]
    assert "helm.sh/hook: pre-install,pre-upgrade" in job
    assert re.search(r"args:\s*\n\s*- db\s*\n\s*- upgrade", job)
    assert 'include "martinique-connect.secretEnv"' in job


def test_one_deployment_per_component_with_hpa_pdb_and_ingress_paths() -> None:
    texts = template_texts()
    for name in ("deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"):
        assert "range $component, $c := .Values.components" in texts[name], name
    assert "kind: HorizontalPodAutoscaler" in texts["hpa.yaml"]
    assert "kind: PodDisruptionBudget" in texts["pdb.yaml"]
    assert "range $path := $c.paths" in texts["ingress.yaml"]
    assert "tls:" in texts["ingress.yaml"]
    paths = {c: v["paths"] for c, v in values()["components"].items()}
    assert paths["archivage"] == ["/api/archives"] and paths["services"] == ["/api/services"]
    assert paths["console"] == ["/admin"] and paths["idp"] == ["/"]
    policy = texts["networkpolicy.yaml"]
    assert "- Ingress" in policy and "- Egress" in policy


def test_notes_and_helpers_exist() -> None:
    assert (TEMPLATES / "NOTES.txt").read_text().strip()
    assert (CHART / "values.schema.json").exists()
