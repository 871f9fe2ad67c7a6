"""Fetching and caching the webhook signing certificate, without becoming an SSRF proxy.

The certificate URL arrives in an unauthenticated request header, so fetching it is the one
outbound call an attacker can aim. Rules: https only; the host must be in WEBHOOK_CERT_HOSTS;
port 443 unless the host is also in WEBHOOK_ALLOW_PRIVATE_CERT_HOSTS (local stand-ins); the host
is resolved here and every address must be public (not loopback, private, link-local, multicast,
reserved or unspecified) unless allow-listed as private; the connection goes to an address that
was checked (TLS still verifies the host name through SNI), so DNS cannot change between check
and use; no redirects, no proxies, a short deadline and a size cap. Verified certificates are
cached per URL, bounded in entries and time and never past the chain's notAfter.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from shared.intake.signature import TrustAnchors, untrusted, verify_certificate

logger = logging.getLogger(__name__)

MAX_CERTIFICATE_BYTES = 32 * 1024
MAX_CERTIFICATES_PER_DOCUMENT = 8
FETCH_TIMEOUT_SECONDS = 3.0
CACHE_ENTRIES = 16
CACHE_TTL = dt.timedelta(hours=1)

Resolver = Callable[[str, int], Sequence[str]]


def resolve(host: str, port: int) -> list[str]:
    """Every address the host resolves to (IPv4 and IPv6), in resolver order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public_address(address: str) -> bool:
    """False for loopback, private, link-local, multicast, reserved, unspecified and shared space."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


@dataclass(frozen=True)
class _Target:
    host: str
    port: int
    path: str


def tls_context(tls_verify: str | bool) -> ssl.SSLContext:
    """certifi's roots (what httpx trusts by default) plus settings.tls_verify()'s extra CA file."""
    import certifi

    context = ssl.create_default_context(cafile=certifi.where())
    if isinstance(tls_verify, str):
        context.load_verify_locations(cafile=tls_verify)
    return context


class CertificateFetcher:
    """Downloads the signing certificate (and any chain served with it) under the SSRF rules."""

    def __init__(
        self,
        *,
        allowed_hosts: Sequence[str],
        private_hosts: Sequence[str] = (),
        tls_verify: str | bool = True,
        timeout: float = FETCH_TIMEOUT_SECONDS,
        max_bytes: int = MAX_CERTIFICATE_BYTES,
        resolver: Resolver = resolve,
    ) -> None:
        self._allowed = frozenset(h.strip().lower().rstrip(".") for h in allowed_hosts if h.strip())
        self._private = frozenset(h.strip().lower().rstrip(".") for h in private_hosts if h.strip())
        self._tls_verify = tls_verify
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._resolver = resolver
        self._ssl: ssl.SSLContext | None = None

    def check_url(self, url: str) -> _Target:
        """Apply the URL rules without any network access; raise WebhookRejected (401) if broken."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise untrusted("untrusted_certificate_url", "X-MS-Certificate-Url is not a valid URL") from None
        if parts.scheme.lower() != "https":
            raise untrusted("untrusted_certificate_url", "X-MS-Certificate-Url must be an https:// URL")
        if parts.username is not None or parts.password is not None:
            raise untrusted("untrusted_certificate_url", "X-MS-Certificate-Url must not carry credentials")
        host = (parts.hostname or "").rstrip(".")
        if not host or host not in self._allowed:
            raise untrusted("untrusted_certificate_url",
                            "X-MS-Certificate-Url's host is not in WEBHOOK_CERT_HOSTS")
        if port not in (None, 443) and host not in self._private:
            raise untrusted("untrusted_certificate_url", "X-MS-Certificate-Url must use port 443")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return _Target(host=host, port=port or 443, path=path)

    def _checked_address(self, target: _Target) -> str:
        try:
            addresses = self._resolver(target.host, target.port)
        except (OSError, UnicodeError):
            raise untrusted("certificate_unavailable", "the certificate host does not resolve") from None
        if not addresses:
            raise untrusted("certificate_unavailable", "the certificate host does not resolve")
        if target.host not in self._private:
            for address in addresses:
                if not is_public_address(address):
                    raise untrusted("untrusted_certificate_url",
                                    "the certificate host resolves to a loopback, private or reserved address; "
                                    "list it in WEBHOOK_ALLOW_PRIVATE_CERT_HOSTS only for a local stand-in")
        return addresses[0]

    def fetch(self, url: str) -> list[x509.Certificate]:
        """The certificates served at ``url``: the leaf first, then any chain served with it."""
        import httpx

        target = self.check_url(url)
        address = self._checked_address(target)
        literal = f"[{address}]" if ":" in address else address
        host_header = target.host if target.port == 443 else f"{target.host}:{target.port}"
        if self._ssl is None:
            self._ssl = tls_context(self._tls_verify)
        deadline = time.monotonic() + self._timeout
        body = bytearray()
        try:
            with httpx.Client(verify=self._ssl, timeout=self._timeout, follow_redirects=False,
                              trust_env=False) as client, client.stream(
                "GET", f"https://{literal}:{target.port}{target.path}",
                headers={"Host": host_header, "Accept-Encoding": "identity",
                         "Accept": "application/pkix-cert, application/x-pem-file, */*"},
                extensions={"sni_hostname": target.host},
            ) as response:
                if response.status_code != 200:
                    raise untrusted("certificate_unavailable",
                                    f"the certificate URL answered {response.status_code}, not 200 "
                                    "(redirects are not followed)")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self._max_bytes:
                    raise untrusted("certificate_unavailable",
                                    f"the certificate is larger than {self._max_bytes} bytes")
                for chunk in response.iter_raw():  # raw: no decompression bomb
                    body.extend(chunk)
                    if len(body) > self._max_bytes:
                        raise untrusted("certificate_unavailable",
                                        f"the certificate is larger than {self._max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise untrusted("certificate_unavailable",
                                        "the certificate download took too long")
        except httpx.HTTPError as exc:
            raise untrusted("certificate_unavailable",
                            f"the certificate could not be downloaded ({type(exc).__name__})") from None
        return parse_certificates(bytes(body))


def parse_certificates(data: bytes) -> list[x509.Certificate]:
    """A DER certificate or a PEM bundle (leaf first) as served at the certificate URL."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise untrusted("untrusted_certificate", "the certificate URL did not serve an X.509 certificate") from None
    if len(certs) > MAX_CERTIFICATES_PER_DOCUMENT:
        raise untrusted("untrusted_certificate", "the certificate URL served too many certificates")
    return certs


@dataclass(frozen=True)
class _Entry:
    leaf: x509.Certificate
    expires: dt.datetime


class SigningCertificates:
    """Verified signing certificates by URL: fetch, verify the chain, cache (LRU, TTL, notAfter)."""

    def __init__(
        self,
        *,
        fetcher: CertificateFetcher,
        anchors: TrustAnchors,
        max_entries: int = CACHE_ENTRIES,
        ttl: dt.timedelta = CACHE_TTL,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._fetcher = fetcher
        self._anchors = anchors
        self._max_entries = max_entries
        self._ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.fetches = 0
        """Downloads made (for tests and the health view: a warm cache makes none)."""

    def check_url(self, url: str) -> None:
        """Reject a URL the fetcher would refuse, before any other work."""
        self._fetcher.check_url(url)

    def verified_leaf(self, url: str) -> x509.Certificate:
        """The verified signing certificate at ``url``; raise WebhookRejected (401) otherwise."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(url)
            if entry is not None:
                if now < entry.expires:
                    self._entries.move_to_end(url)
                    return entry.leaf
                del self._entries[url]
        certs = self._fetcher.fetch(url)
        self.fetches += 1
        chain_expires = verify_certificate(certs[0], self._anchors, untrusted_intermediates=tuple(certs[1:]),
                                           now=now)
        entry = _Entry(leaf=certs[0], expires=min(now + self._ttl, chain_expires))
        with self._lock:
            self._entries[url] = entry
            self._entries.move_to_end(url)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        logger.info("webhook signing certificate verified and cached: %s (until %s)",
                    _describe(certs[0]), entry.expires.isoformat(timespec="seconds"))
        return entry.leaf

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _describe(cert: x509.Certificate) -> str:
    attrs: Any = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    common_name = str(attrs[0].value) if attrs else "?"
    return f"CN={common_name[:80]} serial={cert.serial_number:x}"
