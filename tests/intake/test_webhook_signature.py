"""Signature headers, the signing certificate's checks and the RSA check (no network, no storage)."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from shared.intake.signature import (
    TrustAnchors,
    WebhookRejected,
    parse_signature_headers,
    verify_body_signature,
    verify_certificate,
)
from tests.intake.webhook_support import issue, make_chain

REPO_ROOT = Path(__file__).resolve().parents[2]
SIG = base64.b64encode(b"\x01" * 256).decode()
URL = "https://3psostorageacct.blob.core.windows.net/cert/pcnotifications-dispatch.microsoft.com.cer"


def headers(**overrides: str | None) -> dict[str, str]:
    base: dict[str, str | None] = {
        "authorization": f"Signature {SIG}",
        "x-ms-certificate-url": URL,
        "x-ms-signature-algorithm": "rsa-sha256",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def rejection(fn: object, *args: object, **kwargs: object) -> WebhookRejected:
    with pytest.raises(WebhookRejected) as info:
        fn(*args, **kwargs)  # type: ignore[operator]
    return info.value


# --- headers ---------------------------------------------------------------------------------


def test_documented_headers_parse() -> None:
    parsed = parse_signature_headers(headers())
    assert parsed.signature == b"\x01" * 256
    assert parsed.certificate_url == URL
    assert parsed.algorithm == "rsa-sha256"


def test_x_ms_signature_header_is_accepted_with_or_without_scheme() -> None:
    for value in (f"Signature {SIG}", SIG):
        parsed = parse_signature_headers(headers(authorization=None, **{"x-ms-signature": value}))
        assert parsed.signature == b"\x01" * 256


@pytest.mark.parametrize("missing", ["authorization", "x-ms-certificate-url", "x-ms-signature-algorithm"])
def test_missing_header_is_400_naming_it(missing: str) -> None:
    error = rejection(parse_signature_headers, headers(**{missing: None}))
    assert (error.status, error.code) == (400, "missing_header")


@pytest.mark.parametrize("value", [f"Bearer {SIG}", "Signature not-base64!", "Signature ", "Signature ===="])
def test_malformed_authorization_is_400(value: str) -> None:
    error = rejection(parse_signature_headers, headers(authorization=value))
    assert error.status == 400


def test_other_algorithms_are_refused() -> None:
    error = rejection(parse_signature_headers, headers(**{"x-ms-signature-algorithm": "rsa-sha1"}))
    assert (error.status, error.code) == (400, "unsupported_algorithm")
    assert parse_signature_headers(headers(**{"x-ms-signature-algorithm": "RSA-SHA256"})).algorithm == "rsa-sha256"


def test_messages_never_echo_the_signature() -> None:
    error = rejection(parse_signature_headers, headers(authorization=f"Bearer {SIG}"))
    assert SIG not in error.message


# --- the signing certificate -----------------------------------------------------------------


def test_chain_to_trusted_root_is_accepted_until_the_earliest_notafter() -> None:
    chain = make_chain()
    anchors = TrustAnchors.from_pem(chain.roots_pem())
    expires = verify_certificate(chain.leaf.cert, anchors)
    assert expires == min(c.cert.not_valid_after_utc for c in (chain.root, chain.intermediate, chain.leaf))


def test_intermediate_served_with_the_leaf_completes_the_chain() -> None:
    chain = make_chain()
    anchors = TrustAnchors.from_pem(chain.roots_pem(with_intermediate=False))
    with pytest.raises(WebhookRejected):
        verify_certificate(chain.leaf.cert, anchors)
    verify_certificate(chain.leaf.cert, anchors, untrusted_intermediates=(chain.intermediate.cert,))


def test_intermediates_in_the_roots_file_are_not_trust_anchors() -> None:
    chain = make_chain()
    anchors = TrustAnchors.from_pem(chain.intermediate.pem() + make_chain("other").root.pem())
    assert anchors.intermediates == (chain.intermediate.cert,)
    error = rejection(verify_certificate, chain.leaf.cert, anchors)
    assert (error.status, error.code) == (401, "untrusted_certificate")


def test_unknown_root_is_untrusted() -> None:
    other_roots = TrustAnchors.from_pem(make_chain("other").roots_pem())
    error = rejection(verify_certificate, make_chain().leaf.cert, other_roots)
    assert (error.status, error.code) == (401, "untrusted_certificate")
    assert "does not chain" in error.message


def test_organization_must_be_microsoft() -> None:
    chain = make_chain(leaf_org="Contoso Ltd")
    error = rejection(verify_certificate, chain.leaf.cert, TrustAnchors.from_pem(chain.roots_pem()))
    assert "O=Microsoft Corporation" in error.message


def test_expired_and_not_yet_valid_leaves_are_untrusted() -> None:
    now = dt.datetime.now(dt.UTC)
    expired = make_chain(leaf_not_before=now - dt.timedelta(days=30), leaf_not_after=now - dt.timedelta(days=1))
    error = rejection(verify_certificate, expired.leaf.cert, TrustAnchors.from_pem(expired.roots_pem()))
    assert "expired" in error.message
    future = make_chain(leaf_not_before=now + dt.timedelta(days=1))
    error = rejection(verify_certificate, future.leaf.cert, TrustAnchors.from_pem(future.roots_pem()))
    assert "not valid yet" in error.message


def test_verification_time_is_checked_for_the_whole_chain() -> None:
    chain = make_chain()
    anchors = TrustAnchors.from_pem(chain.roots_pem())
    after_intermediate = chain.intermediate.cert.not_valid_after_utc + dt.timedelta(days=1)
    with pytest.raises(WebhookRejected):
        verify_certificate(chain.leaf.cert, anchors, now=after_intermediate)


def test_non_rsa_signing_key_is_untrusted() -> None:
    chain = make_chain()
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(chain.leaf.cert.subject)
               .issuer_name(chain.intermediate.cert.subject).public_key(key.public_key()).serial_number(1)
               .not_valid_before(chain.leaf.cert.not_valid_before_utc)
               .not_valid_after(chain.leaf.cert.not_valid_after_utc))
    from cryptography.hazmat.primitives import hashes

    ec_leaf = builder.sign(chain.intermediate.key, hashes.SHA256())
    error = rejection(verify_certificate, ec_leaf, TrustAnchors.from_pem(chain.roots_pem()))
    assert "RSA" in error.message


def test_ca_certificate_cannot_sign_webhooks() -> None:
    chain = make_chain()
    # The intermediate has O=Microsoft Corporation and chains to the root, but it is a CA.
    with pytest.raises(WebhookRejected):
        verify_certificate(chain.intermediate.cert, TrustAnchors.from_pem(chain.root.pem()))


def test_leaf_signed_by_a_non_ca_is_untrusted() -> None:
    chain = make_chain()
    from tests.intake.webhook_support import _rsa_key

    forged = issue("pcnotifications-dispatch.microsoft.com", key=_rsa_key("forged-leaf"), issuer=chain.leaf, ca=False)
    with pytest.raises(WebhookRejected):
        verify_certificate(forged.cert, TrustAnchors.from_pem(chain.roots_pem()),
                           untrusted_intermediates=(chain.leaf.cert,))


# --- the signature ---------------------------------------------------------------------------


def test_signature_over_exact_body_bytes() -> None:
    chain = make_chain()
    body = b'{"EventName":"test-created"}'
    signature = base64.b64decode(chain.sign(body))
    verify_body_signature(chain.leaf.cert, body, signature)
    for tampered in (body + b" ", body.replace(b"test", b"Test"), b""):
        error = rejection(verify_body_signature, chain.leaf.cert, tampered, signature)
        assert (error.status, error.code) == (401, "invalid_signature")


def test_signature_by_another_key_is_refused() -> None:
    body = b"{}"
    other = base64.b64decode(make_chain("other").sign(body))
    error = rejection(verify_body_signature, make_chain().leaf.cert, body, other)
    assert error.code == "invalid_signature"


# --- the shipped trust anchors ---------------------------------------------------------------


def test_shipped_microsoft_roots_are_the_documented_set() -> None:
    anchors = TrustAnchors.from_file(REPO_ROOT / "shared" / "data" / "microsoft_roots.pem")
    names = {r.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value for r in anchors.roots}
    assert names == {"Microsoft RSA Root Certificate Authority 2017", "Microsoft ECC Root Certificate Authority 2017",
                     "DigiCert Global Root G2"}
    for intermediate in anchors.intermediates:
        issuer = next(r for r in anchors.roots if r.subject == intermediate.issuer)
        intermediate.verify_directly_issued_by(issuer)
        assert "Microsoft Azure RSA TLS Issuing CA" in intermediate.subject.rfc4514_string()


def test_unreadable_roots_file_is_a_clear_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="WEBHOOK_TRUSTED_ROOTS"):
        TrustAnchors.from_file(tmp_path / "missing.pem")
    empty = tmp_path / "empty.pem"
    empty.write_text("# nothing here\n")
    with pytest.raises(ValueError, match="no readable PEM"):
        TrustAnchors.from_file(empty)
