"""``martinique-connect certs dev``: a local CA and a server certificate that a real TLS client
accepts (uvicorn serving over TLS on loopback), keys readable by their owner only."""

from __future__ import annotations

import os
import ssl
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from martinique_connect.certs import create_dev_certificates
from tests.support.cli import run_cli
from tests.support.live import free_port


def test_the_command_writes_ca_and_server_certificates(tmp_path: Path) -> None:
    out = tmp_path / "dev"
    result = run_cli(os.environ, "certs", "dev", "--out", str(out), "--name", "localhost",
                     "--name", "127.0.0.1", "--name", "mc.localhost")
    assert result.returncode == 0, result.stderr
    assert "(créée)" in result.stdout
    for name in ("ca.key", "server.key"):
        assert (out / name).stat().st_mode & 0o777 == 0o600, name
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    leaf = x509.load_pem_x509_certificate((out / "server.crt").read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "mc.localhost"}
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # The chain verifies with the X.509 path validation of cryptography (RFC 5280 rules).
    store = Store([ca])
    for name in ("localhost", "mc.localhost"):
        chain = PolicyBuilder().store(store).build_server_verifier(x509.DNSName(name)) \
            .verify(leaf, [])
        assert chain[-1] == ca
    with pytest.raises(x509.verification.VerificationError):
        PolicyBuilder().store(store).build_server_verifier(x509.DNSName("example.mq")) \
            .verify(leaf, [])

    # Again: the CA is kept (a browser that trusts it still does), the server cert is new.
    again = run_cli(os.environ, "certs", "dev", "--out", str(out))
    assert again.returncode == 0 and "(existante, gardée)" in again.stdout
    assert x509.load_pem_x509_certificate((out / "ca.crt").read_bytes()) == ca
    assert x509.load_pem_x509_certificate((out / "server.crt").read_bytes()) != leaf


def test_bad_names_are_refused_in_one_line(tmp_path: Path) -> None:
    result = run_cli(os.environ, "certs", "dev", "--out", str(tmp_path), "--name", "a b")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("erreur : nom de machine invalide")
    assert "Traceback" not in result.stderr


async def _hello(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200,  # type: ignore[operator]
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"bonjour"})  # type: ignore[operator]


def test_a_real_tls_handshake_on_loopback(tmp_path: Path) -> None:
    made = create_dev_certificates(tmp_path, ("localhost", "127.0.0.1"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        _hello, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
        ssl_certfile=str(made.server_chain), ssl_keyfile=str(made.server_key)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 20
        while not server.started:
            assert time.time() < deadline and thread.is_alive()
            time.sleep(0.02)
        trusting = ssl.create_default_context(cafile=str(made.ca_cert))
        for host in ("localhost", "127.0.0.1"):
            response = httpx.get(f"https://{host}:{port}/", verify=trusting, timeout=10)
            assert response.status_code == 200 and response.text == "bonjour"
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA
            httpx.get(f"https://127.0.0.1:{port}/", verify=ssl.create_default_context(),
                      timeout=10)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
