"""Entry points of the poll timer, the alerts-sync queue and `fraud-responder poll --once`.

All three share one code path (``run_sync``). A token failure (expired or MFA-stale refresh
token, Partner Center 900421, a bad client secret) is recorded as token health and ends that
source's run cleanly: retrying in a tight loop cannot fix it, an operator must re-consent. Any
other failure of one source (403, 5xx after retries, Key Vault, a malformed page) ends only that
source's run: it is recorded on the source's checkpoint (``record_source``, shown by health and
the digest) and the other sources still run.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared import sources as source_registry
from shared.errors import FraudResponderError
from shared.jobs import InvalidJob, SyncJob
from shared.logs import add_context, contextual
from shared.names import ALERTS_TABLE, RESPOND_QUEUE
from shared.settings import Settings, get_settings
from shared.storage.queues import QueueSender
from shared.storage.tables import TableStore

from .checkpoints import record_source, record_sync, record_token_health
from .sync import AlertSource, AlertSync, SyncResult, SyncScope

log = logging.getLogger(__name__)

class SourceSyncFailed(FraudResponderError, RuntimeError):
    """A queued sync's source failed (not a token problem): raised after recording it so that the
    queue retries the job (and poisons it after maxDequeueCount); the timer's poll catches up too."""


@dataclass
class IntakeRuntime:
    """What a sync needs, built once per process (handlers run many times in one worker)."""

    settings: Settings
    store: TableStore
    queue: QueueSender
    _providers: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> IntakeRuntime:
        from shared import factory

        return cls(settings, factory.table_store(settings), factory.queue_sender(settings))

    def source(self, name: str) -> AlertSource:
        """The registered source ``name`` with its clients (``shared.sources``); ValueError when unknown."""
        return source_registry.load(name).fetcher(self.settings, self.store, self._providers)


@functools.lru_cache(maxsize=4)
def runtime_for(settings: Settings) -> IntakeRuntime:
    """One runtime per process and settings (clients and token caches are reused across runs)."""
    return IntakeRuntime.from_settings(settings)


def default_runtime() -> IntakeRuntime:
    return runtime_for(get_settings())


@dataclass
class SyncRun:
    """One sync over one or more sources: a result per source, and token failures by source."""

    results: dict[str, SyncResult] = field(default_factory=dict)
    token_errors: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    held: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)
    """Respond messages sent held, for the caller to answer (``shared.intake.inline``)."""

    @property
    def ok(self) -> bool:
        return not self.token_errors and not self.errors

    def totals(self) -> dict[str, int]:
        keys = ("fetched", "rejected", "unchanged", "new", "updated", "material", "enqueued", "redelivered", "messages",
                "quarantined")
        return {k: sum(getattr(r, k) for r in self.results.values()) for k in keys}

    def as_dict(self) -> dict[str, Any]:
        return {"totals": self.totals(), "sources": {k: v.as_dict() for k, v in self.results.items()},
                "token_errors": self.token_errors, "errors": self.errors}


def redelivery_window() -> timedelta:
    """How long a respond job stays pending before the sync sends it again: one function timeout.

    After that no invocation can still be working on it, so the job was lost (a failed put after the
    commit) or poisoned by crashes alone (the host moves a message whose deliveries all died to the
    poison queue without running it). host.json's functionTimeout (10 minutes), or the app setting
    that overrides it, as the responder's row lease uses.
    """
    from shared.response.jobs import function_timeout_seconds

    return timedelta(seconds=function_timeout_seconds())


@contextual(job="sync")
def run_sync(runtime: IntakeRuntime, scope: SyncScope, *, trigger: str,
             sources: tuple[str, ...] | None = None, hold_respond: bool = False) -> SyncRun:
    """Sync ``sources`` (all configured when None); ``hold_respond``: send the respond messages held, listed
    in ``SyncRun.held`` for the caller to answer (it must answer or release every one); if the run raises,
    it has released them itself."""
    from .inline import hold_seconds

    run = SyncRun()
    sync = AlertSync(table=runtime.store.table_client(ALERTS_TABLE), queue=runtime.queue, respond_queue=RESPOND_QUEUE,
                     redeliver_after=redelivery_window(), hold_respond_seconds=hold_seconds() if hold_respond else 0)
    run.held = sync.held
    try:
        _sync_sources(runtime, sync, run, scope, trigger=trigger, sources=sources)
    except BaseException:  # nobody answers the held messages now: the respond queue gets them at once
        if run.held:
            from .inline import release_held

            release_held(runtime.queue, run.held)
            run.held.clear()
        raise
    log.info("sync (%s, %s) done: %s", trigger, scope.describe(), run.totals())
    return run


def _sync_sources(runtime: IntakeRuntime, sync: AlertSync, run: SyncRun, scope: SyncScope, *, trigger: str,
                  sources: tuple[str, ...] | None) -> None:
    """Each source in turn (one's failure is recorded and the others go on), then the run's record."""
    from shared.auth.errors import TokenHealthError
    from shared.http import PartnerCenterMfaRequired

    for name in sources or runtime.settings.alert_sources:
        principal = source_registry.credential(name)
        error = ""
        sync.last_result = None
        try:
            run.results[name] = sync.run([runtime.source(name)], scope)
        except TokenHealthError as exc:
            error = run.token_errors[name] = exc.operator_message
            record_token_health(runtime.store, principal=principal, ok=False, detail=exc.to_health())
        except PartnerCenterMfaRequired as exc:
            error = (f"Partner Center refused the App+User token without MFA (900421): {exc}. "
                     "Re-consent with an MFA sign-in and store the new refresh token in Key Vault.")
            run.token_errors[name] = error
            record_token_health(runtime.store, principal=principal, ok=False,
                                detail={"kind": "mfa_required", "code": 900421, "message": error})
        except Exception as exc:  # 403, 5xx after retries, Key Vault, a malformed page: this source only
            error = run.errors[name] = _describe(exc)
        if error:
            if sync.last_result is not None:  # what the source sent before it failed is stored
                run.results[name] = sync.last_result
            log.error("sync %s failed (the other sources go on): %s", name, error)
        else:
            record_token_health(runtime.store, principal=principal, ok=True)
        result = run.results.get(name)
        record_source(runtime.store, source=name, trigger=trigger, ok=not error, error=error,
                      result=result.as_dict() if result else None)
    record_sync(runtime.store, trigger=trigger, result=run.as_dict(),
                error="; ".join(f"{k}: {v}" for k, v in {**run.token_errors, **run.errors}.items()))


def _describe(exc: BaseException) -> str:
    """One line for the operator: the client errors already name the service, call and next step."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:1000] if lines else 'no detail'}"


def run_poll(*, past_due: bool = False, runtime: IntakeRuntime | None = None) -> SyncRun:
    if past_due:
        log.warning("poll_alerts is running late (past due): the previous run overran or the host was down")
    return run_sync(runtime or default_runtime(), SyncScope(), trigger="timer")


@contextual(job="sync")
def handle_sync_message(body: bytes, *, dequeue_count: int = 1, runtime: IntakeRuntime | None = None) -> SyncRun | None:
    """An alerts-sync job. A malformed job is logged and dropped (it can never succeed); a
    transient failure raises, so the queue retries it (and poisons it after maxDequeueCount)."""
    try:
        job = SyncJob.from_json(body)
    except InvalidJob as exc:
        log.error("alerts-sync job dropped: %s", exc)
        return None
    add_context(subscription=job.subscription_id)
    # When the job started, against when it was requested: the sync queue's wait, per job, in the log.
    log.info("alerts-sync job started (trigger %s, delivery %s, requested %s, delivery count %d)", job.trigger,
             (job.delivery_id or "-")[:16], job.requested_at or "-", dequeue_count)
    scope = SyncScope(subscription_id=job.subscription_id)
    sources = (job.source,) if job.source else None
    rt = runtime or default_runtime()
    # A webhook says fraud is happening now: its sync answers what it stores (shared.intake.inline).
    inline = job.trigger == "webhook" and rt.settings.respond_inline_max > 0
    run = run_sync(rt, scope, trigger=job.trigger, sources=sources, hold_respond=inline)
    if run.held:
        from .inline import answer_held

        done = answer_held(rt.settings, rt.queue, run.held)
        log.info("sync answered %d alert(s) itself; %d handed to the respond queue, %d to retry there",
                 done.answered, done.released, done.failed)
    if run.errors:
        raise SourceSyncFailed("; ".join(f"{name}: {error}" for name, error in run.errors.items()))
    if job.delivery_id and run.ok:
        from shared.intake.webhook import mark_synced

        mark_synced(rt.store, job.delivery_id)  # a redelivery of that webhook is now a plain duplicate
    return run
