"""Password hashing: argon2id through passlib's API (the maintained ``libpass`` fork).

Parameters follow OWASP (19 MiB, 2 passes, 1 lane). A hash made with older parameters is
replaced at the next successful sign-in (:func:`verify_and_update`).
"""

from __future__ import annotations

from passlib.context import CryptContext

_context = CryptContext(
    schemes=["argon2"],
    argon2__type="ID",
    argon2__memory_cost=19 * 1024,
    argon2__time_cost=2,
    argon2__parallelism=1,
)

# A real hash of a random password, verified when the account does not exist so that
# unknown and known accounts take the same time.
_DUMMY_HASH = _context.hash("martinique-connect-dummy-password-for-timing")


def hash_password(password: str) -> str:
    return _context.hash(password)


def verify_and_update(password: str, password_hash: str | None) -> tuple[bool, str | None]:
    """Check ``password``; return ``(ok, new_hash)`` where ``new_hash`` is set when the stored
    hash uses outdated parameters. With no hash, burn the same time and fail."""
    if not password_hash:
        _context.verify(password, _DUMMY_HASH)
        return False, None
    return _context.verify_and_update(password, password_hash)


def burn_time(password: str) -> None:
    """Spend one verification's worth of time (unknown accounts, throttled attempts)."""
    _context.verify(password, _DUMMY_HASH)


def needs_update(password_hash: str) -> bool:
    return _context.needs_update(password_hash)
