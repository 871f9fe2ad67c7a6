"""Poison messages: what gave up, why, and putting it back on its queue once the cause is fixed.

The Functions host moves a message to ``<queue>-poison`` after host.json ``maxDequeueCount``
failed deliveries; the respond handler first records it in the checkpoints table (partition
``poison``, with the error) and marks the alert's job *poisoned*. Replaying a respond job must undo
that mark, or the responder would take the job for already handled and do nothing: ``replay``
re-arms those alert rows (poisoned -> pending, only for the same version) before it moves the
messages back, and stamps the records as replayed (a message that fails again replaces its record).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.formats import iso
from shared.names import ALERTS_TABLE, CHECKPOINTS_TABLE, QUEUES, RESPOND_QUEUE, poison_queue
from shared.operations import InvalidRequest, Unavailable
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.jobs import RespondJob
    from shared.storage.queues import QueueMessage, QueueSender
    from shared.storage.tables import TableStore

log = logging.getLogger(__name__)

BODY_PREVIEW_CHARS = 2000


def queue_of(name: str) -> str:
    """The app queue meant by ``name`` (``alerts-respond`` or ``alerts-respond-poison``)."""
    wanted = name.strip().lower()
    for queue in QUEUES:
        if wanted in (queue, poison_queue(queue)):
            return queue
    raise InvalidRequest(f"unknown queue {name!r}: choose from {', '.join(QUEUES)}")


def _message(message: QueueMessage) -> dict[str, Any]:
    try:
        text = message.body().decode("utf-8", "replace")
    except ValueError:
        text = message.text  # not base64: the trigger fails on it, show it as stored
    try:
        document: Any = json.loads(text)
    except json.JSONDecodeError:
        document = None
    return {"id": message.id, "dequeue_count": message.dequeue_count, "body": text[:BODY_PREVIEW_CHARS],
            "json": document}


def _record(entity: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": entity["RowKey"], "queue": entity.get("queue", ""), "at": iso(entity.get("at")),
        "dequeue_count": entity.get("dequeue_count"), "error_type": entity.get("error_type", ""),
        "error": entity.get("error", ""), "alert_key": entity.get("alert_key", ""),
        "version": entity.get("version"), "replayed_at": iso(entity.get("replayed_at")),
        "replayed_by": entity.get("replayed_by", ""),
    }


@contextmanager
def _storage_errors() -> Iterator[None]:
    """Storage failures become Unavailable (the admin API answers 503; the CLI says try again)."""
    from shared.storage.errors import StorageError

    try:
        yield
    except StorageError as exc:
        raise Unavailable(f"{exc}; try again when storage answers") from None


def list_poison(settings: Settings, store: TableStore | None = None, *,
                queue: QueueSender | None = None) -> dict[str, Any]:
    """Every poison queue (count and up to 32 messages, peeked, not taken) and the poison records."""
    from shared.factory import queue_sender, table_store
    from shared.response.jobs import poison_records
    from shared.storage.queues import MAX_BATCH

    sender = queue or queue_sender(settings)
    tables = store or table_store(settings)
    queues = []
    with _storage_errors():
        for name in QUEUES:
            poison = poison_queue(name)
            messages = sender.peek(poison, MAX_BATCH)
            count = sender.count(poison)
            queues.append({"queue": name, "poison_queue": poison, "count": max(count, len(messages)),
                           "messages": [_message(m) for m in messages]})
        records = [_record(e) for e in poison_records(tables)]
    return {"queues": queues, "records": records}


def replay(settings: Settings, queue: str, *, store: TableStore | None = None, sender: QueueSender | None = None,
           operator: str = "", progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Move every message of ``queue``'s poison queue back to ``queue``; returns what was done.

    ``progress`` gets one-line updates (the CLI prints them on stderr).
    """
    from shared.factory import queue_sender, table_store

    say = progress or (lambda _line: None)
    target = queue_of(queue)
    source = poison_queue(target)
    sender = sender or queue_sender(settings)
    tables = store or table_store(settings)
    with _storage_errors():
        waiting = sender.count(source)
        records = [r for r in _records_for(tables, target) if not r.get("replayed_at")]
        rearmed = 0
        if target == RESPOND_QUEUE and records:
            say(f"re-arming {len(records)} poisoned respond job(s) ...")
            rearmed = sum(_rearm(tables, r) for r in records)
        say(f"moving about {waiting} message(s) from {source} to {target} ...")
        moved = sender.move_all(source, target)
        say(f"moved {moved} message(s) to {target}")
        now = datetime.now(UTC)
        for record in records:
            tables.upsert(CHECKPOINTS_TABLE, {"PartitionKey": record["PartitionKey"], "RowKey": record["RowKey"],
                                              "replayed_at": now, "replayed_by": operator}, mode="merge")
    log.info("poison replay %s -> %s by %s: %d moved, %d job(s) re-armed", source, target, operator or "?", moved,
             rearmed)
    return {"queue": target, "from": source, "moved": moved, "rearmed": rearmed, "records": len(records),
            "operator": operator}


def _records_for(store: TableStore, queue: str) -> list[dict[str, Any]]:
    from shared.response.jobs import poison_records

    return [r for r in poison_records(store) if r.get("queue") == queue]


def _rearm(store: TableStore, record: dict[str, Any]) -> int:
    """Set the alert rows of a poisoned respond message back to pending (same version only).

    The message is one alert's job or a batch of them (``shared.jobs``): each alert is re-armed on
    its own. Returns how many were.
    """
    from shared.jobs import InvalidJob, UnsupportedJob, respond_jobs_of

    try:
        jobs = respond_jobs_of(str(record.get("body", "")))
    except (InvalidJob, UnsupportedJob):
        return 0
    return sum(1 for job in jobs if _rearm_one(store, job))


def _rearm_one(store: TableStore, job: RespondJob) -> bool:
    from shared.intake import sync

    entity = store.get(ALERTS_TABLE, job.partition, job.row)
    if entity is None or int(entity.get("respond_version", 0)) != job.version:
        return False  # gone, or a newer version is already on its way
    if entity.get("respond_state") != sync.POISONED:
        return False
    return sync.mark_respond_state(store.table_client(ALERTS_TABLE), entity, job.version, sync.PENDING)
