"""Graph's partner billing export of unbilled usage, read as a stream of line items.

The contract (Graph v1.0, ``PartnerBilling.Read.All``, application): ``POST
/reports/partners/billing/usage/unbilled/export`` answers 202 with ``Location`` naming an
operation; ``GET`` the operation (honouring ``Retry-After``) until it is an
``exportSuccessOperation`` (its ``resourceLocation@odata.navigationLink`` is the manifest) or a
``failedOperation``; the manifest lists gzip-compressed JSON-lines blobs under ``rootDirectory``,
read with its ``sasToken``.

Memory: blobs are downloaded as a stream, decompressed incrementally and split into lines, so a
1,000,000-line export holds one chunk and one line at a time. The Graph token is never sent to the
blob host (the SAS token is its credential), and a ``Location`` or manifest link on another host
than Graph's is refused.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import httpx

from shared.errors import FraudResponderError
from shared.http import MalformedResponse, MicrosoftClient, parse_retry_after

log = logging.getLogger(__name__)

EXPORT_PATH: Final = "/v1.0/reports/partners/billing/usage/unbilled/export"
DEFAULT_POLL_SECONDS: Final = 10.0
"""Wait between operation polls when Graph sends no ``Retry-After``."""
CHUNK_BYTES: Final = 256 * 1024

BillingPeriod = Literal["current", "last"]


class BillingExportError(FraudResponderError, RuntimeError):
    """The export failed at Microsoft (a ``failedOperation``) or did not finish in time."""

    http_status = 502
    error_code = "billing_export_failed"
    retryable = True


@dataclass(frozen=True)
class BillingBlob:
    name: str
    partition_value: str = ""


@dataclass(frozen=True)
class BillingManifest:
    """Where an export's files are: ``{root_directory}/{blob.name}?{sas_token}``."""

    id: str
    root_directory: str
    sas_token: str
    blobs: tuple[BillingBlob, ...]
    data_format: str = ""
    etag: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BillingManifest:
        blobs = data.get("blobs")
        root = data.get("rootDirectory")
        if not isinstance(blobs, list) or not isinstance(root, str) or not root:
            raise MalformedResponse("the billing manifest has no rootDirectory or blobs", status=200,
                                    service="Microsoft Graph", method="GET", path="/reports/partners/billing/manifests")
        return cls(
            id=str(data.get("id", "")), root_directory=root.rstrip("/"), sas_token=str(data.get("sasToken") or ""),
            blobs=tuple(BillingBlob(str(b.get("name", "")), str(b.get("partitionValue", "")))
                        for b in blobs if isinstance(b, Mapping) and b.get("name")),
            data_format=str(data.get("dataFormat", "")), etag=str(data.get("eTag", "")),
        )

    def blob_url(self, blob: BillingBlob) -> str:
        return f"{self.root_directory}/{blob.name}" + (f"?{self.sas_token.lstrip('?')}" if self.sas_token else "")


@dataclass
class ExportStats:
    """What one export read: for the run's record and the benchmark."""

    blobs: int = 0
    lines: int = 0
    skipped: int = 0
    compressed_bytes: int = 0
    polls: int = 0


class BillingExportClient:
    """Starts, follows and reads partner billing exports.

    ``graph`` is an app-only Graph ``MicrosoftClient`` (partner tenant); ``verify`` is the TLS
    context for the blob host; ``sleep`` and ``clock`` are injectable for tests.
    """

    def __init__(self, graph: MicrosoftClient, *, verify: ssl.SSLContext | bool = True,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 timeout: float = 60.0) -> None:
        self.graph = graph
        self._origin = urlsplit(graph.base_url)
        self._sleep = sleep
        self._clock = clock
        self._blobs = httpx.Client(verify=verify, timeout=httpx.Timeout(timeout, connect=10.0),
                                   follow_redirects=False)
        self.stats = ExportStats()

    def close(self) -> None:
        self._blobs.close()

    def start(self, *, billing_period: BillingPeriod, currency_code: str, attribute_set: str = "full") -> str:
        """Ask for an export; returns the operation's URL path.

        :raises shared.http.MicrosoftApiError: Graph refused (403: grant ``PartnerBilling.Read.All``).
        :raises shared.http.MalformedResponse: no ``Location`` on Graph's host.
        """
        response = self.graph.request("POST", EXPORT_PATH, json={
            "currencyCode": currency_code, "billingPeriod": billing_period, "attributeSet": attribute_set},
            expected=(202,))
        return self._graph_path(response.headers.get("Location"), "Location")

    def wait(self, operation: str, *, timeout: float = 1800.0) -> BillingManifest:
        """Poll the operation until it succeeds, then read its manifest.

        :raises BillingExportError: a ``failedOperation``, or still running after ``timeout`` seconds.
        """
        deadline = self._clock() + timeout
        while True:
            response = self.graph.request("GET", operation)
            self.stats.polls += 1
            data = self.graph.parse_json(response, method="GET", path=operation)
            status = str(data.get("status", "")).lower() if isinstance(data, dict) else ""
            if status == "succeeded":
                link = data.get("resourceLocation@odata.navigationLink")
                manifest = self.graph.request_json("GET", self._graph_path(link, "manifest link"))
                if not isinstance(manifest, dict):
                    raise MalformedResponse("the billing manifest is not a JSON object", status=200,
                                            service="Microsoft Graph", method="GET", path=operation)
                return BillingManifest.from_json(manifest)
            if status == "failed":
                error = data.get("error") if isinstance(data.get("error"), dict) else {}
                raise BillingExportError(f"the billing export failed at Microsoft: {error.get('message', 'no reason')}"
                                         f" (code {error.get('code', '?')}); it is retried on the next run")
            if status not in ("running", "notstarted", ""):
                raise MalformedResponse(f"unknown billing operation status {status!r}", status=200,
                                        service="Microsoft Graph", method="GET", path=operation)
            delay = parse_retry_after(response.headers.get("Retry-After")) or DEFAULT_POLL_SECONDS
            if self._clock() + delay > deadline:
                raise BillingExportError(f"the billing export was still running after {timeout:g} s; "
                                         "it is asked for again on the next run")
            self._sleep(delay)

    def line_items(self, manifest: BillingManifest) -> Iterator[dict[str, Any]]:
        """Every line item of every blob, in order; a line that is not a JSON object is skipped and counted."""
        for blob in manifest.blobs:
            self.stats.blobs += 1
            for raw in self._blob_lines(manifest.blob_url(blob)):
                try:
                    item = json.loads(raw)
                except ValueError:
                    item = None
                if not isinstance(item, dict):
                    self.stats.skipped += 1
                    continue
                self.stats.lines += 1
                yield item

    def _blob_lines(self, url: str) -> Iterator[bytes]:
        """The lines of one gzip blob, decompressed as it streams in."""
        with self._blobs.stream("GET", url, headers={"x-ms-version": "2021-08-06"}) as response:
            if response.status_code != 200:
                response.read()
                raise BillingExportError(f"reading a billing export file failed: HTTP {response.status_code} from "
                                         f"{urlsplit(url).netloc} ({response.headers.get('x-ms-error-code', '')}); "
                                         "the export is asked for again on the next run")
            inflate = zlib.decompressobj(wbits=31)  # gzip framing
            rest = b""
            for chunk in response.iter_raw(CHUNK_BYTES):
                self.stats.compressed_bytes += len(chunk)
                data = rest + inflate.decompress(chunk)
                lines = data.split(b"\n")
                rest = lines.pop()
                yield from (line for line in lines if line.strip())
            data = rest + inflate.flush()
            yield from (line for line in data.split(b"\n") if line.strip())

    def _graph_path(self, link: Any, what: str) -> str:
        """A link Graph sent, as a path on Graph's own host (the token goes nowhere else)."""
        target = urlsplit(str(link or ""))
        if not link or (target.scheme, target.netloc) != (self._origin.scheme, self._origin.netloc):
            raise MalformedResponse(f"the billing export's {what} is missing or points at another host "
                                    f"({target.netloc or 'none'}); refusing to send the token there", status=202,
                                    service="Microsoft Graph", method="POST", path=EXPORT_PATH)
        base_path = urlsplit(self.graph.base_url).path.rstrip("/")
        path = target.path[len(base_path):] if base_path and target.path.startswith(base_path) else target.path
        return path + (f"?{target.query}" if target.query else "")
