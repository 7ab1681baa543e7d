"""Every pair of states, for orders (TMF622) and subscriptions (TMF637): the legal
transitions pass, every other one is refused with a French message naming both states."""

from __future__ import annotations

import itertools

import pytest

from plateforme.errors import Conflict
from services_mutualises.models import ORDER_STATES, SUBSCRIPTION_STATES
from services_mutualises.services import check_transition

ORDER_LEGAL = {
    ("acknowledged", "held"), ("acknowledged", "rejected"), ("acknowledged", "cancelled"),
    ("held", "inProgress"), ("held", "rejected"), ("held", "cancelled"),
    ("inProgress", "completed"), ("inProgress", "failed"), ("failed", "inProgress"),
}
SUBSCRIPTION_LEGAL = {
    ("created", "pendingActive"), ("pendingActive", "active"), ("active", "suspended"),
    ("suspended", "active"), ("active", "pendingTerminate"),
    ("suspended", "pendingTerminate"), ("pendingTerminate", "terminated"),
}


@pytest.mark.parametrize(("current", "target"),
                         list(itertools.product(ORDER_STATES, ORDER_STATES)))
def test_order_transitions(current: str, target: str) -> None:
    if (current, target) in ORDER_LEGAL:
        check_transition("order", current, target)
    else:
        with pytest.raises(Conflict) as refused:
            check_transition("order", current, target)
        assert f"({current})" in refused.value.message
        assert f"({target})" in refused.value.message


@pytest.mark.parametrize(("current", "target"),
                         list(itertools.product(SUBSCRIPTION_STATES, SUBSCRIPTION_STATES)))
def test_subscription_transitions(current: str, target: str) -> None:
    if (current, target) in SUBSCRIPTION_LEGAL:
        check_transition("subscription", current, target)
    else:
        with pytest.raises(Conflict) as refused:
            check_transition("subscription", current, target)
        assert refused.value.message.startswith("L'abonnement est")


def test_final_states_have_no_way_out() -> None:
    for final in ("completed", "rejected", "cancelled"):
        assert not any(c == final for c, _ in ORDER_LEGAL)
    assert not any(c == "terminated" for c, _ in SUBSCRIPTION_LEGAL)
