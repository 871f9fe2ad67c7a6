"""Entry points of detection: the timer's fan-out, the alerts-detect queue, and `detect --once`.

The timer (``fan_out``) reads the watch list and sends one ``DetectJob`` per group of
``DETECT_GROUP_SIZE`` subscriptions plus one partner-scope job, so the Functions host spreads
the work over its instances; each job (``handle_detect_message``) judges its subscriptions with
at most ``DETECT_CONCURRENCY`` at once. ``run_once`` (the CLI) does the same in one process.
A job whose subscription failed is not retried by the queue: its checkpoint did not move, so the
next run (one schedule interval later) reads from there again.
"""

from __future__ import annotations

import functools
import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.detection.base import DetectionReader, Target
from shared.detection.runner import DetectionRunner, DetectRun, record_detectors
from shared.detection.watchlist import WatchList
from shared.jobs import DetectJob, DetectTarget, InvalidJob
from shared.logs import contextual
from shared.names import DETECT_QUEUE
from shared.settings import Settings, get_settings

if TYPE_CHECKING:
    from shared.detection.config import DetectionConfig
    from shared.storage.queues import QueueSender
    from shared.storage.tables import TableStore

log = logging.getLogger(__name__)


@dataclass
class DetectionRuntime:
    """What detection needs, built once per process (clients and token caches are reused)."""

    settings: Settings
    store: TableStore
    queue: QueueSender
    _reader: DetectionReader | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_settings(cls, settings: Settings) -> DetectionRuntime:
        from shared import factory

        return cls(settings, factory.table_store(settings), factory.queue_sender(settings))

    def reader(self) -> DetectionReader:
        with self._lock:
            if self._reader is None:
                from shared import factory

                self._reader = factory.detection_reader(self.settings)
            return self._reader

    def config(self) -> DetectionConfig:
        """The policy file's ``[detection]`` table (defaults when it has none), with the partner's
        tenant from PARTNER_TENANT_ID unless the table names one."""
        from shared.response.policy import get_policy

        config: DetectionConfig = get_policy(self.settings.policy_path).detection
        return config.with_partner_tenant(self.settings.partner_tenant_id)

    def watchlist(self) -> WatchList:
        return WatchList(self.store, self.reader,
                         refresh=timedelta(minutes=self.settings.detect_watchlist_refresh_minutes))

    def spend_refresh(self, *, force: bool = False) -> Any:
        """The spend step's refresh (the billing export, when SPEND_REFRESH_HOURS have passed)."""
        from shared.spend.detect import refresh_if_due

        return lambda: refresh_if_due(self.settings, self.store, force=force)

    def runner(self, **kwargs: Any) -> DetectionRunner:
        from shared.intake.jobs import redelivery_window

        return DetectionRunner(store=self.store, queue=self.queue, reader=self.reader(), config=self.config(),
                               overlap=timedelta(minutes=self.settings.detect_overlap_minutes),
                               redeliver_after=redelivery_window(), **kwargs)


@functools.lru_cache(maxsize=4)
def runtime_for(settings: Settings) -> DetectionRuntime:
    return DetectionRuntime.from_settings(settings)


def default_runtime() -> DetectionRuntime:
    return runtime_for(get_settings())


def _as_target(t: DetectTarget) -> Target:
    return Target(customer_tenant_id=t.customer_tenant_id, subscription_id=t.subscription_id,
                  customer_name=t.customer_name, reseller_id=t.reseller_id)


def _as_job_target(t: Target) -> DetectTarget:
    return DetectTarget(t.customer_tenant_id.lower(), t.subscription_id.lower(), t.customer_name, t.reseller_id)


@contextual(job="detect")
def fan_out(runtime: DetectionRuntime | None = None, *, past_due: bool = False) -> int:
    """The timer: one alerts-detect job per group of watched subscriptions, one for the partner
    scope; returns the jobs sent. Does nothing when DETECT_ENABLED is false."""
    rt = runtime or default_runtime()
    if not rt.settings.detect_enabled:
        log.info("detection is off (DETECT_ENABLED=false): no jobs sent")
        return 0
    if past_due:
        log.warning("detect timer is running late (past due): the previous run overran or the host was down")
    targets = rt.watchlist().targets()
    run_id = uuid.uuid4().hex
    now = datetime.now(UTC).isoformat()
    size = rt.settings.detect_group_size
    jobs = [DetectJob(scope="subscriptions", targets=tuple(_as_job_target(t) for t in targets[i : i + size]),
                      run_id=run_id, requested_at=now) for i in range(0, len(targets), size)]
    jobs.append(DetectJob(scope="partner", run_id=run_id, requested_at=now))
    for job in jobs:
        rt.queue.send_json(DETECT_QUEUE, job.to_json())
    log.info("detect run %s: %d subscriptions in %d jobs, plus the partner scope", run_id, len(targets),
             len(jobs) - 1)
    return len(jobs)


@contextual(job="detect")
def handle_detect_message(body: bytes | str, *, runtime: DetectionRuntime | None = None) -> DetectRun | None:
    """One alerts-detect job. A malformed job is logged and dropped; a failing subscription is
    recorded (its checkpoint stays, the next run reads from there), not retried here."""
    try:
        job = DetectJob.from_json(body)
    except InvalidJob as exc:
        log.error("alerts-detect job dropped: %s", exc)
        return None
    rt = runtime or default_runtime()
    runner = rt.runner()
    if job.scope == "partner":
        run = runner.run_partner(rt.watchlist().cached())
        run.add(runner.run_spend(rt.spend_refresh()))
    else:
        run = runner.run_many([_as_target(t) for t in job.targets], concurrency=rt.settings.detect_concurrency,
                              partner=False)
    record_detectors(rt.store, run, trigger="queue")
    log.info("detect job (%s, run %s) done: %s", job.scope, job.run_id, run.as_dict())
    return run


@contextual(job="detect")
def run_once(runtime: DetectionRuntime | None = None, *, refresh: bool = False) -> DetectRun:
    """`detect --once`: every detector over every watched subscription now, in this process."""
    rt = runtime or default_runtime()
    targets = rt.watchlist().targets(force=refresh)
    runner = rt.runner()
    run = runner.run_many(targets, concurrency=rt.settings.detect_concurrency)
    run.add(runner.run_spend(rt.spend_refresh(force=refresh)))
    record_detectors(rt.store, run, trigger="cli")
    return run
