"""The password rules: length, the shipped list of common passwords with its variants, the
zxcvbn estimate, and the meter's verdict."""

from __future__ import annotations

import pytest

from idp.services.password_policy import MIN_LENGTH, assess, common_passwords, is_common


def test_the_shipped_list_is_large_and_lowercase() -> None:
    listed = common_passwords()
    assert len(listed) > 10_000
    assert {"azertyuiop", "motdepasse", "password", "martinique972", "madinina"} <= listed
    assert all(entry == entry.lower() for entry in listed)


@pytest.mark.parametrize("password", [
    "Martinique972!", "P@ssw0rd-2026!", "AZERTYUIOP123", "motdepasse2024",
    "Madinina-972", "!!Soleil2025!!",
])
def test_common_passwords_and_their_obvious_variants_are_refused(password: str) -> None:
    assert is_common(password)
    verdict = assess(password)
    assert not verdict.acceptable
    assert verdict.score <= 1


@pytest.mark.parametrize("password", [
    "Mangue-Velo-Nuage-Tambour", "Correct-Horse-Battery-972", "tr0ub4dor&3-Zanmi-Lagon",
])
def test_long_unusual_passwords_are_accepted(password: str) -> None:
    verdict = assess(password, user_inputs=["marie.dupont@example.mq", "Marie", "Dupont"])
    assert verdict.acceptable, verdict.problems
    assert verdict.score >= 3 and verdict.label in ("Bon", "Excellent")


def test_guessable_patterns_not_in_the_list_are_refused_by_the_estimate() -> None:
    for password in ("123456789012", "qwertyuiopasdf", "aaaaaaaaaaaaaaaa"):
        verdict = assess(password)
        assert not verdict.acceptable, password
        assert verdict.score < 3


def test_too_short_is_refused_whatever_its_strength() -> None:
    verdict = assess("Zq8#vR2!pL")
    assert len("Zq8#vR2!pL") < MIN_LENGTH
    assert not verdict.acceptable
    assert "au moins 12 caractères" in verdict.problems[0]


def test_the_persons_own_name_or_address_is_refused() -> None:
    verdict = assess("Dupont-Marie-1985", user_inputs=["marie.dupont@example.mq", "Marie",
                                                       "Dupont"])
    assert not verdict.acceptable
    assert "votre nom" in verdict.problems[0]


def test_the_estimate_stays_quick_for_very_long_inputs() -> None:
    import time

    started = time.perf_counter()
    assess("a-" * 128)
    assert time.perf_counter() - started < 1.0
