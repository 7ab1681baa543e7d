"""Development TLS: a local certificate authority and server certificates signed by it.

``martinique-connect certs dev --out certs/dev`` writes ``ca.crt``/``ca.key`` (kept when they
exist, so a CA already trusted by the developer's browser stays valid) and
``server.crt``/``server.key`` (always new) plus ``server-chain.crt`` (server then CA). Keys are
ECDSA P-256, written with mode 0600. Production certificates come from the CTM's PKI, never
from here: see docs/pki.md.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650
# Browsers refuse server certificates valid for more than 398 days.
SERVER_DAYS = 397


@dataclass(frozen=True)
class DevCertificates:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    server_chain: Path
    ca_created: bool


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Martinique Connect (développement)"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def subject_alternative_names(names: list[str] | tuple[str, ...]) -> list[x509.GeneralName]:
    """Each name as an IP address when it parses as one, as a DNS name otherwise."""
    result: list[x509.GeneralName] = []
    for raw in names:
        name = raw.strip()
        if not name:
            raise ValueError("nom vide dans la liste des noms du certificat")
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            if not all(part.isalnum() or part in "-*." for part in name) or " " in name:
                raise ValueError(f"nom de machine invalide : {name}") from None
            result.append(x509.DNSName(name.lower()))
    return result


def _write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by its owner only, atomically (created 0600, renamed)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    tmp.replace(path)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _create_ca(now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("Martinique Connect - AC de développement")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def create_dev_certificates(out: Path, names: list[str] | tuple[str, ...] = DEFAULT_NAMES, *,
                            days: int = SERVER_DAYS, new_ca: bool = False) -> DevCertificates:
    """Create (or reuse) the CA in ``out`` and a new server certificate for ``names``."""
    if not 1 <= days <= SERVER_DAYS:
        raise ValueError(f"durée de validité entre 1 et {SERVER_DAYS} jours")
    sans = subject_alternative_names(names)
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca_cert_path, ca_key_path = out / "ca.crt", out / "ca.key"
    ca_created = new_ca or not (ca_cert_path.exists() and ca_key_path.exists())
    if ca_created:
        ca_cert, ca_key = _create_ca(now)
        _write_private(ca_key_path, _pem_key(ca_key))
        _write_public(ca_cert_path, ca_cert.public_bytes(serialization.Encoding.PEM))
    else:
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{ca_key_path} : clé d'AC inattendue (ECDSA attendue)")
        ca_key = loaded
    key = ec.generate_private_key(ec.SECP256R1())
    first = names[0].strip()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(first)).issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(min(now + timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_pem = cert.public_bytes(serialization.Encoding.PEM)
    _write_private(out / "server.key", _pem_key(key))
    _write_public(out / "server.crt", server_pem)
    _write_public(out / "server-chain.crt",
                  server_pem + ca_cert.public_bytes(serialization.Encoding.PEM))
    return DevCertificates(ca_cert=ca_cert_path, ca_key=ca_key_path,
                           server_cert=out / "server.crt", server_key=out / "server.key",
                           server_chain=out / "server-chain.crt", ca_created=ca_created)
