"""The daily digest: what an operator must look at today, in one e-mail (or one command).

Why: automatic response is only safe if people see what waits for them. The digest lists
unresolved alerts by customer and type, actions waiting for approval (with the command that
approves each), failures and poison messages of the last 24 hours, and token health (the SAM
refresh token's days left, the last token error and the re-consent steps), and the partner's own
posture (``shared.operations.posture``: security requirements, users without MFA, GDAP).

``build_digest`` only reads (alerts, ledger and checkpoints tables, the poison queues' counts, Key
Vault's refresh-token version time, the posture's Graph and Partner Center reads). ``send_digest``
e-mails it through Graph sendMail from NOTIFY_SENDER to SECURITY_CONTACTS with the app-only Graph
token, the same path as the notify action. ``run_daily_digest`` is the timer's entry: at most one
e-mail per UTC day, claimed in the checkpoints table, so a timer that fires twice (host restart,
past-due run) does not send twice. ``fraud-responder digest`` and GET /api/manage/digest show the same content.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from shared.formats import iso, one_line
from shared.logs import add_context, contextual
from shared.names import ALERTS_TABLE, CHECKPOINTS_TABLE, QUEUES, poison_queue
from shared.operations import OperationError
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.detection.base import QuotaReading
    from shared.response.actions.base import Clients
    from shared.response.ledger import LedgerEntry
    from shared.storage.tables import TableStore

log = logging.getLogger(__name__)

WINDOW_HOURS: Final = 24
"""Failures and poison messages newer than this are listed."""
MAX_ALERTS_SHOWN: Final = 10
"""Alerts listed per customer and type in the text (the count is always exact)."""
MAX_ROWS_SHOWN: Final = 50
"""Pending actions, failures or poison records listed in the text."""
DIGEST_PARTITION: Final = "digest"
"""Checkpoints partition of the per-day claim (RowKey = the UTC date) that keeps the timer to one e-mail."""
CLI: Final = "fraud-responder"
QUOTA_NOT_READ: Final = "compute quota was not read (the compute usages reader supplies it)"


class DigestNotConfigured(OperationError):
    """NOTIFY_SENDER or SECURITY_CONTACTS is empty: there is nobody to send the digest to, or from."""

    http_status = 409
    error_code = "conflict"


class DigestNotSent(OperationError):
    """Graph did not accept the e-mail; the message says why and what to do."""

    http_status = 503
    error_code = "unavailable"


def _when(value: Any) -> str:
    """A time as "YYYY-MM-DD HH:MM UTC" (from a datetime or an ISO string), else "unknown"."""
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "unknown"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


@dataclass(frozen=True)
class Digest:
    """One digest, JSON-ready through ``as_dict`` and readable through ``as_text``."""

    generated_at: datetime
    since: datetime
    unresolved: list[dict[str, Any]] = field(default_factory=list)
    """Groups ``{customer_tenant_id, customer_name, type, category, count, alerts: [...]}``."""
    pending: list[dict[str, Any]] = field(default_factory=list)
    """Ledger rows awaiting approval, each with the ``approve`` and ``reject`` commands."""
    failures: list[dict[str, Any]] = field(default_factory=list)
    """Ledger rows failed (or undo-failed) in the window."""
    sync_errors: list[dict[str, Any]] = field(default_factory=list)
    """The latest sync run per trigger, when it failed in the window."""
    poison: dict[str, Any] = field(default_factory=dict)
    """``{"records": [...] (in the window), "queues": {poison queue: messages in it now}, "error"}``."""
    tokens: dict[str, Any] = field(default_factory=dict)
    """``shared.operations.token_status.token_status`` (state, refresh token age, warnings, next steps)."""
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    """Source records the sync could not store, quarantined in the window (``{source, id, reason, at}``)."""
    posture: dict[str, Any] = field(default_factory=dict)
    """The partner's own posture (``shared.operations.posture.Posture.as_dict``); empty when not read."""
    expired: list[dict[str, Any]] = field(default_factory=list)
    """Approvals that expired unanswered (APPROVAL_EXPIRY_HOURS) in the window, each with its approve command."""
    quota: dict[str, Any] = field(default_factory=dict)
    """Quota hygiene (``shared.operations.quota``): ``{read, recommendations: [...], note}``; read only."""

    # --- what needs attention -------------------------------------------------------------------

    @property
    def unresolved_count(self) -> int:
        return sum(int(g["count"]) for g in self.unresolved)

    @property
    def poison_count(self) -> int:
        return len(self.poison.get("records", [])) + sum(int(n) for n in self.poison.get("queues", {}).values())

    @property
    def token_state(self) -> str:
        return str(self.tokens.get("state", "unknown"))

    @property
    def tokens_need_attention(self) -> bool:
        return self.token_state not in ("ok", "unknown") or not self.tokens.get("ok", True)

    @property
    def needs_attention(self) -> bool:
        return bool(self.pending or self.expired or self.failures or self.sync_errors or self.poison_count
                    or self.tokens_need_attention or self.quarantined)

    def subject(self) -> str:
        parts = [_plural(self.unresolved_count, "unresolved alert"),
                 f"{_plural(len(self.pending), 'action')} waiting for approval"]
        failures = len(self.failures) + len(self.sync_errors)
        if failures:
            parts.append(_plural(failures, "failure"))
        if self.poison_count:
            parts.append(_plural(self.poison_count, "poison message"))
        if self.quarantined:
            parts.append(_plural(len(self.quarantined), "quarantined record"))
        if self.tokens_need_attention:
            parts.append(f"token {self.token_state}")
        prefix = "[Action needed] " if self.needs_attention else ""
        return f"{prefix}Fraud responder digest {self.generated_at:%Y-%m-%d}: " + ", ".join(parts)

    # --- renderings ------------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """The stable JSON shape (CLI --json, GET /api/manage/digest): fields are only ever added."""
        return {
            "generated_at": iso(self.generated_at), "since": iso(self.since), "window_hours": WINDOW_HOURS,
            "subject": self.subject(), "needs_attention": self.needs_attention,
            "counts": {"unresolved_alerts": self.unresolved_count, "pending_actions": len(self.pending),
                       "failures": len(self.failures), "sync_errors": len(self.sync_errors),
                       "poison_messages": self.poison_count, "quarantined_records": len(self.quarantined)},
            "unresolved": self.unresolved, "pending": self.pending, "failures": self.failures,
            "sync_errors": self.sync_errors, "poison": self.poison, "tokens": self.tokens,
            "quarantined": self.quarantined, "posture": self.posture,
            "quota_hygiene": self.quota or {"read": False, "recommendations": [], "note": QUOTA_NOT_READ},
            "expired_approvals": self.expired,
        }

    def as_text(self) -> str:
        """Plain text: it survives every mail client and ticketing system it is forwarded to."""
        lines = [f"Fraud responder digest for {_when(self.generated_at)} (failures and poison messages since "
                 f"{_when(self.since)})", "", self._summary(), ""]
        lines += [*self._unresolved_text(), "", *self._pending_text(), "", *self._failures_text()]
        lines += ["", *self._poison_text(), "", *self._quarantine_text(), "", *self._tokens_text()]
        lines += ["", *self._quota_text()]
        lines += ["", *self._posture_text()]
        lines += ["", f"Run `{CLI} digest` for this report now, `{CLI} alerts list` and `{CLI} actions list` for "
                      "details; docs/runbook.md says what to do in each situation."]
        return "\n".join(lines).rstrip() + "\n"

    def _summary(self) -> str:
        customers = len({g["customer_tenant_id"] for g in self.unresolved})
        failures = len(self.failures) + len(self.sync_errors)
        token = "tokens ok" if not self.tokens_need_attention else f"TOKENS NEED ATTENTION ({self.token_state})"
        return (f"Summary: {_plural(self.unresolved_count, 'unresolved alert')} at "
                f"{_plural(customers, 'customer')}; {_plural(len(self.pending), 'action')} waiting for approval; "
                f"{_plural(failures, 'failure')} and {_plural(self.poison_count, 'poison message')} in the last "
                f"{WINDOW_HOURS} hours; {token}.")

    def _unresolved_text(self) -> list[str]:
        lines = [f"UNRESOLVED ALERTS BY CUSTOMER AND TYPE ({self.unresolved_count})"]
        if not self.unresolved:
            return [*lines, "  none"]
        customer = None
        for group in self.unresolved:
            if group["customer_tenant_id"] != customer:
                customer = group["customer_tenant_id"]
                name = group["customer_name"]
                lines.append(f"  {name} ({customer})" if name else f"  {customer}")
            lines.append(f"    {group['type'] or 'unknown type'}: {_plural(group['count'], 'alert')}")
            for alert in group["alerts"][:MAX_ALERTS_SHOWN]:
                test = " [TEST]" if alert["is_test"] else ""
                where = alert["subscription_name"] or alert["subscription_id"] or "no subscription"
                lines.append(f"      - {alert['id']}{test}: {alert['severity'] or 'unknown'} severity, "
                             f"{alert['status'] or 'unknown status'}, {where}, detected "
                             f"{_when(alert['detected_at'])}")
            if group["count"] > MAX_ALERTS_SHOWN:
                lines.append(f"      ... and {group['count'] - MAX_ALERTS_SHOWN} more: `{CLI} alerts list "
                             f"--customer {customer} --type \"{group['type']}\"`")
        lines.append(f"  Resolve one: `{CLI} alerts resolve ID --reason fraud|legitimate|ignore`")
        return lines

    def _pending_text(self) -> list[str]:
        lines = [f"ACTIONS WAITING FOR APPROVAL ({len(self.pending)})"]
        if self.expired:
            lines.append(f"  {len(self.expired)} more expired unanswered in the last {WINDOW_HOURS} hours "
                         "(they can still be approved):")
            for row in self.expired[:MAX_ROWS_SHOWN]:
                lines.append(f"  - {row['id']}: {row['action']} on {row['target']} (alert {row['alert']}), "
                             f"expired {_when(row['expired_at'])}")
                lines.append(f"      approve: {row['approve']}")
        if not self.pending:
            return [*lines, "  none"]
        for row in self.pending[:MAX_ROWS_SHOWN]:
            lines.append(f"  - {row['id']}: {row['action']} on {row['target']} (alert {row['alert']}, "
                         f"waiting since {_when(row['waiting_since'])})")
            if row["reason"]:
                lines.append(f"      why: {row['reason']}")
            lines.append(f"      approve: {row['approve']}")
            lines.append(f"      reject:  {row['reject']}")
        if len(self.pending) > MAX_ROWS_SHOWN:
            lines.append(f"  ... and {len(self.pending) - MAX_ROWS_SHOWN} more: `{CLI} actions list --pending`")
        return lines

    def _failures_text(self) -> list[str]:
        lines = [f"FAILURES IN THE LAST {WINDOW_HOURS} HOURS ({len(self.failures) + len(self.sync_errors)})"]
        if not self.failures and not self.sync_errors:
            return [*lines, "  none"]
        for row in self.failures[:MAX_ROWS_SHOWN]:
            lines.append(f"  - {row['id']}: {row['action']} on {row['target']} (alert {row['alert']}) "
                         f"{row['state']} at {_when(row['at'])}: {row['error'] or 'no error recorded'}")
            lines.append(f"      retry: {CLI} actions approve {row['id']}" if row["state"] == "failed"
                         else f"      retry the undo: {CLI} actions undo {row['id']}")
        for sync in self.sync_errors:
            lines.append(f"  - sync ({sync['trigger']}) at {_when(sync['at'])}: {sync['error']}")
        return lines

    def _quarantine_text(self) -> list[str]:
        lines = [f"QUARANTINED RECORDS ({len(self.quarantined)})"]
        if not self.quarantined:
            return [*lines, "  none"]
        for row in self.quarantined[:MAX_ROWS_SHOWN]:
            lines.append(f"  - {row['source']} {row['id'] or '(no id)'} at {_when(row['at'])}: {row['reason'][:300]}")
        lines.append(f"  raw payloads: {CLI} alerts quarantine --raw")
        return lines

    def _poison_text(self) -> list[str]:
        records = self.poison.get("records", [])
        queues = {name: count for name, count in self.poison.get("queues", {}).items() if count}
        lines = [f"POISON MESSAGES ({self.poison_count})"]
        if self.poison.get("error"):
            lines.append(f"  could not read the poison queues: {self.poison['error']}")
        if not records and not queues:
            return lines + (["  none"] if not self.poison.get("error") else [])
        for name, count in queues.items():
            lines.append(f"  - {name}: {_plural(count, 'message')} waiting in the queue now")
        for record in records[:MAX_ROWS_SHOWN]:
            about = f" (alert {record['alert']})" if record["alert"] else ""
            replayed = (f" (replayed {_when(record['replayed_at'])} by {record['replayed_by'] or 'unknown'})"
                        if record["replayed_at"] else "")
            lines.append(f"  - {record['queue']}{about} gave up at {_when(record['at'])} after "
                         f"{record['dequeue_count']} deliveries{replayed}: {record['error']}")
        lines.append(f"  Inspect with `{CLI} poison list`; once the cause is fixed, replay with "
                     f"`{CLI} poison replay QUEUE` (docs/runbook.md, \"A poison message\")")
        return lines

    def _posture_text(self) -> list[str]:
        if not self.posture:
            return []
        findings = self.posture.get("findings", [])
        lines = [f"PARTNER SECURITY POSTURE ({len(findings)}; `{CLI} posture` for details)"]
        score = self.posture.get("score") or {}
        if score:
            lines.append(f"  Partner security score: {score.get('current')} of {score.get('max')}")
        for finding in findings[:MAX_ROWS_SHOWN]:
            lines.append(f"  - [{finding['area']}] {finding['subject']}: {finding['problem']}")
            lines.append(f"    Fix: {finding['fix']}")
        lines += [f"  ! could not read {error}" for error in self.posture.get("errors", [])]
        return lines if findings or self.posture.get("errors") else [*lines, "  no findings"]
    def _quota_text(self) -> list[str]:
        found = list(self.quota.get("recommendations") or [])
        lines = [f"QUOTA HYGIENE: CORE QUOTA FAR ABOVE USE ({len(found)}, read only)"]
        if not self.quota.get("read"):
            return [*lines, f"  {self.quota.get('note') or QUOTA_NOT_READ}"]
        if not found:
            return [*lines, "  none"]
        lines += [f"  - {r['recommendation']}" for r in found[:MAX_ROWS_SHOWN]]
        lines.append("  Unused quota is what a compromised subscription mines with; lowering it changes nothing else.")
        return lines

    def _tokens_text(self) -> list[str]:
        tokens = self.tokens
        lines = [f"TOKEN HEALTH: {self.token_state.upper()}"]
        if tokens.get("error"):
            lines.append(f"  could not be checked: {tokens['error']}")
        age = tokens.get("refresh_token") or {}
        if age.get("last_rolled_at"):
            lines.append(f"  SAM refresh token last rolled {_when(age['last_rolled_at'])}; expires if unused "
                         f"{_when(age.get('expires_if_unused_at'))} ({_plural(int(age.get('days_left') or 0), 'day')} "
                         "left)")
        elif age.get("error"):
            lines.append(f"  refresh token age unknown: {age['error']}")
        for principal in tokens.get("principals", []):
            state = "ok" if principal.get("ok") else f"FAILING since {_when(principal.get('failed_at'))}: " \
                                                     f"{principal.get('message', '')}"
            lines.append(f"  - {principal.get('principal')}: {state}")
        for warning in tokens.get("warnings", []):
            lines.append(f"  warning: {warning}")
        steps = tokens.get("next_steps") or []
        if steps:
            lines.append("  What to do:")
            lines += [f"    {number}. {step}" for number, step in enumerate(steps, start=1)]
        return lines


# --- building -------------------------------------------------------------------------------------


def _unresolved(store: TableStore) -> list[dict[str, Any]]:
    from shared.views import alert_json, query_alerts

    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for entity in query_alerts(store):
        alert = alert_json(entity)
        if alert["status"] == "resolved":
            continue
        key = (alert["customer_tenant_id"], alert["type"])
        group = groups.setdefault(key, {"customer_tenant_id": alert["customer_tenant_id"],
                                        "customer_name": alert["customer_name"], "type": alert["type"],
                                        "category": alert["category"], "count": 0, "alerts": []})
        group["count"] += 1
        group["customer_name"] = group["customer_name"] or alert["customer_name"]
        group["alerts"].append({name: alert[name] for name in (
            "id", "key", "severity", "status", "subscription_id", "subscription_name", "detected_at", "is_test")})
    severity = {"high": 0, "medium": 1, "low": 2}
    for group in groups.values():
        group["alerts"].sort(key=lambda a: (severity.get(a["severity"], 3), a["detected_at"] or "", a["id"]))
    return sorted(groups.values(), key=lambda g: (g["customer_name"].lower() or g["customer_tenant_id"],
                                                  g["customer_tenant_id"], g["type"].lower()))


def _target(entry: LedgerEntry) -> str:
    return entry.target.display or entry.target.id


def _pending(entries: Iterable[LedgerEntry]) -> list[dict[str, Any]]:
    rows = sorted(entries, key=lambda e: (e.created_at or datetime.min.replace(tzinfo=UTC), e.action_id))
    return [{"id": e.action_id, "alert": e.alert_key, "customer_tenant_id": e.customer_tenant_id,
             "action": e.action, "target": _target(e), "mode": e.mode, "reason": e.reason,
             "waiting_since": iso(e.created_at),
             "approve": f"{CLI} actions approve {e.action_id}",
             "reject": f"{CLI} actions reject {e.action_id} --reason \"<why>\""} for e in rows]


def _expired(entries: Iterable[LedgerEntry], since: datetime) -> list[dict[str, Any]]:
    from shared.response.engine import APPROVAL_TIMEOUT

    rows = [e for e in entries if e.expired_by == APPROVAL_TIMEOUT and e.updated_at is not None
            and e.updated_at >= since]
    rows.sort(key=lambda e: (e.updated_at or since, e.action_id))
    return [{"id": e.action_id, "alert": e.alert_key, "customer_tenant_id": e.customer_tenant_id,
             "action": e.action, "target": _target(e), "expired_at": iso(e.updated_at),
             "reason": e.expired_reason, "approve": f"{CLI} actions approve {e.action_id}"} for e in rows]


def _failures(entries: Iterable[LedgerEntry], since: datetime) -> list[dict[str, Any]]:
    rows = [e for e in entries if e.updated_at is not None and e.updated_at >= since]
    rows.sort(key=lambda e: (e.updated_at or since, e.action_id), reverse=True)
    return [{"id": e.action_id, "alert": e.alert_key, "customer_tenant_id": e.customer_tenant_id,
             "action": e.action, "target": _target(e), "state": e.state, "error": e.error,
             "at": iso(e.updated_at)} for e in rows]


def _sync_errors(store: TableStore, since: datetime) -> list[dict[str, Any]]:
    """Failed syncs, and detectors whose latest run failed (``shared.detection.runner``), in the window."""
    from shared.detection.runner import detector_status
    from shared.intake.checkpoints import last_syncs

    rows = [{"trigger": s["trigger"], "at": iso(s["at"]), "error": s["error"]} for s in last_syncs(store)
            if not s["ok"] and isinstance(s["at"], datetime) and s["at"] >= since]
    rows += [{"trigger": f"detector {d['detector']}", "at": iso(d["at"]), "error": d["error"]}
             for d in detector_status(store) if not d["ok"] and isinstance(d["at"], datetime) and d["at"] >= since]
    return rows


def _quarantined(store: TableStore, since: datetime) -> list[dict[str, Any]]:
    from shared.intake.sync import quarantined

    rows = []
    for q in quarantined(store.table_client(ALERTS_TABLE)):
        at = datetime.fromisoformat(q["at"]) if isinstance(q["at"], str) else None
        if at is not None and at >= since:
            rows.append({"source": q["source"], "id": q["id"], "reason": q["reason"], "at": q["at"]})
    return rows


def _poison(settings: Settings, store: TableStore, since: datetime) -> dict[str, Any]:
    from shared.response.jobs import poison_records

    records = [{"queue": str(r.get("queue", "")), "at": iso(r.get("at")), "alert": str(r.get("alert_key", "")),
                "dequeue_count": int(r.get("dequeue_count", 0) or 0), "error": str(r.get("error", ""))[:300],
                "replayed_at": iso(r.get("replayed_at")), "replayed_by": str(r.get("replayed_by", ""))}
               for r in poison_records(store) if isinstance(r.get("at"), datetime) and r["at"] >= since]
    doc: dict[str, Any] = {"records": records, "queues": {}, "error": ""}
    try:
        from shared.factory import queue_sender

        sender = queue_sender(settings)
        doc["queues"] = {poison_queue(q): sender.count(poison_queue(q)) for q in QUEUES}
    except Exception as exc:  # the digest still goes out, saying what it could not read
        doc["error"] = f"{type(exc).__name__}: {one_line(exc, 300)}"
    return doc


def _tokens(settings: Settings, store: TableStore, now: datetime) -> dict[str, Any]:
    from shared.operations.token_status import token_status

    try:
        return token_status(settings, store, now=now)
    except Exception as exc:  # token trouble must not stop the digest that reports it
        log.warning("digest: token status could not be read: %s", type(exc).__name__)
        return {"ok": False, "state": "unknown", "error": f"{type(exc).__name__}: {one_line(exc, 300)}",
                "refresh_token": {}, "principals": [], "warnings": [], "next_steps": []}


def _quota(readings: Mapping[str, Iterable[QuotaReading]] | None) -> dict[str, Any]:
    from shared.operations.quota import recommend

    if readings is None:
        return {"read": False, "recommendations": [], "note": QUOTA_NOT_READ}
    return {"read": True, "recommendations": [r.as_json() for r in recommend(readings)],
            "note": f"{len(readings)} subscription(s) read; nothing is changed"}


MAX_QUOTA_VMS: Final = 20
"""Affected VMs looked up (for their regions) when the digest reads compute quota."""


def _live_quota(settings: Settings, store: TableStore, unresolved: list[dict[str, Any]]) -> dict[str, Any]:
    """Quota hygiene for the subscriptions of unresolved alerts, in the regions of their affected VMs."""
    from shared.operations.quota import read_quota
    from shared.response.actions.base import Clients as ActionClients
    from shared.views import alert_json, find_alert

    clients = ActionClients(settings, store)
    regions: dict[str, set[str]] = {}
    errors: list[str] = []
    looked = 0
    for group in unresolved:
        for summary in group["alerts"]:
            entity = find_alert(store, summary["key"])
            alert = alert_json(entity) if entity else None
            if alert is None or not alert["subscription_id"]:
                continue
            for resource in alert["affected_resources"]:
                rid = str(resource["id"])
                if "/providers/microsoft.compute/virtualmachines/" not in rid.lower() or looked >= MAX_QUOTA_VMS:
                    continue
                looked += 1
                try:
                    vm = clients.arm(alert["customer_tenant_id"]).get_vm(rid)
                except Exception as exc:  # a deleted VM, a refused tenant: the others still count
                    errors.append(f"{rid}: {type(exc).__name__}")
                    continue
                if vm.location:
                    regions.setdefault(alert["subscription_id"], set()).add(vm.location)
    if not regions:
        return {"read": False, "recommendations": [], "errors": errors,
                "note": "no region to read: no unresolved alert names a VM that could be read"}
    readings, failed = read_quota(settings, regions)
    doc = _quota(readings)
    doc["errors"] = errors + failed
    return doc


def build_digest(settings: Settings, store: TableStore, *, now: datetime | None = None,
                 quota_readings: Mapping[str, Iterable[QuotaReading]] | None = None,
                 read_quota: bool = False) -> Digest:
    """Read everything the digest shows (nothing is changed; the refresh token is not redeemed).

    Quota hygiene: ``quota_readings`` (compute usages per subscription), or with ``read_quota`` the
    usages of the unresolved alerts' subscriptions in their VMs' regions, read now (best effort);
    with neither the section says quota was not read.
    """
    from shared.response.ledger import AWAITING_APPROVAL, EXPIRED, FAILED, UNDO_FAILED, Ledger

    now = now or datetime.now(UTC)
    since = now - timedelta(hours=WINDOW_HOURS)
    ledger = Ledger(store)
    unresolved = _unresolved(store)
    quota = _quota(quota_readings)
    if quota_readings is None and read_quota:
        try:
            quota = _live_quota(settings, store, unresolved)
        except Exception as exc:  # the digest still goes out, saying what it could not read
            log.warning("digest: compute quota could not be read: %s", type(exc).__name__)
            quota = {"read": False, "recommendations": [], "errors": [],
                     "note": f"compute quota could not be read: {type(exc).__name__}: {one_line(exc, 200)}"}
    return Digest(
        generated_at=now, since=since, unresolved=unresolved,
        pending=_pending(ledger.query(states=(AWAITING_APPROVAL,))),
        failures=_failures(ledger.query(states=(FAILED, UNDO_FAILED)), since),
        sync_errors=_sync_errors(store, since), poison=_poison(settings, store, since),
        tokens=_tokens(settings, store, now), quarantined=_quarantined(store, since),
        posture=_posture(settings, store, now),
        quota=quota, expired=_expired(ledger.query(states=(EXPIRED,)), since),
    )


def _posture(settings: Settings, store: TableStore, now: datetime) -> dict[str, Any]:
    """The partner posture section; a failure to read it never stops the digest."""
    from shared.operations.posture import collect
    from shared.response.actions.base import Clients

    try:
        return collect(Clients(settings, store), now=now).as_dict()
    except Exception as exc:
        log.warning("digest: the partner posture could not be read: %s", type(exc).__name__)
        return {"findings": [], "errors": [f"the partner posture: {type(exc).__name__}: {one_line(exc, 300)}"]}


# --- sending --------------------------------------------------------------------------------------


def recipients(settings: Settings) -> tuple[str, list[str]]:
    """(sender, recipients), or DigestNotConfigured naming the setting to fill in."""
    if not settings.security_contacts:
        raise DigestNotConfigured("SECURITY_CONTACTS is empty, so the digest has nobody to go to; set it, e.g. "
                                  "SECURITY_CONTACTS=soc@contoso.com,oncall@contoso.com")
    if not settings.notify_sender:
        raise DigestNotConfigured("NOTIFY_SENDER is not set, so no e-mail can be sent; set it to a mailbox (UPN) of "
                                  "the partner tenant the Graph app may send from (Mail.Send)")
    return settings.notify_sender, list(settings.security_contacts)


def send_digest(settings: Settings, store: TableStore, clients: Clients | None = None, *,
                digest: Digest | None = None) -> dict[str, Any]:
    """E-mail the digest (built now unless given) to SECURITY_CONTACTS; returns what was sent.

    Raises DigestNotConfigured (nobody to send to or from) or DigestNotSent (Graph refused or
    failed; the message says whether to fix permissions or try again).
    """
    from shared.auth.errors import TokenHealthError
    from shared.auth.secrets import SecretStoreError
    from shared.http import BadRequest, Forbidden, MicrosoftApiError, NotFound, Unauthorized
    from shared.response.actions.base import Clients as ActionClients

    sender, to = recipients(settings)
    digest = digest or build_digest(settings, store)
    subject = digest.subject()
    graph = (clients or ActionClients(settings, store)).graph_app()
    html, attachments = with_spend_charts(store, digest.as_text())
    try:
        graph.send_mail(sender, to=to, subject=subject, body=html or digest.as_text(),
                        content_type="HTML" if html else "Text", attachments=attachments)
    except TokenHealthError as exc:
        raise DigestNotSent(f"the Graph app could not get a token to send the digest: {exc.operator_message}") from None
    except SecretStoreError as exc:
        raise DigestNotSent(f"the Graph app's client secret could not be read to send the digest: {exc}") from None
    except (BadRequest, Unauthorized, Forbidden, NotFound) as exc:
        raise DigestNotSent(f"Graph refused to send the digest from {sender}: {exc}; check that the Graph app has "
                            "the Mail.Send application permission and may send from NOTIFY_SENDER") from None
    except MicrosoftApiError as exc:
        raise DigestNotSent(f"Graph did not accept the digest for now ({exc}); try again later") from None
    log.info("digest sent from %s to %d recipient(s): %s", sender, len(to), subject)
    return {"sent": True, "from": sender, "to": to, "subject": subject, "generated_at": iso(digest.generated_at),
            "counts": digest.as_dict()["counts"]}


MAX_CHARTS: Final = 5


def with_spend_charts(store: TableStore, text: str) -> tuple[str, list[Any]]:
    """The digest as HTML with a daily-spend chart (inline PNG) for each unresolved spend alert, at
    most ``MAX_CHARTS``, largest severity first; ("", []) when there is none (plain text stays)."""
    from html import escape

    from shared.alerts import from_entity
    from shared.clients.graph import MailAttachment
    from shared.spend.chart import chart_for
    from shared.spend.detect import SPEND_DETECTORS
    from shared.views import query_alerts

    rank = {"high": 0, "medium": 1, "low": 2}
    spend = [from_entity(e) for e in query_alerts(store)
             if e.get("source") in SPEND_DETECTORS and e.get("status") != "resolved"]
    spend.sort(key=lambda a: (rank.get(a.severity, 3), a.key))
    parts, attachments = [], []
    for n, alert in enumerate(spend[:MAX_CHARTS]):
        png = chart_for(alert.additional_details)
        if png is None:
            continue
        content_id = f"spend-chart-{n}"
        attachments.append(MailAttachment(f"daily-spend-{n}.png", "image/png", png, content_id=content_id))
        parts.append(f"<p><b>{escape(alert.display_name or alert.type)}</b> ({escape(alert.id)})<br>"
                     f'<img src="cid:{content_id}" alt="Daily spend, the judged day in red" width="560" '
                     'height="180"></p>')
    if not attachments:
        return "", []
    html = (f'<pre style="font-family: Consolas, Menlo, monospace; font-size: 13px">{escape(text)}</pre>\n'
            "<h3>Daily spend of the subscriptions with a spend alert</h3>\n" + "\n".join(parts))
    return html, attachments


@contextual(job="digest")
def run_daily_digest(*, past_due: bool = False, settings: Settings | None = None, store: TableStore | None = None,
                     clients: Clients | None = None, now: datetime | None = None) -> dict[str, Any]:
    """The timer's run: send today's digest unless it was already sent (one e-mail per UTC day).

    The day is claimed in the checkpoints table before sending; a failed send releases the claim
    (so a later run or `fraud-responder digest --send` can send it) and raises, so the invocation
    shows as failed in Application Insights.
    """
    from shared.factory import table_store
    from shared.settings import get_settings

    if past_due:
        log.warning("daily_digest is running late (past due): the host was down or the previous run overran")
    settings = settings or get_settings()
    store = store or table_store(settings)
    now = now or datetime.now(UTC)
    day = now.strftime("%Y-%m-%d")
    add_context(action="send_digest")
    recipients(settings)  # not configured: fail before claiming the day
    claim = {"PartitionKey": DIGEST_PARTITION, "RowKey": day, "state": "sending", "claimed_at": now}
    if not store.insert_once(CHECKPOINTS_TABLE, claim):
        log.info("the digest for %s was already sent (or is being sent); nothing to do", day)
        return {"sent": False, "day": day, "reason": "already sent today"}
    try:
        result = send_digest(settings, store, clients, digest=build_digest(settings, store, now=now, read_quota=True))
    except BaseException:
        store.delete(CHECKPOINTS_TABLE, DIGEST_PARTITION, day)
        raise
    store.upsert(CHECKPOINTS_TABLE, {"PartitionKey": DIGEST_PARTITION, "RowKey": day, "state": "sent",
                                     "sent_at": datetime.now(UTC), "subject": result["subject"][:500],
                                     "recipients": len(result["to"])})
    return {**result, "day": day}

