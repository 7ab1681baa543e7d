"""What a worker does not import at start-up (memory per worker, issue 8): the libraries
only some pages need are imported by those pages' code the first time it runs."""

from __future__ import annotations

import json
import subprocess
import sys

LAZY = ["zxcvbn", "webauthn", "OpenSSL", "lxml", "bagit", "boto3", "locust", "schemathesis",
        "segno", "alembic", "mako"]


def test_the_application_does_not_import_what_only_some_pages_need(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A worker of ``serve`` (migrations done before it starts: no Alembic either)."""
    from martinique_connect.database import upgrade
    from plateforme.db import make_engine
    from plateforme.settings import Settings

    engine = make_engine(Settings(data_dir=tmp_path, secret_key="x" * 32).sqlalchemy_url)
    upgrade(engine)
    engine.dispose()
    code = (
        "import json, sys\n"
        "from martinique_connect.app import create_app\n"
        "from plateforme.settings import Settings\n"
        f"create_app(Settings(data_dir={str(tmp_path)!r}, secret_key='x' * 32), "
        "initialise=False)\n"
        f"print(json.dumps([m for m in {LAZY!r} if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,  # noqa: S603
                            timeout=300, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_the_lazy_libraries_still_work() -> None:
    import uuid

    from idp.services.factors.passkeys import _descriptors
    from idp.services.factors.totp import TotpEnrolment
    from idp.services.password_policy import assess

    assert assess("motdepasse").acceptable is False
    assert assess("Ti-punch-au-Diamant-en-2026!").score >= 3
    assert _descriptors([]) == []
    qr = TotpEnrolment(uuid.uuid4(), "JBSWY3DPEHPK3PXP", "otpauth://totp/MC:a?secret=JBSWY3DPEHPK3PXP")
    assert qr.qr_data_uri().startswith("data:image/svg+xml")
