"""Small helpers for the console's forms: multi-line fields, the mandatory reason, and
validation errors tied to the field that caused them."""

from __future__ import annotations

from pydantic import ValidationError

REASON_MAX = 500


def lines(text: str) -> list[str]:
    """One value per line (blank lines ignored)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def reason_error(reason: str) -> str | None:
    """The « motif » every action carries: required, a few words at least."""
    if len(reason.strip()) < 3:
        return "Indiquez le motif de cette action (3 caractères au moins)."
    if len(reason) > REASON_MAX:
        return f"Le motif ne peut pas dépasser {REASON_MAX} caractères."
    return None


def field_errors(exc: ValidationError, fields: dict[str, str], default: str) -> dict[str, str]:
    """Map pydantic's errors to the form's field ids (``fields``: model field -> form id);
    errors of the whole model go to ``default``."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        location = error.get("loc", ())
        name = str(location[0]) if location else ""
        target = fields.get(name, default)
        message = str(error.get("msg", "valeur invalide")).removeprefix("Value error, ")
        errors.setdefault(target, _french(message))
    return errors


def _french(message: str) -> str:
    known = {
        "String should have at least 1 character": "Ce champ est obligatoire.",
        "Field required": "Ce champ est obligatoire.",
    }
    for english, french in known.items():
        if message.startswith(english):
            return french
    if message.startswith("Input should be"):
        return "Valeur non reconnue."
    if message.startswith("String should match pattern"):
        return "Caractères admis : lettres, chiffres, « . _ ~ - » (3 à 100)."
    return message
