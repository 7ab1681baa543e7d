"""Second factors and assurance levels: TOTP, recovery codes, WebAuthn passkeys."""

from idp.services.factors.common import FactorFailed
from idp.services.factors.levels import (
    ACR_VALUES,
    EIDAS1,
    EIDAS2,
    acr_for,
    combine,
    required_acr,
    satisfies,
)
from idp.services.factors.passkeys import PasskeyUse
from idp.services.factors.service import (
    ACTIVITY_LABELS,
    FactorReset,
    FactorService,
    FactorSummary,
    Origin,
)
from idp.services.factors.totp import TotpEnrolment

__all__ = [
    "ACR_VALUES",
    "ACTIVITY_LABELS",
    "EIDAS1",
    "EIDAS2",
    "FactorFailed",
    "FactorReset",
    "FactorService",
    "FactorSummary",
    "Origin",
    "PasskeyUse",
    "TotpEnrolment",
    "acr_for",
    "combine",
    "required_acr",
    "satisfies",
]
