"""`fraud-responder actions` and `contacts` as an operator runs them: a real process, real exit codes."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.response.jobs import handle_respond_message
from tests.response.respond_support import MINING_KEY, stage, take_job


def test_operators_list_approve_reject_and_undo_with_their_names_recorded(azurite: Azurite,
                                                                           fresh_sandbox: Sandbox) -> None:
    st = stage(azurite, fresh_sandbox)
    _job, body = take_job(st)
    handle_respond_message(body, responder=st.responder())
    env = {**os.environ, **st.env, "FRAUD_RESPONDER_LOCAL_SETTINGS": "no-such-file.json"}

    def cli(*args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        who = {"LOGNAME": user, "USER": user} if user else {}  # who is logged in on this machine
        return subprocess.run([sys.executable, "-m", "shared.cli", *args], env={**env, **who}, capture_output=True,
                              text=True, check=False, timeout=120)

    listed = cli("actions", "list", "--pending", "--json")
    assert listed.returncode == 0, listed.stderr
    pending = {(r["action"], r["target"]["id"]): r for r in json.loads(listed.stdout)}
    vm1 = pending[("stop_resources", ids.MINING_VM_1)]["id"]
    suspend = pending[("suspend_subscription", ids.PLAN_FABRIKAM)]["id"]
    assert all(r["state"] == "awaiting-approval" and r["alert"] == MINING_KEY for r in pending.values())
    table = cli("actions", "list", "--alert", ids.MINING_ALERT_EVENT_ID)
    assert table.returncode == 0 and table.stdout.split()[:3] == ["ID", "ALERT", "ACTION"]
    assert vm1 in table.stdout

    # against Azurite the decision is recorded as the local OS user, marked local; a typed name is refused
    typed = cli("actions", "approve", vm1, "--as", "mallory", "--json")
    assert typed.returncode == 1 and "--as is no longer accepted" in typed.stderr
    approved = cli("actions", "approve", vm1, "--json", user="bob")
    assert approved.returncode == 0, approved.stderr
    row = json.loads(approved.stdout)
    assert row["state"] == "succeeded" and row["approved_by"] == "local:bob" and row["actor"] == "operator:local:bob"
    assert fresh_sandbox.services["arm"].power_state(ids.MINING_VM_1) == "deallocated"  # type: ignore[attr-defined]

    rejected = cli("actions", "reject", suspend, "--reason", "customer confirmed the VMs")
    assert rejected.returncode == 0, rejected.stderr
    assert "rejected" in rejected.stdout
    subscriptions = fresh_sandbox.services["partner_center"].subscriptions  # type: ignore[attr-defined]
    assert subscriptions[(ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM)]["status"] == "active"

    undone = cli("actions", "undo", vm1, "--json")
    assert undone.returncode == 0, undone.stderr
    assert json.loads(undone.stdout)["undone_by"] == f"local:{getpass.getuser()}"
    assert fresh_sandbox.services["arm"].power_state(ids.MINING_VM_1) == "running"  # type: ignore[attr-defined]

    everything = {r["id"]: r for r in json.loads(cli("actions", "list", "--json").stdout)}
    assert everything[suspend]["state"] == "rejected"
    assert everything[suspend]["rejected_by"] == f"local:{getpass.getuser()}"
    assert everything[suspend]["reject_reason"] == "customer confirmed the VMs"
    assert everything[vm1]["state"] == "undone" and everything[vm1]["approved_by"] == "local:bob"
    notify = next(r["id"] for r in everything.values() if r["action"] == "notify")

    # refusals: exit 1 with one line saying why
    for args, why in (((("approve", suspend)), "rejected"), (("undo", vm1), "only succeeded"),
                      (("undo", notify), "cannot be undone"), (("approve", "0000000000"), "no action")):
        refused = cli("actions", *args)
        assert refused.returncode == 1, (args, refused.stdout)
        assert why in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert cli("actions", "approve").returncode == 2

    # contacts: tags and e-mail addresses per customer
    assert cli("contacts", "set", ids.CUSTOMER_NORTHWIND, "--email", "soc@northwind.example", "--tag", "vip",
               "--name", "Northwind").returncode == 0
    shown = json.loads(cli("contacts", "list", "--json").stdout)
    assert shown["partner"] == [ids.SECURITY_CONTACT]
    assert shown["customers"][0]["tags"] == ["vip"] and shown["customers"][0]["emails"] == ["soc@northwind.example"]
    bad = cli("contacts", "set", ids.CUSTOMER_NORTHWIND, "--email", "nope")
    assert bad.returncode == 1 and "not an e-mail address" in bad.stderr
