"""What a new password must be: at least 12 characters (ANSSI and CNIL guidance), not a
common or breached password (the list shipped in ``idp/data/common-passwords.txt``, with
its obvious variants), and not guessable by the ``zxcvbn`` estimator (score 3 of 4 at least,
with the person's names and address as known words).

:func:`assess` also gives the strength meter shown under the field: the server computes it
when the form is shown again, so it works without JavaScript.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from idp.i18n import N_, Msg

MIN_LENGTH = 12
MAX_LENGTH = 256
MIN_SCORE = 3
COMMON_LIST = Path(__file__).resolve().parents[1] / "data" / "common-passwords.txt"
# zxcvbn's cost grows with the length; what lies beyond cannot make a password weaker.
ESTIMATE_PREFIX = 64

LABELS = (N_("Très faible"), N_("Faible"), N_("Moyen"), N_("Bon"), N_("Excellent"))
_LEET = str.maketrans({"@": "a", "4": "a", "0": "o", "3": "e", "1": "i", "!": "i", "$": "s",
                       "5": "s", "7": "t", "€": "e", "8": "b"})
_EDGES = re.compile(r"^[\W\d_]+|[\W\d_]+$")


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The shipped list, read once per process."""
    with open(COMMON_LIST, encoding="utf-8") as fh:
        return frozenset(
            line.rstrip("\n") for line in fh if line.strip() and not line.startswith("#")
        )


def is_common(password: str) -> bool:
    """True for a listed password, or one that is a listed word once case, common character
    substitutions and surrounding digits or punctuation are taken away."""
    listed = common_passwords()
    lowered = password.lower()
    candidates = {lowered, lowered.translate(_LEET)}
    for value in list(candidates):
        core = _EDGES.sub("", value)
        if len(core) >= 4:
            candidates.add(core)
            candidates.add(core.replace(" ", "").replace("-", ""))
    return any(c in listed for c in candidates)


@dataclass(frozen=True)
class PasswordAssessment:
    """The verdict on a new password and what the strength meter shows."""

    acceptable: bool
    score: int  # 0 (very weak) … 4 (excellent)
    problems: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return LABELS[self.score]

    @property
    def percent(self) -> int:
        return (self.score + 1) * 20


def assess(password: str, *, user_inputs: list[str] | None = None) -> PasswordAssessment:
    """Judge a new password. ``user_inputs`` (email, names …) count as guessable words."""
    if not password:
        return PasswordAssessment(False, 0, [N_("Choisissez un mot de passe.")])
    problems: list[str] = []
    advice: list[str] = []
    if len(password) < MIN_LENGTH:
        problems.append(Msg("Le mot de passe doit contenir au moins %(minimum)d caractères "
                            "(%(length)d actuellement).", minimum=MIN_LENGTH,
                            length=len(password)))
    if len(password) > MAX_LENGTH:
        problems.append(Msg("Le mot de passe ne peut pas dépasser %(maximum)d caractères.",
                            maximum=MAX_LENGTH))
    inputs = [w for value in (user_inputs or []) for w in re.split(r"[\s@.+_-]+", value.lower())
              if len(w) >= 3]
    # zxcvbn's dictionaries take ~12 MB per worker: loaded the first time a new password is
    # judged (registration, change, reset), not at start-up nor for a sign-in.
    from zxcvbn import zxcvbn

    estimate = zxcvbn(password[:ESTIMATE_PREFIX], user_inputs=inputs)
    score = int(estimate["score"])
    common = is_common(password)
    if common:
        score = min(score, 1)
        problems.append(N_("Ce mot de passe fait partie des mots de passe les plus courants ou "
                        "déjà divulgués : il serait deviné très vite."))
    elif any(len(w) >= 4 and w in password.lower() for w in inputs):
        score = min(score, 2)
        problems.append(N_("Le mot de passe ne doit pas reprendre votre nom ni votre adresse "
                        "électronique."))
    elif len(password) >= MIN_LENGTH and score < MIN_SCORE:
        problems.append(N_("Ce mot de passe est trop facile à deviner."))
    if len(password) < MIN_LENGTH:
        score = min(score, 1)
    if score < MIN_SCORE or problems:
        advice.append(N_("Conseil : enchaînez trois ou quatre mots sans rapport entre eux, "
                      "séparés par des tirets ou des espaces, par exemple "
                      "« Mangue-Velo-Nuage-Tambour »."))
    return PasswordAssessment(not problems, score, problems, advice)
