"""Management rules: the référentiel (Vitam's CSV shape) and their application to units.

Categories handled: ``AppraisalRule`` (DUA and sort final), ``AccessRule``
(communicability), ``HoldRule`` (gel: blocks any elimination). A unit's effective rule in a
category is its own, else its parent's unless the unit blocks inheritance in that category.
Effective results (rule, end date, final action, hold) are stored on the unit and recomputed
for the whole subtree when a rule changes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import date

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from archivage import logbook
from archivage.models import Rule, Unit, UnitRule
from archivage.repository import subtree
from archivage.schemas import Actor, RuleAssignment
from plateforme.audit import AuditRecord, append
from plateforme.clock import utcnow
from plateforme.errors import Forbidden, InvalidInput, NotFound

CATEGORIES = ("AppraisalRule", "AccessRule", "HoldRule")
ALL_TYPES = CATEGORIES + ("StorageRule", "DisseminationRule", "ReuseRule",
                          "ClassificationRule")
MEASUREMENTS = {"year": "Year", "month": "Month", "day": "Day"}
FINAL_ACTIONS = ("conserver", "détruire", "trier")
CSV_HEADER = ["RuleId", "RuleType", "RuleValue", "RuleDescription", "RuleDuration",
              "RuleMeasurement"]


def add_duration(start: date, duration: int, measurement: str) -> date:
    if measurement == "Day":
        from datetime import timedelta

        return start + timedelta(days=duration)
    months = duration * 12 if measurement == "Year" else duration
    year, month = divmod(start.month - 1 + months, 12)
    year += start.year
    month += 1
    day = start.day
    while True:
        try:
            return date(year, month, day)
        except ValueError:
            day -= 1


def end_of(rule: Rule, start: date) -> date | None:
    if rule.duration is None or rule.measurement is None:
        return None  # unlimited
    return add_duration(start, rule.duration, rule.measurement)


class ReferentialRefused(InvalidInput):
    """A référentiel with errors: ``reasons`` lists every one, with its line."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("Référentiel refusé : " + " ; ".join(reasons) + ".")
        self.reasons = reasons


def parse_csv(data: str) -> list[Rule]:
    """Read a référentiel in Vitam's CSV shape; every problem is reported with its line."""
    reader = csv.DictReader(io.StringIO(data.lstrip("\ufeff")))
    if [h.strip() for h in (reader.fieldnames or [])][:6] != CSV_HEADER:
        raise ReferentialRefused(["en-tête attendu : " + ",".join(CSV_HEADER)])
    rules: list[Rule] = []
    errors: list[str] = []
    seen: set[str] = set()
    for line, row in enumerate(reader, start=2):
        rule_id = (row.get("RuleId") or "").strip()
        rule_type = (row.get("RuleType") or "").strip()
        raw_duration = (row.get("RuleDuration") or "").strip()
        raw_measure = (row.get("RuleMeasurement") or "").strip().lower()
        if not rule_id or len(rule_id) > 100:
            errors.append(f"ligne {line} : RuleId manquant ou trop long")
            continue
        if rule_id in seen:
            errors.append(f"ligne {line} : RuleId « {rule_id} » en double")
        seen.add(rule_id)
        if rule_type not in ALL_TYPES:
            errors.append(f"ligne {line} : RuleType « {rule_type} » inconnu")
        duration: int | None
        if raw_duration.lower() in ("unlimited", "illimitée", "illimite", ""):
            duration, measurement = None, None
        elif raw_duration.isdigit():
            duration = int(raw_duration)
            measurement = MEASUREMENTS.get(raw_measure)
            if measurement is None:
                errors.append(f"ligne {line} : RuleMeasurement « {raw_measure} » inconnu "
                              "(year, month ou day)")
        else:
            errors.append(f"ligne {line} : RuleDuration « {raw_duration} » invalide")
            continue
        rules.append(Rule(rule_id=rule_id, rule_type=rule_type,
                          value=(row.get("RuleValue") or rule_id).strip()[:255],
                          description=(row.get("RuleDescription") or "").strip() or None,
                          duration=duration, measurement=measurement))
    if errors:
        raise ReferentialRefused(errors)
    return rules


def to_csv(rules: Iterable[Rule]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for r in rules:
        writer.writerow([r.rule_id, r.rule_type, r.value, r.description or "",
                         "unlimited" if r.duration is None else r.duration,
                         (r.measurement or "").lower()])
    return out.getvalue()


def assign(session: Session, unit: Unit, assignments: Sequence[RuleAssignment],
           today: date) -> list[dict[str, object]]:
    """Set ``unit``'s own rules (one per category, replacing what was there); returns what
    was applied. The caller recomputes effective rules (:func:`recompute`)."""
    applied: list[dict[str, object]] = []
    categories: set[str] = set()
    for item in assignments:
        rule = session.get(Rule, item.rule_id)
        if rule is None:
            raise InvalidInput(f"Règle « {item.rule_id} » absente du référentiel.",
                               field="rules")
        if rule.rule_type not in CATEGORIES:
            raise InvalidInput(f"Règle « {rule.rule_id} » ({rule.rule_type}) non gérée ici.",
                               field="rules")
        if rule.rule_type in categories:
            raise InvalidInput(f"Deux règles de type {rule.rule_type} sur la même unité.",
                               field="rules")
        categories.add(rule.rule_type)
        if rule.rule_type == "AppraisalRule" and item.final_action is None:
            raise InvalidInput(f"La règle de DUA « {rule.rule_id} » demande un sort final "
                               "(conserver, détruire ou trier).", field="rules")
        start = item.start_date or unit.end_date or unit.start_date or today
        existing = session.exec(select(UnitRule).where(
            UnitRule.unit_id == unit.id, UnitRule.category == rule.rule_type)).first()
        record = existing or UnitRule(unit_id=unit.id, category=rule.rule_type,
                                      rule_id=rule.rule_id, start_date=start)
        record.rule_id = rule.rule_id
        record.start_date = start
        record.final_action = item.final_action if rule.rule_type == "AppraisalRule" else None
        session.add(record)
        end = end_of(rule, start)
        applied.append({"category": rule.rule_type, "rule_id": rule.rule_id,
                        "start_date": start.isoformat(),
                        "end_date": end.isoformat() if end else None,
                        "final_action": record.final_action})
    session.flush()
    return applied


def recompute(session: Session, top: Unit, *, units: Sequence[Unit] | None = None) -> None:
    """Recompute the effective rules of ``top`` and of everything below it; ``units``: that
    subtree, top first, when the caller has it (a deposit's new units), rather than searched
    for by path."""
    units = list(subtree(session=session, unit=top)) if units is None else list(units)
    by_id = {u.id: u for u in units}
    own: dict[str, dict[str, UnitRule]] = {}
    for record in session.exec(select(UnitRule).where(
            col(UnitRule.unit_id).in_(list(by_id)))).all():
        own.setdefault(record.unit_id, {})[record.category] = record
    # only the rules these units name (none, for a deposit without rules of its own): the
    # whole referential as ORM objects was most of a deposit's recomputation
    named = sorted({record.rule_id for records in own.values() for record in records.values()})
    rules = {r.rule_id: r for r in session.exec(select(Rule).where(
        col(Rule.rule_id).in_(named))).all()} if named else {}
    for unit in units:  # top first: parents are done before their children
        parent = by_id.get(unit.parent_id or "") or (
            session.get(Unit, unit.parent_id) if unit.parent_id else None)
        blocked = set(json.loads(unit.blocked or "[]"))
        mine = own.get(unit.id, {})
        appraisal = mine.get("AppraisalRule")
        if appraisal is not None:
            rule = rules[appraisal.rule_id]
            unit.appraisal_rule, unit.final_action = rule.rule_id, appraisal.final_action
            unit.appraisal_end = end_of(rule, appraisal.start_date)
        elif parent is not None and "AppraisalRule" not in blocked:
            unit.appraisal_rule, unit.final_action = parent.appraisal_rule, parent.final_action
            unit.appraisal_end = parent.appraisal_end
        else:
            unit.appraisal_rule = unit.final_action = unit.appraisal_end = None
        access = mine.get("AccessRule")
        if access is not None:
            unit.access_rule = access.rule_id
            unit.access_end = end_of(rules[access.rule_id], access.start_date)
        elif parent is not None and "AccessRule" not in blocked:
            unit.access_rule, unit.access_end = parent.access_rule, parent.access_end
        else:
            unit.access_rule = unit.access_end = None
        if "HoldRule" in mine:
            unit.on_hold = True
        else:
            unit.on_hold = bool(parent is not None and "HoldRule" not in blocked
                                and parent.on_hold)
        session.add(unit)
    session.flush()


class RuleService:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def list(self) -> list[Rule]:
        with Session(self._engine, expire_on_commit=False) as session:
            return list(session.exec(select(Rule).order_by(col(Rule.rule_type),
                                                           col(Rule.rule_id))).all())

    def import_csv(self, data: str, *, actor: Actor) -> int:
        """Create or update the rules of the CSV (rules absent from it are kept: units
        may refer to them). Archivists and the archival authority may do this."""
        if not (actor.may_write or actor.is_authority) or actor.is_client:
            raise Forbidden("Seul un archiviste peut modifier le référentiel des règles.")
        rules = parse_csv(data)
        with Session(self._engine, expire_on_commit=False) as session:
            for rule in rules:
                existing = session.get(Rule, rule.rule_id)
                if existing is not None:
                    for name in ("rule_type", "value", "description", "duration",
                                 "measurement"):
                        setattr(existing, name, getattr(rule, name))
                    existing.updated_at = utcnow()
                    session.add(existing)
                else:
                    session.add(rule)
            append(session, AuditRecord(
                action="archives.rules.import", actor=actor.label,
                organisation=actor.organisation, address=actor.address,
                details={"rules": len(rules)}))
            logbook.append(session, "policy assignment", organisation=actor.organisation,
                           agent=actor.label, detail={"referentiel": len(rules)})
            session.commit()
        return len(rules)

    def get(self, rule_id: str) -> Rule:
        with Session(self._engine, expire_on_commit=False) as session:
            rule = session.get(Rule, rule_id)
            if rule is None:
                raise NotFound("Règle introuvable.")
            return rule
