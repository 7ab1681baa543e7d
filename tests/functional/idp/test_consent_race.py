"""Two sessions of one person consenting to one client at the same moment (found by the
load tests: the second insert of the consent row failed with a 500 on PostgreSQL)."""

from __future__ import annotations

import threading

from tests.conftest import Platform


def test_simultaneous_consents_merge_into_one_row(platform: Platform) -> None:
    provider = platform.provider
    client = platform.create_client()
    for _ in range(5):
        user = platform.create_user()
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def consent(scope: str, user_id: object = user["id"], b: threading.Barrier = barrier,
                    errors: list[BaseException] = errors) -> None:
            b.wait()
            try:
                provider.consents.record(user_id, client["client_id"], scope,  # type: ignore[arg-type]
                                         implied=False)
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=consent, args=(s,)) for s in
                   ("openid profile", "openid email")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert provider.consents.covers(user["id"], client["client_id"], "openid profile email")
