"""The action catalogue is the one place an action is described: policy, engine, docs and API ask it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.azurite import Azurite
from sandbox.core import Sandbox
from shared.alerts import row_key
from shared.names import ALERTS_TABLE
from shared.response import catalogue, registry
from shared.response.ledger import AWAITING_APPROVAL, SUCCEEDED, UNDONE
from shared.response.policy import PolicyError, parse_policy
from tests.response import toy_action
from tests.response.respond_support import MINING_KEY, by_action, policy, respond_one, stage, take_job
from tests.test_cold_start import HEAVY

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILT_IN = ("notify", "investigate", "stop_resources", "revoke_sessions", "rotate_credentials",
            "suspend_subscription", "cancel_azure_subscription", "update_status")


@pytest.fixture
def toy() -> Iterator[str]:
    unregister = catalogue.register(toy_action.SPEC)
    yield toy_action.NAME
    unregister()


def test_a_registered_toy_action_runs_through_policy_and_response(azurite: Azurite, fresh_sandbox: Sandbox,
                                                                  tmp_path: Path, toy: str) -> None:
    st = stage(azurite, fresh_sandbox, tmp_path=tmp_path, policy=policy(
        ("notify", "enforce", ""), (toy, "enforce", 'label = "amber"'), ("stop_resources", "approve", "")))
    _job, body = take_job(st)

    result = respond_one(body, responder=st.responder())

    assert result is not None and not result.deferred
    assert [r.action for r in result.rows][-1] == "notify"  # the report still runs last
    assert result.rows.index(by_action(result.rows, toy)[0]) < result.rows.index(
        by_action(result.rows, "stop_resources")[0])  # the catalogue's order, not the rule's
    (row,) = by_action(result.rows, toy)
    assert row.state == SUCCEEDED and row.params["label"] == "amber"
    marker = st.store.get(ALERTS_TABLE, row.alert_partition, "toy~" + row_key(MINING_KEY))
    assert marker is not None and marker["label"] == "amber"
    assert by_action(result.rows, "stop_resources")[0].state == AWAITING_APPROVAL

    undone = st.responder().undo(row.action_id, "alice")

    assert undone.state == UNDONE
    assert st.store.get(ALERTS_TABLE, row.alert_partition, "toy~" + row_key(MINING_KEY)) is None


def test_the_policy_checks_a_registered_action_s_parameters(toy: str) -> None:
    text = policy((toy, "enforce", 'label = "green"'))
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, path="p.toml")
    assert f'action "{toy}": label must be one of "red", "amber", not \'green\'' in str(caught.value)
    assert toy in catalogue.names()


def test_unregistering_removes_the_action_from_the_policy_s_choices() -> None:
    unregister = catalogue.register(toy_action.SPEC)
    unregister()
    with pytest.raises(PolicyError) as caught:
        parse_policy(policy((toy_action.NAME, "enforce", "")))
    assert "valid actions: " + ", ".join(BUILT_IN) in str(caught.value)


def test_a_name_can_be_registered_once() -> None:
    with pytest.raises(ValueError, match="already in the catalogue"):
        catalogue.register(catalogue.spec("notify"))


def test_each_built_in_spec_agrees_with_its_implementation() -> None:
    assert catalogue.names() == BUILT_IN
    for spec in catalogue.specs():
        action = registry.get_action(spec.name)
        assert action.name == spec.name
        assert action.reversible == spec.reversible, spec.name


def test_the_docs_actions_table_is_the_catalogue_s() -> None:
    doc = (REPO_ROOT / "docs" / "policy.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- actions table:[^\n]*-->\n(.*?)\n<!-- end of actions table -->", doc, re.S)
    assert found is not None, "docs/policy.md lost its generated actions table markers"
    assert found.group(1) == catalogue.markdown_table(), \
        "docs/policy.md is out of date: paste the output of `python -m shared.response.catalogue`"


def test_the_openapi_action_enum_is_the_catalogue() -> None:
    from shared.admin.openapi import openapi_document

    action = openapi_document()["components"]["schemas"]["Action"]["properties"]["action"]
    assert action["enum"] == list(catalogue.names())


def test_reading_the_catalogue_and_a_policy_loads_no_heavy_sdk_nor_health() -> None:
    code = ("import json, sys; from pathlib import Path; from shared.response import catalogue; "
            "from shared.response.policy import load_policy; load_policy(Path('policy/default.toml')); "
            "catalogue.markdown_table(); print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)] == []
    assert "shared.health" not in loaded  # health asks the policy; the policy never asks health
    assert not [m for m in loaded if m.startswith("shared.response.actions.")]


SOURCE_DIRS = ("shared", "functions", "devhost")


def test_each_action_name_is_written_in_code_only_by_its_module_the_catalogue_and_the_default_policy() -> None:
    """Code that branches on an action's name (a quoted name, an import of its module) must ask the catalogue."""
    files = [p for d in SOURCE_DIRS for p in (REPO_ROOT / d).rglob("*.py")] + [REPO_ROOT / "function_app.py"]
    texts = {p.relative_to(REPO_ROOT).as_posix(): p.read_text(encoding="utf-8") for p in files}
    allowed = {"shared/response/catalogue.py"}
    offenders = {}
    for name in BUILT_IN:
        pattern = re.compile(rf"""(["']){name}\1|actions\.{name}\b""")
        where = sorted(path for path, text in texts.items() if pattern.search(text)
                       and path not in allowed | {f"shared/response/actions/{name}.py"})
        if where:
            offenders[name] = where
    assert offenders == {}


def test_a_spec_whose_default_is_not_a_choice_is_refused() -> None:
    from dataclasses import replace

    from shared.response.catalogue import ParamSpec

    broken = replace(toy_action.SPEC, params={"label": ParamSpec("choice", "blue", "colour", ("red", "amber"))})
    with pytest.raises(ValueError, match="default of parameter label"):
        catalogue.register(broken)()  # (unregisters at once should it ever be accepted)
    assert toy_action.NAME not in catalogue.names()
