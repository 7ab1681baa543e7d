"""Cost sharing arithmetic: pure functions, in integer cents.

A month's cost of an offering (the monthly price of each subscription active during the month,
plus the one-off price of those activated in it) is shared among the subscribing organisations
by the offering's sharing key: ``subscriber`` (each pays its own), ``equal``, ``population``
or ``usage``. Shares are exact to the cent by the largest-remainder method: every share is
rounded down, then the cents left go one by one to the largest remainders (ties: in the
organisations' alphabetical order), so the shares always sum to the total.

    >>> largest_remainder(100, {"a": 1, "b": 1, "c": 1})
    {'a': 34, 'b': 33, 'c': 33}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from fractions import Fraction

from plateforme.errors import InvalidInput


def largest_remainder(total_cents: int, weights: Mapping[str, int | Fraction]) -> dict[str, int]:
    """Split ``total_cents`` in proportion to ``weights``; the parts sum to the total. When
    every weight is zero the split is equal."""
    if not weights:
        return {}
    keys = sorted(weights)
    values = {k: Fraction(weights[k]) for k in keys}
    if any(v < 0 for v in values.values()):
        raise ValueError("negative weight")
    total_weight = sum(values.values(), Fraction(0))
    if total_weight == 0:
        values = {k: Fraction(1) for k in keys}
        total_weight = Fraction(len(keys))
    exact = {k: total_cents * values[k] / total_weight for k in keys}
    shares = {k: int(exact[k] // 1) for k in keys}
    left = total_cents - sum(shares.values())
    by_remainder = sorted(keys, key=lambda k: (-(exact[k] - shares[k]), k))
    for key in by_remainder[:left]:
        shares[key] += 1
    return shares


@dataclass(frozen=True)
class Charge:
    """One subscription's part of a month: what it costs the network (``cost_cents``), what
    the organisation would pay buying it alone, and its usage (for the usage key)."""

    organisation: str
    cost_cents: int
    alone_cents: int
    usage: int = 0


def share(method: str, charges: list[Charge], populations: Mapping[str, int | None]
          ) -> dict[str, int]:
    """Each organisation's share of the charges of one offering under ``method``."""
    if not charges:
        return {}
    orgs = sorted({c.organisation for c in charges})
    total = sum(c.cost_cents for c in charges)
    if method == "subscriber":
        return {o: sum(c.cost_cents for c in charges if c.organisation == o) for o in orgs}
    if method == "equal":
        return largest_remainder(total, dict.fromkeys(orgs, 1))
    if method == "population":
        return largest_remainder(total, {o: populations.get(o) or 0 for o in orgs})
    if method == "usage":
        return largest_remainder(
            total, {o: sum(c.usage for c in charges if c.organisation == o) for o in orgs})
    raise ValueError(f"unknown sharing method {method}")


def parse_month(month: str) -> tuple[date, date]:
    """``"2026-11"`` → (first day, first day of the next month)."""
    try:
        year, number = (int(p) for p in month.split("-"))
        start = date(year, number, 1)
    except ValueError as exc:
        raise InvalidInput(f"mois invalide : {month} (attendu AAAA-MM)", field="month") from exc
    end = date(year + (number == 12), number % 12 + 1, 1)
    return start, end


def euros(cents: int) -> str:
    """``123456`` → ``"1 234,56"`` (French notation, narrow no-break space for thousands)."""
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    return f"{sign}{units:,}".replace(",", "\u202f") + f",{rest:02d}"
