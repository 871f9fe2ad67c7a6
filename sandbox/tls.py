"""Certificates for the sandbox: a throwaway CA and the loopback server certificate it signs.

Clients trust the sandbox only through its CA file (TRUSTED_CA_BUNDLE); nothing turns TLS
verification off. The helpers are generic so the webhook stand-in can build its own signing
chain (root -> intermediate -> leaf) with the same code.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_NAMES: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class CertifiedKey:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CSP fraud responder sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def new_key(kind: str = "ec") -> CertificateIssuerPrivateKeyTypes:
    """A fresh private key: "ec" (P-256, fast) or "rsa" (2048 bits)."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def make_ca(
    common_name: str = "CSP fraud responder sandbox CA",
    *,
    issuer: CertifiedKey | None = None,
    key_kind: str = "ec",
    days: int = 30,
) -> CertifiedKey:
    """A CA certificate: self-signed (root) or, with ``issuer``, an intermediate signed by it."""
    key = new_key(key_kind)
    now = dt.datetime.now(dt.UTC)
    subject = _name(common_name)
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    cert = builder.sign(signer_key, hashes.SHA256())
    return CertifiedKey(cert, key)


def make_leaf(
    issuer: CertifiedKey,
    common_name: str,
    *,
    hosts: Sequence[str] = (),
    server: bool = True,
    key_kind: str = "ec",
    days: int = 30,
) -> CertifiedKey:
    """An end-entity certificate signed by ``issuer``; ``hosts`` become SAN DNS names or IPs."""
    key = new_key(key_kind)
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=key_kind == "rsa",
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CODE_SIGNING]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return CertifiedKey(builder.sign(issuer.key, hashes.SHA256()), key)


@dataclass(frozen=True)
class SandboxTls:
    """The sandbox CA and server certificate, written as PEM files under ``directory``."""

    ca: CertifiedKey
    server: CertifiedKey
    ca_cert_path: Path
    server_cert_path: Path
    server_key_path: Path

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context presenting the loopback certificate (TLS 1.2+)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.server_cert_path, self.server_key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context trusting only the sandbox CA (for tests and probes)."""
        return ssl.create_default_context(cafile=str(self.ca_cert_path))


def create_tls(directory: Path, hosts: Sequence[str] = LOOPBACK_NAMES) -> SandboxTls:
    """Generate a CA and a server certificate for ``hosts`` and write them to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca()
    server = make_leaf(ca, "sandbox.localhost", hosts=hosts)
    ca_path = directory / "ca.pem"
    cert_path = directory / "server.pem"
    key_path = directory / "server-key.pem"
    ca_path.write_bytes(ca.cert_pem())
    cert_path.write_bytes(server.cert_pem() + ca.cert_pem())
    key_path.write_bytes(server.key_pem())
    key_path.chmod(0o600)
    return SandboxTls(ca, server, ca_path, cert_path, key_path)
