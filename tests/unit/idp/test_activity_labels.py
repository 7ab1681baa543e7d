"""Every event the platform writes to the audit journal has its French label on the account's
activity page (``/compte/activite``): one dictionary, ``idp.services.factors.ACTIVITY_LABELS``.

The actions are read from the source (``action=…`` of an ``AuditRecord``, the first arguments
of the services' ``_audit``/``_record`` helpers), so that a new event without a label fails
here rather than showing its technical name to a person."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from idp.api.account import activity_label
from idp.services.factors import ACTIVITY_LABELS

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ["idp", "admin_ui", "plateforme", "martinique_connect", "archivage",
            "services_mutualises"]
ACTION = re.compile(r"^[a-z]+(\.[a-z_]+)*$")
HELPERS = {"_audit", "_record"}


def _strings(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    return []


def written_actions() -> dict[str, str]:
    """Each action written somewhere, with one file that writes it."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                values: list[str] = []
                if isinstance(node, ast.Call) and not getattr(node.func, "id", "").startswith(
                        "OrderItem"):  # an order item's ``action`` (add, modify, delete)
                    values += [v for kw in node.keywords if kw.arg == "action"
                               for v in _strings(kw.value)]
                    name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                    if name in HELPERS:
                        values += [v for arg in node.args[:2] for v in _strings(arg)
                                   if "." in v]
                elif isinstance(node, ast.Assign) and any(
                        getattr(t, "id", "") == "action" for t in node.targets):
                    values += _strings(node.value)
                for value in values:
                    if ACTION.match(value):
                        found.setdefault(value, str(path.relative_to(ROOT)))
    return found


def test_the_scan_finds_the_platform_s_events() -> None:
    actions = written_actions()
    # a sample from each kind of writer: keyword, helper, conditional, assignment
    assert {"logout", "login.success", "mfa.totp.enrol", "password.change", "client.enable",
            "client.update", "admin.sign_in", "admin.failed"} <= set(actions)
    assert len(actions) >= 50


def test_every_written_event_has_a_french_label() -> None:
    missing = {a: where for a, where in written_actions().items() if a not in ACTIVITY_LABELS}
    assert not missing, f"events without a label in ACTIVITY_LABELS: {missing}"


def test_labels_are_french_sentences_not_technical_names() -> None:
    for action, label in ACTIVITY_LABELS.items():
        assert label and label[0].isupper(), action
        assert action not in label and "_" not in label, action
    assert activity_label("mfa.totp.enrol") == "Application d'authentification ajoutée"
    assert activity_label("login.stepup") == "Connexion renforcée"
    assert activity_label("nouvelle.action") == "Opération « nouvelle.action »"
