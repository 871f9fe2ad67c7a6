"""Graph partner billing export stand-in: unbilled daily rated usage, as Microsoft serves it.

The contract (Microsoft Graph v1.0, ``microsoft.graph.partners.billing``):

1. ``POST /v1.0/reports/partners/billing/usage/unbilled/export`` with
   ``{"currencyCode", "billingPeriod": "current" | "last", "attributeSet": "full" | "basic"}``
   (``PartnerBilling.Read.All``, application or delegated, partner tenant) answers ``202 Accepted``
   with a ``Location`` header naming the long-running operation.
2. ``GET /v1.0/reports/partners/billing/operations/{id}`` answers 200 with a
   ``runningOperation`` (here with ``Retry-After``), then an ``exportSuccessOperation`` whose
   ``resourceLocation@odata.navigationLink`` names the manifest, or a ``failedOperation``.
3. ``GET /v1.0/reports/partners/billing/manifests/{id}``: ``rootDirectory``, ``sasToken``,
   ``blobCount``, ``blobs[{name, partitionValue}]``, ``dataFormat`` ("compressedJSON": each blob
   is gzip-compressed JSON lines), ``schemaVersion``, ``partitionType``, ``eTag``.
4. Each blob is read from ``{rootDirectory}/{name}?{sasToken}`` (Azure Blob Storage's Get Blob,
   ranges included, so ``azure.storage.blob.BlobClient`` downloads it). Here the "storage
   account" is a path of this service: ``/billingexports/...``.

Line items carry the attribute names of the ``attributeSet`` page (PascalCase: ``CustomerId``,
``EntitlementId`` = the Azure subscription, ``SubscriptionId`` = the Azure plan,
``MeterCategory``, ``ResourceLocation``, ``UsageDate``, ``BillingPreTaxTotal``, ``Tier2MpnId`` =
the indirect reseller, ...); ``basic`` leaves out the full-only ones.

The data: the scenario's ``graph.billing`` section lists subscriptions with a daily spend, meters,
regions, an age and optional anomalies; lines are generated deterministically from a seed
(weekday pattern and noise), one per subscription, day, meter and resource.
``POST /_sandbox/billing/generate`` replaces them with synthetic subscriptions (benchmarks).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import hmac
import io
import json
import random
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from sandbox import ids
from sandbox.core import HttpError, Request, Response, json_response, route

if TYPE_CHECKING:
    from sandbox.core import Sandbox

BILLING_PERMISSIONS: Final = ("PartnerBilling.Read.All",)
EXPORT_ROOT: Final = "/billingexports/v1"
BLOB_VERSION: Final = "2021-08-06"
DEFAULT_BLOB_LINES: Final = 200_000

BASIC_ATTRIBUTES: Final = frozenset({
    "AdditionalInfo", "BenefitOrderID", "BenefitType", "BillingCurrency", "BillingPreTaxTotal", "ChargeEndDate",
    "ChargeStartDate", "ChargeType", "CreditPercentage", "CreditType", "CustomerId", "CustomerName",
    "EffectiveUnitPrice", "EntitlementId", "InvoiceNumber", "PartnerId", "PartnerName", "PCToBCExchangeRate",
    "PricingCurrency", "PricingPreTaxTotal", "ProductId", "PublisherName", "Quantity", "ResourceURI", "SkuId",
    "SkuName", "SubscriptionId", "UnitPrice", "UnitType", "UsageDate",
})


@dataclass(frozen=True)
class Meter:
    category: str
    subcategory: str
    name: str
    unit: str
    unit_price: float
    service: str
    resource_type: str
    meter_id: str


METERS: Final[dict[str, Meter]] = {
    "vm-general": Meter("Virtual Machines", "Dsv5 Series", "D4s v5", "1 Hour", 0.192, "Microsoft.Compute",
                        "virtualMachines", "1b0a36c4-5d25-4c6a-9fd4-1c1a3e0e0d01"),
    "storage": Meter("Storage", "Premium SSD Managed Disks", "P10 LRS Disk", "1/Month", 0.0649,
                     "Microsoft.Compute", "disks", "1b0a36c4-5d25-4c6a-9fd4-1c1a3e0e0d02"),
    "bandwidth": Meter("Bandwidth", "Rtn Preference: MGN", "Standard Data Transfer Out", "1 GB", 0.087,
                       "Microsoft.Network", "networkInterfaces", "1b0a36c4-5d25-4c6a-9fd4-1c1a3e0e0d03"),
    "sql": Meter("SQL Database", "General Purpose - Compute Gen5", "vCore", "1 Hour", 0.5044, "Microsoft.Sql",
                 "servers", "1b0a36c4-5d25-4c6a-9fd4-1c1a3e0e0d04"),
    "vm-gpu-a100": Meter("Virtual Machines", "NCads A100 v4 Series", "NC24ads A100 v4", "1 Hour", 3.673,
                         "Microsoft.Compute", "virtualMachines", "1b0a36c4-5d25-4c6a-9fd4-1c1a3e0e0d05"),
    "vm-gpu-t4": Meter("Virtual Machines", "NCasT4 v3 Series", "NC16as T4 v3", "1 Hour", 1.204, "Microsoft.Compute",
                       "virtualMachines", "1b0a36c4-5d25-4c6a-9fd4-1c1a3e0e0d06"),
    "ml": Meter("Machine Learning", "NCv3 Series", "NC6s v3", "1 Hour", 3.06, "Microsoft.MachineLearningServices",
                "workspaces", "1b0a36c4-5d25-4c6a-9fd4-1c1a3e0e0d07"),
    "container-instances": Meter("Container Instances", "Standard", "Standard vCPU Duration", "1 Hour", 0.04556,
                                 "Microsoft.ContainerInstance", "containerGroups",
                                 "1b0a36c4-5d25-4c6a-9fd4-1c1a3e0e0d08"),
}
REGION_NAMES: Final = {
    "eastus": "US East", "westus2": "US West 2", "westeurope": "EU West", "northeurope": "EU North",
    "swedencentral": "SE Central", "southeastasia": "AP Southeast", "brazilsouth": "BR South",
    "japaneast": "JA East", "uksouth": "UK South", "australiaeast": "AU East",
}


@dataclass
class BillingSubscription:
    """One Azure subscription's daily usage, as the scenario describes it."""

    customer: str
    customer_name: str
    entitlement: str
    plan: str
    daily: float
    meters: tuple[str, ...]
    regions: tuple[str, ...]
    age_days: int = 400
    reseller_mpn: str = ""
    resources_per_meter: int = 1
    anomalies: tuple[dict[str, Any], ...] = ()
    """``{"daysAgo": 1, "factor": 6}``: that day's spend times factor; or
    ``{"fromDaysAgo": 2, "meter": "vm-gpu-a100", "region": "swedencentral", "daily": 900}``: a meter
    that starts then (new meters)."""

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> BillingSubscription:
        return cls(
            customer=str(raw["customer"]).lower(), customer_name=str(raw.get("customerName", "")),
            entitlement=str(raw["entitlement"]).lower(), plan=str(raw.get("plan", "")).lower(),
            daily=float(raw.get("daily", 50.0)), meters=tuple(raw.get("meters", ("vm-general", "storage"))),
            regions=tuple(raw.get("regions", ("eastus",))), age_days=int(raw.get("ageDays", 400)),
            reseller_mpn=str(raw.get("resellerMpnId", "")),
            resources_per_meter=max(1, int(raw.get("resourcesPerMeter", 1))),
            anomalies=tuple(dict(a) for a in raw.get("anomalies", ())),
        )


@dataclass
class BillingData:
    """The partner's unbilled usage: subscriptions, history length, seed."""

    subscriptions: list[BillingSubscription]
    days: int = 60
    seed: int = 14
    currency: str = "USD"
    partner_id: str = ids.PARTNER_TENANT_ID
    blob_lines: int = DEFAULT_BLOB_LINES
    today: dt.date = field(default_factory=lambda: dt.datetime.now(dt.UTC).date())

    def period(self, billing_period: str) -> tuple[dt.date, dt.date]:
        """[first, last] usage date of a billing period (calendar months; usage lags a day)."""
        month_start = self.today.replace(day=1)
        if billing_period == "current":
            return month_start, self.today - dt.timedelta(days=1)
        last_end = month_start - dt.timedelta(days=1)
        return last_end.replace(day=1), last_end

    def lines(self, billing_period: str, attribute_set: str = "full") -> Iterator[dict[str, Any]]:
        first, last = self.period(billing_period)
        oldest = self.today - dt.timedelta(days=self.days)
        first = max(first, oldest)
        for sub in self.subscriptions:
            born = self.today - dt.timedelta(days=sub.age_days)
            day = max(first, born)
            while day <= last:
                yield from self._day_lines(sub, day, first, last, attribute_set)
                day += dt.timedelta(days=1)

    def _day_lines(self, sub: BillingSubscription, day: dt.date, first: dt.date, last: dt.date,
                   attribute_set: str) -> Iterator[dict[str, Any]]:
        days_ago = (self.today - day).days
        rng = random.Random(f"{self.seed}:{sub.entitlement}:{day.isoformat()}")
        weekday = 0.55 if day.weekday() >= 5 else 1.0
        factor = weekday * rng.uniform(0.9, 1.1)
        for anomaly in sub.anomalies:
            if "factor" in anomaly and int(anomaly.get("daysAgo", -1)) == days_ago:
                factor *= float(anomaly["factor"])
        parts: list[tuple[str, str, float]] = []
        share = sub.daily * factor / max(1, len(sub.meters) * len(sub.regions))
        parts += [(meter, region, share) for meter in sub.meters for region in sub.regions]
        for anomaly in sub.anomalies:
            if "meter" in anomaly and days_ago <= int(anomaly.get("fromDaysAgo", 0)):
                parts.append((str(anomaly["meter"]), str(anomaly.get("region", sub.regions[0])),
                              float(anomaly.get("daily", 100.0)) * rng.uniform(0.95, 1.05)))
        for meter_key, region, amount in parts:
            meter = METERS[meter_key]
            for n in range(sub.resources_per_meter):
                cost = round(amount / sub.resources_per_meter, 6)
                yield self._line(sub, meter, region, day, first, last, n, cost, attribute_set)

    def _line(self, sub: BillingSubscription, meter: Meter, region: str, day: dt.date, first: dt.date,  # noqa: PLR0917
              last: dt.date, n: int, cost: float, attribute_set: str) -> dict[str, Any]:
        quantity = round(cost / meter.unit_price, 6) if meter.unit_price else 0.0
        group = f"rg-{meter.resource_type.lower()}-{region}"
        resource = (f"/subscriptions/{sub.entitlement}/resourceGroups/{group}/providers/{meter.service}/"
                    f"{meter.resource_type}/{meter.resource_type.lower()[:6]}-{region}-{n:02d}")
        line = {
            "PartnerId": self.partner_id, "PartnerName": "Contoso CSP", "CustomerId": sub.customer,
            "CustomerName": sub.customer_name, "CustomerDomainName": f"{sub.customer_name.lower().replace(' ', '')}"
            ".onmicrosoft.com", "CustomerCountry": "US", "MpnId": "6100001", "Tier2MpnId": sub.reseller_mpn,
            "InvoiceNumber": "", "ProductId": "DZH318Z0BCGB", "SkuId": "0001", "AvailabilityId": "DZH318Z0BCGB0001",
            "SkuName": "Azure plan", "ProductName": "Azure plan", "PublisherName": "Microsoft", "PublisherId": "",
            "SubscriptionDescription": "Azure plan", "SubscriptionId": sub.plan,
            "ChargeStartDate": f"{first.replace(day=1).isoformat()}T00:00:00Z",
            "ChargeEndDate": f"{_month_end(first).isoformat()}T00:00:00Z",
            "UsageDate": f"{day.isoformat()}T00:00:00Z", "MeterType": meter.unit, "MeterCategory": meter.category,
            "MeterId": meter.meter_id, "MeterSubCategory": meter.subcategory, "MeterName": meter.name,
            "MeterRegion": REGION_NAMES.get(region, region), "Unit": meter.unit, "ResourceLocation": region,
            "ConsumedService": meter.service, "ResourceGroup": group, "ResourceURI": resource, "ChargeType": "new",
            "UnitPrice": meter.unit_price, "Quantity": quantity, "UnitType": meter.unit,
            "BillingPreTaxTotal": cost, "BillingCurrency": self.currency, "PricingPreTaxTotal": cost,
            "PricingCurrency": self.currency, "ServiceInfo1": "", "ServiceInfo2": "", "Tags": "{}",
            "AdditionalInfo": "{}", "EffectiveUnitPrice": meter.unit_price, "PCToBCExchangeRate": 1,
            "EntitlementId": sub.entitlement, "EntitlementDescription": "Azure subscription 1",
            "PartnerEarnedCreditPercentage": 0, "CreditPercentage": 0, "CreditType": "Credit Not Applied",
            "BenefitOrderID": "", "BenefitID": "", "BenefitType": "",
        }
        if attribute_set == "basic":
            return {k: v for k, v in line.items() if k in BASIC_ATTRIBUTES}
        return line

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> BillingData:
        return cls(
            subscriptions=[BillingSubscription.from_json(s) for s in section.get("subscriptions", ())],
            days=int(section.get("days", 60)), seed=int(section.get("seed", 14)),
            currency=str(section.get("currency", "USD")),
            blob_lines=max(1, int(section.get("blobLines", DEFAULT_BLOB_LINES))),
        )

    @classmethod
    def synthetic(cls, *, subscriptions: int, days: int, resources_per_meter: int, seed: int,
                  blob_lines: int) -> BillingData:
        """Ordinary subscriptions for benchmarks: lines = subscriptions x days x 2 meters x resources."""
        subs = [BillingSubscription(
            customer=f"{n:08x}-5000-4000-8000-{n:012x}", customer_name=f"Customer {n}",
            entitlement=f"{n:08x}-6000-4000-8000-{n:012x}", plan=f"{n:08x}-7000-4000-8000-{n:012x}",
            daily=20.0 + n % 200, meters=("vm-general", "storage"), regions=("eastus",), age_days=days + 30,
            resources_per_meter=resources_per_meter) for n in range(subscriptions)]
        return cls(subscriptions=subs, days=days, seed=seed, blob_lines=blob_lines)


def _month_end(day: dt.date) -> dt.date:
    following = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return following - dt.timedelta(days=1)


@dataclass
class Export:
    """One export operation and, once built, its manifest and blobs."""

    id: str
    manifest_id: str
    period: str
    attribute_set: str
    currency: str
    created: dt.datetime
    polls_left: int
    blobs: dict[str, bytes] = field(default_factory=dict)
    root: str = ""
    error: str = ""


def _gzip_lines(lines: Iterator[dict[str, Any]], per_blob: int) -> Iterator[bytes]:
    """gzip-compressed JSON lines, ``per_blob`` lines a blob."""
    buffer = io.BytesIO()
    writer = gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=1, mtime=0)
    count = 0
    for line in lines:
        writer.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
        count += 1
        if count == per_blob:
            writer.close()
            yield buffer.getvalue()
            buffer = io.BytesIO()
            writer = gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=1, mtime=0)
            count = 0
    writer.close()
    if count:
        yield buffer.getvalue()


class BillingExportRoutes:
    """The partner billing export routes of the Graph stand-in (needs the Service attributes)."""

    sandbox: Sandbox
    section: dict[str, Any]
    base_url: str
    lock: threading.RLock

    def reset_billing(self) -> None:
        billing = self.section.get("billing") or {}
        self.billing = BillingData.from_section(billing)
        self.billing_running_polls = int(billing.get("runningPolls", 1))
        self.billing_retry_after = int(billing.get("retryAfterSeconds", 1))
        self._exports: dict[str, Export] = {}
        self.billing_failure = ""
        self._sas_key = hashlib.sha256(f"billing-sas:{uuid.uuid4()}".encode()).digest()

    # -- helpers the Graph service provides -------------------------------------------------------

    def _require_partner(self, request: Request, wanted: Any) -> dict[str, Any]:  # pragma: no cover - GraphService
        raise NotImplementedError

    def _ok(self, status: int, obj: Any, request: Request) -> Response:  # pragma: no cover - GraphService
        raise NotImplementedError

    # -- the export -------------------------------------------------------------------------------

    @route("POST", r"/v1\.0/reports/partners/billing/usage/unbilled/(?:microsoft\.graph\.partners\.billing\.)?export")
    def export_unbilled_usage(self, request: Request) -> Response:
        self._require_partner(request, BILLING_PERMISSIONS)
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, "BadRequest", "The request body must be a JSON object.")
        currency = body.get("currencyCode")
        period = body.get("billingPeriod")
        attribute_set = body.get("attributeSet", "full")
        if not isinstance(currency, str) or not currency:
            raise HttpError(400, "BadRequest", "currencyCode is required.")
        if period not in ("current", "last"):
            raise HttpError(400, "BadRequest", "billingPeriod is required: current or last.")
        if attribute_set not in ("full", "basic"):
            raise HttpError(400, "BadRequest", "attributeSet must be full or basic.")
        now = dt.datetime.now(dt.UTC)
        export = Export(id=str(uuid.uuid4()), manifest_id=str(uuid.uuid4()), period=period,
                        attribute_set=attribute_set, currency=currency.upper(), created=now,
                        polls_left=self.billing_running_polls)
        with self.lock:
            self._exports[export.id] = export
        location = f"{self.base_url}/v1.0/reports/partners/billing/operations/{export.id}"
        response = self._ok(202, {}, request)
        response.body = b""
        response.headers["Location"] = location
        return response

    @route("GET", r"/v1\.0/reports/partners/billing/operations/(?P<id>[^/]+)")
    def get_billing_operation(self, request: Request) -> Response:
        self._require_partner(request, BILLING_PERMISSIONS)
        export = self._export(request.params["id"])
        base = {"id": export.id, "createdDateTime": export.created.strftime("%Y-%m-%dT%H:%M:%S"),
                "lastActionDateTime": _iso(dt.datetime.now(dt.UTC))}
        with self.lock:
            running = export.polls_left > 0
            if running:
                export.polls_left -= 1
        if running:
            response = self._ok(200, {"@odata.type": "#microsoft.graph.partners.billing.runningOperation",
                                      **base, "status": "running"}, request)
            response.headers["Retry-After"] = str(self.billing_retry_after)
            return response
        self._build(export)
        if export.error:
            return self._ok(200, {"@odata.type": "#microsoft.graph.partners.billing.failedOperation", **base,
                                  "status": "failed", "error": {"message": export.error, "code": "5000"}}, request)
        link = f"{self.base_url}/v1.0/reports/partners/billing/manifests/{export.manifest_id}"
        return self._ok(200, {"@odata.type": "#microsoft.graph.partners.billing.exportSuccessOperation", **base,
                              "status": "succeeded", "resourceLocation@odata.navigationLink": link}, request)

    @route("GET", r"/v1\.0/reports/partners/billing/manifests/(?P<id>[^/]+)")
    def get_billing_manifest(self, request: Request) -> Response:
        self._require_partner(request, BILLING_PERMISSIONS)
        wanted = request.params["id"].lower()
        with self.lock:
            export = next((e for e in self._exports.values() if e.manifest_id == wanted and e.root), None)
        if export is None:
            raise HttpError(404, "NotFound", f"Manifest {wanted} does not exist.")
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=12)
        sas = f"sv={BLOB_VERSION}&sr=d&sp=rl&sdd=7&se={_iso(expires)}"
        sas += f"&sig={self._signature(export.root, sas)}"
        return self._ok(200, {
            "@odata.context": f"{self.base_url}/v1.0/$metadata#reports/partners/billing/manifests/$entity",
            "id": export.manifest_id, "schemaVersion": "2", "dataFormat": "compressedJSON",
            "createdDateTime": _iso(export.created),
            "eTag": hashlib.sha256(export.manifest_id.encode()).hexdigest()[:17],
            "partnerTenantId": self.billing.partner_id, "rootDirectory": f"{self.base_url}{export.root}",
            "sasToken": sas, "partitionType": "default", "blobCount": len(export.blobs),
            "blobs": [{"name": name, "partitionValue": "default"} for name in export.blobs],
        }, request)

    @route("GET", EXPORT_ROOT + r"/(?P<path>.+)", auth=False)
    @route("HEAD", EXPORT_ROOT + r"/(?P<path>.+)", auth=False)
    def get_export_blob(self, request: Request) -> Response:
        """Azure Blob Storage Get Blob with a directory SAS (``sr=d``): ranges as the SDK asks for them."""
        directory, _, name = f"{EXPORT_ROOT}/{request.params['path']}".rpartition("/")
        signed = "&".join(f"{k}={request.arg(k) or ''}" for k in ("sv", "sr", "sp", "sdd", "se"))
        if not hmac.compare_digest(request.arg("sig") or "", self._signature(directory, signed)):
            return _blob_error(403, "AuthenticationFailed", "Server failed to authenticate the request. Make sure "
                               "the value of Authorization header is formed correctly including the signature.")
        expires = _parse_iso(request.arg("se") or "")
        if expires is None or expires < dt.datetime.now(dt.UTC):
            return _blob_error(403, "AuthenticationFailed", "Signed expiry time has passed.")
        with self.lock:
            export = next((e for e in self._exports.values() if e.root == directory), None)
            data = export.blobs.get(name) if export else None
        if data is None:
            return _blob_error(404, "BlobNotFound", "The specified blob does not exist.")
        headers = {"Content-Type": "application/octet-stream", "x-ms-blob-type": "BlockBlob",
                   "x-ms-version": BLOB_VERSION, "Accept-Ranges": "bytes", "x-ms-request-id": str(uuid.uuid4()),
                   "ETag": f'"0x{hashlib.sha256(data).hexdigest()[:16].upper()}"',
                   "Last-Modified": export.created.strftime("%a, %d %b %Y %H:%M:%S GMT") if export else "",
                   "x-ms-creation-time": export.created.strftime("%a, %d %b %Y %H:%M:%S GMT") if export else ""}
        wanted = request.headers.get("x-ms-range") or request.headers.get("Range")
        if wanted:
            start, end = _range(wanted, len(data))
            if start >= len(data):
                return _blob_error(416, "InvalidRange", "The range specified is invalid for the current size of "
                                   "the resource.", {"Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return Response(206, data[start:end + 1], headers)
        return Response(200, data, headers)

    # -- control ----------------------------------------------------------------------------------

    @route("POST", r"/_sandbox/billing/generate", auth=False)
    def generate_billing(self, request: Request) -> Response:
        """Replace the usage with synthetic subscriptions: ``{"subscriptions", "days", "resourcesPerMeter",
        "seed", "blobLines", "runningPolls"}``; lines = subscriptions x days x 2 x resourcesPerMeter."""
        body = request.json() if request.body.strip() else {}
        try:
            data = BillingData.synthetic(
                subscriptions=int(body.get("subscriptions", 100)), days=int(body.get("days", 30)),
                resources_per_meter=int(body.get("resourcesPerMeter", 1)), seed=int(body.get("seed", 14)),
                blob_lines=int(body.get("blobLines", DEFAULT_BLOB_LINES)))
        except (TypeError, ValueError) as exc:
            raise HttpError(400, "BadRequest", f"generate takes integers: {exc}") from None
        self.use_billing(data, running_polls=int(body["runningPolls"]) if "runningPolls" in body else None)
        return json_response(200, {"subscriptions": len(data.subscriptions), "days": data.days})

    @route("POST", r"/_sandbox/billing/fail", auth=False)
    def fail_billing(self, request: Request) -> Response:
        """The next exports fail (``{"message": ...}``) until reset: a failedOperation."""
        body = request.json() if request.body.strip() else {}
        self.fail_billing_exports(str(body.get("message", "No data available")))
        return json_response(200, {"failing": True})

    # -- Python API (tests, benchmarks) -------------------------------------------------------------

    def use_billing(self, data: BillingData, *, running_polls: int | None = None) -> None:
        """Serve ``data`` from now on (earlier exports are dropped)."""
        with self.lock:
            self.billing = data
            self._exports = {}
            if running_polls is not None:
                self.billing_running_polls = running_polls

    def fail_billing_exports(self, message: str) -> None:
        """Every export from now on ends as a failedOperation with ``message``."""
        with self.lock:
            self.billing_failure = message

    # -- internals --------------------------------------------------------------------------------

    def _export(self, operation_id: str) -> Export:
        with self.lock:
            export = self._exports.get(operation_id.lower())
        if export is None:
            raise HttpError(404, "NotFound", f"Operation {operation_id} does not exist.")
        return export

    def _build(self, export: Export) -> None:
        """Materialise the export's blobs once (compressed: about a tenth of the JSON)."""
        with self.lock:
            if export.root or export.error:
                return
            if self.billing_failure:
                export.error = self.billing_failure
                return
            data = self.billing
            month = data.period(export.period)[0].strftime("%Y%m")
            root = (f"{EXPORT_ROOT}/PartnerTenantId={data.partner_id}/BillingMonth={month}/"
                    f"Fragment={export.attribute_set}/PartitionType=default/{export.id}")
            blobs: dict[str, bytes] = {}
            for n, blob in enumerate(_gzip_lines(data.lines(export.period, export.attribute_set), data.blob_lines)):
                blobs[f"part-{n:05d}-{export.id}.c000.json.gz"] = blob
            if not blobs:
                export.error = "No data available"
                return
            export.blobs = blobs
            export.root = root

    def _signature(self, directory: str, signed: str) -> str:
        return hmac.new(self._sas_key, f"{directory}\n{signed}".encode(), hashlib.sha256).hexdigest()


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _range(header: str, size: int) -> tuple[int, int]:
    """``bytes=START-END`` (END optional), clamped to the blob."""
    try:
        start_text, _, end_text = header.split("=", 1)[1].partition("-")
        start = int(start_text)
        end = int(end_text) if end_text else size - 1
    except (IndexError, ValueError):
        raise HttpError(400, "InvalidHeaderValue", f"The Range header {header!r} is not valid.") from None
    return start, min(end, size - 1)


def _blob_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{message}\n'
            f"RequestId:{uuid.uuid4()}\nTime:{_iso(dt.datetime.now(dt.UTC))}</Message></Error>").encode()
    return Response(status, body, {"Content-Type": "application/xml", "x-ms-error-code": code,
                                   "x-ms-version": BLOB_VERSION, **(headers or {})})
