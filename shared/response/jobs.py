"""Entry point of the alerts-respond queue: parse the job, run the responder, keep poison visible.

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
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from shared.formats import one_line
from shared.jobs import InvalidJob, RespondJob, UnsupportedJob
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
def _host_queues_and_timeout() -> tuple[int, float]:
    """(maxDequeueCount, functionTimeout seconds) from host.json, read once; defaults when absent."""
    try:
        host = json.loads((APP_ROOT / "host.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        host = {}
    # The Functions host lets an app setting override a host.json value (AzureFunctionsJobHost__<path>).
    override = host_json_override("functionTimeout")
    if override and isinstance(host, dict):
        host = {**host, "functionTimeout": override}
    return _max_dequeue(host), _timeout(host)


def _max_dequeue(host: Any) -> int:
    queues = host.get("extensions", {}).get("queues", {}) if isinstance(host, dict) else {}
    value = queues.get("maxDequeueCount") if isinstance(queues, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else DEFAULT_MAX_DEQUEUE_COUNT


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


@contextual(job="respond")
def handle_respond_message(body: bytes, *, dequeue_count: int = 1,
                           responder: Responder | None = None) -> RespondResult | None:
    """One alerts-respond message: None when it was dropped as malformed."""
    try:
        job = parse_respond_job(body)
    except InvalidJob as exc:
        log.error("alerts-respond job dropped: %s", exc)
        return None
    except UnsupportedJob as exc:  # newer code wrote it: kept (poison queue) for a replay, never dropped
        if dequeue_count >= max_dequeue_count():
            record_poison(responder.store if responder else _store(), queue=RESPOND_QUEUE, body=body, error=exc,
                          dequeue_count=dequeue_count)
        raise
    add_context(alert_id=job.alert_id, customer=job.partition)
    runner = responder or responder_for(get_settings())
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
