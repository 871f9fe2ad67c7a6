"""`fraud-responder posture` and the digest's posture section, read from the sandbox's Graph (partner security
score, GDAP relationships) and Partner Center (non-MFA partner principals) with the app's real clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from sandbox.faults import Fault
from shared.operations.digest import build_digest
from shared.operations.posture import collect
from shared.response.actions.base import Clients
from tests.conftest import REPO_ROOT
from tests.response.respond_support import Stage, stage, writes


def cli(st: Stage, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **st.env, "FRAUD_RESPONDER_LOCAL_SETTINGS": str(REPO_ROOT / "does-not-exist.json")}
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], env=env, capture_output=True, text=True,
                          check=False, timeout=120, cwd=REPO_ROOT)


def _graph(sandbox: Sandbox) -> Any:
    return sandbox.services["graph"]


def make_clean(sandbox: Sandbox) -> None:
    """Every requirement met, nobody without MFA, GDAP least-privileged and time-bound."""
    state = _graph(sandbox).posture()
    requirements = [{**r, "complianceStatus": "compliant"} for r in state["requirements"]]
    relationships = [{**r, "autoExtendDuration": "PT0S", "accessDetails": {"unifiedRoles": [
        {"roleDefinitionId": "729827e3-9c14-49f7-bb1b-9608f156bbb8"}]}} for r in state["relationships"]]
    _graph(sandbox).set_posture(requirements=requirements, relationships=relationships)
    sandbox.services["partner_center"].non_mfa_principals = []  # type: ignore[attr-defined]


def test_findings_name_each_problem_with_its_fix_and_leave_the_clean_ones_out(azurite: Azurite,
                                                                              fresh_sandbox: Sandbox) -> None:
    st = stage(azurite, fresh_sandbox)
    mark = len(fresh_sandbox.requests())

    report = collect(Clients(st.settings, st.store))

    assert report.errors == [] and not report.clean
    assert writes(fresh_sandbox, mark) == []  # read only
    found = {(f.area, f.subject): f for f in report.findings}
    assert set(found) == {
        ("security_score", "MFA for the partner's admins"), ("security_score", "MFA for customers' admins"),
        ("security_score", "Spending budgets on customers' Azure subscriptions"),
        ("mfa", "helpdesk@contoso-csp.example"),
        ("gdap", "Fabrikam - full admin (migrated from DAP) (Fabrikam, Inc.)"),
        ("gdap", "Northwind - helpdesk (Northwind Traders)")}
    admins = found[("security_score", "MFA for the partner's admins")]
    assert "1 of 4 admins" in admins.problem and "Conditional Access" in admins.fix and admins.link
    assert "1 of 3 customer tenants" in found[("security_score", "MFA for customers' admins")].problem
    fabrikam = found[("gdap", "Fabrikam - full admin (migrated from DAP) (Fabrikam, Inc.)")]
    assert "Global Administrator" in fabrikam.problem
    assert "never expires" in found[("gdap", "Northwind - helpdesk (Northwind Traders)")].problem
    assert "900421" in found[("mfa", "helpdesk@contoso-csp.example")].fix
    assert report.score == {"current": 62.0, "max": 100.0, "refreshed": report.score["refreshed"]}
    # the compliant requirements and Tailspin's least-privileged, time-bound relationship are not findings
    assert {r["type"] for r in report.requirements if r["compliance"] == "compliant"} == {
        "securityAlertsPromptlyResolved", "securityContactProvided"}
    assert not any("Tailspin" in f.subject for f in report.findings)


def test_cli_exits_1_with_findings_and_0_when_clean(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    st = stage(azurite, fresh_sandbox)

    dirty = cli(st, "posture")
    as_json = cli(st, "posture", "--json")
    make_clean(fresh_sandbox)
    clean = cli(st, "posture")

    assert dirty.returncode == 1, dirty.stderr
    assert "PARTNER SECURITY POSTURE (6 findings)" in dirty.stdout and "Fix: " in dirty.stdout
    assert json.loads(as_json.stdout)["clean"] is False and len(json.loads(as_json.stdout)["findings"]) == 6
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "No findings." in clean.stdout and "Not checked: DAP" in clean.stdout


def test_an_unreadable_source_is_named_and_the_others_are_still_read(azurite: Azurite,
                                                                     fresh_sandbox: Sandbox) -> None:
    st = stage(azurite, fresh_sandbox)
    make_clean(fresh_sandbox)
    fresh_sandbox.add_fault(Fault("graph", "status", path="delegatedAdminRelationships", status=403, times=None))

    report = collect(Clients(st.settings, st.store))
    result = cli(st, "posture")

    assert report.findings == [] and len(report.errors) == 1 and report.errors[0].startswith("GDAP relationships")
    assert len(report.requirements) == 5
    assert result.returncode == 1 and "could not read GDAP relationships" in result.stdout


def test_the_digest_has_the_posture_section(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    st = stage(azurite, fresh_sandbox)

    digest = build_digest(st.settings, st.store)

    assert len(digest.as_dict()["posture"]["findings"]) == 6
    text = digest.as_text()
    assert "PARTNER SECURITY POSTURE (6; `fraud-responder posture` for details)" in text
    assert "helpdesk@contoso-csp.example" in text


def test_cli_help_states_the_exit_codes() -> None:
    result = subprocess.run([sys.executable, "-m", "shared.cli", "posture", "--help"], capture_output=True, text=True,
                            check=False, timeout=60, cwd=REPO_ROOT)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "0 when clean" in text and "1 when there are findings" in text
    assert ids.PARTNER_TENANT_ID not in result.stdout
