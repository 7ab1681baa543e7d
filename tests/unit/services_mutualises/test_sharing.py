"""Cost-sharing arithmetic against hand-computed cases: shares sum exactly to the total, to
the cent, by largest remainder."""

from __future__ import annotations

from datetime import date

import pytest

from plateforme.errors import InvalidInput
from services_mutualises.sharing import Charge, euros, largest_remainder, parse_month, share


def test_equal_thirds_give_the_extra_cent_to_the_first_in_order() -> None:
    # 100 / 3 = 33.33…: remainders equal, the cent goes alphabetically first
    assert largest_remainder(100, {"b": 1, "a": 1, "c": 1}) == {"a": 34, "b": 33, "c": 33}


def test_largest_remainders_get_the_cents() -> None:
    # 1000 cents by 1:2:4 → 142.857, 285.714, 571.428 → 142 + 285 + 571 = 998; two cents
    # left go to the largest remainders: .857 (a) then .714 (b)
    assert largest_remainder(1000, {"a": 1, "b": 2, "c": 4}) == {"a": 143, "b": 286, "c": 571}


def test_population_shares_of_three_communes() -> None:
    # 450 000 cents among populations 40 000, 20 000, 15 000 (total 75 000):
    # 240 000, 120 000, 90 000 exactly
    shares = largest_remainder(450_000, {"lamentin": 40_000, "schoelcher": 20_000,
                                         "robert": 15_000})
    assert shares == {"lamentin": 240_000, "schoelcher": 120_000, "robert": 90_000}


def test_shares_always_sum_to_the_total() -> None:
    weights = {f"org{i}": w for i, w in enumerate([7, 13, 1, 29, 3, 3, 11])}
    for total in (0, 1, 99, 10_001, 123_457):
        assert sum(largest_remainder(total, weights).values()) == total


def test_zero_weights_fall_back_to_equal_shares() -> None:
    assert largest_remainder(10, {"a": 0, "b": 0}) == {"a": 5, "b": 5}


def test_negative_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        largest_remainder(10, {"a": -1, "b": 2})


def test_each_sharing_key() -> None:
    charges = [Charge("fdf", 60_000, 95_000, usage=1000), Charge("lamentin", 60_000, 95_000,
                                                                  usage=500),
               Charge("lamentin", 60_000, 95_000, usage=100), Charge("robert", 60_000, 95_000,
                                                                     usage=100)]
    populations = {"fdf": 76_000, "lamentin": 39_000, "robert": 21_000}
    # total 240 000 cents
    assert share("subscriber", charges, populations) == {
        "fdf": 60_000, "lamentin": 120_000, "robert": 60_000}
    assert share("equal", charges, populations) == {
        "fdf": 80_000, "lamentin": 80_000, "robert": 80_000}
    # usage 1000 : 600 : 100 of 1700 → 141 176.47, 84 705.88, 14 117.64 → floors sum to
    # 239 998; the two cents go to .88 (lamentin) then .64 (robert)
    assert share("usage", charges, populations) == {
        "fdf": 141_176, "lamentin": 84_706, "robert": 14_118}
    # population 76 000 : 39 000 : 21 000 of 136 000 → 134 117.64, 68 823.52, 37 058.82
    # → floors 239 998; cents to .82 (robert) then .64 (fdf)
    assert share("population", charges, populations) == {
        "fdf": 134_118, "lamentin": 68_823, "robert": 37_059}


def test_months() -> None:
    assert parse_month("2026-12") == (date(2026, 12, 1), date(2027, 1, 1))
    assert parse_month("2026-02") == (date(2026, 2, 1), date(2026, 3, 1))
    with pytest.raises(InvalidInput):
        parse_month("2026-13")


def test_euros_in_french_notation() -> None:
    assert euros(123_456) == "1\u202f234,56"
    assert euros(5) == "0,05"
    assert euros(-250) == "-2,50"
