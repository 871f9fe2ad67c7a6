"""Test support for the webhook receiver: a signing chain like Microsoft's and a real HTTPS host.

The chain is root -> intermediate -> leaf (RSA 2048, O=Microsoft Corporation on the leaf), the
shape of Partner Center's signing certificate. ``CertificateHost`` is a real TLS server on a free
loopback port that serves files by path and counts requests, so tests can prove that a rejected
URL caused no outbound request.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sandbox.tls import SandboxTls, create_tls


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


@functools.cache
def _rsa_key(slot: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    """Keys are slow to make; each named slot is generated once per test session."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def issue(
    common_name: str,
    *,
    key: rsa.RSAPrivateKey,
    issuer: Issued | None = None,
    ca: bool,
    organization: str = "Microsoft Corporation",
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> Issued:
    """A certificate with the extensions Microsoft's TLS chain carries (Web PKI shaped)."""
    now = dt.datetime.now(dt.UTC)
    subject = _name(common_name, organization)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(days=1))
        .not_valid_after(not_after or now + dt.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None if ca and issuer is None else (0 if ca else None)),
                       critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=not ca,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
    return Issued(builder.sign(issuer.key if issuer else key, hashes.SHA256()), key)


@dataclass(frozen=True)
class SigningChain:
    root: Issued
    intermediate: Issued
    leaf: Issued

    def sign(self, body: bytes) -> str:
        return base64.b64encode(self.leaf.key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()

    def roots_pem(self, *, with_intermediate: bool = True) -> bytes:
        return self.root.pem() + (self.intermediate.pem() if with_intermediate else b"")


def make_chain(prefix: str = "test", *, leaf_org: str = "Microsoft Corporation",
               leaf_not_before: dt.datetime | None = None, leaf_not_after: dt.datetime | None = None) -> SigningChain:
    root = issue(f"{prefix} Root", key=_rsa_key(f"{prefix}-root"), ca=True)
    intermediate = issue(f"{prefix} Issuing CA", key=_rsa_key(f"{prefix}-intermediate"), issuer=root, ca=True)
    leaf = issue("pcnotifications-dispatch.microsoft.com", key=_rsa_key(f"{prefix}-leaf"), issuer=intermediate,
                 ca=False, organization=leaf_org, not_before=leaf_not_before, not_after=leaf_not_after)
    return SigningChain(root, intermediate, leaf)


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class CertificateHost:
    """A real HTTPS server on 127.0.0.1 (certificate from the sandbox CA helpers) serving routes."""

    def __init__(self, tls: SandboxTls) -> None:
        self.tls = tls
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.requests.append(self.path)
                route = host.routes.get(self.path, Route(404, b"not found"))
                self.send_response(route.status)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.socket = tls.server_context().wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="cert-host", daemon=True)
        self._thread.start()

    def url(self, path: str, host: str = "localhost") -> str:
        return f"https://{host}:{self.port}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@contextmanager
def certificate_host(directory: Path) -> Iterator[CertificateHost]:
    host = CertificateHost(create_tls(directory))
    try:
        yield host
    finally:
        host.close()
