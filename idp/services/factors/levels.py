"""Assurance levels (``acr``) and authentication methods (``amr``, RFC 8176).

* ``eidas1``: one factor — a password, or a passkey without user verification;
* ``eidas2``: two factors (a password and a one-time code or a passkey), or a passkey whose
  authenticator verified the person (PIN or biometrics: possession plus knowledge/inherence).

``amr`` lists what was actually done: ``pwd`` (password), ``otp`` (TOTP or recovery code),
``hwk`` / ``swk`` (passkey bound to one device / synchronised), and ``mfa`` when the
combination counts as two factors.
"""

from __future__ import annotations

from collections.abc import Iterable

EIDAS1 = "eidas1"
EIDAS2 = "eidas2"
ACR_VALUES = (EIDAS1, EIDAS2)
_RANK = {EIDAS1: 1, EIDAS2: 2}
FACTOR_METHODS = ("pwd", "otp", "hwk", "swk")


def acr_for(amr: Iterable[str]) -> str:
    return EIDAS2 if "mfa" in set(amr) else EIDAS1


def combine(*amrs: Iterable[str]) -> list[str]:
    """The methods of several authentications of the same person, with ``mfa`` when they
    make two distinct factors (or one of them already was multi-factor)."""
    methods: list[str] = []
    mfa = False
    for amr in amrs:
        for method in amr:
            if method == "mfa":
                mfa = True
            elif method not in methods:
                methods.append(method)
    if len({m for m in methods if m in FACTOR_METHODS}) >= 2:
        mfa = True
    return methods + (["mfa"] if mfa else [])


def rank(acr: str | None) -> int:
    return _RANK.get(acr or "", 0)


def satisfies(acr: str | None, required: str | None) -> bool:
    return required is None or rank(acr) >= rank(required)


def required_acr(acr_values: str | None, default_acr: str | None) -> str | None:
    """The level an authorization request needs: the lowest supported value of ``acr_values``
    (they are alternatives, in order of preference) and never below the client's registered
    minimum (``default_acr``). Unknown values are ignored (``acr`` is a voluntary claim)."""
    requested = [v for v in (acr_values or "").split() if v in _RANK]
    wanted = min(requested, key=rank) if requested else None
    minimum = default_acr if default_acr in _RANK else None
    candidates = [v for v in (wanted, minimum) if v]
    return max(candidates, key=rank) if candidates else None
