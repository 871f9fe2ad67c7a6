"""Partner Center webhook signatures: the headers, the signing certificate's checks, the RSA check.

Follows the verification steps Partner Center documents: the three headers must be present, the
certificate must chain to a trusted Microsoft root and name ``O=Microsoft Corporation``, and the
signature is RSA (PKCS#1 v1.5) with SHA-256 over the exact body bytes. Fetching the certificate
is ``certificates.py``'s job; this module never touches the network.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID

from shared.errors import FraudResponderError

SUPPORTED_ALGORITHM = "rsa-sha256"
REQUIRED_ORGANIZATION = "Microsoft Corporation"
MIN_RSA_BITS = 2048
MAX_CHAIN_DEPTH = 4
_MAX_SIGNATURE_HEADER = 2048  # a 4096-bit signature is 684 base64 characters
_MAX_URL_HEADER = 2048
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


class WebhookRejected(FraudResponderError):
    """A webhook request that must not be processed; ``status`` and ``code`` form the answer.

    The message says what was wrong and never contains the signature, a secret or the body.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = self.http_status = status
        self.code = self.error_code = code
        self.message = message


def _bad_header(message: str, code: str = "malformed_header") -> WebhookRejected:
    return WebhookRejected(400, code, message)


def untrusted(code: str, message: str) -> WebhookRejected:
    """A 401: the request may be well formed but nothing in it can be trusted."""
    return WebhookRejected(401, code, message)


@dataclass(frozen=True)
class SignatureHeaders:
    """The three signature headers, syntactically checked (nothing trusted yet)."""

    signature: bytes
    certificate_url: str
    algorithm: str


def _signature_value(raw: str, *, header: str, scheme_required: bool) -> bytes:
    value = raw.strip()
    if len(value) > _MAX_SIGNATURE_HEADER:
        raise _bad_header(f"{header} is longer than {_MAX_SIGNATURE_HEADER} characters")
    scheme, _, token = value.partition(" ")
    if token:
        if scheme.lower() != "signature":
            raise _bad_header(f"{header} must use the Signature scheme: '{header}: Signature <base64>'")
        value = token.strip()
    elif scheme_required:
        raise _bad_header(f"{header} must be 'Signature <base64 signature>'")
    if not _BASE64.fullmatch(value):
        raise _bad_header(f"{header} does not carry a base64 signature")
    try:
        signature = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _bad_header(f"{header} does not carry a valid base64 signature") from None
    if not signature:
        raise _bad_header(f"{header} carries an empty signature")
    return signature


def parse_signature_headers(headers: Mapping[str, str]) -> SignatureHeaders:
    """Check the signature headers' presence and syntax; raise WebhookRejected (400) otherwise.

    ``headers`` must have lower-case keys. The signature is read from ``Authorization: Signature
    <b64>``, or from ``x-ms-signature`` (``Signature <b64>`` or bare ``<b64>``) when Partner Center
    is registered with ``SignatureTokenToMsSignatureHeader``.
    """
    authorization = headers.get("authorization", "")
    ms_signature = headers.get("x-ms-signature", "")
    if authorization.strip().lower().startswith("signature ") or (authorization.strip() and not ms_signature):
        signature = _signature_value(authorization, header="Authorization", scheme_required=True)
    elif ms_signature.strip():
        signature = _signature_value(ms_signature, header="x-ms-signature", scheme_required=False)
    else:
        raise _bad_header("the signature is missing: send 'Authorization: Signature <base64>' "
                          "(or x-ms-signature)", code="missing_header")
    certificate_url = headers.get("x-ms-certificate-url", "").strip()
    if not certificate_url:
        raise _bad_header("X-MS-Certificate-Url is missing", code="missing_header")
    if len(certificate_url) > _MAX_URL_HEADER or any(ord(c) < 0x21 or ord(c) > 0x7E for c in certificate_url):
        raise _bad_header("X-MS-Certificate-Url is not a URL")
    algorithm = headers.get("x-ms-signature-algorithm", "").strip()
    if not algorithm:
        raise _bad_header("X-MS-Signature-Algorithm is missing", code="missing_header")
    if algorithm.lower() != SUPPORTED_ALGORITHM:
        raise _bad_header(f"X-MS-Signature-Algorithm must be {SUPPORTED_ALGORITHM}", code="unsupported_algorithm")
    return SignatureHeaders(signature=signature, certificate_url=certificate_url, algorithm=SUPPORTED_ALGORITHM)


# ---------------------------------------------------------------------------------------------
# Trust anchors and the signing certificate


def _is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True)
class TrustAnchors:
    """Roots the signing certificate must chain to, and known intermediates used to build the chain.

    Both come from one PEM file (WEBHOOK_TRUSTED_ROOTS): self-signed certificates are roots,
    the others are intermediates, which are never trusted on their own.
    """

    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()

    @classmethod
    def from_pem(cls, data: bytes, *, source: str = "trusted roots") -> TrustAnchors:
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise ValueError(f"{source} holds no readable PEM certificate; "
                             "expected a file of -----BEGIN CERTIFICATE----- blocks") from None
        roots = tuple(c for c in certs if _is_self_signed(c))
        if not roots:
            raise ValueError(f"{source} holds no self-signed root certificate")
        return cls(roots=roots, intermediates=tuple(c for c in certs if not _is_self_signed(c)))

    @classmethod
    def from_file(cls, path: Path) -> TrustAnchors:
        """Load WEBHOOK_TRUSTED_ROOTS; a missing or empty file is a configuration error."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"WEBHOOK_TRUSTED_ROOTS file {path.name!r} cannot be read ({exc.strerror}); "
                             "point it at a PEM file of root certificates") from None
        return cls.from_pem(data, source=f"WEBHOOK_TRUSTED_ROOTS file {path.name!r}")


def _organizations(name: x509.Name) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]


def verify_certificate(
    leaf: x509.Certificate,
    anchors: TrustAnchors,
    *,
    untrusted_intermediates: tuple[x509.Certificate, ...] = (),
    now: dt.datetime | None = None,
) -> dt.datetime:
    """Check the signing certificate; return when the verified chain stops being valid.

    Checks: RSA key of at least 2048 bits; the leaf in its validity period; subject
    ``O=Microsoft Corporation``; digitalSignature allowed when KeyUsage is present; a chain, by
    issuer name, signature, validity dates and CA constraints (RFC 5280 / Web PKI rules as
    implemented by ``cryptography``), to one of ``anchors.roots``. Extended key usage is not
    constrained (Partner Center does not document one) and no host name is matched, so the
    leaf's SAN is optional. Revocation (CRL/OCSP) is not checked.
    """
    moment = now or dt.datetime.now(dt.UTC)
    key = leaf.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise untrusted("untrusted_certificate", "the signing certificate does not hold an RSA key (rsa-sha256)")
    if key.key_size < MIN_RSA_BITS:
        raise untrusted("untrusted_certificate", f"the signing certificate's RSA key is under {MIN_RSA_BITS} bits")
    if moment < leaf.not_valid_before_utc:
        raise untrusted("untrusted_certificate", "the signing certificate is not valid yet")
    if moment > leaf.not_valid_after_utc:
        raise untrusted("untrusted_certificate", "the signing certificate has expired")
    if REQUIRED_ORGANIZATION not in _organizations(leaf.subject):
        raise untrusted("untrusted_certificate",
                        f"the signing certificate's subject is not O={REQUIRED_ORGANIZATION}")
    try:
        key_usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        key_usage = None
    if key_usage is not None and not key_usage.digital_signature:
        raise untrusted("untrusted_certificate", "the signing certificate may not be used for signatures")

    any_eku_ca = verification.ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, None)
    # No host name is matched (the signer is not a TLS peer), so the leaf's SAN is optional too.
    any_eku_ee = (verification.ExtensionPolicy.webpki_defaults_ee()
                  .may_be_present(x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, None)
                  .may_be_present(x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None))
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(list(anchors.roots)))
        .time(moment)
        .max_chain_depth(MAX_CHAIN_DEPTH)
        .extension_policies(ca_policy=any_eku_ca, ee_policy=any_eku_ee)
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(leaf, [*untrusted_intermediates, *anchors.intermediates])
    except verification.VerificationError as exc:
        reason = str(exc).split(" (encountered", 1)[0][:200]
        raise untrusted("untrusted_certificate",
                        f"the signing certificate does not chain to a trusted Microsoft root: {reason}") from None
    return min(cert.not_valid_after_utc for cert in verified.chain)


def verify_body_signature(leaf: x509.Certificate, body: bytes, signature: bytes) -> None:
    """RSA PKCS#1 v1.5 with SHA-256 over the exact body bytes; raise WebhookRejected (401) on mismatch."""
    key = leaf.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise untrusted("untrusted_certificate", "the signing certificate does not hold an RSA key (rsa-sha256)")
    try:
        key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise untrusted("invalid_signature", "the signature does not match the body and the signing certificate") \
            from None
