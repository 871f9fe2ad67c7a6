"""Sync: fetch alerts from a source, diff with the alerts table, store what changed, and enqueue
one alerts-respond job per new or materially changed alert version.

Guarantees (at-least-once in, exactly-once out):

* Each alert row and, for a material change, its *outbox* row ``(alert, version)`` are written in
  ONE entity-group transaction (same table, same partition = the customer tenant). The outbox
  row is created with ``create`` (409 if it exists), so two overlapping runs that both see the
  same change cannot both claim that version: the loser's transaction fails, it re-reads that
  partition and carries on without the conflicting claim.
* The respond job is enqueued after the transaction commits, and its outbox row is then marked
  *sent* (batched per partition). A crash or failed send in between leaves the row *pending*;
  a later sync re-sends pending rows older than ``REDELIVER_AFTER`` (older, so a run never
  re-sends what an overlapping run is still sending). So no alert version is lost, and a second
  job for one version is only sent if the process dies between a put and its "sent" mark. The
  respond side deletes the outbox row when it has handled the job and drops a job whose outbox
  row is gone, so even that second job has no second effect.
* A sync with nothing changed writes nothing and enqueues nothing (rows carry a fingerprint of
  their normalised content).

Round trips: one paged query of the table's index columns, then transactions of up to 100
operations per partition, accumulated across source pages so a customer whose alerts arrive on
several pages still fills transactions; memory holds the index plus at most 99 pending
operations per partition, so a large sync streams page by page.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from shared.alerts import Alert, AlertParseError, Source, material_changes, parse_alert, row_key, to_entity

log = logging.getLogger(__name__)

OUTBOX_PREFIX = "outbox~"
MAX_SENDS_IN_FLIGHT = 2000
REDELIVER_AFTER = timedelta(minutes=10)
MAX_OPS_PER_TRANSACTION = 100
MAX_TRANSACTION_BYTES = 3_500_000  # under the 4 MiB cap, with room for the multipart envelope
INDEX_COLUMNS = ("PartitionKey", "RowKey", "kind", "version", "fingerprint", "status", "severity", "hit_count",
                 "affected_resources", "state", "created_at", "alert_row", "respond_version")


@dataclass(frozen=True)
class SyncScope:
    """What to sync: every alert the source lists, or one subscription's (a webhook nudge)."""

    subscription_id: str | None = None
    statuses: tuple[str, ...] = ("active", "investigating", "resolved")

    def describe(self) -> str:
        return f"subscription {self.subscription_id}" if self.subscription_id else "all subscriptions"


class AlertSource(Protocol):
    """A source of raw alert records, page by page (Partner Center or Graph)."""

    name: Source

    def pages(self, scope: SyncScope) -> Iterator[list[dict[str, Any]]]: ...


class TableOps(Protocol):
    """The part of azure.data.tables.TableClient sync uses (a real TableClient satisfies it)."""

    def query_entities(self, query_filter: str, **kwargs: Any) -> Any: ...
    def submit_transaction(self, operations: Iterable[Any], **kwargs: Any) -> Any: ...
    def upsert_entity(self, entity: Any, **kwargs: Any) -> Any: ...


class JobQueue(Protocol):
    def send_json(self, queue: str, document: dict[str, Any]) -> object: ...


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
    redelivered: int = 0
    conflicts: int = 0
    transactions: int = 0
    queries: int = 0
    duration_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def round_trips(self) -> int:
        return self.transactions + self.queries + self.enqueued + self.redelivered

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "round_trips": self.round_trips}


@dataclass(frozen=True)
class _Known:
    """What the diff needs of a stored alert: its version and the fields material change reads."""

    version: int
    fingerprint: str
    status: str
    severity: str
    hit_count: int | None
    resources: frozenset[str]


@dataclass
class _Op:
    kind: str  # "upsert" | "create"
    entity: dict[str, Any]
    size: int
    job: dict[str, Any] | None = None  # the respond job sent once a create commits


def respond_job(alert: Alert, version: int, reasons: list[str]) -> dict[str, Any]:
    return {
        "alert_key": alert.key, "partition": alert.customer_tenant_id, "row": row_key(alert.key),
        "version": version, "reasons": reasons, "is_test": alert.is_test,
    }


def outbox_row(alert_row: str, version: int) -> str:
    return f"{OUTBOX_PREFIX}{alert_row}~{version:08d}"


class AlertSync:
    """One sync run's machinery; ``run`` is safe to call concurrently from several processes."""

    def __init__(
        self,
        *,
        table: TableOps,
        queue: JobQueue,
        respond_queue: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        enqueue_workers: int = 16,
    ) -> None:
        self._table = table
        self._queue = queue
        self._respond_queue = respond_queue
        self._clock = clock
        self._enqueue_workers = enqueue_workers
        self._sends: list[tuple[Future[object], str, str]] = []
        self._pool: ThreadPoolExecutor | None = None

    # --- index ---------------------------------------------------------------------------------

    def _load_index(self, scope: SyncScope, result: SyncResult) -> tuple[dict[tuple[str, str], _Known],
                                                                          list[dict[str, Any]]]:
        known: dict[tuple[str, str], _Known] = {}
        pending: list[dict[str, Any]] = []
        query = "kind eq 'alert' or kind eq 'outbox'"
        params: dict[str, Any] = {}
        if scope.subscription_id:
            query = "subscription_id eq @sub"
            params = {"sub": scope.subscription_id.lower()}
        pages = self._table.query_entities(query, parameters=params, select=list(INDEX_COLUMNS),
                                           results_per_page=1000).by_page()
        for page in pages:
            result.queries += 1
            for e in page:
                if e.get("kind") == "outbox":
                    if e.get("state") == "pending":
                        pending.append(dict(e))
                    continue
                known[(e["PartitionKey"], e["RowKey"])] = _Known(
                    version=int(e.get("version", 0)), fingerprint=str(e.get("fingerprint", "")),
                    status=str(e.get("status", "")), severity=str(e.get("severity", "")),
                    hit_count=e.get("hit_count"),
                    resources=frozenset(r[0].lower() for r in json.loads(e.get("affected_resources") or "[]")),
                )
        return known, pending

    # --- run -----------------------------------------------------------------------------------

    def run(self, sources: Iterable[AlertSource], scope: SyncScope = SyncScope()) -> SyncResult:
        """Sync; respond jobs are sent in parallel as transactions commit, all sent before return.

        A failed send raises after the others finish; its outbox row stays pending, so the
        job is sent again by a later sync (see the module docstring).
        """
        with ThreadPoolExecutor(max_workers=self._enqueue_workers, thread_name_prefix="sync-enqueue") as pool:
            self._pool, self._sends = pool, []
            try:
                result = self._run(sources, scope)
            finally:
                sends, self._sends, self._pool = self._sends, [], None
                for future, _, _ in sends:
                    future.exception()  # wait for every send, whatever happened
        sent = [(partition, row) for future, partition, row in sends if future.exception() is None]
        self._mark_sent(sent, result)
        result.enqueued += len(sent)
        failed = [f.exception() for f, _, _ in sends if f.exception() is not None]
        if failed:
            raise failed[0]  # type: ignore[misc]  # the rest are sent and marked; these stay pending
        return result

    def _mark_sent(self, sent: list[tuple[str, str]], result: SyncResult) -> None:
        """Outbox rows whose job is on the queue: "sent", so no later sync sends them again."""
        from azure.data.tables import UpdateMode

        by_partition: dict[str, list[str]] = defaultdict(list)
        for partition, row in sent:
            by_partition[partition].append(row)
        for partition, rows in by_partition.items():
            for i in range(0, len(rows), MAX_OPS_PER_TRANSACTION):
                self._table.submit_transaction([
                    ("upsert", {"PartitionKey": partition, "RowKey": row, "state": "sent"}, {"mode": UpdateMode.MERGE})
                    for row in rows[i : i + MAX_OPS_PER_TRANSACTION]])
                result.transactions += 1

    def _run(self, sources: Iterable[AlertSource], scope: SyncScope) -> SyncResult:
        started = time.perf_counter()
        result = SyncResult(scope=scope.describe())
        known, pending_outbox = self._load_index(scope, result)
        buffers: dict[str, list[_Op]] = defaultdict(list)
        seen: set[tuple[str, str]] = set()
        now = self._clock()
        for source in sources:
            result.sources.append(source.name)
            for page in source.pages(scope):
                for record in page:
                    result.fetched += 1
                    self._consider(source.name, record, known, scope=scope, seen=seen, buffers=buffers, result=result,
                                   now=now)
                for partition in [p for p, ops in buffers.items() if len(ops) >= MAX_OPS_PER_TRANSACTION]:
                    self._flush(partition, buffers, result, full_only=True)
        for partition in list(buffers):
            self._flush(partition, buffers, result, full_only=False)
        self._redeliver(pending_outbox, result, now)
        result.duration_s = time.perf_counter() - started
        return result

    def _consider(self, source: Source, record: dict[str, Any], known: dict[tuple[str, str], _Known], *,
                  scope: SyncScope,
                  seen: set[tuple[str, str]], buffers: dict[str, list[_Op]], result: SyncResult,
                  now: datetime) -> None:
        try:
            alert = parse_alert(source, record)
        except AlertParseError as exc:
            result.rejected += 1
            if len(result.errors) < 20:
                result.errors.append(f"{source}: {exc}")
            log.warning("alert rejected from %s: %s", source, exc)
            return
        if scope.subscription_id and alert.subscription_id != scope.subscription_id.lower():
            return  # a source that ignored the filter: the index holds only that subscription's rows
        key = (alert.customer_tenant_id, row_key(alert.key))
        if key in seen:  # the same alert on two pages (the source moved while we paged)
            return
        seen.add(key)
        old = known.get(key)
        fingerprint = alert.fingerprint()
        if old is not None and old.fingerprint == fingerprint:
            result.unchanged += 1
            return
        reasons = material_changes(_as_alert_view(old, alert) if old else None, alert)
        if old is None and alert.status == "resolved":
            reasons = []  # history (e.g. a first sync): stored, but there is nothing to respond to
        version = (old.version if old else 0) + (1 if reasons else 0)
        entity = to_entity(alert, version=max(version, 1), changed_at=now, reasons=reasons)
        entity["kind"] = "alert"
        if old is None:
            result.new += 1
        else:
            result.updated += 1
        ops = buffers[alert.customer_tenant_id]
        ops.append(_Op("upsert", entity, _size(entity)))
        if reasons:
            result.material += 1
            job = respond_job(alert, entity["version"], reasons)
            claim = {
                "PartitionKey": alert.customer_tenant_id, "RowKey": outbox_row(entity["RowKey"], entity["version"]),
                "kind": "outbox", "state": "pending", "alert_row": entity["RowKey"], "version": entity["version"],
                "subscription_id": alert.subscription_id, "created_at": now, "job": json.dumps(job),
            }
            ops.append(_Op("create", claim, _size(claim), job))

    # --- writes --------------------------------------------------------------------------------

    def _flush(self, partition: str, buffers: dict[str, list[_Op]], result: SyncResult, *, full_only: bool) -> None:
        ops = buffers[partition]
        while ops and (not full_only or len(ops) >= MAX_OPS_PER_TRANSACTION):
            batch = _take_batch(ops)
            self._commit(batch, result)
        if not ops:
            del buffers[partition]

    def _commit(self, batch: list[_Op], result: SyncResult) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.data.tables import TableTransactionError, UpdateMode

        operations = [("upsert", op.entity, {"mode": UpdateMode.MERGE}) if op.kind == "upsert"
                      else ("create", op.entity) for op in batch]
        try:
            self._table.submit_transaction(operations)
            result.transactions += 1
        except (TableTransactionError, ResourceExistsError) as exc:
            result.transactions += 1
            if "EntityAlreadyExists" not in str(exc) and not isinstance(exc, ResourceExistsError):
                raise
            # Another run claimed one of these versions first: commit each alert with its own
            # claim, so only the conflicting pair is left to the run that won.
            result.conflicts += 1
            self._commit_pairs(batch, result)
            return
        for op in batch:
            if op.job is not None:
                self._enqueue(op.job, result)

    def _commit_pairs(self, batch: list[_Op], result: SyncResult) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.data.tables import TableTransactionError, UpdateMode

        i = 0
        while i < len(batch):
            group = [batch[i]]
            if i + 1 < len(batch) and batch[i + 1].kind == "create":
                group.append(batch[i + 1])
            i += len(group)
            operations = [("upsert", op.entity, {"mode": UpdateMode.MERGE}) if op.kind == "upsert"
                          else ("create", op.entity) for op in group]
            try:
                self._table.submit_transaction(operations)
            except (TableTransactionError, ResourceExistsError):
                result.transactions += 1
                continue  # that version is claimed by another run, which enqueues it
            result.transactions += 1
            for op in group:
                if op.job is not None:
                    self._enqueue(op.job, result)

    def _enqueue(self, job: dict[str, Any], result: SyncResult) -> None:
        if self._pool is None:
            raise RuntimeError("AlertSync._enqueue outside run()")
        if len(self._sends) >= MAX_SENDS_IN_FLIGHT:  # bound the queue of sends: wait for the oldest
            for future, _, _ in self._sends[: len(self._sends) // 2]:
                future.exception()
        self._sends.append((self._pool.submit(self._queue.send_json, self._respond_queue, job),
                            job["partition"], outbox_row(job["row"], job["version"])))

    def _redeliver(self, pending: list[dict[str, Any]], result: SyncResult, now: datetime) -> None:
        """Re-send jobs whose outbox row stayed pending (a crash between commit and enqueue)."""
        for row in pending:
            created = row.get("created_at")
            if not isinstance(created, datetime) or now - created < REDELIVER_AFTER:
                continue
            full = next(iter(self._table.query_entities(
                "PartitionKey eq @p and RowKey eq @r", parameters={"p": row["PartitionKey"], "r": row["RowKey"]})),
                None)
            result.queries += 1
            if full is None or full.get("state") != "pending":
                continue
            self._queue.send_json(self._respond_queue, json.loads(full["job"]))
            result.redelivered += 1
            self._table.upsert_entity({"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"],
                                       "created_at": now}, mode=_merge())
            result.transactions += 1


def _merge() -> Any:
    from azure.data.tables import UpdateMode

    return UpdateMode.MERGE


def _take_batch(ops: list[_Op]) -> list[_Op]:
    """Up to 100 operations and ~3.5 MB, never separating an alert from its outbox claim."""
    batch: list[_Op] = []
    size = 0
    while ops:
        group = 2 if len(ops) > 1 and ops[1].kind == "create" else 1
        group_size = sum(op.size for op in ops[:group])
        if batch and (len(batch) + group > MAX_OPS_PER_TRANSACTION or size + group_size > MAX_TRANSACTION_BYTES):
            break
        batch.extend(ops[:group])
        del ops[:group]
        size += group_size
    return batch


def _size(entity: dict[str, Any]) -> int:
    return len(json.dumps(entity, default=str)) + 512


def _as_alert_view(known: _Known, new: Alert) -> Alert:
    """The stored alert as material_changes sees it (only the fields it compares)."""
    from dataclasses import replace

    from shared.alerts import AffectedResource

    return replace(new, status=known.status, severity=known.severity, hit_count=known.hit_count,
                   affected_resources=tuple(AffectedResource(r) for r in sorted(known.resources)))
