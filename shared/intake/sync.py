"""Sync: fetch alerts from a source, diff with the alerts table, store what changed, and enqueue
one alerts-respond job per new or materially changed alert version (the jobs of one committed
transaction travel in one message: ``shared.jobs.RespondBatch``).

Guarantees (at-least-once in, exactly-once out):

* Each alert is one row, partitioned by customer tenant. A material change raises the row's
  ``version`` and, in the same write, records that version's respond job as *pending*
  (``respond_version``, ``respond_state``, ``respond_queued_at``): the state change and the
  outbox entry are one entity, so they commit together.
* Overlapping runs cannot both claim one version: a new alert is written with ``create`` (409 if
  another run created it first) and a changed one with ``update`` under the ETag the diff read
  (412 if another run changed it first). The loser retries the other alerts of that transaction
  without the conflicting one, which the winner owns. (Azurite ignores If-Match inside batch
  transactions, Azurite issue 1233: locally only the ``create`` half of this is enforced.)
* The respond jobs are enqueued after their transaction commits, all of that transaction's jobs
  in one message (up to 100; a lone job as the single shape). Each row still stores its own job
  (``respond_job``), so everything below stays per alert: the respond side splits a batch whose
  alert fails into single-alert messages (retries and poison stay per alert; alerts the batch
  already handled are not redone), and a lost batch is re-sent alert by alert. The respond side
  marks the row *handled* (or *poisoned*) when it is done with that version. A crash, or a failed put, between
  commit and enqueue leaves the row *pending*; a later sync re-sends pending jobs queued longer
  ago than ``REDELIVER_AFTER`` (one function timeout: the intake runner passes the host's, so a
  job whose every delivery died with its worker, and went to the poison queue without running,
  is re-sent too). So no alert version is lost, and a second job for one version is
  sent only when the first has waited that long unhandled (a long backlog); the respond side's
  ledger makes even that second job a no-op.
* A sync with nothing changed writes nothing and enqueues nothing (rows carry a fingerprint of
  their normalised content).
* When the alert of a row left pending changes in this run (a non-material field), the re-send
  rides on this run's own write of that row (``respond_queued_at`` moves in the same update), so
  an alert that changes on every poll still gets its lost job re-sent.
* "Hit count doubled" compares with the hit count of the version last answered
  (``answered_hit_count``), not the last one stored.

Odd data never stops intake: every value is made storable before it reaches a batch
(``shared.storage.tables.storable``; keys encoded by ``shared.alerts``). A record that still
cannot become a row (it does not parse, or the store refuses it) is quarantined: a row in the
alerts table's ``~quarantine`` partition with its raw payload (cut to fit) and the reason, listed
by ``fraud-responder alerts quarantine`` and the digest. A transaction refused because of one
entity is sent again without it, so the rest of the page and the run go on.

A source that fails mid-run (HTTP error, Key Vault, a malformed page) keeps what it fetched:
the buffered writes are flushed, then its error is raised for the caller (``run_sync``), which
records it and goes on with the next source.

Round trips: one paged query of the index columns, one operation per new or changed alert in
transactions of up to 100 per partition (accumulated across source pages, so a customer whose
alerts arrive on several pages still fills transactions), and one queue put per committed
transaction that has jobs (``SyncResult.messages``; ``enqueued`` counts the jobs in them), sent in
parallel while the next transactions commit. Transactions of different partitions (customers)
commit up to ``commit_workers`` at once; one partition's transactions stay in order. A pending
job re-sent on its own (``_redeliver``) costs one update and one put. Memory holds the index plus
at most 99 pending operations per partition: a large sync streams page by page.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from shared.alerts import (
    RAW_CHUNK_CHARS,
    Alert,
    AlertParseError,
    Source,
    material_changes,
    parse_alert,
    partition_key,
    row_key,
    to_entity,
)
from shared.jobs import RespondJob, pack_respond_jobs
from shared.storage.tables import (
    DEFAULT_TRANSACTION_BUDGET,
    MAX_TRANSACTION_ENTITIES,
    estimate_size,
    plain,
    storable,
)

log = logging.getLogger(__name__)

REDELIVER_AFTER = timedelta(minutes=10)
MAX_SENDS_IN_FLIGHT = 2000
INDEX_COLUMNS = ("PartitionKey", "RowKey", "kind", "version", "fingerprint", "status", "severity", "hit_count",
                 "affected_resources", "respond_version", "respond_state", "respond_queued_at", "respond_job",
                 "answered_hit_count")

QUARANTINE_PARTITION = "~quarantine"
"""Alerts-table partition of records that could not be stored (never a tenant: keys escape '~')."""
QUARANTINE_RAW_CHUNKS = 10
NO_HIT_COUNT = -1
"""``answered_hit_count`` of a version answered without a hit count."""

PENDING = "pending"
HANDLED = "handled"
POISONED = "poisoned"


@dataclass(frozen=True)
class SyncScope:
    """What to sync: every alert the source lists, or one subscription's (a webhook nudge)."""

    subscription_id: str | None = None
    statuses: tuple[str, ...] = ("active", "investigating", "resolved")

    def describe(self) -> str:
        return f"subscription {self.subscription_id}" if self.subscription_id else "all subscriptions"


class AlertSource(Protocol):
    """A source of raw alert records, page by page (a registered source's ``fetcher``, ``shared.sources``)."""

    name: Source

    def pages(self, scope: SyncScope) -> Iterator[list[Any]]: ...
    # Items are JSON objects, or whatever else the source sent (the sync quarantines those).


class TableOps(Protocol):
    """The part of azure.data.tables.TableClient sync uses (a real TableClient satisfies it)."""

    def query_entities(self, query_filter: str, **kwargs: Any) -> Any: ...
    def submit_transaction(self, operations: Iterable[Any], **kwargs: Any) -> Any: ...
    def update_entity(self, entity: Any, **kwargs: Any) -> Any: ...
    def upsert_entity(self, entity: Any, **kwargs: Any) -> Any: ...


class JobQueue(Protocol):
    def send_json(self, queue: str, document: dict[str, Any]) -> object: ...


class HoldingQueue(JobQueue, Protocol):
    """A queue that can also send a message held invisible (``shared.storage.queues.QueueSender``)."""

    def send_held(self, queue: str, obj: Any, *, hold_seconds: int) -> Any: ...


@dataclass
class SyncResult:
    scope: str
    sources: list[str] = field(default_factory=list)
    fetched: int = 0
    rejected: int = 0
    unchanged: int = 0
    new: int = 0
    updated: int = 0
    material: int = 0
    enqueued: int = 0
    """Respond jobs sent (alert versions), in ``messages`` queue puts."""
    redelivered: int = 0
    messages: int = 0
    """Queue puts (a batch of one transaction's jobs, or one re-sent job)."""
    quarantined: int = 0
    conflicts: int = 0
    transactions: int = 0
    queries: int = 0
    duration_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def round_trips(self) -> int:
        return self.transactions + self.queries + self.messages

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "round_trips": self.round_trips}


@dataclass(frozen=True)
class _Known:
    """What the diff needs of a stored alert: version, ETag and the fields material change reads."""

    version: int
    fingerprint: str
    etag: str
    status: str
    severity: str
    hit_count: int | None
    resources: frozenset[str]
    answered_hit_count: int | None = None


@dataclass
class _Op:
    kind: str  # "create" (a new alert) | "update" (a changed one, under the ETag the diff read)
    entity: dict[str, Any]
    size: int
    etag: str = ""
    job: dict[str, Any] | None = None  # the respond job, sent once the operation commits
    redelivery: bool = False  # the job is a pending one re-sent (see _redeliver), not a new version's
    source: Source = "partner_center"
    record: Any = None  # the raw record, for the quarantine
    record_id: str = ""


def respond_job(alert: Alert, version: int, reasons: list[str]) -> RespondJob:
    """The alerts-respond job of one alert version (``shared.jobs.RespondJob``)."""
    return RespondJob(alert_key=alert.key, partition=partition_key(alert.customer_tenant_id), row=row_key(alert.key),
                      version=version, reasons=tuple(reasons), is_test=alert.is_test)


def job_is_current(entity: dict[str, Any], version: int) -> bool:
    """For the respond side: is this job's version still waiting to be handled?"""
    return int(entity.get("respond_version", 0)) == version and entity.get("respond_state") == PENDING


def mark_respond_state(table: TableOps, entity: dict[str, Any], version: int, state: str) -> bool:
    """For the respond side: record that ``version``'s job is handled (or poisoned).

    Conditional on the row's ETag, so a newer version made pending meanwhile is never marked by
    an older job; returns False when the row moved on (re-read to decide).
    """
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
    from azure.data.tables import UpdateMode

    if int(entity.get("respond_version", 0)) != version:
        return False
    try:
        table.update_entity({"PartitionKey": entity["PartitionKey"], "RowKey": entity["RowKey"],
                             "respond_state": state, "respond_done_at": datetime.now(UTC)},
                            mode=UpdateMode.MERGE, etag=entity.metadata["etag"],  # type: ignore[attr-defined]
                            match_condition=MatchConditions.IfNotModified)
    except (ResourceModifiedError, ResourceNotFoundError):
        return False
    return True


class AlertSync:
    """One sync run's machinery; ``run`` is safe to call concurrently from several processes."""

    def __init__(
        self,
        *,
        table: TableOps,
        queue: JobQueue,
        respond_queue: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        enqueue_workers: int = 4,
        commit_workers: int = 4,
        redeliver_after: timedelta = REDELIVER_AFTER,
        hold_respond_seconds: int = 0,
    ) -> None:
        """``hold_respond_seconds`` > 0: respond messages are sent held that long (``queue`` must be a
        HoldingQueue) and listed in ``held`` (message, document), for a caller that answers them itself
        (``shared.intake.inline``); a re-sent job is always sent visible."""
        self._table = table
        self._hold = hold_respond_seconds
        self.held: list[tuple[Any, dict[str, Any]]] = []
        self._redeliver_after = redeliver_after
        self._queue = queue
        self._respond_queue = respond_queue
        self._clock = clock
        self._enqueue_workers = enqueue_workers
        self._commit_workers = commit_workers
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight = threading.BoundedSemaphore(MAX_SENDS_IN_FLIGHT)
        self._sent = 0
        self._resent = 0
        self._messages = 0
        self._send_errors: list[BaseException] = []
        self._send_lock = threading.Lock()
        self.last_result: SyncResult | None = None
        """The latest run's counts, also when it raised (what was stored before the failure)."""

    # --- index ---------------------------------------------------------------------------------

    def _load_index(self, scope: SyncScope, result: SyncResult) -> tuple[dict[tuple[str, str], _Known],
                                                                          dict[tuple[str, str], dict[str, Any]]]:
        known: dict[tuple[str, str], _Known] = {}
        overdue: dict[tuple[str, str], dict[str, Any]] = {}
        query = "kind eq 'alert'"
        params: dict[str, Any] = {}
        if scope.subscription_id:
            query = "kind eq 'alert' and subscription_id eq @sub"
            params = {"sub": scope.subscription_id.lower()}
        pages = self._table.query_entities(query, parameters=params, select=list(INDEX_COLUMNS),
                                           results_per_page=1000).by_page()
        cutoff = self._clock() - self._redeliver_after
        for page in pages:
            result.queries += 1
            for e in page:
                plain(e)
                hits = _int(e.get("hit_count"))
                answered = _int(e.get("answered_hit_count")) if "answered_hit_count" in e else hits
                known[(e["PartitionKey"], e["RowKey"])] = _Known(
                    version=int(e.get("version", 0)), fingerprint=str(e.get("fingerprint", "")),
                    etag=str(e.metadata.get("etag", "")), status=str(e.get("status", "")),
                    severity=str(e.get("severity", "")), hit_count=hits,
                    resources=frozenset(r[0].lower() for r in json.loads(e.get("affected_resources") or "[]")),
                    answered_hit_count=None if answered == NO_HIT_COUNT else answered,
                )
                queued = e.get("respond_queued_at")
                if e.get("respond_state") == PENDING and isinstance(queued, datetime) and queued < cutoff:
                    overdue[(e["PartitionKey"], e["RowKey"])] = e
        return known, overdue

    # --- run -----------------------------------------------------------------------------------

    def run(self, sources: Iterable[AlertSource], scope: SyncScope = SyncScope()) -> SyncResult:
        """Sync; respond jobs are sent in parallel as transactions commit, all sent before return.

        A failed send raises after the others finish; its row stays pending, so a later sync
        sends the job again (see the module docstring).
        """
        self._sent, self._resent, self._messages, self._send_errors, self.last_result = 0, 0, 0, [], None
        failure: Exception | None = None
        # Leaving the block waits for every send, whatever happened. Only counts and failures are
        # kept (not the futures), so a sync of 100k alerts does not hold 100k futures.
        with ThreadPoolExecutor(max_workers=self._enqueue_workers, thread_name_prefix="sync-enqueue") as pool:
            self._pool = pool
            try:
                self._run(sources, scope)
            except Exception as exc:  # raised below, once the sends are done and counted
                failure = exc
            finally:
                self._pool = None
        result = self.last_result
        if result is not None:
            result.enqueued += self._sent
            result.redelivered += self._resent
            result.messages += self._messages
        if failure is not None:
            raise failure
        if self._send_errors:
            raise self._send_errors[0]  # the others are sent; these stay pending and are re-sent later
        if result is None:  # _run sets it first thing
            raise RuntimeError("AlertSync.run produced no result")
        if result.enqueued or result.redelivered:
            # The moment the respond side can start (the run's bookkeeping writes come after it).
            log.info("sync %s: %d respond job(s) sent in %d message(s) (%d re-sent) after %.0f ms", result.scope,
                     result.enqueued, result.messages, result.redelivered, result.duration_s * 1000)
        return result

    def _run(self, sources: Iterable[AlertSource], scope: SyncScope) -> SyncResult:
        started = time.perf_counter()
        result = SyncResult(scope=scope.describe())
        self.last_result = result
        known, overdue = self._load_index(scope, result)
        buffers: dict[str, list[_Op]] = defaultdict(list)
        seen: set[tuple[str, str]] = set()
        now = self._clock()
        failure: Exception | None = None
        try:
            for source in sources:
                result.sources.append(source.name)
                for page in source.pages(scope):
                    for record in page:
                        result.fetched += 1
                        self._consider(source.name, record, known, scope=scope, seen=seen, buffers=buffers,
                                       result=result, now=now, overdue=overdue)
                    self._flush_many([p for p, ops in buffers.items() if len(ops) >= MAX_TRANSACTION_ENTITIES],
                                     buffers, result, full_only=True)
        except Exception as exc:  # the source failed: store what it sent before, then report it
            failure = exc
        self._flush_many(list(buffers), buffers, result, full_only=False)
        self._redeliver(list(overdue.values()), result, now)
        result.duration_s = time.perf_counter() - started
        if failure is not None:
            raise failure
        return result

    def _consider(self, source: Source, record: Any, known: dict[tuple[str, str], _Known], *,
                  scope: SyncScope, seen: set[tuple[str, str]], buffers: dict[str, list[_Op]],
                  result: SyncResult, now: datetime,
                  overdue: dict[tuple[str, str], dict[str, Any]] | None = None) -> None:
        try:
            alert = parse_alert(source, record)
        except Exception as exc:  # AlertParseError, or data no parser foresaw: never stop the page
            result.rejected += 1
            reason = str(exc) if isinstance(exc, AlertParseError) else f"cannot parse: {_describe(exc)}"
            if len(result.errors) < 20:
                result.errors.append(f"{source}: {reason}")
            log.warning("alert rejected from %s: %s", source, reason)
            self._quarantine(source, record, reason, result, now=now)
            return
        try:
            self._consider_alert(source, alert, record, known, scope=scope, seen=seen, buffers=buffers,
                                 result=result, now=now, overdue=overdue if overdue is not None else {})
        except Exception as exc:  # one record never stops the others
            self._quarantine(source, record, f"cannot store: {_describe(exc)}", result, now=now,
                             record_id=alert.id)

    def _consider_alert(self, source: Source, alert: Alert, record: Any, known: dict[tuple[str, str], _Known], *,
                        scope: SyncScope, seen: set[tuple[str, str]], buffers: dict[str, list[_Op]],
                        result: SyncResult, now: datetime, overdue: dict[tuple[str, str], dict[str, Any]]) -> None:
        if scope.subscription_id and alert.subscription_id != scope.subscription_id.lower():
            return  # a source that ignored the filter: the index holds only that subscription's rows
        key = (partition_key(alert.customer_tenant_id), row_key(alert.key))
        if key in seen:  # the same alert on two pages (the source moved while we paged)
            return
        seen.add(key)
        old = known.get(key)
        if old is not None and old.fingerprint == alert.fingerprint():
            result.unchanged += 1
            return
        reasons = material_changes(_as_alert_view(old, alert) if old else None, alert)
        if old is None and alert.status == "resolved":
            reasons = []  # history (e.g. a first sync): stored, but there is nothing to respond to
        version = max((old.version if old else 0) + (1 if reasons else 0), 1)
        entity = to_entity(alert, version=version, changed_at=now, reasons=reasons)
        entity["kind"] = "alert"
        job = None
        redelivery = False
        pending = overdue.pop(key, None)  # left pending too long: re-sent with this run's own write
        if reasons:
            result.material += 1
            job = respond_job(alert, version, reasons).to_json()
            entity.update({"respond_version": version, "respond_state": PENDING, "respond_queued_at": now,
                           "respond_job": json.dumps(job),
                           "answered_hit_count": NO_HIT_COUNT if alert.hit_count is None else alert.hit_count})
        elif pending is not None and pending.get("respond_job"):
            job, redelivery = json.loads(pending["respond_job"]), True
            entity["respond_queued_at"] = now
        entity = storable(entity)
        if old is None:
            result.new += 1
        else:
            result.updated += 1
        op = _Op("create" if old is None else "update", entity, estimate_size(entity),
                 etag=old.etag if old else "", job=job, redelivery=redelivery, source=source, record=record,
                 record_id=alert.id)
        buffers[key[0]].append(op)

    # --- writes --------------------------------------------------------------------------------

    def _flush_many(self, partitions: list[str], buffers: dict[str, list[_Op]], result: SyncResult, *,
                    full_only: bool) -> None:
        """Flush several partitions, up to ``commit_workers`` at once (each partition's transactions in order).

        Partitions share no rows, so their transactions are independent; each worker counts into
        its own SyncResult, merged here. The first error is raised once every partition is done.
        """
        if self._commit_workers <= 1 or len(partitions) <= 1:
            for partition in partitions:
                self._flush(partition, buffers, result, full_only=full_only)
            return
        taken = {partition: buffers.pop(partition) for partition in partitions}
        partials = {partition: SyncResult(scope=result.scope) for partition in partitions}
        left: dict[str, list[_Op]] = {}

        def flush(partition: str) -> None:
            own = {partition: taken[partition]}
            try:
                self._flush(partition, own, partials[partition], full_only=full_only)
            finally:
                if own.get(partition):  # not full yet, or not written: back into the buffers
                    left[partition] = own[partition]

        failure: BaseException | None = None
        with ThreadPoolExecutor(max_workers=self._commit_workers, thread_name_prefix="sync-commit") as pool:
            futures = [pool.submit(flush, partition) for partition in partitions]
            for future in futures:
                error = future.exception()
                failure = failure or error
        for partition in partitions:  # in order, so counts and errors read as a serial run's would
            _merge(result, partials[partition])
        buffers.update(left)
        if failure is not None:
            raise failure

    def _flush(self, partition: str, buffers: dict[str, list[_Op]], result: SyncResult, *, full_only: bool) -> None:
        ops = buffers[partition]
        while ops and (not full_only or len(ops) >= MAX_TRANSACTION_ENTITIES):
            self._commit(_take_batch(ops), result)
        if not ops:
            del buffers[partition]

    def _commit(self, batch: list[_Op], result: SyncResult) -> None:
        from azure.core.exceptions import HttpResponseError
        from azure.data.tables import TableTransactionError

        try:
            self._table.submit_transaction([_operation(op) for op in batch])
        except (TableTransactionError, HttpResponseError, TypeError, ValueError) as exc:
            if isinstance(exc, HttpResponseError):
                result.transactions += 1
            status = _status(exc)
            if status in (409, 412):
                # Another run wrote one of these alerts first: it owns that change (and its job).
                # Write the others one by one so only the conflicting ones are left to it.
                result.conflicts += 1
                for op in batch:
                    self._commit_one(op, result)
                return
            if not _refused(exc):
                raise
            index = exc.index if isinstance(exc, TableTransactionError) else -1
            if len(batch) > 1 and 0 <= index < len(batch) and status != 413:
                # The store named the entity it refused: quarantine it, send the others again.
                self._quarantine_op(batch[index], exc, result)
                self._commit(batch[:index] + batch[index + 1:], result)
                return
            for op in batch:  # which one is unknown (or the whole is too large): one by one
                self._commit_one(op, result)
            return
        result.transactions += 1
        self._committed(batch, result)

    def _commit_one(self, op: _Op, result: SyncResult) -> None:
        from azure.core.exceptions import HttpResponseError
        from azure.data.tables import TableTransactionError

        try:
            self._table.submit_transaction([_operation(op)])
        except (TableTransactionError, HttpResponseError, TypeError, ValueError) as exc:
            if isinstance(exc, HttpResponseError):
                result.transactions += 1
            if _status(exc) in (409, 412):
                return
            if not _refused(exc):
                raise
            self._quarantine_op(op, exc, result)
            return
        result.transactions += 1
        self._committed([op], result)

    def _committed(self, ops: list[_Op], result: SyncResult) -> None:
        """Send the jobs of a committed transaction: one message for all of them (``pack_respond_jobs``)."""
        carried = [op for op in ops if op.job is not None]
        if not carried:
            return
        for document, indexes in pack_respond_jobs([op.job for op in carried if op.job is not None]):
            resent = sum(1 for i in indexes if carried[i].redelivery)
            self._enqueue(document, new=len(indexes) - resent, resent=resent)

    def _enqueue(self, document: dict[str, Any], *, new: int, resent: int) -> None:
        if self._pool is None:
            raise RuntimeError("AlertSync._enqueue outside run()")
        self._in_flight.acquire()  # bound the sends waiting in the pool (memory), not the workers
        if self._hold > 0 and not resent:
            holding = cast(HoldingQueue, self._queue)
            future = self._pool.submit(holding.send_held, self._respond_queue, document, hold_seconds=self._hold)
        else:
            future = self._pool.submit(self._queue.send_json, self._respond_queue, document)
        future.add_done_callback(lambda done: self._sent_one(done, new, resent, document))

    def _sent_one(self, future: Future[object], new: int, resent: int, document: dict[str, Any]) -> None:
        error = future.exception()
        with self._send_lock:
            if error is not None:  # its rows stay pending: a later sync re-sends each alert's own job
                self._send_errors.append(error)
            else:
                if self._hold > 0 and not resent:
                    self.held.append((future.result(), document))
                self._sent += new
                self._resent += resent
                self._messages += 1
        self._in_flight.release()

    # --- quarantine ----------------------------------------------------------------------------

    def _quarantine_op(self, op: _Op, exc: BaseException, result: SyncResult) -> None:
        if op.kind == "create":  # counted when it was buffered; it was not stored after all
            result.new -= 1
        else:
            result.updated -= 1
        if op.job is not None and not op.redelivery:
            result.material -= 1
        self._quarantine(op.source, op.record, f"refused by Table Storage: {_describe(exc)}", result,
                         now=self._clock(), record_id=op.record_id)

    def _quarantine(self, source: Source, record: Any, reason: str, result: SyncResult, *, now: datetime,
                    record_id: str = "") -> None:
        """Keep a record that cannot become an alert row: its raw payload (cut to fit) and why.

        One row per record (by source and id, or by payload when it has no id), replaced when it
        comes again, so a record refused on every poll does not pile up.
        """
        from azure.data.tables import UpdateMode

        result.quarantined += 1
        try:
            raw = json.dumps(record, sort_keys=True, default=str)
        except (TypeError, ValueError) as exc:
            raw = f"<not JSON: {_describe(exc)}>"
        record_id = record_id or _record_id(record)
        digest = hashlib.sha256(f"{source}\n{record_id or raw}".encode("utf-8", "surrogatepass")).hexdigest()
        chunks = [raw[i : i + RAW_CHUNK_CHARS] for i in range(0, len(raw), RAW_CHUNK_CHARS)][:QUARANTINE_RAW_CHUNKS]
        entity: dict[str, Any] = {
            "PartitionKey": QUARANTINE_PARTITION, "RowKey": f"{source}-{digest[:40]}", "kind": "quarantine",
            "source": source, "record_id": record_id, "reason": reason[:4000], "quarantined_at": now,
            "raw_chunks": len(chunks), "raw_cut": len(raw) > sum(len(c) for c in chunks),
            **{f"raw_{i}": chunk for i, chunk in enumerate(chunks)},
        }
        log.error("alert record from %s quarantined (id %r): %s", source, record_id[:200], reason[:500])
        try:
            self._table.upsert_entity(storable(entity), mode=UpdateMode.REPLACE)
        except Exception as exc:  # the quarantine itself must not stop the run
            log.error("could not write the quarantine row for a record from %s: %s", source, _describe(exc))
        if len(result.errors) < 20:
            result.errors.append(f"{source}: quarantined {record_id[:100] or 'a record'}: {reason[:300]}")

    def _redeliver(self, overdue: list[dict[str, Any]], result: SyncResult, now: datetime) -> None:
        """Re-send jobs left pending past REDELIVER_AFTER (a crash or failed put after commit).

        The row's ``respond_queued_at`` moves to now first, under its ETag: of two overlapping
        runs only one re-sends, and the next re-send is another REDELIVER_AFTER away.
        """
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        for row in overdue:
            try:
                self._table.update_entity({"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"],
                                           "respond_queued_at": now}, mode=UpdateMode.MERGE,
                                          etag=row.metadata["etag"],  # type: ignore[attr-defined]
                                          match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError):
                continue  # changed since the index was read (a newer version, or another run re-sent it)
            finally:
                result.transactions += 1
            self._queue.send_json(self._respond_queue, json.loads(row["respond_job"]))
            result.redelivered += 1
            result.messages += 1


def _merge(into: SyncResult, part: SyncResult) -> None:
    """Add a worker's counts (``_flush_many``) to the run's."""
    for name in ("rejected", "unchanged", "new", "updated", "material", "quarantined", "conflicts", "transactions",
                 "queries"):
        setattr(into, name, getattr(into, name) + getattr(part, name))
    into.errors.extend(part.errors[:max(0, 20 - len(into.errors))])


def _operation(op: _Op) -> tuple[Any, ...]:
    from azure.core import MatchConditions
    from azure.data.tables import UpdateMode

    if op.kind == "create":  # no echo of each entity in the response: parsing it is most of the cost
        return ("create", op.entity, {"response_preference": "return-no-content"})
    return ("update", op.entity, {"mode": UpdateMode.MERGE, "etag": op.etag,
                                  "match_condition": MatchConditions.IfNotModified})


def _refused(exc: BaseException) -> bool:
    """The store (or the SDK, before sending) refused this data; sending it again cannot help.

    Throttling, timeouts and 5xx are not refusals: they are raised, and the next run retries.
    """
    if isinstance(exc, TypeError | ValueError):
        return True
    status = _status(exc)
    return status is not None and 400 <= status < 500 and status not in (408, 429)


def _describe(exc: BaseException) -> str:
    """The error's type and first line (no payload values: the store's messages name no values)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:500] if lines else ''}"


def _record_id(record: Any) -> str:
    if not isinstance(record, dict):
        return ""
    lower = {str(k).lower(): v for k, v in record.items()}
    value = lower.get("eventid") or lower.get("id")
    return str(value)[:1000] if value not in (None, "") else ""


def _int(value: Any) -> int | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return None


def quarantined(table: TableOps, *, limit: int = 500) -> list[dict[str, Any]]:
    """Records the sync could not store, most recent first: source, id, reason, when, raw payload."""
    rows = []
    for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": QUARANTINE_PARTITION}):
        raw = "".join(str(e.get(f"raw_{i}", "")) for i in range(int(e.get("raw_chunks", 0))))
        at = e.get("quarantined_at")
        rows.append({"source": str(e.get("source", "")), "id": str(e.get("record_id", "")),
                     "reason": str(e.get("reason", "")), "at": at.isoformat() if isinstance(at, datetime) else at,
                     "raw": raw, "raw_cut": bool(e.get("raw_cut", False))})
    rows.sort(key=lambda r: str(r["at"] or ""), reverse=True)
    return rows[:limit]


def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    if code is None and getattr(exc, "response", None) is not None:
        code = getattr(exc.response, "status_code", None)  # type: ignore[attr-defined]
    return code if isinstance(code, int) else None


def _take_batch(ops: list[_Op]) -> list[_Op]:
    """Up to 100 operations and the store's byte budget per transaction (under the 4 MiB cap)."""
    batch: list[_Op] = []
    size = 0
    while ops and len(batch) < MAX_TRANSACTION_ENTITIES and (
        not batch or size + ops[0].size <= DEFAULT_TRANSACTION_BUDGET
    ):
        op = ops.pop(0)
        batch.append(op)
        size += op.size
    return batch


def _as_alert_view(known: _Known, new: Alert) -> Alert:
    """The stored alert as material_changes sees it (only the fields it compares; the hit count
    is the one last answered, so growth is measured from the response, not the last poll)."""
    from dataclasses import replace

    from shared.alerts import AffectedResource

    return replace(new, status=known.status, severity=known.severity, hit_count=known.answered_hit_count,
                   affected_resources=tuple(AffectedResource(r) for r in sorted(known.resources)))
