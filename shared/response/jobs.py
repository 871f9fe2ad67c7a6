"""Entry point of the alerts-respond queue: parse the job, run the responder, keep poison visible.

A message is one alert job (``RespondJob``) or a batch of them (``RespondBatch``: one sync
transaction's alerts). A batch's alerts are answered concurrently, at most ``RESPOND_CONCURRENCY``
at once. When some of them fail, each failed alert is sent again as a single-alert message (a
lease-held one invisible until the lease ends) and the batch is done: the alerts it handled are
marked handled on their rows and are not redone, and the failed ones retry, and end in poison,
alone. Only when those messages cannot be sent does the batch itself fail and come back (its
handled alerts are then skipped: their rows say handled).

A malformed job can never succeed: it is logged and dropped. Any other failure raises, so the
queue delivers the job again (host.json ``maxDequeueCount`` times); on the last delivery the job
is first recorded in the checkpoints table (partition ``poison``, with the error) so operators see
it even before they look at the ``alerts-respond-poison`` queue.

One exception: a job kept off rows by another invocation's live lease (a second copy of the job,
or a crashed worker whose lease has not expired) is not poison. On its last delivery it is sent
again, invisible until the lease ends, so a crashed row is always retaken by a delivery.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from shared.formats import one_line
from shared.jobs import InvalidJob, RespondBatch, RespondJob, UnsupportedJob, parse_respond
from shared.logs import add_context, contextual
from shared.names import CHECKPOINTS_TABLE, RESPOND_QUEUE
from shared.settings import APP_ROOT, Settings, get_settings, host_json_override

if TYPE_CHECKING:
    from shared.response.engine import Responder, RespondResult
    from shared.storage.tables import TableStore

log = logging.getLogger(__name__)

POISON_PARTITION: Final = "poison"
DEFAULT_MAX_DEQUEUE_COUNT: Final = 5
DEFAULT_FUNCTION_TIMEOUT_SECONDS: Final = 600.0


@functools.cache
def _host_queues_and_timeout() -> tuple[int, float, int]:
    """(maxDequeueCount, functionTimeout seconds, visibilityTimeout seconds) from host.json, read once;
    defaults when absent."""
    try:
        host = json.loads((APP_ROOT / "host.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        host = {}
    # The Functions host lets an app setting override a host.json value (AzureFunctionsJobHost__<path>).
    override = host_json_override("functionTimeout")
    if override and isinstance(host, dict):
        host = {**host, "functionTimeout": override}
    visibility = host_json_override("extensions.queues.visibilityTimeout")
    if visibility and isinstance(host, dict):
        found = host.get("extensions")
        extensions: dict[str, Any] = found if isinstance(found, dict) else {}
        found = extensions.get("queues")
        queues: dict[str, Any] = found if isinstance(found, dict) else {}
        host = {**host, "extensions": {**extensions, "queues": {**queues, "visibilityTimeout": visibility}}}
    return _max_dequeue(host), _timeout(host), _visibility(host)


def _max_dequeue(host: Any) -> int:
    queues = host.get("extensions", {}).get("queues", {}) if isinstance(host, dict) else {}
    value = queues.get("maxDequeueCount") if isinstance(queues, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else DEFAULT_MAX_DEQUEUE_COUNT


def _visibility(host: Any) -> int:
    queues = host.get("extensions", {}).get("queues", {}) if isinstance(host, dict) else {}
    text = queues.get("visibilityTimeout") if isinstance(queues, dict) else None
    match = re.fullmatch(r"(\d{1,2}):(\d{2}):(\d{2})", str(text or ""))
    if not match:
        return 0
    hours, minutes, seconds = (int(g) for g in match.groups())
    return (hours * 60 + minutes) * 60 + seconds


def _timeout(host: Any) -> float:
    text = host.get("functionTimeout") if isinstance(host, dict) else None
    match = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})", str(text or ""))
    if not match:
        return DEFAULT_FUNCTION_TIMEOUT_SECONDS
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds) or DEFAULT_FUNCTION_TIMEOUT_SECONDS


def max_dequeue_count() -> int:
    """How many deliveries the host makes before moving a message to the poison queue."""
    return _host_queues_and_timeout()[0]


def function_timeout_seconds() -> float:
    """host.json functionTimeout: how long a running ledger row is held for its worker."""
    return _host_queues_and_timeout()[1]


def retry_delay_seconds() -> int:
    """host.json queues.visibilityTimeout: how long the host waits before a failed message comes back."""
    return _host_queues_and_timeout()[2]


@functools.cache
def responder_for(settings: Settings) -> Responder:
    """One Responder per process and settings (clients, token caches and table clients are reused)."""
    from shared.factory import table_store
    from shared.response.engine import Responder

    return Responder(settings, table_store(settings), lease_seconds=function_timeout_seconds())


def parse_respond_job(body: bytes) -> RespondJob:
    """The job the sync queued (``shared.intake.sync.respond_job``), checked.

    :raises InvalidJob: it can never succeed. :raises UnsupportedJob: written by newer code.
    """
    return RespondJob.from_json(body)


@dataclass
class BatchResult:
    """What one batch message did: each alert's result, and the alerts sent on as single messages."""

    results: list[RespondResult] = field(default_factory=list)
    split: list[str] = field(default_factory=list)
    """``alert_key vN: why`` of each alert that failed here and was sent again alone."""
    invalid: list[str] = field(default_factory=list)


@contextual(job="respond")
def handle_respond_message(body: bytes, *, dequeue_count: int = 1,
                           responder: Responder | None = None) -> RespondResult | BatchResult | None:
    """One alerts-respond message (one alert, or a batch): None when it was dropped as malformed."""
    try:
        parsed = parse_respond(body)
    except InvalidJob as exc:
        log.error("alerts-respond job dropped: %s", exc)
        return None
    except UnsupportedJob as exc:  # newer code wrote it: kept (poison queue) for a replay, never dropped
        if dequeue_count >= max_dequeue_count():
            record_poison(responder.store if responder else _store(), queue=RESPOND_QUEUE, body=body, error=exc,
                          dequeue_count=dequeue_count)
        raise
    runner = responder or responder_for(get_settings())
    if isinstance(parsed, RespondBatch):
        return _handle_batch(parsed, dequeue_count=dequeue_count, runner=runner)
    return _handle_single(parsed, body, dequeue_count=dequeue_count, runner=runner)


def _handle_single(job: RespondJob, body: bytes, *, dequeue_count: int, runner: Responder) -> RespondResult | None:
    add_context(alert_id=job.alert_id, customer=job.partition)
    try:
        return runner.respond(job.partition, job.row, job.version, job=job.to_json(), dequeue_count=dequeue_count)
    except Exception as exc:
        if dequeue_count >= max_dequeue_count() and _resent_after_lease(runner, job, exc):
            return getattr(exc, "result", None)
        if dequeue_count >= max_dequeue_count():
            record_poison(runner.store, queue=RESPOND_QUEUE, body=body, error=exc, dequeue_count=dequeue_count,
                          job=job)
            _mark_poisoned(runner, job)
        raise


def _handle_batch(batch: RespondBatch, *, dequeue_count: int, runner: Responder) -> BatchResult:
    """Answer a batch's alerts concurrently (bounded); send each failed one on alone.

    Raises (so the batch comes back) only when a failed alert cannot be sent on; on the batch's
    last delivery those alerts are first recorded as poison one by one (and marked poisoned), so a
    replay re-arms each of them.
    """
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    result = BatchResult(invalid=list(batch.invalid))
    for why in batch.invalid:
        log.error("alerts-respond batch: a job was dropped: %s", why)
    add_context(customer=batch.jobs[0].partition)

    def answer(job: RespondJob) -> RespondResult | BaseException:
        try:
            return runner.respond(job.partition, job.row, job.version, job=job.to_json(),
                                  dequeue_count=dequeue_count)
        except Exception as exc:  # split off below: retried alone
            return exc

    workers = max(1, min(runner.settings.respond_concurrency, len(batch.jobs)))
    if workers == 1:
        outcomes = [answer(job) for job in batch.jobs]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="respond-batch") as pool:
            futures = [pool.submit(contextvars.copy_context().run, answer, job) for job in batch.jobs]
            outcomes = [future.result() for future in futures]
    failed: list[tuple[RespondJob, BaseException]] = []
    for job, outcome in zip(batch.jobs, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            failed.append((job, outcome))
            result.split.append(f"{job.alert_key} v{job.version}: {one_line(outcome, 300)}")
            partial = getattr(outcome, "result", None)
            if partial is not None:
                result.results.append(partial)
        else:
            result.results.append(outcome)
    unsent = [(job, exc) for job, exc in failed if not _send_alone(runner, job, exc)]
    if unsent:
        if dequeue_count >= max_dequeue_count():
            for job, exc in unsent:
                record_poison(runner.store, queue=RESPOND_QUEUE, body=_body(job), error=exc,
                              dequeue_count=dequeue_count, job=job)
                _mark_poisoned(runner, job)
        job, exc = unsent[0]
        raise RuntimeError(f"respond batch: {len(unsent)} failed alert(s) could not be sent on alone (first: "
                           f"{job.alert_key} v{job.version}: {one_line(exc, 300)}); the batch is retried") from exc
    if failed:
        log.warning("respond batch of %d: %d alert(s) sent on alone for a retry: %s", len(batch.jobs), len(failed),
                    "; ".join(result.split))
    return result


def _body(job: RespondJob) -> bytes:
    return json.dumps(job.to_json(), separators=(",", ":")).encode("utf-8")


def _send_alone(runner: Responder, job: RespondJob, exc: BaseException) -> bool:
    """Send one failed alert of a batch as its own message; True if sent.

    Held by another invocation's lease: invisible until the lease ends. Otherwise after the
    host's ``visibilityTimeout``, as the host itself would retry it.
    """
    import math

    from shared.factory import queue_sender
    from shared.response.engine import RetryLater

    held_until = exc.held_until if isinstance(exc, RetryLater) else None
    delay = retry_delay_seconds()
    if held_until is not None:
        delay = max(delay, math.ceil((held_until - datetime.now(UTC)).total_seconds()) + 1)
    delay = max(0, min(delay, 6 * 24 * 3600))
    try:
        queue_sender(runner.settings).send_json(RESPOND_QUEUE, job.to_json(), visibility_timeout=delay or None)
    except Exception:  # the batch is retried instead
        log.exception("could not send %s v%s on alone", job.alert_key, job.version)
        return False
    return True


def _store() -> TableStore:
    from shared.storage.tables import TableStore

    return TableStore(get_settings())


def _resent_after_lease(runner: Responder, job: RespondJob, exc: Exception) -> bool:
    """A job held off by another invocation's lease: send it again, visible once the lease ends; True if sent."""
    import math

    from shared.factory import queue_sender
    from shared.response.engine import RetryLater

    held_until = exc.held_until if isinstance(exc, RetryLater) else None
    if held_until is None:
        return False
    delay = max(1, min(math.ceil((held_until - datetime.now(UTC)).total_seconds()) + 1, 6 * 24 * 3600))
    try:
        queue_sender(runner.settings).send_json(RESPOND_QUEUE, job.to_json(), visibility_timeout=delay)
    except Exception:  # cannot re-send: the poison path records it
        log.exception("could not re-send the held job of %s v%s", job.alert_key, job.version)
        return False
    log.warning("respond %s v%s: rows held by another invocation until %s; the job is sent again for then",
                job.alert_key, job.version, held_until)
    return True


def _mark_poisoned(runner: Responder, job: RespondJob) -> None:
    """Tell the sync this version's job gave up (so it is not re-sent as if it were lost)."""
    from shared.intake.sync import POISONED

    try:
        runner.mark_job(job.partition, job.row, job.version, POISONED)
    except Exception:  # the poison record and the poison queue still show it
        log.exception("could not mark alert %s v%s poisoned", job.alert_key, job.version)


def record_poison(store: TableStore, *, queue: str, body: bytes, error: BaseException, dequeue_count: int,
                  job: RespondJob | Mapping[str, Any] | None = None) -> str:
    """Record a message on its last delivery (checkpoints table, partition "poison"); returns the RowKey.

    One row per queue and message body, so a replayed message that fails again updates its row.
    """
    row = f"{queue}~{hashlib.sha256(body).hexdigest()[:20]}"
    first = one_line(error, 1000)
    entity: dict[str, Any] = {
        "PartitionKey": POISON_PARTITION, "RowKey": row, "queue": queue, "at": datetime.now(UTC),
        "dequeue_count": dequeue_count, "error_type": type(error).__name__, "error": first,
        "body": body.decode("utf-8", "replace")[:30000],
    }
    if isinstance(job, RespondJob):
        entity["alert_key"], entity["version"] = job.alert_key, job.version
    elif job is not None:
        entity["alert_key"] = str(job.get("alert_key", ""))
        entity["version"] = int(job.get("version", 0) or 0)
    try:
        store.upsert(CHECKPOINTS_TABLE, entity, mode="replace")
    except Exception:  # storage is down too: the host still moves the message to the poison queue
        log.exception("could not record the poison message %s", row)
    log.error("%s message gives up after %d deliveries: %s", queue, dequeue_count, first)
    return row


def poison_records(store: TableStore) -> list[dict[str, Any]]:
    """Recorded poison messages, newest first (for `fraud-responder poison list`, issue 7)."""
    rows = [dict(e) for e in store.list_partition(CHECKPOINTS_TABLE, POISON_PARTITION)]
    rows.sort(key=lambda e: e.get("at") or datetime.min.replace(tzinfo=UTC), reverse=True)
    return rows
