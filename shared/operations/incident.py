"""The incident record: everything about one alert a partner needs to forward, in one stable document.

Why: the partner pays for a compromise unless Microsoft grants its one-time exception, and the
request, the customer's questions and the partner's own audit all need the same facts in one place:
Microsoft's detection, every action (who, when, mode, result), the approvals and decisions in
order, what was affected and by whom, the investigation, what the incident probably cost, and
whether the case looks eligible for the exception (with what is still missing to file it).

``build_incident`` reads (alert, ledger, decisions, investigation, other alerts of the customer)
and returns an ``IncidentRecord``; ``shared.operations.incident_render`` renders it as Markdown and
HTML, and ``as_json`` is the documented JSON shape (``INCIDENT_RECORD_VERSION``; fields are only
ever added). Nothing is changed. The optional ``vm_size`` and ``quota`` inputs are live reads the
caller may supply (the CLI and admin API do, best effort); without them the record says what it
could not know.

Cost: spend data does not exist yet (issue 14). Until it does, the cost is an estimate from the
affected VMs' sizes and running hours against ``LIST_PRICES`` (a small, dated table of public
list prices), clearly labelled; ``build_incident(spend=...)`` is where measured spend plugs in
(it then replaces the estimate, keeping the estimate beside it for comparison).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from shared.formats import iso
from shared.operations import NotFound

if TYPE_CHECKING:
    from shared.detection.base import QuotaReading
    from shared.operations.quota import QuotaReader
    from shared.storage.tables import TableStore

INCIDENT_RECORD_VERSION: Final = 1
FORMATS: Final = ("md", "html", "json")

# --- Microsoft's one-time exception for a first compromise -----------------------------------------

EXCEPTION_POLICY: Final = {
    "name": "CSP new commerce exception request for a first verified account compromise",
    "source": "Partner Center documentation, \"Nonpayment, fraud, and misuse\", section \"Exception Request "
              "Process\" (https://learn.microsoft.com/partner-center/customers/nonpayment-fraud-misuse)",
    "effective_from": "2023-04-01",
    "coverage_days": 30,
    "once_per_customer_tenant": True,
    "summary": "Microsoft reviews, and may grant, a one-time discretionary credit for a first-time instance, "
               "covering up to the first 30 days of compromise-related charges of verified account compromises "
               "of new commerce (Azure plan) subscriptions, for fraudulent activity on individual Azure customer "
               "tenants on or after April 1, 2023. A request can be submitted only once per customer tenant ID.",
}
EXCEPTION_EFFECTIVE_FROM: Final = datetime(2023, 4, 1, tzinfo=UTC)
EXCEPTION_COVERAGE: Final = timedelta(days=30)

# --- list prices for the cost estimate --------------------------------------------------------------

LIST_PRICES_AS_OF: Final = date(2024, 6, 1)
LIST_PRICES_BASIS: Final = ("approximate public pay-as-you-go list prices in USD per hour, Linux, East US, as of "
                            f"{LIST_PRICES_AS_OF.isoformat()} (Azure pricing calculator); real charges depend on "
                            "region, OS, discounts and the partner's price list")
LIST_PRICES: Final[Mapping[str, float]] = {
    "standard_b2s": 0.0416,
    "standard_d2s_v5": 0.096,
    "standard_d4s_v5": 0.192,
    "standard_d8s_v5": 0.384,
    "standard_f16s_v2": 0.677,
    "standard_nc6s_v3": 3.06,
    "standard_nc24s_v3": 12.24,
    "standard_nc4as_t4_v3": 0.526,
    "standard_nc24ads_a100_v4": 3.673,
    "standard_nc48ads_a100_v4": 7.346,
    "standard_nc96ads_a100_v4": 14.692,
    "standard_nd96asr_v4": 27.197,
    "standard_nv36ads_a10_v5": 3.20,
}
"""Hourly list price by VM size (lower-case). A size not listed is reported, not guessed."""

NOT_FRAUD: Final = ("legitimate", "ignore")
NOT_RESOURCES: Final = ("plan", "alert", "notification")
"""Target kinds of rows that act on our own records (the alert's status, the report), not on a resource."""
CONTAINMENT_DONE: Final = ("succeeded", "undoing", "undone", "undo-failed")

_LEDGER_KNOWN: Final = frozenset({
    "PartitionKey", "RowKey", "Timestamp", "etag", "odata.etag", "action_id", "alert_key", "alert_id",
    "alert_partition", "alert_row", "customer_tenant_id", "subscription_id", "action", "target_kind", "target_id",
    "target_display", "target_tenant", "target_details", "mode", "state", "attempts", "created_at", "updated_at",
    "actor", "rule", "reason", "version", "params", "summary", "data", "error", "already_done", "approved_by",
    "rejected_by", "reject_reason", "undone_by", "undo_summary", "undo_data", "lease_owner", "lease_until",
    "called_at", "found_state", "expired_by", "expired_reason",
})
"""Ledger properties ``LedgerEntry`` reads; any other property a newer action writes goes to ``other``."""


class IncidentNotFound(NotFound):
    """No stored alert has that id."""


VmLookup = Callable[[str], tuple[str, str]]
"""resource id -> (VM size, location); raises when it cannot be read (the estimate then says so)."""


@dataclass(frozen=True)
class IncidentRecord:
    """One incident (one alert), JSON-ready through ``as_json``; rendered by ``incident_render``."""

    generated_at: datetime
    alert: dict[str, Any]
    detection: dict[str, Any]
    actions: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    timeline: list[dict[str, Any]]
    affected: dict[str, Any]
    investigation: dict[str, Any]
    cost: dict[str, Any]
    exception: dict[str, Any]
    quota: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The documented, stable shape (docs/operating.md "The incident record"); fields are only ever added."""
        return {
            "incident_record_version": INCIDENT_RECORD_VERSION, "generated_at": iso(self.generated_at),
            "alert": self.alert, "detection": self.detection, "actions": self.actions,
            "decisions": self.decisions, "timeline": self.timeline, "affected": self.affected,
            "investigation": self.investigation, "cost_estimate": self.cost, "exception_eligibility": self.exception,
            "quota_hygiene": self.quota, "notes": self.notes,
        }


# --- building -------------------------------------------------------------------------------------


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def _jsonable(value: Any) -> Any:
    """A stored property as JSON: times as ISO text, JSON text decoded, everything else as is or as text."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    text = str(value)
    if text[:1] in "{[":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def _actions(store: TableStore, alert_key: str) -> list[dict[str, Any]]:
    """Every ledger row of the alert, oldest first, with any property this code does not know under ``other``."""
    from shared.alerts import row_key
    from shared.names import LEDGER_TABLE
    from shared.response.ledger import LedgerEntry

    rows = []
    for entity in store.list_partition(LEDGER_TABLE, row_key(alert_key)):
        entry = LedgerEntry.from_entity(entity)
        doc = entry.as_json()
        doc["other"] = {k: _jsonable(v) for k, v in sorted(entity.items()) if k not in _LEDGER_KNOWN
                        and not k.endswith("@odata.type") and not k.startswith("odata.")}
        rows.append(doc)
    rows.sort(key=lambda r: (r["created_at"] or "", r["id"]))
    return rows


def _decisions(store: TableStore, alert_key: str) -> list[dict[str, Any]]:
    from shared.response import decisions

    return [d.as_json() for d in decisions.for_alert(store, alert_key)]


def _who_decided(action: Mapping[str, Any]) -> str:
    return str(action.get("expired_by") or action.get("undone_by") or action.get("rejected_by")
               or action.get("approved_by") or action.get("actor") or "")


def _result(action: Mapping[str, Any]) -> str:
    return str(action.get("error") or action.get("expired_reason") or action.get("undo_summary")
               or action.get("summary") or action.get("reject_reason") or "")


def _target_text(action: Mapping[str, Any]) -> str:
    target = action.get("target") or {}
    return str(target.get("display") or target.get("id") or "")


def _timeline(alert: Mapping[str, Any], actions: Sequence[Mapping[str, Any]],
              decisions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One ordered list: Microsoft's observation and detection, each action planned and finished, each decision."""
    events: list[dict[str, Any]] = []

    def add(at: Any, kind: str, who: str, what: str, *, mode: str = "", result: str = "", action_id: str = "",
            order: int = 0) -> None:
        events.append({"at": at, "kind": kind, "who": who, "what": what, "mode": mode, "result": result,
                       "action_id": action_id, "_order": order})

    source = str(alert.get("source_name") or alert.get("source") or "Microsoft")
    if alert.get("first_observed_at"):
        add(alert["first_observed_at"], "observed", source, "activity first observed", order=0)
    if alert.get("detected_at"):
        add(alert["detected_at"], "detected", source,
            f"alert raised: {alert.get('display_name') or alert.get('type') or 'security alert'}", order=1)
    if alert.get("last_observed_at") and alert.get("last_observed_at") != alert.get("first_observed_at"):
        add(alert["last_observed_at"], "observed", source, "activity last observed", order=2)
    for action in actions:
        what = f"{action['action']} on {_target_text(action)}"
        planner = f"policy:{action['rule']}" if action.get("rule") else str(action.get("actor") or "")
        add(action.get("created_at"), "action-planned", planner, f"planned {what}",
            mode=str(action.get("mode") or ""), result=str(action.get("reason") or ""),
            action_id=str(action.get("id") or ""), order=3)
        state = str(action.get("state") or "")
        if state not in ("awaiting-approval", "planned", "running") and action.get("updated_at"):
            add(action.get("updated_at"), "action-" + state, _who_decided(action), f"{what}: {state}",
                mode=str(action.get("mode") or ""), result=_result(action), action_id=str(action.get("id") or ""),
                order=5)
    for decision in decisions:
        target = " on ".join(str(decision[k]) for k in ("action", "target") if decision.get(k))
        what = f"{decision['decision']}" + (f" {target}" if target else "")
        add(decision.get("at"), "decision-" + str(decision["decision"]), str(decision.get("operator") or ""),
            what, result=" ".join(str(decision[k]) for k in ("outcome", "reason") if decision.get(k)),
            action_id=str(decision.get("action_id") or ""), order=4)
    if alert.get("resolved_at"):
        add(alert["resolved_at"], "resolved", str(alert.get("resolved_by") or ""),
            f"alert resolved as {alert.get('resolved_reason') or 'unknown'}", order=6)
    events.sort(key=lambda e: (_parse(e["at"]) or datetime.max.replace(tzinfo=UTC), e["_order"]))
    for event in events:
        del event["_order"]
    return events


def _affected(alert: Mapping[str, Any], actions: Sequence[Mapping[str, Any]],
              investigation: Mapping[str, Any] | None) -> dict[str, Any]:
    resources: dict[str, dict[str, Any]] = {}
    for resource in alert.get("affected_resources") or []:
        rid = str(resource.get("id") or "")
        if rid:
            resources.setdefault(rid.lower(), {"id": rid, "type": str(resource.get("type") or ""),
                                               "named_by": ["alert"]})
    principals: dict[str, dict[str, Any]] = {}
    for action in actions:
        target = action.get("target") or {}
        tid, kind = str(target.get("id") or ""), str(target.get("kind") or "")
        if not tid or kind in NOT_RESOURCES:
            continue
        if kind in ("user", "servicePrincipal", "service_principal", "application", "principal"):
            entry = principals.setdefault(tid.lower(), {"id": tid, "kind": kind, "display": "", "named_by": []})
            entry["display"] = entry["display"] or str(target.get("display") or "")
            if "action" not in entry["named_by"]:
                entry["named_by"].append("action")
        else:
            entry = resources.setdefault(tid.lower(), {"id": tid, "type": kind, "named_by": []})
            if "action" not in entry["named_by"]:
                entry["named_by"].append("action")
    doc = investigation or {}
    for rid in (doc.get("resources") or {}) if isinstance(doc.get("resources"), dict) else {}:
        entry = resources.setdefault(str(rid).lower(), {"id": str(rid), "type": "", "named_by": []})
        if "investigation" not in entry["named_by"]:
            entry["named_by"].append("investigation")
    for kind, key in (("user", "users"), ("service_principal", "service_principals")):
        for principal in doc.get(key) or []:
            if not isinstance(principal, Mapping):
                continue
            pid = str(principal.get("id") or "")
            entry = principals.setdefault(pid.lower(), {"id": pid, "kind": kind, "display": "", "named_by": []})
            entry["display"] = entry["display"] or str(principal.get("display") or "")
            entry["upn"] = str(principal.get("upn") or "")
            entry["app_id"] = str(principal.get("app_id") or "")
            entry["operations_total"] = int(principal.get("operations_total") or 0)
            entry["changed"] = list(principal.get("affected_resources_changed") or [])
            if "investigation" not in entry["named_by"]:
                entry["named_by"].append("investigation")
    return {"resources": list(resources.values()), "principals": list(principals.values())}


def _investigation(doc: Mapping[str, Any] | None) -> dict[str, Any]:
    if not doc:
        return {"ran": False, "findings": ["No investigation ran for this alert (the investigate action reads the "
                                           "subscription's activity log)."], "window": {}, "document": None}
    findings = []
    for key, label in (("users", "user"), ("service_principals", "service principal")):
        for principal in doc.get(key) or []:
            if isinstance(principal, Mapping):
                changed = principal.get("affected_resources_changed") or []
                findings.append(f"{label} {principal.get('display') or principal.get('id')} made "
                                f"{principal.get('operations_total', 0)} operation(s) in the window"
                                + (f" and created or changed {len(changed)} affected resource(s)" if changed else ""))
    if not findings:
        findings.append("No user or service principal in the activity log created or changed the affected "
                        "resources.")
    window = doc.get("window") if isinstance(doc.get("window"), Mapping) else {}
    findings.append(f"{doc.get('events_examined', 0)} activity-log event(s) examined"
                    + (f" from {window.get('start')} to {window.get('end')}" if window else ""))
    return {"ran": True, "findings": findings, "window": dict(window or {}),
            "investigated_at": doc.get("investigated_at"), "document": dict(doc)}


def _containment() -> tuple[str, ...]:
    """The catalogue's containment actions (a VM stopped by any of them stops costing)."""
    from shared.response import catalogue

    return catalogue.containment()


def _is_vm(resource_id: str) -> bool:
    return "/providers/microsoft.compute/virtualmachines/" in resource_id.lower()


def _cost(alert: Mapping[str, Any], actions: Sequence[Mapping[str, Any]], investigation: Mapping[str, Any] | None,
          *, now: datetime, vm_lookup: VmLookup | None,
          spend: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    """Running hours of the affected VMs times a dated list price: an estimate, labelled as one."""
    detected = _parse(alert.get("first_observed_at")) or _parse(alert.get("detected_at")) or now
    stopped: dict[str, tuple[datetime | None, str]] = {}
    for action in actions:
        target = action.get("target") or {}
        if action.get("action") in _containment() and action.get("state") in CONTAINMENT_DONE:
            stopped[str(target.get("id") or "").lower()] = (_parse(action.get("updated_at")), str(action["state"]))
    resources = (investigation or {}).get("resources") if isinstance((investigation or {}).get("resources"),
                                                                     Mapping) else {}
    vms = [str(r.get("id") or "") for r in alert.get("affected_resources") or [] if _is_vm(str(r.get("id") or ""))]
    vms += [str((a.get("target") or {}).get("id") or "") for a in actions
            if _is_vm(str((a.get("target") or {}).get("id") or ""))]
    seen: set[str] = set()
    lines: list[dict[str, Any]] = []
    total = 0.0
    for vm in vms:
        if vm.lower() in seen:
            continue
        seen.add(vm.lower())
        created = [_parse(e.get("time")) for e in ((resources or {}).get(vm) or {}).get("events", [])
                   if isinstance(e, Mapping)]
        start = min([t for t in created if t] or [detected])
        end, state = stopped.get(vm.lower(), (None, ""))
        ongoing = end is None or state in ("undone", "undo-failed", "undoing")
        end = now if ongoing or end is None else end
        hours = max((end - start).total_seconds() / 3600, 0.0)
        line: dict[str, Any] = {"resource_id": vm, "size": "", "location": "", "from": iso(start), "to": iso(end),
                                "running_now": ongoing, "hours": round(hours, 2), "price_per_hour": None,
                                "estimate": None, "note": ""}
        if vm_lookup is None:
            line["note"] = "VM size not read (no live lookup in this export)"
        else:
            try:
                size, location = vm_lookup(vm)
            except Exception as exc:  # one unreadable VM must not stop the record
                line["note"] = f"VM size could not be read: {type(exc).__name__}"
            else:
                line.update(size=size, location=location)
                price = LIST_PRICES.get(size.lower())
                if price is None:
                    line["note"] = f"no list price for {size or 'an unknown size'} in the table"
                else:
                    line["price_per_hour"] = price
                    line["estimate"] = round(price * hours, 2)
                    total += price * hours
        lines.append(line)
    counted = [line for line in lines if line["estimate"] is not None]
    doc: dict[str, Any] = {
        "kind": "estimate", "currency": "USD", "total": round(total, 2), "complete": len(counted) == len(lines),
        "window": {"from": iso(min((_parse(x["from"]) or now for x in lines), default=detected)), "to": iso(now)},
        "basis": LIST_PRICES_BASIS, "prices_as_of": LIST_PRICES_AS_OF.isoformat(), "lines": lines,
        "spend": None,
        "spend_note": "Measured spend (issue 14's spend data) is not available yet; when it is, it replaces this "
                      "estimate here (build_incident(spend=...)).",
    }
    if spend is not None:
        measured = [dict(row) for row in spend]
        doc["spend"] = {"rows": measured, "total": round(sum(float(r.get("amount", 0) or 0) for r in measured), 2)}
        doc["kind"] = "measured"
    return doc


def _other_incidents(store: TableStore, alert: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Earlier alerts of the same customer tenant that were not dismissed (legitimate, ignore, test)."""
    from shared.views import alert_json, query_alerts

    this = _parse(alert.get("first_observed_at")) or _parse(alert.get("detected_at"))
    earlier = []
    for entity in query_alerts(store, customer=str(alert.get("customer_tenant_id") or "")):
        other = alert_json(entity)
        if other["key"] == alert.get("key") or other["is_test"] or other["resolved_reason"] in NOT_FRAUD:
            continue
        when = _parse(other["first_observed_at"]) or _parse(other["detected_at"])
        if this is None or when is None or when < this:
            earlier.append({"key": other["key"], "type": other["type"], "detected_at": other["detected_at"],
                            "status": other["status"], "resolved_reason": other["resolved_reason"]})
    return earlier


def _exception(alert: Mapping[str, Any], actions: Sequence[Mapping[str, Any]], investigation: Mapping[str, Any],
               cost: Mapping[str, Any], earlier: Sequence[Mapping[str, Any]], *, now: datetime) -> dict[str, Any]:
    """Whether the case looks eligible for Microsoft's one-time exception, check by check, and what is missing."""
    checks: list[dict[str, Any]] = []
    missing: list[str] = []

    def check(name: str, met: bool | None, detail: str) -> None:
        checks.append({"check": name, "met": met, "detail": detail})

    start = _parse(alert.get("first_observed_at")) or _parse(alert.get("detected_at"))
    if start is None:
        check("activity on or after 2023-04-01", None, "the alert gives no time for the activity")
        missing.append("when the compromise began (impact start)")
    else:
        check("activity on or after 2023-04-01", start >= EXCEPTION_EFFECTIVE_FROM,
              f"activity first observed {iso(start)}")
    if earlier:
        check("first incident for this customer tenant", False,
              f"{len(earlier)} earlier alert(s) of tenant {alert.get('customer_tenant_id')} in our records: "
              + ", ".join(str(e["key"]) for e in earlier[:5]))
    else:
        check("first incident for this customer tenant", True,
              f"no earlier alert of tenant {alert.get('customer_tenant_id')} in our records (Microsoft's records "
              "decide)")
    check("no earlier exception request for this customer tenant", None,
          "requests can be submitted only once per customer tenant ID; this app does not record requests")
    missing.append(f"confirm no exception request was ever submitted for customer tenant "
                   f"{alert.get('customer_tenant_id')}")
    covered_until = start + EXCEPTION_COVERAGE if start else None
    if start is not None:
        window_end = _parse((cost.get("window") or {}).get("to")) or now
        within = window_end <= covered_until if covered_until else None
        check("charges within the first 30 days", within,
              f"charges from {iso(start)}; the credit covers at most up to {iso(covered_until)}"
              + ("" if within else "; later charges are the partner's"))
    reason = str(alert.get("resolved_reason") or "")
    if reason in NOT_FRAUD:
        check("verified account compromise", False, f"the alert was resolved as {reason}")
    elif (investigation.get("document") or {}).get("users") or (investigation.get("document") or {}).get(
            "service_principals"):
        check("verified account compromise", True if reason == "fraud" else None,
              "the investigation names the principals that created or changed the affected resources"
              + ("" if reason == "fraud" else "; resolve the alert as fraud once the compromise is confirmed"))
    else:
        check("verified account compromise", None, "no investigation evidence of who did it")
        missing.append("evidence of the compromise (run the investigation; the principals and sign-ins involved)")
    if reason != "fraud":
        missing.append("the alert resolved as fraud (a confirmed compromise)")
    check("new commerce (Azure plan) subscription", None,
          f"subscription {alert.get('subscription_id') or '(none named)'}; this app does not tell new commerce "
          "from legacy subscriptions")
    missing.append("confirm the subscription is a new commerce (Azure plan) subscription")
    contained = [a for a in actions if a.get("state") in CONTAINMENT_DONE and a.get("action") in _containment()]
    check("partner mitigated the risk", bool(contained) or None,
          f"{len(contained)} containment action(s) succeeded" if contained else "no containment action succeeded "
          "yet")
    if not contained:
        missing.append("mitigation: containment actions (stop resources, suspend, revoke sessions) done")
    if cost.get("kind") != "measured":
        missing.append("the compromise-related charges from the invoice or cost data (the amount here is an "
                       "estimate)")
    missing.append("impact start and end, subscription and resource ids for the service request (in this record)")
    verdicts = [c["met"] for c in checks]
    if any(v is False for v in verdicts):
        verdict = "not eligible"
    elif all(v is True for v in verdicts):
        verdict = "looks eligible"
    else:
        verdict = "possibly eligible"
    return {"verdict": verdict, "looks_eligible": verdict != "not eligible", "checks": checks, "missing": missing,
            "coverage": {"from": iso(start), "until": iso(covered_until)}, "earlier_incidents": list(earlier),
            "policy": dict(EXCEPTION_POLICY)}


def _quota(quota: Mapping[str, Iterable[QuotaReading]] | None, subscription_id: str, *,
           errors: Sequence[str] = (), why_not: str = "") -> dict[str, Any]:
    from shared.operations.quota import recommend

    if quota is None:
        return {"read": False, "recommendations": [], "errors": list(errors),
                "note": why_not or "compute quota was not read for this export (the compute usages reader "
                                   "supplies it)"}
    wanted = {k: v for k, v in quota.items() if not subscription_id or k.lower() == subscription_id.lower()}
    found = [r.as_json() for r in recommend(wanted)]
    note = "read only: nothing is changed" if found else "no core quota is far above its use"
    if errors:
        note += f"; {len(errors)} region(s) could not be read"
    return {"read": True, "recommendations": found, "note": note, "errors": list(errors)}


def _read_quota(reader: QuotaReader, subscription_id: str, cost: Mapping[str, Any]) -> dict[str, Any]:
    """The subscription's quota in the regions of the affected VMs (where a miner would grow)."""
    regions = sorted({str(line["location"]).lower() for line in cost.get("lines", []) if line.get("location")})
    if not subscription_id or not regions:
        return _quota(None, subscription_id, why_not="no region known: no affected VM of a subscription was read")
    try:
        readings, errors = reader({subscription_id: regions})
    except Exception as exc:  # the record goes out without this section rather than not at all
        return _quota(None, subscription_id, why_not=f"compute quota could not be read: {type(exc).__name__}")
    return _quota(readings, subscription_id, errors=errors)


def build_incident(store: TableStore, alert_id: str, *, now: datetime | None = None,
                   vm_lookup: VmLookup | None = None, quota: Mapping[str, Iterable[QuotaReading]] | None = None,
                   spend: Sequence[Mapping[str, Any]] | None = None,
                   quota_reader: QuotaReader | None = None) -> IncidentRecord:
    """The incident record of one alert (its id or ``source:id``); IncidentNotFound when none is stored.

    ``quota`` (readings per subscription) or ``quota_reader`` (reads the affected VMs' regions) feed
    the quota hygiene section; with neither it says quota was not read.
    """
    from shared import sources
    from shared.alerts import from_entity
    from shared.response.investigation import load_investigation
    from shared.views import alert_json, find_alert

    now = now or datetime.now(UTC)
    entity = find_alert(store, alert_id.strip())
    if entity is None:
        raise IncidentNotFound(f"no alert {alert_id.strip()[:100]!r}; list them with `fraud-responder alerts list`")
    alert = alert_json(entity, detail=True)
    key = alert["key"]
    doc = load_investigation(store, from_entity(entity))
    actions = _actions(store, key)
    made = _decisions(store, key)
    detection = {
        "source": alert["source"], "source_name": sources.display_name(alert["source"]), "alert_id": alert["id"],
        "type": alert["type"], "category": alert["category"], "display_name": alert["display_name"],
        "description": alert.get("description", ""), "severity": alert["severity"],
        "confidence": alert["confidence"], "hit_count": alert["hit_count"], "is_test": alert["is_test"],
        "first_observed_at": alert["first_observed_at"], "last_observed_at": alert["last_observed_at"],
        "detected_at": alert["detected_at"], "raw_facts": alert.get("additional_details", {}),
    }
    investigation = _investigation(doc)
    cost = _cost(alert, actions, doc, now=now, vm_lookup=vm_lookup, spend=spend)
    notes = []
    if alert["is_test"]:
        notes.append("This is a Microsoft test alert: nothing happened.")
    return IncidentRecord(
        generated_at=now, alert=alert, detection=detection, actions=actions, decisions=made,
        timeline=_timeline({**alert, "source_name": detection["source_name"]}, actions, made),
        affected=_affected(alert, actions, doc), investigation=investigation, cost=cost,
        exception=_exception(alert, actions, investigation, cost, _other_incidents(store, alert), now=now),
        quota=(_read_quota(quota_reader, alert["subscription_id"], cost) if quota is None and quota_reader
               else _quota(quota, alert["subscription_id"])), notes=notes)


def live_vm_lookup(settings: Any, store: TableStore, tenant: str) -> VmLookup:
    """Reads a VM's size and region through ARM in the customer's tenant (GDAP), for the cost estimate."""
    from shared.response.actions.base import Clients

    clients = Clients(settings, store)

    def lookup(resource_id: str) -> tuple[str, str]:
        vm = clients.arm(tenant).get_vm(resource_id)
        return vm.size, vm.location

    return lookup


def render(record: IncidentRecord, fmt: str) -> str:
    """The record as ``md``, ``html`` or ``json`` text."""
    from shared.operations import incident_render

    if fmt == "json":
        return json.dumps(record.as_json(), indent=2, default=str) + "\n"
    if fmt == "md":
        return incident_render.markdown(record.as_json())
    if fmt == "html":
        return incident_render.html_document(record.as_json())
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
