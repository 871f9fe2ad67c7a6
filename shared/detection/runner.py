"""The detection runner: reads, judges, stores alerts, then moves state and checkpoint forward.

A subscription's run (``DetectionRunner.run_subscription``):

1. load its checkpoint and every detector's state (one partition, ``shared.detection.state``);
2. read the activity log since the checkpoint minus an overlap (the log is eventually consistent:
   an entry may show up minutes after its time) and drop the entries the checkpoint already
   counted; on the first run read ``lookback_days`` and judge only the last
   ``first_run_window_minutes`` (the older part is the ``baseline`` detectors learn from);
3. read compute usages for the regions of interest (every region in the entries read and the
   checkpoint's known regions);
4. call each subscription-scope detector (pure); one that fails keeps its old state and is
   recorded, the others go on;
5. store the findings as alerts through the sync (``shared.intake.sync.AlertSync``: same dedupe,
   fingerprint, outbox and respond job as Microsoft's alerts);
6. THEN commit every detector's new state and the new checkpoint in one transaction.

A run that dies before 6 leaves the old checkpoint and states: the next run reads the same
entries again, the detectors (deterministic) find the same episodes, and the sync sees the
alerts unchanged (same fingerprint): nothing is counted twice and nothing is lost. A run that
dies after 6 is done. The partner-scope run (micro-fraud over Partner Center audit records) works
the same way in its own partition.

One failing subscription never stops the others (``run_many``), and each detector's outcome is
recorded per run (``record_detectors``: shown by ``detect --status``, health and the digest).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from shared.detection import state as state_store
from shared.detection.base import (
    PARTNER_SCOPE,
    SUBSCRIPTION_SCOPE,
    ActivityEvent,
    AuditRecord,
    DetectionReader,
    Detector,
    Finding,
    Outcome,
    PartnerInput,
    QuotaReading,
    SubscriptionInput,
    Target,
)
from shared.detection.config import SECTIONS, DetectionConfig
from shared.detection.findings import FindingSource, record_of
from shared.names import ALERTS_TABLE, CHECKPOINTS_TABLE, RESPOND_QUEUE
from shared.storage.tables import TableStore

if TYPE_CHECKING:
    from shared.intake.sync import JobQueue

log = logging.getLogger(__name__)

DETECTOR_PARTITION: Final = "detector"
"""Checkpoints-table partition of each detector's latest outcome (like intake's ``source``)."""
DEFAULT_OVERLAP: Final = timedelta(minutes=30)


@dataclass
class Tally:
    """One detector's counts in a run."""

    subscriptions: int = 0
    """Subjects it judged (subscriptions, or 1 for the partner scope)."""
    events: int = 0
    """Readings it judged (activity-log entries or audit records, after dedupe)."""
    findings: int = 0
    new: int = 0
    updated: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.subscriptions += other.subscriptions
        self.events += other.events
        self.findings += other.findings
        self.new += other.new
        self.updated += other.updated
        self.errors.extend(other.errors[: max(0, 20 - len(self.errors))])

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DetectRun:
    """What one or more subject runs did: per-detector tallies and the subjects that failed."""

    detectors: dict[str, Tally] = field(default_factory=dict)
    subjects: int = 0
    read_events: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    conflicts: int = 0
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not any(t.errors for t in self.detectors.values())

    def tally(self, name: str) -> Tally:
        return self.detectors.setdefault(name, Tally())

    def add(self, other: DetectRun) -> None:
        for name, t in other.detectors.items():
            self.tally(name).add(t)
        self.subjects += other.subjects
        self.read_events += other.read_events
        for subject, error in other.failed.items():
            if len(self.failed) < 200:
                self.failed[subject] = error
        self.conflicts += other.conflicts

    def as_dict(self) -> dict[str, Any]:
        return {"subjects": self.subjects, "read_events": self.read_events, "failed": self.failed,
                "conflicts": self.conflicts, "duration_s": round(self.duration_s, 3),
                "detectors": {k: v.as_dict() for k, v in self.detectors.items()}}


def load_detectors(names: Iterable[str] | None = None) -> tuple[list[Detector], dict[str, str]]:
    """The registered detectors (``shared.detection.detectors``), and those that would not load."""
    from shared.detection import detectors as registry

    loaded: list[Detector] = []
    broken: dict[str, str] = {}
    for name in names or registry.names():
        try:
            loaded.append(registry.load(name))
        except Exception as exc:  # a detector that cannot load is reported, the others run
            broken[name] = f"cannot load: {_describe(exc)}"
    return loaded, broken


class DetectionRunner:
    """Runs detectors over subjects; safe to use from several threads (one subject per call)."""

    def __init__(self, *, store: TableStore, queue: JobQueue, reader: DetectionReader,
                 config: DetectionConfig, detectors: Sequence[Detector] | None = None,
                 broken: Mapping[str, str] | None = None,
                 overlap: timedelta = DEFAULT_OVERLAP, redeliver_after: timedelta = timedelta(minutes=10),
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 stage: Callable[[str, str], None] | None = None) -> None:
        """``stage(name, subject)`` is called at "findings_stored" and "state_committed" (tests stop
        a run there to prove it resumes)."""
        if detectors is None:
            loaded, found_broken = load_detectors()
            detectors, broken = loaded, {**found_broken, **(broken or {})}
        self.store = store
        self.queue = queue
        self.reader = reader
        self.config = config
        self.detectors = list(detectors)
        self.broken = dict(broken or {})
        self.overlap = overlap
        self.redeliver_after = redeliver_after
        self.clock = clock
        self.stage = stage or (lambda name, subject: None)

    def of_scope(self, scope: str) -> list[Detector]:
        return [d for d in self.detectors if d.scope == scope]

    # --- many subjects ------------------------------------------------------------------------

    def run_many(self, targets: Sequence[Target], *, concurrency: int = 4, partner: bool = True) -> DetectRun:
        """Every target (at most ``concurrency`` at once), then the partner scope; one failing
        subject never stops the others."""
        import time

        started = time.perf_counter()
        total = DetectRun()
        if targets:
            with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="detect") as pool:
                pending = set()
                for target in targets:
                    pending.add(pool.submit(self.run_subscription, target))
                    if len(pending) >= concurrency * 4:  # bounded: memory stays flat however many targets
                        done = next(as_completed(pending))
                        pending.discard(done)
                        total.add(done.result())
                for done in as_completed(pending):
                    total.add(done.result())
        if partner:
            total.add(self.run_partner(targets))
        for name, error in self.broken.items():
            total.tally(name).errors.append(error)
        total.duration_s = time.perf_counter() - started
        return total

    # --- one subscription ---------------------------------------------------------------------

    def run_subscription(self, target: Target) -> DetectRun:
        run = DetectRun(subjects=1)
        subject = target.subscription_id.lower()
        try:
            self._subscription(target, run)
        except state_store.StateConflict as exc:
            run.conflicts += 1
            log.warning("%s", exc)
        except Exception as exc:  # this subscription only: recorded, the others go on
            run.failed[subject] = _describe(exc)
            log.error("detection of subscription %s failed (the others go on): %s", subject, run.failed[subject])
        return run

    def _subscription(self, target: Target, run: DetectRun) -> None:
        remember = getattr(self.reader, "remember", None)
        if callable(remember):
            remember([target])
        sub = target.subscription_id.lower()
        stored = state_store.load(self.store, state_store.partition_of(sub))
        checkpoint = stored.checkpoint
        now = self.clock()
        since, judged_from = self._window(checkpoint, now)
        read: list[ActivityEvent] = []
        seen_now: set[str] = set()
        for event in self.reader.activity_events(sub, since=since, until=now):
            if event.event_id in seen_now:
                continue
            seen_now.add(event.event_id)
            read.append(event)
        run.read_events += len(read)
        fresh = [e for e in read if e.event_id not in checkpoint.seen]
        baseline = tuple(sorted((e for e in fresh if judged_from and e.timestamp < judged_from),
                                key=lambda e: (e.timestamp, e.event_id)))
        judged = tuple(sorted((e for e in fresh if not (judged_from and e.timestamp < judged_from)),
                              key=lambda e: (e.timestamp, e.event_id)))
        regions = list(dict.fromkeys([*checkpoint.regions, *sorted({e.location for e in read if e.location})]))
        quotas: list[QuotaReading] = []
        quota_error = ""
        for region in regions:
            try:
                quotas.extend(self.reader.quota_readings(sub, region))
            except Exception as exc:  # the usages of one region: the quota detector sees fewer
                quota_error = quota_error or f"compute usages in {region}: {_describe(exc)}"
        data = SubscriptionInput(target=target, now=now, events=judged, baseline=baseline, quotas=tuple(quotas))
        outcomes = self._judge(self.of_scope(SUBSCRIPTION_SCOPE), data, stored.states, run, len(judged))
        if quota_error:
            for detector in self.of_scope(SUBSCRIPTION_SCOPE):
                if getattr(detector, "name", "") == "quota_jump":
                    run.tally(detector.name).errors.append(f"{sub}: {quota_error}")
        self._store_findings(outcomes, run, customer_name=target.customer_name, subscription=sub)
        self.stage("findings_stored", sub)
        new_checkpoint = state_store.Checkpoint(
            until=now, seen=self._seen(checkpoint, read, now, key=lambda e: (e.event_id, e.timestamp)),
            regions=tuple(regions), runs=checkpoint.runs + 1)
        state_store.commit(self.store, stored, new_checkpoint,
                           {name: dict(outcome.state) for name, outcome in outcomes.items()},
                           extra={"customer_tenant_id": target.customer_tenant_id.lower(), "at": now})
        self.stage("state_committed", sub)

    # --- the partner scope ----------------------------------------------------------------------

    def run_partner(self, targets: Sequence[Target]) -> DetectRun:
        run = DetectRun()
        detectors = self.of_scope(PARTNER_SCOPE)
        if not detectors:
            return run
        run.subjects = 1
        try:
            self._partner(detectors, targets, run)
        except state_store.StateConflict as exc:
            run.conflicts += 1
            log.warning("%s", exc)
        except Exception as exc:
            run.failed["partner"] = _describe(exc)
            log.error("partner-scope detection failed: %s", run.failed["partner"])
        return run

    def _partner(self, detectors: list[Detector], targets: Sequence[Target], run: DetectRun) -> None:
        stored = state_store.load(self.store, state_store.PARTNER_PARTITION)
        checkpoint = stored.checkpoint
        now = self.clock()
        since, judged_from = self._window(checkpoint, now)
        read: dict[str, AuditRecord] = {}
        for record in self.reader.audit_records(since=since, until=now):
            read.setdefault(record.record_id, record)
        run.read_events += len(read)
        fresh = [r for r in read.values() if r.record_id not in checkpoint.seen]
        order = lambda r: (r.operation_date, r.record_id)  # noqa: E731
        baseline = tuple(sorted((r for r in fresh if judged_from and r.operation_date < judged_from), key=order))
        judged = tuple(sorted((r for r in fresh if not (judged_from and r.operation_date < judged_from)), key=order))
        data = PartnerInput(now=now, records=judged, baseline=baseline, targets=tuple(targets))
        outcomes = self._judge(detectors, data, stored.states, run, len(judged))
        names = {t.customer_tenant_id.lower(): t.customer_name for t in targets}
        self._store_findings(outcomes, run, customer_name="", subscription="", names=names)
        self.stage("findings_stored", state_store.PARTNER_PARTITION)
        new_checkpoint = state_store.Checkpoint(
            until=now, seen=self._seen(checkpoint, list(read.values()), now,
                                       key=lambda r: (r.record_id, r.operation_date)),
            runs=checkpoint.runs + 1)
        state_store.commit(self.store, stored, new_checkpoint,
                           {name: dict(outcome.state) for name, outcome in outcomes.items()}, extra={"at": now})
        self.stage("state_committed", state_store.PARTNER_PARTITION)

    # --- spend (the daily billing series) -----------------------------------------------------

    def run_spend(self, refresh: Callable[[], object] | None = None) -> DetectRun:
        """The spend detectors over the stored daily series (``shared.spend``), after ``refresh``
        (the billing export, when due; it returns None when not due). The series changes only with a
        refresh, so a run that did not refresh judges nothing (the same series gives the same findings:
        scanning it every five minutes would only repeat the reads). A failed refresh is recorded and
        the stored series is judged; one failing step never stops the other scopes."""
        from shared.spend.detect import SPEND_DETECTORS, spend_outcomes

        run = DetectRun(subjects=1)
        if refresh is not None:
            try:
                if refresh() is None:
                    return DetectRun()
            except Exception as exc:
                error = f"refreshing the spend series failed (the stored days are judged): {_describe(exc)}"
                log.error("%s", error)
                for name in SPEND_DETECTORS:
                    run.tally(name).errors.append(error)
        try:
            outcomes, names, judged = spend_outcomes(self.store, today=self.clock(), config=self.config)
            for name, outcome in outcomes.items():
                tally = run.tally(name)
                tally.subscriptions += judged
                tally.findings += len(outcome.findings)
            self._store_findings(outcomes, run, customer_name="", subscription="", names=names)
        except Exception as exc:
            run.failed["spend"] = _describe(exc)
            log.error("spend detection failed: %s", run.failed["spend"])
        return run

    # --- shared steps -------------------------------------------------------------------------

    def _window(self, checkpoint: state_store.Checkpoint, now: datetime) -> tuple[datetime, datetime | None]:
        """(read since, judge from): after a checkpoint everything read is judged."""
        general = self.config.general
        if checkpoint.until is None:
            return now - timedelta(days=general.lookback_days), now - timedelta(
                minutes=general.first_run_window_minutes)
        return min(checkpoint.until - self.overlap, now), None

    def _seen(self, checkpoint: state_store.Checkpoint, read: Sequence[Any], now: datetime,
              key: Callable[[Any], tuple[str, datetime]]) -> dict[str, str]:
        """Ids the next run will read again (inside the overlap): kept so they are not counted twice."""
        cutoff = now - self.overlap
        seen = {k: v for k, v in checkpoint.seen.items() if (_time(v) or now) >= cutoff}
        for item in read:
            item_id, at = key(item)
            if at >= cutoff:
                seen[item_id] = at.isoformat()
        return seen

    def _judge(self, detectors: Sequence[Detector], data: SubscriptionInput | PartnerInput,
               states: Mapping[str, Mapping[str, Any]], run: DetectRun, judged: int) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        subject = data.target.subscription_id if isinstance(data, SubscriptionInput) else "partner"
        for detector in detectors:
            tally = run.tally(detector.name)
            try:
                section = self.config.section(detector.name) if detector.name in SECTIONS else None
                outcome = detector.detect(data, dict(states.get(detector.name, {})), section)
            except Exception as exc:  # this detector only: its state stays as it was
                tally.errors.append(f"{subject}: {_describe(exc)}")
                log.error("detector %s failed on %s (the others go on): %s", detector.name, subject, _describe(exc))
                continue
            tally.subscriptions += 1
            tally.events += judged
            tally.findings += len(outcome.findings)
            outcomes[detector.name] = outcome
        return outcomes

    def _store_findings(self, outcomes: Mapping[str, Outcome], run: DetectRun, *, customer_name: str,
                        subscription: str, names: Mapping[str, str] | None = None) -> None:
        """One sync per detector with findings (none: no alerts-table call at all)."""
        from shared.alerts import partition_key, row_key
        from shared.intake.sync import AlertSync, SyncScope

        for name, outcome in outcomes.items():
            if not outcome.findings:
                continue
            records = []
            for finding in (_named(f, name) for f in outcome.findings):
                tenant = (finding.customer_tenant_id or finding.subject_key).lower()
                stored = self.store.get(ALERTS_TABLE, partition_key(tenant), row_key(f"{name}:{finding.alert_id}"),
                                        select=["status", "resolved_reason"])
                records.append(record_of(
                    finding, customer_name=customer_name or (names or {}).get(tenant, ""),
                    status=str(stored.get("status") or "active") if stored else "active",
                    resolved_reason=str(stored.get("resolved_reason") or "") if stored else ""))
            sync = AlertSync(table=self.store.table_client(ALERTS_TABLE), queue=self.queue,
                             respond_queue=RESPOND_QUEUE, clock=self.clock, redeliver_after=self.redeliver_after)
            result = sync.run([FindingSource(name, records)], SyncScope(subscription_id=subscription or None))
            tally = run.tally(name)
            tally.new += result.new
            tally.updated += result.updated
            for error in result.errors:
                tally.errors.append(error)


def _named(finding: Finding, name: str) -> Finding:
    """The finding under the detector's registered name (its alert source)."""
    return finding if finding.detector == name else replace(finding, detector=name)


def _time(value: str) -> datetime | None:
    from shared.formats import parse_time

    return parse_time(value)


def _describe(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:500] if lines else 'no detail'}"


# --- per-detector outcome (health, digest, detect --status) ------------------------------------------


def record_detectors(store: TableStore, run: DetectRun, *, trigger: str) -> None:
    """Each detector's latest outcome, whichever trigger ran it (merged: a run of a few subjects
    updates only its detectors' rows)."""
    import json

    now = datetime.now(UTC)
    for name, tally in run.detectors.items():
        ok = not tally.errors
        entity: dict[str, Any] = {"PartitionKey": DETECTOR_PARTITION, "RowKey": name, "at": now, "ok": ok,
                                  "trigger": trigger, "error": "; ".join(tally.errors)[:2000],
                                  "result": json.dumps(tally.as_dict(), default=str)[:30000]}
        entity["last_ok_at" if ok else "failed_at"] = now
        store.upsert(CHECKPOINTS_TABLE, entity, mode="merge")


def detector_status(store: TableStore) -> list[dict[str, Any]]:
    import json

    return [{"detector": e["RowKey"], "ok": bool(e.get("ok")), "at": e.get("at"), "trigger": e.get("trigger", ""),
             "error": "" if e.get("ok") else e.get("error", ""), "last_ok_at": e.get("last_ok_at"),
             "failed_at": e.get("failed_at"), "result": json.loads(e.get("result") or "{}")}
            for e in store.list_partition(CHECKPOINTS_TABLE, DETECTOR_PARTITION)]
