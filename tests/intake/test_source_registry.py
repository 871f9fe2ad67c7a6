"""A new alert source is one module and one ``register`` call: this test module is the toy source.

It is a detector-like source (``writes_status=False``): its alerts go through the real sync into
Azurite, the policy (matched by its own source name and category), the respond queue and the
responder, which records the status locally, notifies through the Graph stand-in with the toy
category's headline, and writes nothing to Microsoft. No other file names the toy source.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared import sources
from shared.alerts import STATUSES, Alert, AlertParseError, parse_alert, row_key
from shared.intake.jobs import IntakeRuntime, run_sync
from shared.intake.sync import SyncScope
from shared.names import ALERTS_TABLE
from shared.response.ledger import SUCCEEDED
from shared.response.policy import parse_policy
from shared.settings import Settings, load_settings
from shared.storage.tables import TableStore
from tests.conftest import REPO_ROOT, settings_env
from tests.response.respond_support import Stage, respond_one, take_job, writes

NAME = "toy"
STORAGE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
RECORDS: list[Any] = []
"""What the toy detector "finds" on its next run."""

ENTRY = sources.SourceEntry(
    name=NAME, display_name="Toy detector", module=__name__, credential="", writes_status=False,
    categories=(sources.Category("toy_thing", "Toy thing detected", throttle_hours=6.0),),
)


# --- the toy source module: parse, categorise, fetcher -----------------------------------------------


def parse(record: Mapping[str, Any]) -> Alert:
    if not isinstance(record, Mapping) or not record.get("id") or not record.get("tenant"):
        raise AlertParseError("toy record needs id and tenant")
    status = str(record.get("status", "active"))
    return Alert(
        id=str(record["id"]), source=NAME, customer_tenant_id=str(record["tenant"]).lower(),
        subscription_id=str(record.get("subscription", "")).lower(), type=str(record.get("kind", "ToyThing")),
        status=status if status in STATUSES else "active", severity=str(record.get("severity", "high")),
        confidence="high", detected_at=None, first_observed_at=None, last_observed_at=None,
        hit_count=record.get("hits"), affected_resources=(), additional_details={}, is_test=False,
        raw=dict(record), display_name=str(record.get("title", "")),
    )


def categorise(alert_type: str) -> str:
    return "toy_thing" if alert_type.lower().startswith("toy") else "other"


class _ToyFetcher:
    name = NAME

    def pages(self, scope: SyncScope) -> Iterator[list[Any]]:
        yield list(RECORDS)


def fetcher(settings: Settings, store: TableStore, providers: dict[str, Any]) -> _ToyFetcher:
    return _ToyFetcher()


# --- tests --------------------------------------------------------------------------------------------


@pytest.fixture
def toy() -> Iterator[sources.SourceEntry]:
    sources.register(ENTRY)
    RECORDS.clear()
    yield ENTRY
    sources.unregister(NAME)
    RECORDS.clear()


POLICY = """version = 1
[[rules]]
name = "toy-rule"
[rules.match]
source = "toy"
category = "toy_thing"
[[rules.actions]]
action = "update_status"
mode = "enforce"
status = "investigating"
[[rules.actions]]
action = "notify"
mode = "enforce"
[[rules]]
name = "rest"
[[rules.actions]]
action = "notify"
mode = "enforce"
"""


def test_a_registered_source_is_known_everywhere_that_lists_sources(toy: sources.SourceEntry) -> None:
    from shared.admin.openapi import _alert_schema

    assert NAME in sources.names() and "toy_thing" in sources.categories()
    assert sources.credential(NAME) == NAME  # no credential declared: health names it by the source
    settings = load_settings({**STORAGE, "ALERT_SOURCES": "partner_center,toy"}, local_settings=REPO_ROOT / "nope.json")
    assert settings.alert_sources == ("partner_center", "toy")
    assert "toy" in _alert_schema()["properties"]["source"]["enum"]
    # the policy accepts the toy source and its category, and still names the choices when wrong
    assert parse_policy(POLICY).rules[0].name == "toy-rule"
    with pytest.raises(ValueError, match="toy_thing"):
        parse_policy(POLICY.replace('category = "toy_thing"', 'category = "toy_thingy"'))
    alert = parse_alert(NAME, {"id": "t-1", "tenant": ids.CUSTOMER_FABRIKAM, "kind": "ToyThing"})
    assert (alert.key, alert.category) == ("toy:t-1", "toy_thing")


def test_an_unregistered_source_is_refused_with_the_choices(toy: sources.SourceEntry) -> None:
    with pytest.raises(AlertParseError, match=r"unknown alert source 'nope'.*toy"):
        parse_alert("nope", {"id": "x"})
    with pytest.raises(ValueError, match="unknown value 'nope'; choose from partner_center, graph, toy"):
        load_settings({**STORAGE, "ALERT_SOURCES": "nope"}, local_settings=REPO_ROOT / "nope.json")


def test_toy_alerts_run_through_sync_policy_and_response(toy: sources.SourceEntry, azurite: Azurite,
                                                         fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY, encoding="utf-8")
    env = settings_env(azurite, **fresh_sandbox.app_settings(), POLICY_PATH=str(path), ALERT_SOURCES="toy")
    settings = load_settings(env, local_settings=REPO_ROOT / "does-not-exist.json")
    runtime = IntakeRuntime.from_settings(settings)
    RECORDS.extend([
        {"id": "t-1", "tenant": ids.CUSTOMER_FABRIKAM, "subscription": ids.SUB_TAILSPIN_LAB,
         "kind": "ToyThing", "title": "A toy thing was seen", "hits": 3},
        {"no id": True},  # one bad record is quarantined; the others go on
    ])

    run = run_sync(runtime, SyncScope(), trigger="test")  # ALERT_SOURCES = toy
    assert run.ok, run.as_dict()
    assert run.results[NAME].new == 1 and run.results[NAME].quarantined == 1
    st = Stage(settings, runtime, env)
    entity = st.store.get(ALERTS_TABLE, ids.CUSTOMER_FABRIKAM, row_key("toy:t-1"))
    assert entity is not None and entity["source"] == NAME and entity["category"] == "toy_thing"

    job, body = take_job(st, "toy:t-1")
    mark = len(fresh_sandbox.requests())
    result = respond_one(body, responder=st.responder())

    assert result is not None and result.rule == "toy-rule"
    rows = st.responder().list_actions(alert="toy:t-1")
    assert {r.action: r.state for r in rows} == {"update_status": SUCCEEDED, "notify": SUCCEEDED}
    # status recorded locally: the stored row says investigating, nothing was written to Microsoft
    stored = st.store.get(ALERTS_TABLE, ids.CUSTOMER_FABRIKAM, row_key("toy:t-1"))
    assert stored is not None and stored["status"] == "investigating"
    changes = writes(fresh_sandbox, mark)
    assert changes and all(r.service == "graph" and r.path.endswith("/sendMail") for r in changes), changes
    # the e-mail carries the toy category's headline and the source's display name
    [mail] = fresh_sandbox.services["graph"].sent_mail()  # type: ignore[attr-defined]
    assert "Toy thing detected" in mail["message"]["subject"]
    assert "Alert t-1 from Toy detector" in mail["message"]["body"]["content"]
    assert st.job_state(job) == "handled"
