"""Fetching the signing certificate: URL rules, SSRF guards, real HTTPS fetches and the cache."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.intake.certificates import CertificateFetcher, SigningCertificates, is_public_address
from shared.intake.signature import TrustAnchors, WebhookRejected
from tests.intake.webhook_support import CertificateHost, Route, SigningChain, certificate_host, make_chain

CERT_PATH = "/cert/pcnotifications-dispatch.microsoft.com.cer"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CertificateHost]:
    with certificate_host(tmp_path_factory.mktemp("cert-host")) as served:
        yield served


@pytest.fixture(scope="module")
def chain() -> SigningChain:
    return make_chain()


@pytest.fixture(autouse=True)
def _fresh_routes(host: CertificateHost, chain: SigningChain) -> None:
    host.requests.clear()
    host.routes.clear()
    host.routes[CERT_PATH] = Route(body=chain.leaf.der())


def fetcher_for(host: CertificateHost, *, private: bool = True, **kwargs: object) -> CertificateFetcher:
    return CertificateFetcher(allowed_hosts=["localhost"], private_hosts=["localhost"] if private else [],
                              tls_verify=str(host.tls.ca_cert_path), **kwargs)  # type: ignore[arg-type]


def refused(fn: object, *args: object) -> WebhookRejected:
    with pytest.raises(WebhookRejected) as info:
        fn(*args)  # type: ignore[operator]
    assert info.value.status == 401
    return info.value


# --- URL rules, no network -------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "http://3psostorageacct.blob.core.windows.net/cert/x.cer",         # not https
    "https://evil.example/cert/x.cer",                                  # host not allowed
    "https://3psostorageacct.blob.core.windows.net.evil.example/x.cer",  # suffix trick
    "https://user:pw@3psostorageacct.blob.core.windows.net/cert/x.cer",  # credentials
    "https://3psostorageacct.blob.core.windows.net:8443/cert/x.cer",     # port other than 443
    "https://[::1]/cert/x.cer",
    "https://3psostorageacct.blob.core.windows.net:99999/x.cer",        # invalid port
    "file:///etc/passwd",
])
def test_urls_outside_the_rules_are_refused_before_any_lookup(url: str) -> None:
    looked_up: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return []

    fetcher = CertificateFetcher(allowed_hosts=["3psostorageacct.blob.core.windows.net"], resolver=resolver)
    error = refused(fetcher.fetch, url)
    assert error.code == "untrusted_certificate_url"
    assert looked_up == []


def test_documented_url_passes_the_rules() -> None:
    fetcher = CertificateFetcher(allowed_hosts=["3PSOSTORAGEACCT.blob.core.windows.net"])
    target = fetcher.check_url("https://3psostorageacct.blob.core.windows.net/cert/pcnotifications-dispatch.microsoft.com.cer")
    assert (target.host, target.port) == ("3psostorageacct.blob.core.windows.net", 443)


@pytest.mark.parametrize(("address", "public"), [
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("224.0.0.1", False),
    ("0.0.0.0", False),  # noqa: S104
    ("::1", False), ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False), ("::", False),
    ("20.60.1.1", True), ("2603:1030::1", True),
])
def test_public_address_classification(address: str, public: bool) -> None:
    assert is_public_address(address) is public


def test_allowed_host_resolving_to_loopback_is_refused_without_connecting(host: CertificateHost) -> None:
    fetcher = CertificateFetcher(allowed_hosts=["localhost"], tls_verify=str(host.tls.ca_cert_path))
    # A non-443 port is itself refused for a host that is not allow-listed as private:
    assert refused(fetcher.fetch, host.url(CERT_PATH)).code == "untrusted_certificate_url"
    # and on 443 the resolved loopback address is refused before any connection.
    error = refused(fetcher.fetch, f"https://localhost{CERT_PATH}")
    assert "loopback" in error.message
    assert host.requests == []


def test_every_resolved_address_is_checked() -> None:
    fetcher = CertificateFetcher(allowed_hosts=["cert.example"], resolver=lambda h, p: ["20.60.1.1", "10.0.0.5"])
    assert refused(fetcher.fetch, "https://cert.example/x.cer").code == "untrusted_certificate_url"


def test_unresolvable_host_is_refused() -> None:
    def no_such_host(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    fetcher = CertificateFetcher(allowed_hosts=["cert.invalid"], resolver=no_such_host)
    assert refused(fetcher.fetch, "https://cert.invalid/x.cer").code == "certificate_unavailable"


# --- real fetches over TLS -------------------------------------------------------------------


def test_der_certificate_is_fetched_over_verified_tls(host: CertificateHost, chain: SigningChain) -> None:
    certs = fetcher_for(host).fetch(host.url(CERT_PATH))
    assert certs == [chain.leaf.cert]
    assert host.requests == [CERT_PATH]


def test_pem_bundle_is_leaf_first(host: CertificateHost, chain: SigningChain) -> None:
    host.routes["/bundle.pem"] = Route(body=chain.leaf.pem() + chain.intermediate.pem())
    assert fetcher_for(host).fetch(host.url("/bundle.pem")) == [chain.leaf.cert, chain.intermediate.cert]


def test_untrusted_tls_certificate_is_refused(host: CertificateHost) -> None:
    fetcher = CertificateFetcher(allowed_hosts=["localhost"], private_hosts=["localhost"])  # no sandbox CA
    assert refused(fetcher.fetch, host.url(CERT_PATH)).code == "certificate_unavailable"


def test_redirects_are_not_followed(host: CertificateHost) -> None:
    host.routes["/moved"] = Route(302, b"", {"Location": CERT_PATH})
    error = refused(fetcher_for(host).fetch, host.url("/moved"))
    assert "302" in error.message
    assert host.requests == ["/moved"]


def test_error_status_is_refused(host: CertificateHost) -> None:
    assert "404" in refused(fetcher_for(host).fetch, host.url("/nothing.cer")).message


def test_oversized_document_is_refused(host: CertificateHost) -> None:
    host.routes["/big.cer"] = Route(body=b"-" * 5000)
    assert "larger" in refused(fetcher_for(host, max_bytes=4096).fetch, host.url("/big.cer")).message


def test_non_certificate_is_refused(host: CertificateHost) -> None:
    host.routes["/junk.cer"] = Route(body=b"<html>hello</html>")
    assert refused(fetcher_for(host).fetch, host.url("/junk.cer")).code == "untrusted_certificate"


# --- verified certificates and the cache -----------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


def signing_certificates(host: CertificateHost, chain: SigningChain, clock: Clock,
                         **kwargs: object) -> SigningCertificates:
    return SigningCertificates(fetcher=fetcher_for(host), anchors=TrustAnchors.from_pem(chain.roots_pem()),
                               clock=clock, **kwargs)  # type: ignore[arg-type]


def test_verified_certificate_is_cached_for_an_hour(host: CertificateHost, chain: SigningChain) -> None:
    clock = Clock()
    certificates = signing_certificates(host, chain, clock)
    url = host.url(CERT_PATH)
    assert certificates.verified_leaf(url) == chain.leaf.cert
    clock.now += dt.timedelta(minutes=59)
    assert certificates.verified_leaf(url) == chain.leaf.cert
    assert len(host.requests) == 1
    clock.now += dt.timedelta(minutes=2)
    certificates.verified_leaf(url)
    assert len(host.requests) == 2


def test_cache_is_bounded(host: CertificateHost, chain: SigningChain) -> None:
    for name in ("a", "b", "c"):
        host.routes[f"/{name}.cer"] = Route(body=chain.leaf.der())
    certificates = signing_certificates(host, chain, Clock(), max_entries=2)
    for name in ("a", "b", "c", "c", "a"):
        certificates.verified_leaf(host.url(f"/{name}.cer"))
    assert len(certificates) == 2
    assert host.requests == ["/a.cer", "/b.cer", "/c.cer", "/a.cer"]


def test_cache_never_outlives_the_certificate(host: CertificateHost, tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    short = make_chain("short", leaf_not_after=now + dt.timedelta(minutes=10))
    host.routes["/short.cer"] = Route(body=short.leaf.der())
    clock = Clock()
    certificates = signing_certificates(host, short, clock)
    certificates.verified_leaf(host.url("/short.cer"))
    clock.now = now + dt.timedelta(minutes=11)
    error = refused(certificates.verified_leaf, host.url("/short.cer"))
    assert "expired" in error.message
    assert len(host.requests) == 2


def test_untrusted_certificate_is_not_cached(host: CertificateHost, chain: SigningChain) -> None:
    certificates = SigningCertificates(fetcher=fetcher_for(host),
                                       anchors=TrustAnchors.from_pem(make_chain("other").roots_pem()))
    for _ in range(2):
        refused(certificates.verified_leaf, host.url(CERT_PATH))
    assert len(certificates) == 0
