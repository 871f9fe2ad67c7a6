"""The incident record (``IncidentRecord.as_json()``) as Markdown and as a self-contained HTML page.

Why two more renderings of one model: Markdown pastes into a ticket or a service request; the HTML
page is what a partner forwards to a customer or to Microsoft, so it must read well on screen and
on paper (print CSS, A4, table headers repeated on each page), load nothing from elsewhere (no
scripts, fonts, images or links to fetch), and never let alert text become markup: every value
from an alert, a ledger row or the investigation is escaped (``html.escape``) before it is placed.

Both renderers read only the JSON shape, so anything an action writes that this code does not
know (``data``, ``other`` of a ledger row) is still shown, as key: value pairs, never dropped.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

TITLE: Final = "Incident record"


_ISO_TIME: Final = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)$")


def _text(value: Any) -> str:
    """A value as a reader reads it: UTC times to the second, yes/no, JSON for structures."""
    if value is None or value == "":
        return ""
    if isinstance(value, str) and _ISO_TIME.match(value):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _pairs(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(str(k), _text(v)) for k, v in values.items() if _text(v)]


def _details(action: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What an action recorded beyond the common columns: its data, undo data and unknown properties."""
    pairs: list[tuple[str, str]] = []
    for name in ("data", "undo_data", "other"):
        value = action.get(name)
        if isinstance(value, Mapping):
            pairs += [(f"{k}" if name == "data" else f"{name}.{k}", v) for k, v in _pairs(value)]
    for name in ("found_state", "reject_reason", "expired_reason", "rule", "reason"):
        if action.get(name):
            pairs.append((name, _text(action[name])))
    return pairs


def _who(action: Mapping[str, Any]) -> str:
    return _text(action.get("expired_by") or action.get("undone_by") or action.get("rejected_by")
                 or action.get("approved_by") or action.get("actor"))


def _result(action: Mapping[str, Any]) -> str:
    return _text(action.get("error") or action.get("expired_reason") or action.get("undo_summary")
                 or action.get("summary") or action.get("reject_reason"))


def _money(value: Any, currency: str = "USD") -> str:
    return f"{currency} {float(value):,.2f}" if isinstance(value, (int, float)) else "unknown"


def _met(value: Any) -> str:
    return {True: "met", False: "NOT met"}.get(value, "unknown")


# --- Markdown -------------------------------------------------------------------------------------


def _md(value: Any) -> str:
    """A table cell or inline value: one line, pipes and markup characters escaped."""
    text = _text(value).replace("\r", " ").replace("\n", " ")
    for ch in "\\`*_[]<>|":
        text = text.replace(ch, "\\" + ch)
    return text


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_md(v) for v in row) + " |" for row in rows]
    return lines


def markdown(doc: Mapping[str, Any]) -> str:
    alert, detection = doc["alert"], doc["detection"]
    customer = alert.get("customer_name") or alert.get("customer_tenant_id")
    out = [f"# {TITLE}: alert {_md(alert['key'])}", "",
           f"Generated {_md(doc['generated_at'])} by the CSP fraud responder (record version "
           f"{doc['incident_record_version']}).", ""]
    out += [f"> {_md(note)}" for note in doc.get("notes", [])]
    out += ["## Summary", "",
            f"- Customer: {_md(customer)} (tenant {_md(alert['customer_tenant_id'])})",
            f"- Subscription: {_md(alert.get('subscription_name'))} {_md(alert['subscription_id'])}",
            f"- Status: {_md(alert['status'])}" + (f", resolved as {_md(alert['resolved_reason'])}"
                                                   if alert.get("resolved_reason") else ""),
            f"- Estimated cost: {_md(_money(doc['cost_estimate']['total']))} ({_md(doc['cost_estimate']['kind'])})",
            f"- Microsoft's one-time exception: {_md(doc['exception_eligibility']['verdict'])}",
            f"- Actions: {len(doc['actions'])}; decisions: {len(doc['decisions'])}", ""]
    out += ["## Microsoft's detection", ""]
    out += _md_table(["Field", "Value"], [[k, detection.get(k)] for k in (
        "source_name", "alert_id", "display_name", "type", "category", "severity", "confidence", "hit_count",
        "first_observed_at", "last_observed_at", "detected_at", "description")])
    raw = detection.get("raw_facts") or {}
    if raw:
        out += ["", "Raw facts as Microsoft sent them:", ""]
        out += _md_table(["Fact", "Value"], _pairs(raw))
    out += ["", "## Timeline", ""]
    out += _md_table(["When", "What", "Who", "Mode", "Result"],
                     [[e["at"], e["what"], e["who"], e["mode"], e["result"]] for e in doc["timeline"]])
    out += ["", "## Actions", ""]
    out += _md_table(["Id", "Action", "Target", "Mode", "State", "By", "Planned", "Last change", "Result"],
                     [[a["id"], a["action"], (a.get("target") or {}).get("display") or (a.get("target") or {}).get(
                         "id"), a["mode"], a["state"], _who(a), a["created_at"], a["updated_at"], _result(a)]
                      for a in doc["actions"]])
    for action in doc["actions"]:
        details = _details(action)
        if details:
            out += ["", f"Details of {_md(action['id'])} ({_md(action['action'])}): "
                    + "; ".join(f"{_md(k)}: {_md(v)}" for k, v in details)]
    out += ["", "## Decisions", ""]
    out += _md_table(["When", "Decision", "Operator", "Action", "Target", "Outcome", "Reason"],
                     [[d["at"], d["decision"], d["operator"], d["action_id"], d["target"], d["outcome"], d["reason"]]
                      for d in doc["decisions"]]) if doc["decisions"] else ["No decisions recorded."]
    affected = doc["affected"]
    out += ["", "## Affected resources", ""]
    out += _md_table(["Resource", "Type", "Named by"], [[r["id"], r["type"], ", ".join(r["named_by"])]
                                                      for r in affected["resources"]])
    out += ["", "## Principals involved", ""]
    out += _md_table(["Principal", "Kind", "Id", "Operations", "Named by"],
                     [[p.get("display") or p.get("upn") or p["id"], p["kind"], p["id"], p.get("operations_total", ""),
                       ", ".join(p["named_by"])] for p in affected["principals"]]
                     ) if affected["principals"] else ["None identified."]
    out += ["", "## Investigation findings", ""]
    out += [f"- {_md(f)}" for f in doc["investigation"]["findings"]]
    cost = doc["cost_estimate"]
    out += ["", "## Cost over the incident window (ESTIMATE)" if cost["kind"] == "estimate"
            else "## Cost over the incident window (measured)", "",
            f"Total: **{_md(_money(cost['total']))}** from {_md(cost['window']['from'])} to "
            f"{_md(cost['window']['to'])}" + ("" if cost["complete"] else " (incomplete: see the notes per VM)"),
            "", f"Basis: {_md(cost['basis'])}.", f"{_md(cost['spend_note'])}", ""]
    out += _md_table(["VM", "Size", "Region", "From", "To", "Hours", "Price/hour", "Estimate", "Note"],
                     [[c["resource_id"], c["size"], c["location"], c["from"], c["to"], c["hours"],
                       c["price_per_hour"], _money(c["estimate"]) if c["estimate"] is not None else "", c["note"]]
                      for c in cost["lines"]]) if cost["lines"] else ["No affected VM named."]
    exception = doc["exception_eligibility"]
    out += ["", "## Microsoft's one-time exception for a first compromise", "",
            f"Verdict: **{_md(exception['verdict'])}**. {_md(exception['policy']['summary'])}",
            f"Source: {_md(exception['policy']['source'])}.", ""]
    out += _md_table(["Condition", "Status", "Detail"], [[c["check"], _met(c["met"]), c["detail"]]
                                                        for c in exception["checks"]])
    out += ["", "Still missing to file the request:", ""] + [f"- {_md(m)}" for m in exception["missing"]]
    quota = doc["quota_hygiene"]
    out += ["", "## Quota hygiene (read only)", "", _md(quota["note"])]
    if quota["recommendations"]:
        out += [""] + [f"- {_md(r['recommendation'])}" for r in quota["recommendations"]]
    return "\n".join(out).rstrip() + "\n"


# --- HTML -----------------------------------------------------------------------------------------

_CSS: Final = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; color: #1b1b1b;
       margin: 2rem auto; max-width: 68rem; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; margin-top: 2rem;
     border-bottom: 2px solid #d0d7de; padding-bottom: .2rem; }
.meta { color: #555; } .note { background: #fff8c5; border: 1px solid #d4a72c; padding: .5rem .8rem; }
table { border-collapse: collapse; width: 100%; margin: .6rem 0; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: .3rem .45rem; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f3f5f7; }
.summary td:first-child { width: 14rem; font-weight: 600; }
.estimate { border: 2px dashed #9a6700; padding: .6rem .9rem; background: #fffbeb; }
.total { font-size: 1.25rem; font-weight: 700; }
.verdict { font-weight: 700; } .met { color: #1a7f37; } .notmet { color: #cf222e; } .unknown { color: #6e7781; }
dl.details { margin: .2rem 0; font-size: 12px; } dl.details dt { font-weight: 600; display: inline; }
dl.details dd { display: inline; margin: 0 .8rem 0 .2rem; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 10.5pt; }
  h2 { break-after: avoid; }
  table { font-size: 9pt; }
  thead { display: table-header-group; }
  tr, .estimate, .note { break-inside: avoid; }
}
"""


def _e(value: Any) -> str:
    return html.escape(_text(value), quote=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, css: str = "", raw_last: bool = False) -> str:
    """A table; every cell escaped (``raw_last``: the last cell is markup this module built from escaped parts)."""
    head = "".join(f"<th scope=\"col\">{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = [f"<td>{_e(v)}</td>" for v in (row[:-1] if raw_last else row)]
        if raw_last:
            cells.append(f"<td>{row[-1]}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    klass = f' class="{css}"' if css else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _dl(pairs: Sequence[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    return "<dl class=\"details\">" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in pairs) + "</dl>"


def html_document(doc: Mapping[str, Any]) -> str:
    alert, detection = doc["alert"], doc["detection"]
    customer = alert.get("customer_name") or alert.get("customer_tenant_id")
    cost, exception, quota = doc["cost_estimate"], doc["exception_eligibility"], doc["quota_hygiene"]
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
             "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
             f"<title>{_e(TITLE)}: {_e(customer)} alert {_e(alert['id'])}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{_e(TITLE)}: {_e(detection.get('display_name') or alert['type'])}</h1>",
             f"<p class=\"meta\">Alert <code>{_e(alert['key'])}</code>; generated {_e(doc['generated_at'])} by the "
             f"CSP fraud responder (record version {_e(doc['incident_record_version'])}).</p>"]
    parts += [f"<p class=\"note\">{_e(note)}</p>" for note in doc.get("notes", [])]
    parts.append("<h2 id=\"summary\">Summary</h2>")
    resolved = f", resolved as {alert['resolved_reason']}" if alert.get("resolved_reason") else ""
    parts.append(_table(["Item", "Value"], [
        ["Customer", f"{customer} (tenant {alert['customer_tenant_id']})"],
        ["Subscription", f"{alert.get('subscription_name') or ''} {alert['subscription_id']}".strip()],
        ["Status", f"{alert['status']}{resolved}"],
        ["Estimated cost" if cost["kind"] == "estimate" else "Cost", _money(cost["total"])],
        ["One-time exception", exception["verdict"]],
        ["Actions / decisions", f"{len(doc['actions'])} / {len(doc['decisions'])}"],
    ], css="summary"))
    parts.append("<h2 id=\"detection\">Microsoft's detection</h2>")
    parts.append(_table(["Field", "Value"], [[k.replace("_", " "), detection.get(k)] for k in (
        "source_name", "alert_id", "display_name", "type", "category", "severity", "confidence", "hit_count",
        "first_observed_at", "last_observed_at", "detected_at", "description")], css="summary"))
    raw = detection.get("raw_facts") or {}
    if raw:
        parts.append("<p>Raw facts as Microsoft sent them:</p>")
        parts.append(_table(["Fact", "Value"], _pairs(raw), css="raw"))
    parts.append("<h2 id=\"timeline\">Timeline</h2>")
    parts.append(_table(["When", "What", "Who", "Mode", "Result"],
                        [[e["at"], e["what"], e["who"], e["mode"], e["result"]] for e in doc["timeline"]],
                        css="timeline"))
    parts.append("<h2 id=\"actions\">Actions</h2>")
    rows = []
    for a in doc["actions"]:
        target = a.get("target") or {}
        rows.append([a["id"], a["action"], target.get("display") or target.get("id"), a["mode"], a["state"],
                     _who(a), a["created_at"], a["updated_at"], _e(_result(a)) + _dl(_details(a))])
    parts.append(_table(["Id", "Action", "Target", "Mode", "State", "By", "Planned", "Last change", "Result"],
                        rows, css="actions", raw_last=True) if rows else "<p>No actions recorded.</p>")
    parts.append("<h2 id=\"decisions\">Approvals and decisions</h2>")
    parts.append(_table(["When", "Decision", "Operator", "Action", "Target", "Outcome", "Reason"],
                        [[d["at"], d["decision"], d["operator"], d["action_id"], d["target"], d["outcome"],
                          d["reason"]] for d in doc["decisions"]], css="decisions")
                 if doc["decisions"] else "<p>No decisions recorded.</p>")
    affected = doc["affected"]
    parts.append("<h2 id=\"affected\">Affected resources and principals</h2>")
    parts.append(_table(["Resource", "Type", "Named by"],
                        [[r["id"], r["type"], ", ".join(r["named_by"])] for r in affected["resources"]],
                        css="resources") if affected["resources"] else "<p>No resource named.</p>")
    parts.append(_table(["Principal", "Kind", "Id", "Operations", "Named by"],
                        [[p.get("display") or p.get("upn") or p["id"], p["kind"], p["id"],
                          p.get("operations_total", ""), ", ".join(p["named_by"])] for p in affected["principals"]],
                        css="principals") if affected["principals"] else "<p>No principal identified.</p>")
    parts.append("<h2 id=\"investigation\">Investigation findings</h2><ul>"
                 + "".join(f"<li>{_e(f)}</li>" for f in doc["investigation"]["findings"]) + "</ul>")
    label = "Estimated cost over the incident window" if cost["kind"] == "estimate" else "Cost over the incident window"
    parts.append(f"<h2 id=\"cost\">{_e(label)}</h2><div class=\"estimate\">")
    parts.append(f"<p><span class=\"total\" id=\"cost-total\">{_e(_money(cost['total']))}</span> "
                 f"{'(ESTIMATE) ' if cost['kind'] == 'estimate' else ''}from {_e(cost['window']['from'])} to "
                 f"{_e(cost['window']['to'])}{'' if cost['complete'] else '; incomplete, see the notes per VM'}.</p>")
    parts.append(f"<p>Basis: {_e(cost['basis'])}.</p><p>{_e(cost['spend_note'])}</p>")
    parts.append(_table(["VM", "Size", "Region", "From", "To", "Hours", "Price/hour", "Estimate", "Note"],
                        [[c["resource_id"], c["size"], c["location"], c["from"], c["to"], c["hours"],
                          c["price_per_hour"], _money(c["estimate"]) if c["estimate"] is not None else "",
                          c["note"]] for c in cost["lines"]], css="cost") if cost["lines"]
                 else "<p>No affected VM named.</p>")
    parts.append("</div>")
    parts.append("<h2 id=\"exception\">Microsoft's one-time exception for a first compromise</h2>")
    parts.append(f"<p>Verdict: <span class=\"verdict\" id=\"verdict\">{_e(exception['verdict'])}</span>. "
                 f"{_e(exception['policy']['summary'])}</p><p class=\"meta\">Source: "
                 f"{_e(exception['policy']['source'])}.</p>")
    klass = {True: "met", False: "notmet"}
    parts.append(_table(["Condition", "Detail", "Status"],
                        [[c["check"], c["detail"],
                          f"<span class=\"{klass.get(c['met'], 'unknown')}\">{_e(_met(c['met']))}</span>"]
                         for c in exception["checks"]], css="exception", raw_last=True))
    parts.append("<p>Still missing to file the request:</p><ul class=\"missing\">"
                 + "".join(f"<li>{_e(m)}</li>" for m in exception["missing"]) + "</ul>")
    parts.append(f"<h2 id=\"quota\">Quota hygiene (read only)</h2><p>{_e(quota['note'])}</p>")
    if quota["recommendations"]:
        parts.append("<ul class=\"quota\">" + "".join(f"<li>{_e(r['recommendation'])}</li>"
                                                      for r in quota["recommendations"]) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
