from __future__ import annotations

from idp.services.throttle import Throttle
from plateforme.kv import InProcessStore


def test_account_delay_grows_after_free_attempts() -> None:
    throttle = Throttle(InProcessStore(), free_attempts=3, address_free_attempts=100)
    delays = [throttle.failure("a@example.mq", "10.0.0.1") for _ in range(5)]
    assert delays == [0, 0, 0, 2, 4]
    assert throttle.retry_after("a@example.mq", "10.0.0.9") >= 1
    assert throttle.retry_after("b@example.mq", "10.0.0.9") == 0


def test_address_delay_applies_to_every_account() -> None:
    throttle = Throttle(InProcessStore(), free_attempts=100, address_free_attempts=3)
    for i in range(4):
        throttle.failure(f"user{i}@example.mq", "10.0.0.7")
    assert throttle.retry_after("someone-else@example.mq", "10.0.0.7") >= 1
    assert throttle.retry_after("someone-else@example.mq", "10.0.0.8") == 0


def test_success_clears_the_account_counter() -> None:
    throttle = Throttle(InProcessStore(), free_attempts=2, address_free_attempts=100)
    throttle.failure("a@example.mq", "10.0.0.1")
    throttle.success("a@example.mq", "10.0.0.1")
    assert throttle.failures("a@example.mq") == 0


def test_delay_is_capped() -> None:
    throttle = Throttle(InProcessStore(), free_attempts=0, address_free_attempts=100,
                        max_delay=60)
    delays = [throttle.failure("a@example.mq", "10.0.0.1") for _ in range(12)]
    assert max(delays) == 60


def test_assess_reports_the_wait_and_failures_on_record() -> None:
    throttle = Throttle(InProcessStore(), free_attempts=1, address_free_attempts=100)
    assert throttle.assess("a@example.mq", "10.0.0.1") == (0, False)
    throttle.failure("a@example.mq", "10.0.0.1")
    assert throttle.assess("a@example.mq", "10.0.0.1") == (0, True)
    throttle.failure("a@example.mq", "10.0.0.1")
    wait, on_record = throttle.assess("a@example.mq", "10.0.0.2")
    assert wait >= 1 and on_record
    throttle.success("a@example.mq", "10.0.0.1")
    assert throttle.assess("a@example.mq", "10.0.0.1") == (0, False)
