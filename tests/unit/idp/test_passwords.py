from __future__ import annotations

from passlib.context import CryptContext

from idp import passwords


def test_argon2id_with_owasp_parameters() -> None:
    hashed = passwords.hash_password("Un-mot-de-passe-solide")
    assert hashed.startswith("$argon2id$")
    assert "m=19456,t=2,p=1" in hashed


def test_outdated_hash_is_replaced_on_success() -> None:
    weak = CryptContext(schemes=["argon2"], argon2__type="ID", argon2__memory_cost=8192,
                        argon2__time_cost=1, argon2__parallelism=1).hash("Un-mot-de-passe")
    ok, new_hash = passwords.verify_and_update("Un-mot-de-passe", weak)
    assert ok is True
    assert new_hash is not None and "m=19456,t=2" in new_hash
    ok, again = passwords.verify_and_update("Un-mot-de-passe", new_hash)
    assert ok is True and again is None


def test_wrong_password_and_missing_hash_fail() -> None:
    hashed = passwords.hash_password("Un-mot-de-passe-solide")
    assert passwords.verify_and_update("autre", hashed) == (False, None)
    assert passwords.verify_and_update("autre", None) == (False, None)
