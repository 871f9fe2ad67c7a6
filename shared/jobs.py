"""Queue job messages, typed: the one module that builds and reads them.

Why: a job crosses a process boundary (and outlives a deployment on its queue), so its shape is
a contract. Producers build these frozen dataclasses and send ``to_json()``; consumers call
``from_json(body)``, which validates before any work starts:

* ``SyncJob`` on ``alerts-sync``: made by the webhook receiver (one subscription), read by
  ``shared.intake.jobs.handle_sync_message``; poison replay moves it as it is.
* ``RespondJob`` on ``alerts-respond``: made by the sync for each new alert version (and stored
  on the alert row as its outbox entry), read by ``shared.response.jobs`` and poison replay.
* ``RespondBatch`` on ``alerts-respond``: the jobs of one committed sync transaction (one
  customer, up to 100 alert versions) in one message, so a large sync makes one queue put per
  transaction instead of one per alert (``pack_respond_jobs``). Each job inside is the single
  shape above, and each alert row still stores its own single job: the sync re-sends a lost one
  alone, and the respond side splits a batch whose alert fails into single messages, so retries
  and poison stay per alert. A batch of one alert is sent as the single shape. Code older than
  the batch drops one as malformed (it lacks ``alert_key``); its rows stay pending and the sync
  re-sends each alert's own job after ``REDELIVER_AFTER``, so nothing is lost.
* ``DetectJob`` on ``alerts-detect``: made by the detection timer (one per group of watched
  subscriptions, one for the partner scope), read by ``shared.detection.runner``.

Versions: ``schema_version`` 1 is the shape queued before the field existed; a message without it
is version 1, so jobs already on a queue during a deployment still parse. A message of a newer
version than this worker knows raises ``UnsupportedJob`` (not ``InvalidJob``): it is retried and
ends in the poison queue, where it can be replayed once the newer code runs, instead of being
dropped. To change a shape: add fields with defaults (same version), or bump ``SCHEMA_VERSION``
and keep reading the older versions here.

Errors: ``InvalidJob`` (can never succeed: logged and dropped) and ``UnsupportedJob``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from shared.errors import FraudResponderError
from shared.formats import is_guid
from shared.names import DETECT_QUEUE, RESPOND_QUEUE, SYNC_QUEUE

SCHEMA_VERSION: Final = 1
"""The version this code writes and the newest it reads."""
SYNC_KIND: Final = SYNC_QUEUE
RESPOND_KIND: Final = RESPOND_QUEUE
RESPOND_BATCH_KIND: Final = "respond-batch"
"""``kind`` of a batch message on the alerts-respond queue (a single job has no ``kind``)."""
MAX_BATCH_JOBS: Final = 100
"""Most jobs one batch message carries (a sync transaction holds at most 100 entities)."""
MAX_BATCH_JSON_BYTES: Final = 45_000
"""Most UTF-8 JSON bytes of one batch message: its base64 (4/3 larger) stays under the queue's 64 KiB."""
DETECT_KIND: Final = DETECT_QUEUE
MAX_DETECT_GROUP: Final = 100
"""Most subscriptions one detect job names (a queue message holds 64 KiB)."""

_BAD_KEY = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
"""Characters Table Storage forbids in keys."""


class InvalidJob(FraudResponderError, ValueError):
    """A queue message that can never succeed: it is recorded and dropped, not retried."""


class UnsupportedJob(FraudResponderError, RuntimeError):
    """A job written by newer code (a higher schema_version): retried, then kept in the poison queue."""

    retryable = True


def parse_job(body: bytes | str | Mapping[str, Any], *, kind: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON object with the ``required`` fields, and a schema version this code reads."""
    if isinstance(body, Mapping):
        document: Any = dict(body)
    else:
        try:
            document = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidJob(f"{kind} message is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidJob(f"{kind} message must be a JSON object")
    missing = [name for name in required if name not in document]
    if missing:
        raise InvalidJob(f"{kind} message lacks {', '.join(missing)}")
    version = document.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidJob(f"{kind} message: schema_version must be a whole number of 1 or more, not {version!r}")
    if version > SCHEMA_VERSION:
        raise UnsupportedJob(f"{kind} message has schema_version {version}; this worker reads up to "
                             f"{SCHEMA_VERSION} (replay it from the poison queue once the newer code runs)")
    return document


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class SyncJob:
    """Sync alerts: every subscription, or one (a webhook nudge), of one source or all of them."""

    scope: Literal["all", "subscription"] = "all"
    subscription_id: str | None = None
    source: str | None = None
    """One registered source (``shared.sources``); None: the ALERT_SOURCES setting."""
    event_status: str | None = None
    trigger: str = "queue"
    delivery_id: str | None = None
    """The webhook delivery that asked for it: marked synced once the job has run."""
    requested_at: str | None = None
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"scope": self.scope}
        if self.scope == "subscription":
            document["subscription_id"] = self.subscription_id
        if self.source is not None:
            document["source"] = self.source
        document.update({"event_status": self.event_status, "trigger": self.trigger})
        for name in ("delivery_id", "requested_at"):
            if getattr(self, name) is not None:
                document[name] = getattr(self, name)
        document["schema_version"] = self.schema_version
        return document

    @classmethod
    def from_json(cls, body: bytes | str | Mapping[str, Any]) -> SyncJob:
        """:raises InvalidJob: not a sync job (bad scope, a subscription that is not a GUID, an unknown source).
        :raises UnsupportedJob: written by newer code."""
        from shared import sources

        job = parse_job(body, kind=SYNC_KIND, required=("scope",))
        scope = job["scope"]
        subscription: str | None = None
        if scope == "subscription":
            subscription = str(job.get("subscription_id", ""))
            if not is_guid(subscription):
                raise InvalidJob(f"{SYNC_KIND} job names subscription {subscription!r}, which is not a GUID")
            subscription = subscription.lower()
        elif scope != "all":
            raise InvalidJob(f"{SYNC_KIND} job has scope {scope!r}; expected 'all' or 'subscription'")
        source = job.get("source")
        if isinstance(source, str) and source not in sources.names():
            raise InvalidJob(f"{SYNC_KIND} job names unknown source {source!r}; known: {', '.join(sources.names())}")
        return cls(scope=scope, subscription_id=subscription, source=source if isinstance(source, str) else None,
                   event_status=_optional_text(job.get("event_status")), trigger=str(job.get("trigger", "queue")),
                   delivery_id=_optional_text(job.get("delivery_id")),
                   requested_at=_optional_text(job.get("requested_at")), schema_version=job.get("schema_version", 1))


@dataclass(frozen=True)
class RespondJob:
    """Respond to one version of one stored alert (the row the sync wrote)."""

    alert_key: str
    """``source:id`` (``Alert.key``)."""
    partition: str
    row: str
    version: int
    """The alert row's version this job answers (not the schema version)."""
    reasons: tuple[str, ...] = ()
    is_test: bool = False
    schema_version: int = SCHEMA_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """Fields this version does not know, kept so a re-sent job loses nothing."""

    @property
    def alert_id(self) -> str:
        return self.alert_key.partition(":")[2] or self.alert_key

    def to_json(self) -> dict[str, Any]:
        return {**self.extra, "alert_key": self.alert_key, "partition": self.partition, "row": self.row,
                "version": self.version, "reasons": list(self.reasons), "is_test": self.is_test,
                "schema_version": self.schema_version}

    @classmethod
    def from_json(cls, body: bytes | str | Mapping[str, Any]) -> RespondJob:
        """:raises InvalidJob: fields missing or of the wrong kind, keys Table Storage forbids.
        :raises UnsupportedJob: written by newer code."""
        job = parse_job(body, kind=RESPOND_KIND, required=("alert_key", "partition", "row", "version"))
        for name in ("alert_key", "partition", "row"):
            if not isinstance(job[name], str) or not job[name]:
                raise InvalidJob(f"{RESPOND_KIND} job: {name} must be a non-empty string")
        if not isinstance(job["version"], int) or isinstance(job["version"], bool) or job["version"] < 1:
            raise InvalidJob(f"{RESPOND_KIND} job: version must be a whole number of 1 or more")
        for name in ("partition", "row"):
            if _BAD_KEY.search(job[name]):
                raise InvalidJob(f"{RESPOND_KIND} job: {name} is not a table key")
        reasons = job.get("reasons")
        known = {"alert_key", "partition", "row", "version", "reasons", "is_test", "schema_version"}
        return cls(alert_key=job["alert_key"], partition=job["partition"], row=job["row"], version=job["version"],
                   reasons=tuple(str(r) for r in reasons) if isinstance(reasons, list) else (),
                   is_test=job.get("is_test") is True, schema_version=job.get("schema_version", 1),
                   extra={k: v for k, v in job.items() if k not in known})


@dataclass(frozen=True)
class RespondBatch:
    """Respond to several stored alert versions: the jobs of one committed sync transaction.

    ``invalid`` holds why items that are not respond jobs were left out (one bad item never
    stops the others; they are logged and dropped like a malformed single job).
    """

    jobs: tuple[RespondJob, ...]
    schema_version: int = SCHEMA_VERSION
    invalid: tuple[str, ...] = field(default=(), compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"kind": RESPOND_BATCH_KIND, "alerts": [job.to_json() for job in self.jobs],
                "schema_version": self.schema_version}

    @classmethod
    def from_json(cls, body: bytes | str | Mapping[str, Any]) -> RespondBatch:
        """:raises InvalidJob: not a batch, or not one valid job in it.
        :raises UnsupportedJob: the batch or one of its jobs was written by newer code (kept whole)."""
        document = parse_job(body, kind=RESPOND_KIND, required=("kind", "alerts"))
        if document["kind"] != RESPOND_BATCH_KIND:
            raise InvalidJob(f"{RESPOND_KIND} message has kind {document['kind']!r}; expected {RESPOND_BATCH_KIND!r}")
        items = document["alerts"]
        if not isinstance(items, list) or not items:
            raise InvalidJob(f"{RESPOND_KIND} batch: alerts must be a non-empty list")
        jobs: list[RespondJob] = []
        invalid: list[str] = []
        for position, item in enumerate(items):
            if not isinstance(item, dict):
                invalid.append(f"item {position}: not a JSON object")
                continue
            try:
                jobs.append(RespondJob.from_json(item))
            except InvalidJob as exc:
                invalid.append(f"item {position}: {exc}")
        if not jobs:
            raise InvalidJob(f"{RESPOND_KIND} batch holds no valid job: {'; '.join(invalid)[:500]}")
        return cls(jobs=tuple(jobs), schema_version=document.get("schema_version", 1), invalid=tuple(invalid))


def is_respond_batch(document: Mapping[str, Any]) -> bool:
    """A batch message (``RespondBatch``) rather than a single job."""
    return document.get("kind") == RESPOND_BATCH_KIND or "alerts" in document


def parse_respond(body: bytes | str | Mapping[str, Any]) -> RespondJob | RespondBatch:
    """Either shape of an alerts-respond message, checked.

    :raises InvalidJob: it can never succeed. :raises UnsupportedJob: written by newer code.
    """
    document = parse_job(body, kind=RESPOND_KIND)
    return RespondBatch.from_json(document) if is_respond_batch(document) else RespondJob.from_json(document)


def respond_jobs_of(body: bytes | str | Mapping[str, Any]) -> list[RespondJob]:
    """The alert jobs of a message of either shape (poison replay re-arms each one's alert row)."""
    parsed = parse_respond(body)
    return list(parsed.jobs) if isinstance(parsed, RespondBatch) else [parsed]


def pack_respond_jobs(jobs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[int]]]:
    """The messages that carry ``jobs`` (single-job documents), in order, with each message's job indexes.

    Up to ``MAX_BATCH_JOBS`` jobs and ``MAX_BATCH_JSON_BYTES`` per batch; a message of one job is
    the single shape (what every version of the respond side reads).
    """
    groups: list[list[int]] = []
    size = 0
    for index, job in enumerate(jobs):
        length = len(json.dumps(job, separators=(",", ":"), ensure_ascii=False).encode("utf-8")) + 1
        if not groups or len(groups[-1]) >= MAX_BATCH_JOBS or size + length > MAX_BATCH_JSON_BYTES:
            groups.append([])
            size = 64  # the envelope
        groups[-1].append(index)
        size += length
    messages: list[tuple[dict[str, Any], list[int]]] = []
    for group in groups:
        if len(group) == 1:
            messages.append((dict(jobs[group[0]]), group))
        else:
            messages.append(({"kind": RESPOND_BATCH_KIND, "alerts": [jobs[i] for i in group],
                              "schema_version": SCHEMA_VERSION}, group))
    return messages


@dataclass(frozen=True)
class DetectTarget:
    """A watched subscription as a detect job carries it (``shared.detection.base.Target``'s fields)."""

    customer_tenant_id: str
    subscription_id: str
    customer_name: str = ""
    reseller_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"customer_tenant_id": self.customer_tenant_id, "subscription_id": self.subscription_id,
                "customer_name": self.customer_name, "reseller_id": self.reseller_id}


@dataclass(frozen=True)
class DetectJob:
    """Run detection now: the subscription-scope detectors over ``targets``, or the partner-scope ones."""

    scope: Literal["subscriptions", "partner"]
    targets: tuple[DetectTarget, ...] = ()
    run_id: str = ""
    """The timer run that fanned it out (logs join on it)."""
    requested_at: str | None = None
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"scope": self.scope}
        if self.scope == "subscriptions":
            document["targets"] = [t.to_json() for t in self.targets]
        document["run_id"] = self.run_id
        if self.requested_at is not None:
            document["requested_at"] = self.requested_at
        document["schema_version"] = self.schema_version
        return document

    @classmethod
    def from_json(cls, body: bytes | str | Mapping[str, Any]) -> DetectJob:
        """:raises InvalidJob: an unknown scope, no targets, a target whose ids are not GUIDs, too many.
        :raises UnsupportedJob: written by newer code."""
        job = parse_job(body, kind=DETECT_KIND, required=("scope",))
        scope = job["scope"]
        targets: list[DetectTarget] = []
        if scope == "subscriptions":
            raw = job.get("targets")
            if not isinstance(raw, list) or not raw:
                raise InvalidJob(f"{DETECT_KIND} job: targets must be a non-empty list")
            if len(raw) > MAX_DETECT_GROUP:
                raise InvalidJob(f"{DETECT_KIND} job names {len(raw)} subscriptions; at most {MAX_DETECT_GROUP}")
            for item in raw:
                if not isinstance(item, dict):
                    raise InvalidJob(f"{DETECT_KIND} job: each target must be an object")
                tenant = str(item.get("customer_tenant_id", ""))
                subscription = str(item.get("subscription_id", ""))
                if not is_guid(tenant) or not is_guid(subscription):
                    raise InvalidJob(f"{DETECT_KIND} job: target {subscription!r} of tenant {tenant!r} is not a "
                                     "pair of GUIDs")
                targets.append(DetectTarget(tenant.lower(), subscription.lower(),
                                            str(item.get("customer_name") or ""), str(item.get("reseller_id") or "")))
        elif scope != "partner":
            raise InvalidJob(f"{DETECT_KIND} job has scope {scope!r}; expected 'subscriptions' or 'partner'")
        return cls(scope=scope, targets=tuple(targets), run_id=str(job.get("run_id") or ""),
                   requested_at=_optional_text(job.get("requested_at")), schema_version=job.get("schema_version", 1))
