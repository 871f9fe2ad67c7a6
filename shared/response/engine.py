"""The responder: turn one stored alert into actions through the policy, exactly once per target.

Delivery is at-least-once (queue redelivery, the sync's re-send of pending jobs), so the effect is made
exactly-once per action and target by the ledger:

1. the policy decides the actions and their modes (enforce, dry-run, approve);
2. per target the ledger row is claimed (insert-once) in the state the mode gives: ``running``,
   ``dry-run`` (the plan is recorded, nothing is called) or ``awaiting-approval``;
3. a running row is checked first (``verify``: is the target already in the wanted state?) and
   executed only if not, then recorded ``succeeded`` or ``failed``.

A redelivered job finds its rows and repeats nothing. Each invocation holds the rows it runs with
a lease of its own (a unique owner token per run), so two live copies of the same job never both
act: the second one leaves a held row alone and asks for a retry. A crash after the external call
and before the ledger write leaves the row ``running``; once its lease has expired the next
delivery (or an operator's approve, reject or undo) takes it over and ``verify`` sees the effect,
so nothing is called twice. A row whose job never comes back (superseded by a newer alert version,
or poisoned by repeated crashes) is closed by the next version's job once that job has run
everything it plans: verified like a retake, then succeeded or expired (see ``_close_superseded``).
Transient errors (throttling, 5xx,
timeouts, token trouble, storage: ``retryable`` on the error's class, see ``shared.errors``) leave the
row ``running`` with its lease released, let the other
independent actions run, and raise at the end of the job so the queue redelivers it.

Order: the action catalogue's (``shared.response.catalogue``: marking the alert investigating
first, the investigation, containment, resolving, and the reporting action last, with
``ctx.summary`` filled from the ledger so the message says what was done and what waits).

Concurrency (``RESPOND_ACTION_CONCURRENCY``, 1 = none): work that the ledger keeps independent
runs at once. The targets of one action (each its own row: the VMs stop_resources checks and
stops) run side by side; the investigation runs beside the containment after it that does not
read it (``needs_investigation`` false: stopping VMs), and every other action waits for it. Each
external target is verified and acted on under an in-process lock, so two alerts of one customer
answered at once (a batch message, or the host's own parallel messages) never both act on one VM
or subscription: the second finds it done and records ``found_state``.

Operators act on rows with ``approve``, ``reject`` and ``undo`` (``fraud-responder actions``),
each recorded with the operator's name.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from shared.alerts import Alert, from_entity
from shared.errors import FraudResponderError, is_retryable
from shared.formats import one_line
from shared.intake import sync
from shared.locks import StripedLocks
from shared.logs import add_context, contextual
from shared.names import ALERTS_TABLE
from shared.response import catalogue
from shared.response.actions.base import Action, ActionContext, ActionFailed, Clients, NotReversible, Outcome, Target
from shared.response.contacts import customer_tags
from shared.response.ledger import (
    AWAITING_APPROVAL,
    DRY_RUN,
    EXPIRED,
    FAILED,
    PLANNED,
    REJECTED,
    RUNNING,
    SUCCEEDED,
    UNDO_FAILED,
    UNDOING,
    UNDONE,
    Ledger,
    LedgerConflict,
    LedgerEntry,
    NewRow,
    now_utc,
)
from shared.response.policy import Decision, PlannedAction, get_policy
from shared.response.registry import get_action
from shared.settings import Settings
from shared.storage.tables import Entity, TableStore

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS: Final = 600.0
"""How long a running row is held for its worker: host.json functionTimeout (10 min) by default."""

PLAN_TARGET: Final = "plan"
"""Target kind of the row that records a failure to plan an action at all (or that it is not built)."""

APPROVAL_TIMEOUT: Final = "approval-timeout"
"""``expired_by`` of a row that waited longer than APPROVAL_EXPIRY_HOURS: unlike a row expired by the
alert's resolution, an operator may still approve (or reject) it; it just stops rotting in the list."""

_MODE_STATE: Final = {"enforce": RUNNING, "dry-run": DRY_RUN, "approve": AWAITING_APPROVAL}
_TARGET_LOCKS: Final = StripedLocks(256)
"""One held while a target is verified and acted on (see _target_lock)."""


def _target_lock(action: str, target: Target) -> threading.Lock:
    """The lock of ``action`` on ``target``, whichever alert's row runs it (ids compared case-insensitively)."""
    return _TARGET_LOCKS.for_key(action, target.kind, target.id.lower())


_ENDED_RUNS: OrderedDict[str, None] = OrderedDict()
_ENDED_LOCK = threading.Lock()
MAX_ENDED_RUNS: Final = 10_000


@contextmanager
def _run_of_this_process(owner: str) -> Iterator[None]:
    """Remember that the job run ``owner`` (a lease owner) has ended, once it returns or raises an Exception.

    A row it leased and could not release (storage failed at its last write) is then taken over by this
    process at once instead of after the lease (a function timeout): a run that has ended does nothing
    more. Not on a BaseException (the worker is going down) and not in other processes, which cannot
    know: they wait for the lease as before.
    """
    try:
        yield
    except Exception:
        _remember_ended(owner)
        raise
    _remember_ended(owner)


def _remember_ended(owner: str) -> None:
    with _ENDED_LOCK:
        _ENDED_RUNS[owner] = None
        while len(_ENDED_RUNS) > MAX_ENDED_RUNS:
            _ENDED_RUNS.popitem(last=False)


def _ended_here(owner: str) -> bool:
    with _ENDED_LOCK:
        return bool(owner) and owner in _ENDED_RUNS


def _reads_investigation(spec: catalogue.ActionSpec | None) -> bool:
    """Whether an action's context needs the stored investigation: those acting on it and the report (an
    action the catalogue does not know gets it too). The investigating action reads the row itself."""
    return spec is None or spec.needs_investigation or spec.reports


def _beside_investigation(action: str) -> bool:
    """May run while the investigation runs: containment that does not read it."""
    spec = catalogue.get(action)
    return (spec is not None and spec.containment and not spec.needs_investigation
            and not spec.provides_investigation and not spec.reports)
NOT_FRAUD: Final = ("legitimate", "ignore")


def run_order(planned: PlannedAction) -> int:
    """Position of an action in a job, from the catalogue (status first, ..., the report last)."""
    spec = catalogue.get(planned.action)
    return spec.run_order(planned.params) if spec is not None else 65


def _is_containment(action: str) -> bool:
    """Containment must not run once its alert is resolved as legitimate or ignore."""
    spec = catalogue.get(action)
    return spec is not None and spec.containment


def _entry_context(entry: LedgerEntry) -> None:
    """Log lines of an operator's decision name the alert, customer and action of the row."""
    add_context(alert_id=entry.alert_id, customer=entry.customer_tenant_id, subscription=entry.subscription_id,
                action=entry.action)


class RetryLater(FraudResponderError):
    """Some actions met transient errors: the job must be delivered again (the queue does it)."""

    http_status = 503
    error_code = "unavailable"
    retryable = True

    def __init__(self, message: str, *, held_until: datetime | None = None,
                 result: RespondResult | None = None) -> None:
        super().__init__(message)
        self.held_until = held_until
        """Some rows are held by another invocation's lease until then (None: only transient errors)."""
        self.result = result


class OperatorError(FraudResponderError):
    """An approve / reject / undo cannot be done; the message says why and what to do instead."""

    http_status = 409
    error_code = "conflict"


class ActionNotFound(OperatorError):
    """No ledger row has that action id."""

    http_status = 404
    error_code = "not_found"


class _Deferred(Exception):
    """Internal: a target's attempt ended with a retryable error (the row is still running)."""

    def __init__(self, entry: LedgerEntry, error: BaseException) -> None:
        super().__init__(str(error))
        self.entry = entry
        self.error = error


@dataclass
class RespondResult:
    """What one respond job did: the rows it touched (in order) and what is left for a retry."""

    alert_key: str
    version: int
    handled_before: bool = False
    """The alert row no longer waits for this job's version (handled, poisoned or superseded): nothing was done."""
    missing_alert: bool = False
    rule: str | None = None
    rows: list[LedgerEntry] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)

    def states(self) -> dict[str, str]:
        """``"action target-id" -> state`` for every row touched (handy in logs and tests)."""
        return {f"{r.action} {r.target.id}": r.state for r in self.rows}

    def as_dict(self) -> dict[str, Any]:
        return {"alert": self.alert_key, "version": self.version, "handled_before": self.handled_before,
                "missing_alert": self.missing_alert, "rule": self.rule,
                "rows": [r.as_json() for r in self.rows], "deferred": self.deferred}


@dataclass
class _Job:
    """State of one respond job while it runs."""

    alert: Alert
    partition: str
    row: str
    version: int
    dequeue_count: int
    decision: Decision
    result: RespondResult
    load_investigation: Callable[[], dict[str, Any] | None] = lambda: None
    """Reads the stored investigation: called once, by the first action that reads it (``investigation``)."""
    investigation_read: bool = False
    known_investigation: dict[str, Any] | None = None
    """The investigation as last read or written (meaningful once ``investigation_read``)."""
    deferred_actions: set[str] = field(default_factory=set)
    held_until: datetime | None = None
    """The latest lease of another invocation that kept this run off a row."""
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    actor_override: str = ""
    """Who the rows are recorded as when not the policy's rule (an operator whose verdict planned them)."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    """Guards the fields above when actions or targets of this job run at once."""

    @property
    def owner(self) -> str:
        """This invocation's lease owner: unique per run, so another copy of the job never passes for it."""
        return f"job:{self.alert.key}#v{self.version}:{self.run_id}"

    @property
    def actor(self) -> str:
        if self.actor_override:
            return self.actor_override
        return f"policy:{self.decision.rule}" if self.decision.rule else "policy:fallback"

    def investigation(self) -> dict[str, Any] | None:
        """The stored investigation, read when first wanted: most jobs run the investigation first, and its
        own check reads the row, so reading it at the start as well would be a round trip spent twice."""
        with self.lock:
            if not self.investigation_read:
                self.known_investigation, self.investigation_read = self.load_investigation(), True
            return self.known_investigation

    def set_investigation(self, document: dict[str, Any] | None) -> None:
        with self.lock:
            self.known_investigation, self.investigation_read = document, True

    def defer(self, action: str, why: str) -> None:
        with self.lock:
            self.deferred_actions.add(action)
            self.result.deferred.append(f"{action}: {one_line(why, 300)}")

    def held(self, until: datetime | None) -> None:
        """Another invocation's lease kept this run off a row until ``until``: keep the latest."""
        with self.lock:
            if until is not None and (self.held_until is None or until > self.held_until):
                self.held_until = until

    def add_rows(self, rows: Sequence[LedgerEntry]) -> None:
        with self.lock:
            self.result.rows.extend(rows)


class Responder:
    """Runs respond jobs and operators' decisions for one deployment (settings + store).

    ``actions`` overrides the registry per action name (tests wrap real actions with it);
    ``clock`` and ``lease_seconds`` control how long a running row is held for its worker.
    """

    def __init__(self, settings: Settings, store: TableStore, clients: Clients | None = None, *,
                 actions: Mapping[str, Action] | None = None, clock: Callable[[], datetime] = now_utc,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.settings = settings
        self.store = store
        self.clients = clients or Clients(settings, store)
        self.ledger = Ledger(store, clock=clock)
        self._actions = dict(actions or {})
        self._clock = clock
        self._lease_seconds = lease_seconds

    def action(self, name: str) -> Action:
        """The implementation of ``name`` (ActionNotBuilt when its module is missing)."""
        return self._actions.get(name) or get_action(name)

    # --- the respond job ---------------------------------------------------------------------------

    @contextual(job="respond")
    def respond(self, partition: str, row: str, version: int, *, job: Mapping[str, Any],
                dequeue_count: int = 1) -> RespondResult:
        """Apply the policy to the stored alert ``(partition, row)`` for the job of ``version``.

        Raises RetryLater when some actions met transient errors (after every other action ran);
        the alert row's job state (``shared.intake.sync``) is marked handled only when nothing is
        left to retry.
        """
        alert_key = str(job.get("alert_key", row))
        add_context(alert_id=alert_key.partition(":")[2] or alert_key, customer=partition)
        result = RespondResult(alert_key=alert_key, version=version)
        entity = self.store.get(ALERTS_TABLE, partition, row)
        if entity is None:
            log.error("respond %s v%d: the alert row %s/%s does not exist; job dropped", alert_key, version,
                      partition, row)
            result.missing_alert = True
            return result
        if not sync.job_is_current(entity, version):
            log.info("respond %s v%d: already handled (or superseded by a newer version); nothing to do",
                     alert_key, version)
            result.handled_before = True
            return result
        alert = from_entity(entity)
        add_context(alert_id=alert.id, customer=alert.customer_tenant_id, subscription=alert.subscription_id)
        queued = entity.get("respond_queued_at")
        # How long the version waited for its answer to start (the respond queue's wait, per alert).
        log.info("respond %s v%d started (delivery count %d, version stored %s ago)", alert.key, version,
                 dequeue_count, self._clock() - queued if isinstance(queued, datetime) else "?")
        decision = get_policy(self.settings.policy_path).evaluate(
            alert, tags=customer_tags(self.store, alert.customer_tenant_id),
            allow_automatic_cancellation=self.settings.allow_automatic_cancellation)
        result.alert_key, result.rule = alert.key, decision.rule
        if alert.status == "resolved" and alert.resolved_reason in NOT_FRAUD:
            # Resolved as not fraud at the source (by someone else, or Microsoft): its containment must not run.
            self.expire_pending(alert.key, f"{alert.source} (at the source)",
                                f"the alert was resolved as {alert.resolved_reason} at the source")
        run = _Job(alert=alert, partition=partition, row=row, version=version, dequeue_count=dequeue_count,
                   decision=decision, result=result, load_investigation=lambda: self._investigation(alert))
        with _run_of_this_process(run.owner):
            ordered = sorted(decision.actions, key=run_order)
            self._run_in_order(run, [planned for planned in ordered if not catalogue.is_reporting(planned.action)])
            # Resolved as fraud by this job's rule (update_status): the verdict's plan for the whole customer, before
            # the report so the message lists what waits for approval. An alert found resolved at the source (an old
            # case closed in the portal) plans none: an operator's `alerts resolve ID --reason fraud` does that.
            resolving = any(catalogue.spec(p.action).resolves and p.params.get("status") == "resolved"
                            for p in ordered)
            judged = self._judged_alert(partition, row) if resolving else None
            if judged is not None:
                self._run_verdict(run, judged, judged.resolved_reason)
            for planned in ordered:
                if catalogue.is_reporting(planned.action):
                    self._run_action(run, planned, summary=self.summary(alert, decision, run.result.deferred))
            if not result.deferred:
                self._close_superseded(run)
            if result.deferred:
                log.warning("respond %s v%d: will retry: %s", alert.key, version, "; ".join(result.deferred))
                raise RetryLater(f"respond {alert.key} v{version}: {len(result.deferred)} action(s) left for a retry: "
                                 + "; ".join(result.deferred), held_until=run.held_until, result=result)
            self.mark_job(partition, row, version, sync.HANDLED, read=entity)
            log.info("respond %s v%d done (rule %s): %s", alert.key, version, decision.rule, result.states())
            return result

    # --- verdicts -----------------------------------------------------------------------------------

    @staticmethod
    def _as_stored(entity: Mapping[str, Any]) -> Alert:
        """The alert with the status its row shows now: an operator's or an action's resolution is written to the
        row's columns, while ``from_entity`` re-reads the source's payload as last synced."""
        from dataclasses import replace

        alert = from_entity(entity)
        if not entity.get("status"):
            return alert
        return replace(alert, status=str(entity["status"]), resolved_reason=str(entity.get("resolved_reason") or ""),
                       resolved_by=str(entity.get("resolved_by") or alert.resolved_by),
                       resolved_at=entity.get("resolved_at") or alert.resolved_at)

    def _judged_alert(self, partition: str, row: str) -> Alert | None:
        """The stored alert when it is resolved with a reason the policy has a verdict for (not a test alert)."""
        from shared.response.policy import VERDICTS

        entity = self.store.get(ALERTS_TABLE, partition, row)
        if entity is None:
            return None
        alert = self._as_stored(entity)
        if alert.is_test or alert.status != "resolved" or alert.resolved_reason not in VERDICTS:
            return None
        return alert

    def _run_verdict(self, run: _Job, alert: Alert, verdict: str, *, actor: str = "", why: str = "") -> None:
        """Plan (and, per mode, run) the policy's ``[verdict.<verdict>]`` actions for ``alert``'s customer.

        Each target is claimed in the ledger like any action's (insert-once), so resolving again, or the
        next job of the alert, plans nothing twice. The rows' rule is ``verdict.<name>``.
        """
        policy = get_policy(self.settings.policy_path)
        found = policy.verdict(verdict)
        if found is None or not found.actions:
            return
        planned = found.planned(self.settings.allow_automatic_cancellation)
        needing = [p.action for p in planned if catalogue.spec(p.action).needs_investigation]
        if needing and run.investigation() is None:
            # Acting on what the investigation found needs one: run it first (it only reads).
            provider = next((s for s in catalogue.specs() if s.provides_investigation), None)
            if provider is not None and all(p.action != provider.name for p in planned):
                planned = (PlannedAction(provider.name, "enforce", provider.defaults(),
                                         f"verdict {verdict}: {', '.join(needing)} acts on the investigation",
                                         "enforce"), *planned)
        if why:
            planned = tuple(PlannedAction(p.action, p.mode, p.params, f"{p.reason} ({why})", p.requested_mode)
                            for p in planned)
        decision = Decision(alert_key=alert.key, rule=f"verdict.{verdict}", rule_description=found.description,
                            fallback=False, actions=planned, dropped=(), explanation=(), policy_path=policy.path,
                            policy_sha256=policy.sha256)
        sub = _Job(alert=alert, partition=run.partition, row=run.row, version=run.version,
                   dequeue_count=run.dequeue_count, decision=decision, result=run.result,
                   load_investigation=run.investigation, run_id=run.run_id, actor_override=actor)
        for action in sorted(planned, key=run_order):
            if not catalogue.is_reporting(action.action):
                self._run_action(sub, action)
        run.deferred_actions |= sub.deferred_actions
        if sub.held_until is not None and (run.held_until is None or sub.held_until > run.held_until):
            run.held_until = sub.held_until
        if sub.investigation_read:
            run.set_investigation(sub.known_investigation)

    @contextual(job="verdict")
    def plan_verdict(self, partition: str, row: str, verdict: str, *, operator: str) -> RespondResult:
        """An operator resolved the alert ``(partition, row)`` with ``verdict``: plan the policy's verdict now.

        Returns the rows touched; ``deferred`` lists actions a transient error kept from being planned
        (resolving again plans them, and nothing twice).
        """
        entity = self.store.get(ALERTS_TABLE, partition, row)
        alert_key = str(entity.get("alert_key", row)) if entity is not None else row
        result = RespondResult(alert_key=alert_key, version=int((entity or {}).get("version", 0) or 0),
                               rule=f"verdict.{verdict}")
        if entity is None:
            result.missing_alert = True
            return result
        alert = self._as_stored(entity)
        add_context(alert_id=alert.id, customer=alert.customer_tenant_id, subscription=alert.subscription_id)
        if alert.is_test:
            return result
        empty = Decision(alert_key=alert.key, rule=f"verdict.{verdict}", rule_description="", fallback=False,
                         actions=(), dropped=(), explanation=(), policy_path="", policy_sha256="")
        run = _Job(alert=alert, partition=partition, row=row, version=result.version, dequeue_count=1,
                   decision=empty, result=result, load_investigation=lambda: self._investigation(alert))
        self._run_verdict(run, alert, verdict, actor=f"operator:{operator}",
                          why=f"resolved as {verdict} by operator {operator}")
        return result

    def _run_in_order(self, run: _Job, actions: list[PlannedAction]) -> None:
        """Run ``actions`` in order; the investigation beside the containment right after it that does not
        read it (``_beside_investigation``). Rows are kept in plan order whatever finished first."""
        background: Future[None] | None = None
        pool: ThreadPoolExecutor | None = None
        try:
            for index, planned in enumerate(actions):
                if background is not None and not _beside_investigation(planned.action):
                    background.result()
                    background = None
                spec = catalogue.get(planned.action)
                overlap = (self.settings.respond_action_concurrency > 1 and background is None
                           and spec is not None and spec.provides_investigation
                           and index + 1 < len(actions) and _beside_investigation(actions[index + 1].action))
                if overlap:
                    pool = pool or ThreadPoolExecutor(max_workers=1, thread_name_prefix="respond-investigation")
                    background = pool.submit(contextvars.copy_context().run, self._run_action, run, planned)
                    continue
                self._run_action(run, planned)
            if background is not None:
                background.result()
        finally:
            if pool is not None:
                pool.shutdown(wait=True)  # never leave the investigation running behind the job
        position = {planned.action: i for i, planned in enumerate(actions)}
        run.result.rows.sort(key=lambda entry: position.get(entry.action, len(actions)))

    def _close_superseded(self, run: _Job) -> None:
        """Close rows an older version of the alert left running and this version's plan did not reach.

        Their job is gone (superseded, or poisoned by crashes), so nothing else would ever take them
        over. Called only once this run has no deferred work, so every row it plans is in its result.
        A row whose worker may still live (lease not expired) defers this job until the lease ends,
        like a held row. One that called is verified: its effect found is recorded succeeded;
        otherwise the row is expired (a later version that plans the same target acts afresh).
        """
        if run.version <= 1:  # the alert's first version (every new alert): no older version left anything
            return
        now, mine = self._clock(), {entry.row for entry in run.result.rows}
        for stale in self.ledger.for_alert(run.alert.key):
            if stale.state not in (RUNNING, PLANNED) or stale.version >= run.version or stale.row in mine:
                continue
            if not (stale.lease_free(now) or _ended_here(stale.lease_owner)):
                if stale.lease_until is not None and (run.held_until is None or stale.lease_until > run.held_until):
                    run.held_until = stale.lease_until
                run.defer(stale.action, f"version {stale.version}'s row {stale.action_id} is held by "
                                        f"{stale.lease_owner or 'another worker'} until {stale.lease_until}")
                continue
            try:
                entry = self.ledger.transition(stale, self.ledger.lease(run.owner, self._lease_seconds))
                took_effect = False
                if entry.called_at is not None:
                    ctx = self._context(run.alert, {**entry.params, "_version": entry.version}, run.actor,
                                        investigation=run.investigation())
                    took_effect = self.action(entry.action).verify(ctx, entry.target)
                why = (f"superseded by version {run.version}, which answered the alert; this version's attempt was "
                       "interrupted (its worker died)")
                changes: dict[str, Any] = (
                    {"state": SUCCEEDED, "already_done": True, "error": "",
                     "summary": f"{entry.action}: {entry.target.display or entry.target.id} is in the wanted state "
                                f"(an interrupted attempt did it; found when version {run.version} closed it)"}
                    if took_effect else
                    {"state": EXPIRED, "expired_by": run.actor, "expired_reason": why})
                self.ledger.transition(entry, {**changes, **self.ledger.released()})
                log.warning("respond %s v%d: closed %s row %s of version %d left running: %s", run.alert.key,
                            run.version, entry.action, entry.action_id, entry.version,
                            "its effect is there" if took_effect else "expired")
            except Exception as exc:  # left for the next version's job (or an operator); never fails this one
                log.warning("respond %s v%d: could not close %s row %s of version %d: %s", run.alert.key,
                            run.version, stale.action, stale.action_id, stale.version, one_line(str(exc), 300))

    def mark_job(self, partition: str, row: str, version: int, state: str, *, read: Entity | None = None) -> bool:
        """Record on the alert row that the job of ``version`` is ``state`` (handled or poisoned).

        ``read`` is the row as the job read it, tried first (most jobs leave it alone). Actions may have
        changed the row meanwhile (writing the status back changes it), so this re-reads it on an ETag
        conflict; False when the row moved on to a newer version.
        """
        table = self.store.table_client(ALERTS_TABLE)
        if read is not None and sync.mark_respond_state(table, read, version, state):
            return True
        for _attempt in range(5):
            entity = self.store.get(ALERTS_TABLE, partition, row)
            if entity is None or not sync.job_is_current(entity, version):
                return False
            if sync.mark_respond_state(table, entity, version, state):
                return True
        raise LedgerConflict(f"the alert row {partition}/{row} kept changing while its job v{version} was being "
                             f"marked {state}; the job is retried")

    def _context(self, alert: Alert, params: Mapping[str, Any], actor: str, *, investigation: dict[str, Any] | None,
                 test: bool = False, summary: dict[str, Any] | None = None) -> ActionContext:
        """``params`` are the policy's plus ``_version``, the alert version being answered (the report uses it)."""
        return ActionContext(settings=self.settings, alert=alert, params=dict(params), clients=self.clients,
                             actor=actor, investigation=investigation, test=test, summary=summary or {})

    @contextual()
    def _run_action(self, run: _Job, planned: PlannedAction, *, summary: dict[str, Any] | None = None) -> None:
        add_context(action=planned.action)
        spec = catalogue.get(planned.action)
        ctx = self._context(run.alert, {**planned.params, "_version": run.version}, run.actor,
                            investigation=run.investigation() if _reads_investigation(spec) else None,
                            test=planned.test, summary=summary)
        investigating = {s.name for s in catalogue.specs() if s.provides_investigation}
        if spec is not None and spec.needs_investigation and investigating & run.deferred_actions:
            run.defer(planned.action, "waits for the investigation, which is being retried")
            return
        try:
            action = self.action(planned.action)
            targets = action.plan(ctx)
        except ActionFailed as exc:
            self._record_plan_failure(run, planned, exc)
            return
        except FraudResponderError as exc:
            if not exc.retryable:
                raise
            run.defer(planned.action, f"planning failed transiently: {exc}")
            return
        rows: list[LedgerEntry] = []
        for target, outcome in zip(targets, self._each_target(run, planned, action, ctx, targets), strict=True):
            if isinstance(outcome, _Deferred):
                rows.append(outcome.entry)
                run.defer(planned.action, f"{target.kind} {target.display or target.id}: {outcome.error}")
            elif outcome is not None:
                rows.append(outcome)
        run.add_rows(rows)
        if spec is not None and spec.provides_investigation:
            # The document it wrote (execute sets it) or found (verify does), else the stored one, read when next
            # wanted (it failed, or did not run).
            if ctx.investigation is not None:
                run.set_investigation(ctx.investigation)
            else:
                with run.lock:
                    run.investigation_read = False

    def _each_target(self, run: _Job, planned: PlannedAction, action: Action, ctx: ActionContext,
                     targets: list[Target]) -> list[LedgerEntry | _Deferred | None]:
        """Run every target of one action (each its own ledger row), up to RESPOND_ACTION_CONCURRENCY at once.

        Results are in target order. Any other error is raised once every target has finished.
        """
        def one(target: Target) -> LedgerEntry | _Deferred | None:
            try:
                return self._run_target(run, planned, action, ctx, target)
            except _Deferred as deferred:
                return deferred

        workers = min(self.settings.respond_action_concurrency, len(targets))
        if workers <= 1:
            return [one(target) for target in targets]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="respond-targets") as pool:
            futures = [pool.submit(contextvars.copy_context().run, one, target) for target in targets]
            return [future.result() for future in futures]

    def _new_row(self, run: _Job, planned: PlannedAction, target: Target, state: str) -> NewRow:
        lease = self.ledger.lease(run.owner, self._lease_seconds) if state == RUNNING else {}
        return NewRow(alert=run.alert, alert_partition=run.partition, alert_row=run.row, action=planned.action,
                      target=target, mode=planned.mode, state=state, actor=run.actor, rule=run.decision.rule or "",
                      reason=planned.reason, version=run.version, params=planned.params,
                      lease_owner=lease.get("lease_owner", ""), lease_until=lease.get("lease_until"))

    def _record_plan_failure(self, run: _Job, planned: PlannedAction, exc: ActionFailed) -> None:
        target = Target(PLAN_TARGET, planned.action, display=f"{planned.action} (planning)")
        created, entry = self.ledger.claim(self._new_row(run, planned, target, FAILED))
        if created or entry.state != FAILED or entry.error != one_line(str(exc)):
            entry = self.ledger.transition(entry, {"state": FAILED, "error": str(exc), "version": run.version})
        log.error("respond %s: %s could not be planned: %s", run.alert.key, planned.action, exc)
        run.result.rows.append(entry)

    def _run_target(self, run: _Job, planned: PlannedAction, action: Action, ctx: ActionContext,
                    target: Target) -> LedgerEntry | None:
        state = _MODE_STATE[planned.mode]
        created, entry = self.ledger.claim(self._new_row(run, planned, target, state))
        if not created:
            taken = self._take_over(run, planned, entry)
            if taken is None:
                return entry  # nothing to do: done, waiting, refused, or someone else's
            entry = taken
        if entry.state != RUNNING:
            return entry
        return self._execute(action, ctx, entry)

    def _take_over(self, run: _Job, planned: PlannedAction, entry: LedgerEntry) -> LedgerEntry | None:
        """The row was claimed before: the entry to run now, or None to leave it as it is."""
        if entry.state in (RUNNING, PLANNED):
            # Only an expired lease is taken over: a redelivery cannot tell a dead holder from a live copy
            # of the same job, so the holder's lease (the function timeout) is what says it is gone; or the
            # holder was a run of this process that has ended (its last write failed).
            if not (entry.lease_free(self._clock()) or _ended_here(entry.lease_owner)):
                run.held(entry.lease_until)
                raise _Deferred(entry, RetryLater(f"held by {entry.lease_owner or 'another worker'} until "
                                                  f"{entry.lease_until}"))
            try:
                return self.ledger.transition(entry, {"state": RUNNING, "attempts": entry.attempts + 1,
                                                      **self.ledger.lease(run.owner, self._lease_seconds)})
            except LedgerConflict as exc:
                raise _Deferred(entry, exc) from None
        fresh = (entry.state == DRY_RUN and planned.mode != "dry-run") or entry.state == EXPIRED
        if fresh and run.version > entry.version:
            # The policy moved on from dry-run, or an alert resolved as not fraud came back, and the alert
            # changed since: act on (or ask approval for) this version afresh.
            state = _MODE_STATE[planned.mode]
            changes: dict[str, Any] = {"state": state, "mode": planned.mode, "version": run.version,
                                       "actor": run.actor, "rule": run.decision.rule or "",
                                       "reason": one_line(planned.reason, 1000), "params": dict(planned.params),
                                       "approved_by": "", "expired_by": "", "expired_reason": "",
                                       "found_state": "", "error": ""}
            if state == RUNNING:
                changes.update(attempts=entry.attempts + 1, **self.ledger.lease(run.owner, self._lease_seconds))
            return self.ledger.transition(entry, changes)
        return None

    def _execute(self, action: Action, ctx: ActionContext, entry: LedgerEntry) -> LedgerEntry:
        """Verify, then execute if needed, and record the outcome on the running row ``entry``.

        Held under the target's in-process lock: another alert's row for the same action and target
        waits, then its verify finds the effect. Raises _Deferred (row still running, lease
        released) for retryable errors.
        """
        with _target_lock(entry.action, entry.target):
            return self._execute_locked(action, ctx, entry)

    def _execute_locked(self, action: Action, ctx: ActionContext, entry: LedgerEntry) -> LedgerEntry:
        from shared.http import MicrosoftApiError

        found = ""
        try:
            if action.verify(ctx, entry.target):
                if entry.called_at is None:  # nobody here ever called: the state was someone else's doing
                    found = "already in the wanted state when the responder looked; nothing done"
                    outcome = Outcome(summary=f"{entry.action}: {entry.target.display or entry.target.id} was "
                                              f"{found}", already_done=True)
                else:  # an earlier attempt called, then crashed before recording: its effect, found by looking
                    outcome = Outcome(summary=f"{entry.action}: {entry.target.display or entry.target.id} is in the "
                                              "wanted state (an interrupted earlier attempt did it); nothing was "
                                              "called again", already_done=True)
            else:
                # Conditional on the ETag: a worker that lost the row (lease expired and taken over) stops here,
                # before the external call. One that may run twice needs no mark (a storage round trip).
                spec = catalogue.get(entry.action)
                if spec is None or not spec.repeatable:
                    entry = self.ledger.transition(entry, {"called_at": self._clock()})
                outcome = action.execute(ctx, entry.target)
                if outcome.already_done:  # the action found the target so between verify and its own read
                    found = one_line(outcome.summary, 300)
        except LedgerConflict as exc:  # someone else holds the row now: leave it to them
            raise _Deferred(entry, exc) from None
        except ActionFailed as exc:
            log.error("%s on %s %s failed: %s", entry.action, entry.target.kind, entry.target.id, exc)
            return self.ledger.transition(entry, {"state": FAILED, "error": str(exc), **self.ledger.released()})
        except Exception as exc:
            if is_retryable(exc):
                log.warning("%s on %s %s: transient error, left for a retry: %s", entry.action, entry.target.kind,
                            entry.target.id, exc)
                kept = self.ledger.transition(entry, {"error": f"retrying: {exc}", **self.ledger.released()})
                raise _Deferred(kept, exc) from None
            if isinstance(exc, MicrosoftApiError):  # refused requests the action did not translate: permanent
                return self.ledger.transition(entry, {"state": FAILED, "error": str(exc), **self.ledger.released()})
            # a defect in the action: recorded for operators, never retried blindly
            log.exception("%s on %s %s raised an unexpected error", entry.action, entry.target.kind, entry.target.id)
            return self.ledger.transition(entry, {"state": FAILED,
                                                  "error": f"unexpected {type(exc).__name__}: {exc}",
                                                  **self.ledger.released()})
        try:
            return self.ledger.transition(entry, {
                "state": SUCCEEDED, "summary": one_line(outcome.summary, 1000), "data": outcome.data,
                "already_done": outcome.already_done, "found_state": found, "error": "", **self.ledger.released()})
        except LedgerConflict as exc:  # taken over meanwhile: the new holder's verify sees the effect
            raise _Deferred(entry, exc) from None

    # --- investigation and summary -----------------------------------------------------------------

    def _investigation(self, alert: Alert) -> dict[str, Any] | None:
        """The stored investigation of ``alert`` (None before one ran)."""
        from shared.response.investigation import load_investigation

        return load_investigation(self.store, alert)

    def summary(self, alert: Alert, decision: Decision | None = None, deferred: list[str] | None = None,
                ) -> dict[str, Any]:
        """What the report tells people: this alert's ledger rows grouped by outcome (its own rows excluded).

        Shape: ``{"rule", "rule_description", "fallback", "dropped", "deferred", "done", "dry_run",
        "pending" (awaiting approval), "failed", "retrying", "rejected", "undone"}``; each row is
        ``{"id", "action", "state", "mode", "target" (display text), "target_kind", "target_id", "summary",
        "error", "actor"}``.
        """
        groups: dict[str, list[dict[str, Any]]] = {name: [] for name in (
            "done", "dry_run", "pending", "failed", "retrying", "rejected", "undone")}
        where = {SUCCEEDED: "done", DRY_RUN: "dry_run", AWAITING_APPROVAL: "pending", FAILED: "failed",
                 RUNNING: "retrying", PLANNED: "retrying", REJECTED: "rejected", UNDONE: "undone",
                 UNDOING: "done", UNDO_FAILED: "done"}
        for entry in self.ledger.for_alert(alert.key):
            if catalogue.is_reporting(entry.action) or entry.state not in where:
                continue
            groups[where[entry.state]].append({
                "id": entry.action_id, "action": entry.action, "state": entry.state, "mode": entry.mode,
                "target": entry.target.display or entry.target.id, "target_kind": entry.target.kind,
                "target_id": entry.target.id,
                "summary": entry.summary, "error": entry.error, "actor": entry.actor})
        doc: dict[str, Any] = {"rule": decision.rule if decision else None,
                               "rule_description": decision.rule_description if decision else "",
                               "fallback": decision.fallback if decision else False,
                               "dropped": [d.as_dict() for d in decision.dropped] if decision else [],
                               "deferred": list(deferred or [])}
        doc.update(groups)
        return doc

    # --- operators ---------------------------------------------------------------------------------

    def list_actions(self, *, pending_only: bool = False, alert: str | None = None) -> list[LedgerEntry]:
        """Ledger rows, oldest first: awaiting approval only with ``pending_only``; one alert's with ``alert``."""
        rows = list(self.ledger.query(states=(AWAITING_APPROVAL,) if pending_only else (), alert=alert))
        rows.sort(key=lambda r: (r.created_at.timestamp() if r.created_at else 0.0, r.partition, r.row))
        return rows

    def _find(self, action_id: str) -> LedgerEntry:
        try:
            entry = self.ledger.find(action_id)
        except LookupError as exc:
            raise OperatorError(str(exc)) from None
        if entry is None:
            raise ActionNotFound(f"no action {action_id!r}; list them with `fraud-responder actions list`")
        return entry

    def _alert_of(self, entry: LedgerEntry) -> Alert:
        entity = self.store.get(ALERTS_TABLE, entry.alert_partition, entry.alert_row)
        if entity is None:
            raise OperatorError(f"the alert {entry.alert_key} of action {entry.action_id} is no longer stored")
        return from_entity(entity)

    def _operator_action(self, entry: LedgerEntry) -> Action:
        try:
            return self.action(entry.action)
        except ActionFailed as exc:
            raise OperatorError(str(exc)) from None

    def _decided(self, entry: LedgerEntry, kind: str, operator: str, *, reason: str = "",
                 outcome: str = "") -> None:
        """Append the operator's decision on ``entry`` to the decisions table (its own record, never updated)."""
        from shared.response import decisions

        decisions.record(self.store, alert_key=entry.alert_key, kind=kind, operator=operator, reason=reason,
                         action_id=entry.action_id, action=entry.action,
                         target=entry.target.display or entry.target.id, outcome=outcome or entry.state,
                         clock=self._clock)

    def _refuse_held(self, entry: LedgerEntry) -> None:
        """OperatorError when a live worker (or operator) holds the row: never take a live lease."""
        if entry.state in (RUNNING, PLANNED, UNDOING) and not entry.lease_free(self._clock()):
            raise OperatorError(f"action {entry.action_id} is {entry.state}, held by {entry.lease_owner or 'a worker'}"
                                f" until {entry.lease_until}; try again after that")

    def _refuse_resolved(self, entry: LedgerEntry, alert: Alert) -> None:
        """A resolved alert's containment cannot run: refuse approving it when the alert is not fraud."""
        if _is_containment(entry.action) and alert.status == "resolved" and alert.resolved_reason in NOT_FRAUD:
            raise OperatorError(f"action {entry.action_id} ({entry.action}) cannot run: alert {alert.key} is resolved "
                                f"as {alert.resolved_reason}; containment runs only if the alert is active again "
                                "(it then gets fresh approval rows)")

    def _settle(self, entry: LedgerEntry, action: Action, operator: str) -> LedgerEntry:
        """A row left running by a crash (lease expired): record whether its effect took place.

        Taken over under the operator's lease; when an external call may have been made, ``verify``
        looks: the effect is recorded as succeeded (so undo can reverse it), otherwise the row goes
        back to waiting for approval (mode approve) or failed, as if the attempt never happened.
        """
        actor = f"operator:{operator}"
        try:
            entry = self.ledger.transition(entry, self.ledger.lease(actor, self._lease_seconds))
        except LedgerConflict as exc:
            raise OperatorError(str(exc)) from None
        took_effect = False
        if entry.called_at is not None:
            alert = self._alert_of(entry)
            ctx = self._context(alert, {**entry.params, "_version": entry.version}, actor,
                                investigation=self._investigation(alert))
            try:
                took_effect = action.verify(ctx, entry.target)
            except Exception as exc:
                self.ledger.transition(entry, self.ledger.released())
                raise OperatorError(f"action {entry.action_id} was interrupted and its target could not be checked "
                                    f"({one_line(str(exc))}); try again later") from None
        if took_effect:
            changes: dict[str, Any] = {
                "state": SUCCEEDED, "already_done": True, "error": "",
                "summary": f"{entry.action}: {entry.target.display or entry.target.id} is in the wanted state (an "
                           "interrupted attempt did it; found when it was settled)"}
        else:
            changes = {"state": AWAITING_APPROVAL if entry.mode == "approve" else FAILED,
                       "error": "an interrupted attempt never took effect; approve to run it"}
        return self.ledger.transition(entry, {**changes, **self.ledger.released()})

    @contextual(job="operator")
    def approve(self, action_id: str, operator: str) -> LedgerEntry:
        """Run an action that waits for approval (or retry a failed one) now, as ``operator``.

        A row left running by a crashed attempt (its lease expired) is taken over: ``verify`` first,
        so an effect that already happened is not repeated. Returns the row as recorded:
        ``succeeded`` or ``failed`` (with the error). Raises OperatorError when the row is in no
        state to run (expired rows of a resolved alert included), or when a transient error means
        the approval should be tried again later (the row then waits for approval again).
        """
        entry = self._find(action_id)
        _entry_context(entry)
        if entry.target.kind == PLAN_TARGET:
            raise OperatorError(f"action {entry.action_id} records that {entry.action} could not be planned "
                                f"({entry.error}); it is planned again when the alert changes")
        timed_out = entry.state == EXPIRED and entry.expired_by == APPROVAL_TIMEOUT
        if entry.state == EXPIRED and not timed_out:
            why = entry.expired_reason or "the alert was resolved"
            raise OperatorError(f"action {entry.action_id} ({entry.action}) expired: {why}; a resolved alert's "
                                "containment does not run (if the alert becomes active "
                                "again, it gets a fresh approval row)")
        self._refuse_held(entry)
        interrupted = entry.state in (RUNNING, PLANNED)
        if entry.state not in (AWAITING_APPROVAL, FAILED) and not interrupted and not timed_out:
            raise OperatorError(f"action {entry.action_id} is {entry.state}; only actions awaiting approval (or "
                                "failed ones, to retry) can be approved")
        action = self._operator_action(entry)
        alert = self._alert_of(entry)
        self._refuse_resolved(entry, alert)
        previous = AWAITING_APPROVAL if interrupted and entry.mode == "approve" else entry.state
        actor = f"operator:{operator}"
        try:
            entry = self.ledger.transition(entry, {
                **({"expired_by": "", "expired_reason": ""} if timed_out else {}),
                "state": RUNNING, "approved_by": operator, "approved_at": self._clock(), "actor": actor,
                "attempts": entry.attempts + 1, "error": "", **self.ledger.lease(actor, self._lease_seconds)})
        except LedgerConflict as exc:
            raise OperatorError(str(exc)) from None
        self._decided(entry, "approve", operator, outcome="running")
        ctx = self._context(alert, {**entry.params, "_version": entry.version}, actor,
                            investigation=self._investigation(alert))
        try:
            done = self._execute(action, ctx, entry)
        except _Deferred as deferred:
            if isinstance(deferred.error, LedgerConflict):
                raise OperatorError(str(deferred.error)) from None
            self.ledger.transition(deferred.entry, {"state": previous, "error": f"approval by {operator} met a "
                                                    f"transient error: {deferred.error}"})
            raise OperatorError(f"action {entry.action_id} met a transient error ({one_line(str(deferred.error))}); "
                                "it waits again: approve it again later") from None
        log.info("action %s (%s on %s) approved by %s: %s", done.action_id, done.action, done.target.id, operator,
                 done.state)
        return done

    @contextual(job="operator")
    def reject(self, action_id: str, operator: str, reason: str = "") -> LedgerEntry:
        """Refuse an action that waits for approval; it will not run.

        A row left running by a crashed approval (lease expired) is settled first: if its effect took
        place it is recorded as succeeded and the operator is told to undo it instead.
        """
        entry = self._find(action_id)
        _entry_context(entry)
        self._refuse_held(entry)
        if entry.state in (RUNNING, PLANNED):
            entry = self._settle(entry, self._operator_action(entry), operator)
            if entry.state == SUCCEEDED:
                raise OperatorError(f"action {entry.action_id} took effect before its worker was interrupted; it is "
                                    f"recorded as succeeded: undo it with `fraud-responder actions undo "
                                    f"{entry.action_id}` if it should not stand")
        timed_out = entry.state == EXPIRED and entry.expired_by == APPROVAL_TIMEOUT
        if (entry.state not in (AWAITING_APPROVAL, FAILED) and not timed_out) or entry.target.kind == PLAN_TARGET:
            raise OperatorError(f"action {entry.action_id} is {entry.state}; only actions awaiting approval (or "
                                "failed ones, or ones whose approval timed out) can be rejected")
        try:
            done = self.ledger.transition(entry, {"state": REJECTED, "rejected_by": operator,
                                                  "rejected_at": self._clock(), "actor": f"operator:{operator}",
                                                  "reject_reason": one_line(reason, 1000)})
        except LedgerConflict as exc:
            raise OperatorError(str(exc)) from None
        self._decided(done, "reject", operator, reason=reason)
        log.info("action %s (%s on %s) rejected by %s", done.action_id, done.action, done.target.id, operator)
        return done

    @contextual(job="operator")
    def undo(self, action_id: str, operator: str) -> LedgerEntry:
        """Reverse a succeeded action from what it recorded; returns the row (``undone`` or ``undo-failed``).

        Refused when the responder did nothing (``found_state``: the target was already in the wanted
        state), so undo never reverses what someone else did. A row left running or undoing by a crash
        (lease expired) is taken over.
        """
        entry = self._find(action_id)
        _entry_context(entry)
        action = self._operator_action(entry)
        if not action.reversible:
            raise OperatorError(f"{entry.action} cannot be undone (it is not reversible); action {entry.action_id} "
                                "stays as it is")
        self._refuse_held(entry)
        if entry.state in (RUNNING, PLANNED):
            entry = self._settle(entry, action, operator)
            if entry.state != SUCCEEDED:
                raise OperatorError(f"action {entry.action_id} never took effect (its worker was interrupted "
                                    f"first), so there is nothing to undo; it is now {entry.state}")
        retake = entry.state == UNDOING
        if entry.state not in (SUCCEEDED, UNDO_FAILED) and not retake:
            raise OperatorError(f"action {entry.action_id} is {entry.state}; only succeeded actions can be undone")
        if entry.found_state:
            raise OperatorError(f"action {entry.action_id} did nothing: {entry.target.display or entry.target.id} "
                                f"was {entry.found_state} ({one_line(entry.summary, 200)}); undo would reverse what "
                                "the responder did not do. Change it at the source if that is wanted")
        previous = SUCCEEDED if retake else entry.state
        alert = self._alert_of(entry)
        actor = f"operator:{operator}"
        try:
            entry = self.ledger.transition(entry, {"state": UNDOING, **self.ledger.lease(actor, self._lease_seconds)})
        except LedgerConflict as exc:
            raise OperatorError(str(exc)) from None
        ctx = self._context(alert, {**entry.params, "_version": entry.version}, actor,
                            investigation=self._investigation(alert))
        try:
            outcome = action.undo(ctx, entry.target, entry.data)
        except NotReversible as exc:
            self.ledger.transition(entry, {"state": previous, "error": f"not reversible: {exc}",
                                           **self.ledger.released()})
            raise OperatorError(f"action {entry.action_id} cannot be undone: {one_line(str(exc))}") from None
        except Exception as exc:  # ActionFailed, refused calls, defects: recorded, the operator decides
            if is_retryable(exc):
                self.ledger.transition(entry, {"state": previous, "error": f"undo by {operator} met a transient "
                                                                           f"error: {exc}", **self.ledger.released()})
                raise OperatorError(f"undo of {entry.action_id} met a transient error ({one_line(str(exc))}); "
                                    "try again later") from None
            log.error("undo of %s (%s on %s) failed: %s", entry.action_id, entry.action, entry.target.id, exc)
            message = str(exc) if isinstance(exc, ActionFailed) else f"{type(exc).__name__}: {exc}"
            failed = self.ledger.transition(entry, {"state": UNDO_FAILED, "error": message, "undone_by": operator,
                                                    **self.ledger.released()})
            self._decided(failed, "undo", operator, outcome=f"{UNDO_FAILED}: {one_line(message, 300)}")
            return failed
        done = self.ledger.transition(entry, {
            "state": UNDONE, "undone_by": operator, "undone_at": self._clock(), "actor": actor,
            "undo_summary": one_line(outcome.summary, 1000), "undo_data": outcome.data, "error": "",
            **self.ledger.released()})
        self._decided(done, "undo", operator, outcome=f"{UNDONE}: {one_line(outcome.summary, 300)}")
        log.info("action %s (%s on %s) undone by %s", done.action_id, done.action, done.target.id, operator)
        reason = str(entry.params.get("reason") or "")
        if catalogue.spec(entry.action).resolves and entry.params.get("status") == "resolved" and reason:
            # The verdict that resolution planned no longer holds: what still waits for approval expires.
            self.expire_pending(entry.alert_key, operator, f"the {reason} resolution {entry.action_id} was undone by "
                                f"{operator}", rule=f"verdict.{reason}")
        return done

    def expire_pending(self, alert_key: str, operator: str, why: str, *, rule: str = "") -> list[LedgerEntry]:
        """Expire the alert's containment rows that wait for approval (the alert was resolved as not fraud),
        or, with ``rule``, every waiting row that rule planned (a fraud verdict whose resolution was undone).

        Each expiry is recorded on the row (who, why) and as a decision of its own. Returns the rows
        expired; a row that changed meanwhile is read again and expired if it still waits.
        """
        expired: list[LedgerEntry] = []
        for row in self.ledger.for_alert(alert_key):
            entry = row
            for _attempt in range(3):
                if entry.state != AWAITING_APPROVAL or (entry.rule != rule if rule else not _is_containment(
                        entry.action)):
                    break
                try:
                    done = self.ledger.transition(entry, {"state": EXPIRED, "expired_by": operator,
                                                          "expired_at": self._clock(),
                                                          "expired_reason": one_line(why, 1000)})
                except LedgerConflict:
                    fresh = self.ledger.get(entry.partition, entry.row)
                    if fresh is None:
                        break
                    entry = fresh
                    continue
                self._decided(done, "expire", operator, reason=why)
                expired.append(done)
                break
        return expired

    def decide_all(self, alert: str, decision: str, operator: str, reason: str = "") -> list[BulkOutcome]:
        """Approve or reject every action of one alert that awaits approval, in the catalogue's run order.

        Each row is decided on its own (its own ledger transition and decision record, exactly as
        ``approve`` / ``reject`` one by one), and one that cannot be decided does not stop the others:
        its outcome carries the reason. ActionNotFound when the alert has no ledger rows at all.
        """
        if decision not in ("approve", "reject"):
            raise ValueError(f"decision must be approve or reject, not {decision!r}")
        rows = self.list_actions(alert=alert)
        if not rows:
            raise ActionNotFound(f"alert {alert!r} has no actions; list them with `fraud-responder actions list`")
        waiting = [r for r in rows if r.state == AWAITING_APPROVAL]
        spec_order = {name: index for index, name in enumerate(catalogue.names())}
        waiting.sort(key=lambda r: (spec_order.get(r.action, len(spec_order)), r.created_at or self._clock(),
                                    r.action_id))
        outcomes: list[BulkOutcome] = []
        for row in waiting:
            try:
                done = (self.approve(row.action_id, operator) if decision == "approve"
                        else self.reject(row.action_id, operator, reason))
            except OperatorError as exc:
                fresh = self.ledger.get(row.partition, row.row) or row
                outcomes.append(BulkOutcome(fresh, ok=False, error=one_line(str(exc))))
                continue
            outcomes.append(BulkOutcome(done, ok=done.state not in (FAILED, UNDO_FAILED),
                                        error=done.error if done.state == FAILED else ""))
        return outcomes

    def expire_stale(self, hours: float, *, now: datetime | None = None) -> list[LedgerEntry]:
        """Expire every row that has waited for approval longer than ``hours`` (APPROVAL_EXPIRY_HOURS).

        Recorded on the row (``expired_by`` = APPROVAL_TIMEOUT, why) and as an ``expire`` decision of its
        own. An operator may still approve or reject such a row; the expiry only ends the wait, so a
        pending approval is never silently forgotten (the caller re-notifies). A row changed meanwhile
        is left for the next run.
        """
        now = now or self._clock()
        cutoff = now - timedelta(hours=hours)
        expired: list[LedgerEntry] = []
        for entry in self.ledger.query(states=(AWAITING_APPROVAL,)):
            waiting_since = entry.created_at
            if waiting_since is None or waiting_since > cutoff:
                continue
            why = (f"waited {hours:g} hours for approval without a decision (since "
                   f"{waiting_since:%Y-%m-%d %H:%M} UTC)")
            try:
                done = self.ledger.transition(entry, {"state": EXPIRED, "expired_by": APPROVAL_TIMEOUT,
                                                      "expired_at": now, "expired_reason": why})
            except LedgerConflict:
                continue
            self._decided(done, "expire", APPROVAL_TIMEOUT, reason=why)
            expired.append(done)
        return expired


@dataclass(frozen=True)
class BulkOutcome:
    """One row of a bulk approve or reject: the row as it is now, and whether the decision took."""

    entry: LedgerEntry
    ok: bool
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "error": self.error, "action": self.entry.as_json()}
