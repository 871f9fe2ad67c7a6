"""A new source and a new action are one module each, registered once: nothing else is edited.

The toy source is ``tests/intake/test_source_registry.py`` (a detector-like source that writes
nothing to Microsoft) and the toy action ``tests/response/toy_action.py`` (a marker row beside the
alert, undoable). Registered together, the toy source's alert goes through the real sync into
Azurite, the policy (matched by the toy source's name and category and naming the toy action),
the respond queue and the responder; the toy action runs and its undo reverses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared import sources
from shared.alerts import row_key
from shared.intake.jobs import IntakeRuntime, run_sync
from shared.intake.sync import SyncScope
from shared.names import ALERTS_TABLE
from shared.response import catalogue
from shared.response.ledger import SUCCEEDED, UNDONE
from shared.settings import load_settings
from tests.conftest import REPO_ROOT, settings_env
from tests.intake import test_source_registry as toy_source
from tests.response import toy_action
from tests.response.respond_support import Stage, respond_one, take_job

POLICY = f"""version = 1
[[rules]]
name = "toy-detector"
[rules.match]
source = "{toy_source.NAME}"
category = "toy_thing"
[[rules.actions]]
action = "{toy_action.NAME}"
mode = "enforce"
label = "amber"
[[rules.actions]]
action = "notify"
mode = "enforce"
[[rules]]
name = "rest"
[[rules.actions]]
action = "notify"
mode = "enforce"
"""


@pytest.fixture
def registered() -> Iterator[None]:
    sources.register(toy_source.ENTRY)
    unregister_action = catalogue.register(toy_action.SPEC)
    toy_source.RECORDS.clear()
    yield
    toy_source.RECORDS.clear()
    unregister_action()
    sources.unregister(toy_source.NAME)


def test_a_toy_source_and_a_toy_action_run_through_sync_policy_and_response(
        registered: None, azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY, encoding="utf-8")
    env = settings_env(azurite, **fresh_sandbox.app_settings(), POLICY_PATH=str(path),
                       ALERT_SOURCES=toy_source.NAME)
    settings = load_settings(env, local_settings=REPO_ROOT / "does-not-exist.json")
    runtime = IntakeRuntime.from_settings(settings)
    toy_source.RECORDS.append({"id": "t-9", "tenant": ids.CUSTOMER_FABRIKAM, "subscription": ids.SUB_FABRIKAM_PROD,
                               "kind": "ToyThing", "title": "Something toy-like", "hits": 1})

    run = run_sync(runtime, SyncScope(), trigger="test")

    assert run.ok and run.results[toy_source.NAME].new == 1, run.as_dict()
    st = Stage(settings, runtime, env)
    key = f"{toy_source.NAME}:t-9"
    job, body = take_job(st, key)
    result = respond_one(body, responder=st.responder())

    assert result is not None and result.rule == "toy-detector"
    rows = {r.action: r for r in st.responder().list_actions(alert=key)}
    assert {name: row.state for name, row in rows.items()} == {toy_action.NAME: SUCCEEDED, "notify": SUCCEEDED}
    marker = st.store.get(ALERTS_TABLE, ids.CUSTOMER_FABRIKAM, "toy~" + row_key(key))
    assert marker is not None and marker["label"] == "amber"
    assert st.job_state(job) == "handled"

    undone = st.responder().undo(rows[toy_action.NAME].action_id, "local:alice")

    assert undone.state == UNDONE
    assert st.store.get(ALERTS_TABLE, ids.CUSTOMER_FABRIKAM, "toy~" + row_key(key)) is None
