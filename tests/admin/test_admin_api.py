"""The admin API end to end: the real FunctionApp in the dev host (HTTP on a free loopback port),
Azurite, and the sandbox's crypto-mining alert synced and responded to exactly as in production.
Every answer is checked against the OpenAPI document the API itself serves."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from devhost.azurite import Azurite, connection_string
from devhost.host import DevHost
from sandbox import ids
from sandbox.core import Sandbox
from sandbox.faults import Fault
from shared.admin.openapi import openapi_document
from shared.admin.routes import OPERATIONS
from shared.response.jobs import handle_respond_message
from tests.admin.auth_support import ALICE, BOB, app_token, bearer, user_token
from tests.admin.openapi_support import Contract
from tests.conftest import REPO_ROOT, settings_env
from tests.response.respond_support import MINING_KEY, Stage, stage, take_job

MINING_TYPE = "NetworkConnectionsToCryptoMiningPools"
PENDING_ACTIONS = {"stop_resources", "revoke_sessions", "rotate_credentials", "suspend_subscription"}


@dataclass
class Api:
    """An HTTP client of the running admin API that checks every answer against the served document."""

    client: httpx.Client
    contract: Contract
    stage: Stage

    def get(self, path: str, expect: int = 200, *, token: str | None = None, **params: str) -> Any:
        response = self.client.get(path, params=params, headers=bearer(token) if token else None)
        body = self.contract.check(response)
        assert response.status_code == expect, response.text
        return body

    def post(self, path: str, document: Any = None, expect: int = 200, *, raw: bytes | None = None,
             token: str | None = None) -> Any:
        headers = bearer(token) if token else {}
        if raw is not None:
            response = self.client.post(path, content=raw, headers={**headers, "content-type": "application/json"})
        else:
            response = self.client.post(path, json=document, headers=headers)
        body = self.contract.check(response)
        assert response.status_code == expect, response.text
        return body


def _start(azurite: Azurite, sandbox: Sandbox, *, respond: bool) -> Iterator[Api]:
    st = stage(azurite, sandbox)
    if respond:
        _job, body = take_job(st)
        handle_respond_message(body, responder=st.responder())
    environ = {**st.env, "POLL_SCHEDULE": "0 0 0 1 1 *", "DIGEST_SCHEDULE": "0 0 0 1 1 *",
               "DETECT_SCHEDULE": "0 0 0 1 1 *",
               "FRAUD_RESPONDER_LOCAL_SETTINGS": str(REPO_ROOT / "does-not-exist.json")}
    functions = [op.function_name for op in OPERATIONS]
    # Alice signs in (Read and Decide): her token is on every call unless a test sends another.
    with DevHost(environ=environ, http_port=0, functions=functions) as host, \
            httpx.Client(base_url=host.base_url, timeout=60, headers=bearer(user_token(sandbox, ALICE))) as client:
        served = client.get("/api/manage/openapi.json")
        assert served.status_code == 200, served.text
        contract = Contract(served.json())
        contract.check(served)  # the document validates against itself
        yield Api(client, contract, st)


@pytest.fixture
def responded(azurite: Azurite, fresh_sandbox: Sandbox) -> Iterator[Api]:
    """The mining alert synced and responded to by the default policy (actions await approval)."""
    yield from _start(azurite, fresh_sandbox, respond=True)


@pytest.fixture
def synced(azurite: Azurite, fresh_sandbox: Sandbox) -> Iterator[Api]:
    """The sandbox's alerts synced; nothing responded to yet."""
    yield from _start(azurite, fresh_sandbox, respond=False)


def _pc_event(sandbox: Sandbox) -> dict[str, Any]:
    alerts = sandbox.services["partner_center"].alerts  # type: ignore[attr-defined]
    return next(a for a in alerts if a["eventId"] == ids.MINING_ALERT_EVENT_ID)  # type: ignore[no-any-return]


def test_operator_finds_the_mining_alert_approves_resolves_and_reads_the_digest(responded: Api,
                                                                              fresh_sandbox: Sandbox) -> None:
    api = responded
    # 1. find the crypto-mining alert
    found = api.get("/api/manage/alerts", type=MINING_TYPE.lower())
    [mining] = [a for a in found["alerts"] if a["id"] == ids.MINING_ALERT_EVENT_ID]
    assert mining["key"] == MINING_KEY and mining["status"] == "investigating"
    assert mining["customer_tenant_id"] == ids.CUSTOMER_FABRIKAM and mining["subscription_id"] == ids.SUB_FABRIKAM_PROD
    assert {r["id"] for r in mining["affected_resources"]} == {ids.MINING_VM_1, ids.MINING_VM_2}
    assert all(a["type"] == MINING_TYPE for a in found["alerts"]) and not found["truncated"]
    assert mining in api.get("/api/manage/alerts", status="investigating", customer=ids.CUSTOMER_FABRIKAM,
                             since="1h")["alerts"]

    # 2. see what was done: status written, investigation, e-mail; containment waits for approval
    detail = api.get(f"/api/manage/alerts/{ids.MINING_ALERT_EVENT_ID}")
    assert detail["alert"]["key"] == MINING_KEY and detail["alert"]["description"] is not None
    done = {a["action"] for a in detail["actions"] if a["state"] == "succeeded"}
    assert done == {"update_status", "investigate", "notify"}
    waiting = [a for a in detail["actions"] if a["state"] == "awaiting-approval"]
    assert {a["action"] for a in waiting} == PENDING_ACTIONS
    assert ids.COMPROMISED_USER_ID in {u["id"] for u in detail["investigation"]["users"]}
    assert api.get(f"/api/manage/alerts/{MINING_KEY}") == detail  # the source:id key works too

    # 3. approve the pending actions
    pending = api.get("/api/manage/actions", pending="true", alert=ids.MINING_ALERT_EVENT_ID)
    assert sorted(a["id"] for a in pending["actions"]) == sorted(a["id"] for a in waiting)
    for action in pending["actions"]:
        approved = api.post(f"/api/manage/actions/{action['id']}/approve")["action"]
        assert approved["state"] == "succeeded", approved["error"]
        assert approved["approved_by"] == ALICE and approved["actor"] == f"operator:{ALICE}"
    assert api.get("/api/manage/actions", pending="true")["count"] == 0
    arm = fresh_sandbox.services["arm"]
    assert arm.power_state(ids.MINING_VM_1) == arm.power_state(ids.MINING_VM_2) == "deallocated"  # type: ignore[attr-defined]
    subs = fresh_sandbox.services["partner_center"].subscriptions  # type: ignore[attr-defined]
    assert subs[(ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM)]["status"] == "suspended"

    # 4. resolve the alert as fraud: Partner Center shows Resolved / Fraud, the alert says who
    resolved = api.post(f"/api/manage/alerts/{ids.MINING_ALERT_EVENT_ID}/resolve",
                        {"reason": "fraud"})
    assert resolved["alert"]["status"] == "resolved" and resolved["alert"]["resolved_reason"] == "fraud"
    assert resolved["alert"]["resolved_by"] == f"operator:{ALICE}" and not resolved["already_done"]
    event = _pc_event(fresh_sandbox)
    assert (event["eventStatus"], event["resolvedReason"]) == ("Resolved", "Fraud")
    again = api.post(f"/api/manage/alerts/{MINING_KEY}/resolve", {"reason": "fraud"})
    assert again["already_done"]
    assert MINING_KEY in {a["key"] for a in api.get("/api/manage/alerts", status="resolved")["alerts"]}
    history = api.get("/api/manage/actions", alert=MINING_KEY)["actions"]
    assert any(a["action"] == "update_status" and a["actor"] == f"operator:{ALICE}" for a in history)
    # every decision is on the alert's record, in order, with the token's identity
    made = api.get(f"/api/manage/alerts/{MINING_KEY}")["decisions"]
    assert [(d["decision"], d["operator"]) for d in made] == [("approve", ALICE)] * len(waiting) + [
        ("resolve", ALICE), ("resolve", ALICE)]

    # the fraud verdict planned the rest for the customer: the licences' suspension, the rogue role
    # assignment's removal, the Global Administrators' password change (two admins) and the service request
    # wait for approval (the Azure plan is suspended already)
    verdict = {a["id"]: a for a in api.get("/api/manage/actions", pending="true")["actions"]}
    assert set(verdict) <= set(resolved["verdict_actions"])
    assert sorted(a["action"] for a in verdict.values()) == [
        "open_service_request", "remove_role_assignments", "require_admin_password_change",
        "require_admin_password_change", "suspend_customer_subscriptions"]

    # 5. read the digest: only the verdict waits for approval, the mining alert is no longer open
    digest = api.get("/api/manage/digest")
    assert digest["counts"]["pending_actions"] == len(verdict) == len(digest["pending"])
    open_keys = {a["key"] for group in digest["unresolved"] for a in group["alerts"]}
    assert MINING_KEY not in open_keys and open_keys
    assert digest["counts"]["unresolved_alerts"] == len(open_keys)
    assert digest["tokens"]["state"] == "ok"
    assert f"ACTIONS WAITING FOR APPROVAL ({len(verdict)})" in digest["text"]

    # token health and poison messages read through the same API
    tokens = api.get("/api/manage/tokens")
    assert tokens["ok"] and tokens["refresh_token"]["days_left"] is not None
    poison = api.get("/api/manage/poison")
    assert {q["queue"] for q in poison["queues"]} == {"alerts-sync", "alerts-respond", "alerts-detect"}
    # the function key in the query string (?code=) is the host's, not a filter
    assert api.get("/api/manage/alerts", code="local", limit="1")["count"] == 1


def test_decisions_reject_undo_and_their_errors(responded: Api, fresh_sandbox: Sandbox) -> None:
    api = responded
    pending = {a["action"] + " " + a["target"]["id"]: a for a in api.get("/api/manage/actions",
                                                                         pending="true")["actions"]}
    suspend = next(a for k, a in pending.items() if k.startswith("suspend_subscription"))
    revoke = next(a for k, a in pending.items() if k.startswith("revoke_sessions"))
    stops = [a for k, a in pending.items() if k.startswith("stop_resources")]
    digest = api.get("/api/manage/digest")  # the digest lists what waits, with the command for each
    assert {row["id"] for row in digest["pending"]} == {a["id"] for a in pending.values()}
    assert digest["needs_attention"] and f"ACTIONS WAITING FOR APPROVAL ({len(pending)})" in digest["text"]

    rejected = api.post(f"/api/manage/actions/{suspend['id']}/reject", {"reason": "a false alarm"})
    assert rejected["action"]["state"] == "rejected"
    assert (rejected["action"]["rejected_by"], rejected["action"]["reject_reason"]) == (ALICE, "a false alarm")
    subs = fresh_sandbox.services["partner_center"].subscriptions  # type: ignore[attr-defined]
    assert subs[(ids.CUSTOMER_FABRIKAM, ids.PLAN_FABRIKAM)]["status"] == "active"
    # a decision on a row that is in no state for it: 409 saying which state
    conflict = api.post(f"/api/manage/actions/{suspend['id']}/approve", expect=409)
    assert conflict["error"] == "conflict" and "rejected" in conflict["message"]

    # the action runs and Microsoft refuses it: 502 with the row, which records the failure
    fresh_sandbox.add_fault(Fault(service="arm", kind="status", method="POST", path="deallocate", status=403,
                                  times=None))
    failed = api.post(f"/api/manage/actions/{stops[0]['id']}/approve", expect=502)
    assert failed["error"] == "action_failed" and failed["action"]["state"] == "failed"
    assert failed["action"]["error"] and "approve it again" in failed["message"]
    fresh_sandbox.clear_faults()
    retried = api.post(f"/api/manage/actions/{stops[0]['id']}/approve", {})
    assert retried["action"]["state"] == "succeeded"
    arm = fresh_sandbox.services["arm"]
    assert arm.power_state(ids.MINING_VM_1 if stops[0]["target"]["id"] == ids.MINING_VM_1  # type: ignore[attr-defined]
                           else ids.MINING_VM_2) == "deallocated"

    # undo puts the VM back; undo again is a conflict; an irreversible action says so
    automation = app_token(fresh_sandbox)  # an application that reads and decides: recorded as app:<client id>
    undone = api.post(f"/api/manage/actions/{stops[0]['id']}/undo", token=automation)
    assert undone["action"]["state"] == "undone"
    assert undone["action"]["undone_by"] == f"app:{ids.OPERATOR_APP_CLIENT_ID}"
    assert arm.power_state(stops[0]["target"]["id"]) == "running"  # type: ignore[attr-defined]
    assert api.post(f"/api/manage/actions/{stops[0]['id']}/undo", expect=409)["error"] == "conflict"
    revoked = api.post(f"/api/manage/actions/{revoke['id']}/approve")["action"]
    assert revoked["state"] == "succeeded"
    not_reversible = api.post(f"/api/manage/actions/{revoke['id']}/undo", expect=409)
    assert "not reversible" in not_reversible["message"]

    # who decides is the token's identity: a typed name is refused, not recorded; bodies are checked
    typed = api.post(f"/api/manage/actions/{stops[1]['id']}/approve", {"operator": "mallory"}, expect=400)
    assert "operator is not accepted" in typed["message"]
    assert "unknown field 'reason'" in api.post(f"/api/manage/actions/{stops[1]['id']}/approve",
                                                {"reason": "y"}, expect=400)["message"]
    assert api.post(f"/api/manage/actions/{stops[1]['id']}/approve", raw=b"{not json", expect=400)["error"] == \
        "bad_request"
    assert api.post(f"/api/manage/actions/{stops[1]['id']}/approve", ["alice"], expect=400)["error"] == "bad_request"
    assert api.post(f"/api/manage/actions/{stops[1]['id']}/reject", {"reason": "a\nb"}, expect=400)
    unknown = api.post("/api/manage/actions/0000000000/approve", expect=404)
    assert unknown["error"] == "not_found" and "GET /api/manage/actions" in unknown["message"]
    # nothing above changed the row that was never decided
    still = api.get("/api/manage/actions", pending="true")["actions"]
    assert stops[1]["id"] in {a["id"] for a in still}


def test_bad_queries_unknown_alerts_and_token_failures_are_documented_errors(synced: Api,
                                                                            fresh_sandbox: Sandbox) -> None:
    api = synced
    listed = api.get("/api/manage/alerts")
    assert listed["count"] == len(listed["alerts"]) > 1
    times = [a["changed_at"] for a in listed["alerts"]]
    assert times == sorted(times, reverse=True)
    limited = api.get("/api/manage/alerts", limit="1")
    assert limited["count"] == 1 and limited["truncated"]
    assert api.get("/api/manage/alerts", since="2999-01-01T00:00:00Z")["alerts"] == []
    assert api.get("/api/manage/actions")["actions"] == []  # nothing responded to yet

    for params, named in (({"status": "open"}, "status"), ({"limit": "0"}, "limit"), ({"limit": "many"}, "limit"),
                          ({"since": "yesterday"}, "since"), ({"colour": "red"}, "colour")):
        error = api.get("/api/manage/alerts", expect=400, **params)
        assert error["error"] == "bad_request" and named in error["message"], error
    assert api.get("/api/manage/actions", expect=400, pending="maybe")["error"] == "bad_request"
    assert api.get("/api/manage/alerts/no-such-alert", expect=404)["error"] == "not_found"
    assert api.post("/api/manage/alerts/no-such-alert/resolve", {"reason": "fraud"},
                    expect=404)["error"] == "not_found"
    bad_reason = api.post(f"/api/manage/alerts/{MINING_KEY}/resolve", {"reason": "maybe"}, expect=400)
    assert "fraud, legitimate, ignore" in bad_reason["message"]
    assert api.post(f"/api/manage/alerts/{MINING_KEY}/resolve", {}, expect=400)

    # the refresh token dies: resolving cannot reach Partner Center; 503 says how to fix it, no secret leaks
    entra = fresh_sandbox.services["entra"]
    entra.set_state(refresh_token_state="expired")  # type: ignore[attr-defined]
    response = api.client.post(f"/api/manage/alerts/{MINING_KEY}/resolve",
                               json={"reason": "legitimate"})
    error = api.contract.check(response)
    assert response.status_code == 503 and response.headers["retry-after"]
    assert error["error"] == "unavailable" and "AADSTS700082" in error["message"]
    assert api.stage.settings.azure_client_secret not in response.text
    assert str(_pc_event(fresh_sandbox)["eventStatus"]).lower() == "active"
    assert api.get(f"/api/manage/alerts/{MINING_KEY}")["alert"]["status"] == "active"


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_storage_down_is_503_and_a_bad_setting_is_500_naming_it(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    port = _closed_port()
    dead_storage = connection_string(port, port, port)
    assert dead_storage != azurite.connection_string
    environ = {**settings_env(azurite, **fresh_sandbox.app_settings(), AzureWebJobsStorage=dead_storage),
               "FRAUD_RESPONDER_LOCAL_SETTINGS": str(REPO_ROOT / "does-not-exist.json")}
    functions = [op.function_name for op in OPERATIONS]
    contract = Contract(openapi_document())
    token = bearer(user_token(fresh_sandbox, BOB))
    with DevHost(environ=environ, http_port=0, functions=functions) as host:
        response = httpx.get(f"{host.base_url}/api/manage/alerts", timeout=60, headers=token)
        error = contract.check(response)
        assert response.status_code == 503 and response.headers["retry-after"] == "30"
        assert error["error"] == "unavailable" and f"127.0.0.1:{port}" in error["message"]
    with DevHost(environ={**environ, "LOG_LEVEL": "LOUD"}, http_port=0, functions=functions) as host:
        response = httpx.get(f"{host.base_url}/api/manage/actions", timeout=60, headers=token)
        error = contract.check(response)
        assert response.status_code == 500 and error["error"] == "misconfigured"
        assert "LOG_LEVEL" in error["message"] and "example" in error["message"]
        # the document needs no settings: a client can still read what the API offers
        assert contract.check(httpx.get(f"{host.base_url}/api/manage/openapi.json", timeout=60))["paths"]


def test_only_a_valid_entra_token_with_the_right_app_role_opens_the_api(responded: Api, fresh_sandbox: Sandbox) -> None:
    """401 without a valid token for this app (with a Bearer challenge), 403 without the role; nothing changes."""
    from sandbox.tokens import TokenIssuer

    api = responded
    [stop, *_] = [a for a in api.get("/api/manage/actions", pending="true")["actions"]
                  if a["action"] == "stop_resources"]
    approve = f"/api/manage/actions/{stop['id']}/approve"

    anonymous = httpx.Client(base_url=str(api.client.base_url), timeout=60)
    for method, path in (("GET", "/api/manage/alerts"), ("POST", approve), ("GET", "/api/manage/digest")):
        response = anonymous.request(method, path, params={"code": "any-function-key"})
        error = api.contract.check(response)
        assert response.status_code == 401 and error["error"] == "unauthorized", response.text
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer ") and f"api://{ids.ADMIN_API_CLIENT_ID}/.default" in challenge
    assert anonymous.get("/api/manage/openapi.json").status_code == 200  # the document stays public

    entra = fresh_sandbox.services["entra"]
    forged = TokenIssuer(fresh_sandbox.url("entra")).issue(  # right claims, a key the tenant does not publish
        tenant=ids.PARTNER_TENANT_ID, audience=ids.ADMIN_API_CLIENT_ID, client_id=ids.OPERATOR_APP_CLIENT_ID,
        roles=["FraudResponder.Decide"], extra={"idtyp": "app"})
    graph = app_token(fresh_sandbox, ids.GRAPH_APP_CLIENT_ID, "sandbox-graph-app-secret-4Xk9",
                      "https://graph.microsoft.com/.default")  # a real token, for another audience
    entra.set_state(access_token_lifetime_seconds=-300)  # type: ignore[attr-defined]
    expired = user_token(fresh_sandbox, ALICE)
    entra.set_state(access_token_lifetime_seconds=3600)  # type: ignore[attr-defined]
    for token, named in ((forged, "signed"), (graph, "audience"), (expired, "expired"), ("not-a-jwt", "JWT")):
        error = api.post(approve, expect=401, token=token)
        assert named in error["message"], error
    basic = anonymous.post(approve, headers={"Authorization": "Basic YWxpY2U6c2VjcmV0"})
    assert api.contract.check(basic)["error"] == "unauthorized"

    # a reader reads but cannot decide, whether a user or an application
    assert api.get("/api/manage/alerts", token=user_token(fresh_sandbox, BOB))["count"] > 0
    reader = app_token(fresh_sandbox, ids.READER_APP_CLIENT_ID, ids.READER_APP_SECRET)
    assert api.get("/api/manage/digest", token=reader)["pending"]
    for token in (user_token(fresh_sandbox, BOB), reader):
        for path, body in ((approve, None), (f"/api/manage/alerts/{MINING_KEY}/resolve", {"reason": "fraud"}),
                           (f"/api/manage/actions/{stop['id']}/reject", {})):
            response = anonymous.post(path, json=body, headers=bearer(token))
            error = api.contract.check(response)
            assert response.status_code == 403 and "FraudResponder.Decide" in error["message"], response.text
            assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    no_roles = user_token(fresh_sandbox, "eve@contoso-csp.example", roles=[])
    assert api.get("/api/manage/alerts", expect=403, token=no_roles)["error"] == "forbidden"

    # none of that changed anything; the decider's decision is recorded as the token's identity
    assert stop["id"] in {a["id"] for a in api.get("/api/manage/actions", pending="true")["actions"]}
    assert api.get(f"/api/manage/alerts/{MINING_KEY}")["alert"]["status"] != "resolved"
    decided = api.post(approve, token=app_token(fresh_sandbox))["action"]
    assert decided["approved_by"] == f"app:{ids.OPERATOR_APP_CLIENT_ID}"


def test_a_reader_exports_the_incident_record_in_three_formats_and_a_decider_approves_an_alert_in_one_step(
        responded: Api, fresh_sandbox: Sandbox) -> None:
    api = responded
    reader = user_token(fresh_sandbox, BOB)  # FraudResponder.Read is enough to export
    path = f"/api/manage/alerts/{ids.MINING_ALERT_EVENT_ID}/incident"
    record = api.get(path, token=reader)  # JSON by default, valid against the served document
    assert record["alert"]["key"] == MINING_KEY and record["cost_estimate"]["kind"] == "estimate"
    assert {a["id"] for a in record["actions"]} == {a["id"] for a in api.get("/api/manage/actions",
                                                                             alert=MINING_KEY)["actions"]}
    assert record["timeline"] and record["exception_eligibility"]["verdict"]
    markdown = api.client.get(path, params={"format": "md"}, headers=bearer(reader))
    assert api.contract.check(markdown).startswith(f"# Incident record: alert {MINING_KEY}".replace("_", "\\_"))
    assert markdown.headers["content-type"].startswith("text/markdown")
    page = api.client.get(path, params={"format": "html"}, headers=bearer(reader))
    assert api.contract.check(page).startswith("<!DOCTYPE html>")
    assert page.headers["content-type"].startswith("text/html") and page.headers["x-content-type-options"] == "nosniff"
    assert api.get(path, expect=400, format="pdf")["error"] == "bad_request"
    assert api.get("/api/manage/alerts/no-such-alert/incident", expect=404)["error"] == "not_found"

    # approve every waiting action of the alert in one step; a reader may not
    bulk = f"/api/manage/alerts/{MINING_KEY}/actions/approve"
    assert api.post(bulk, expect=403, token=reader)["error"] == "forbidden"
    assert api.post(bulk, {"operator": "mallory"}, expect=400)["error"] == "bad_request"
    waiting = {a["id"] for a in api.get("/api/manage/actions", pending="true", alert=MINING_KEY)["actions"]}
    done = api.post(bulk)
    assert done["count"] == len(waiting) and done["failed"] == 0
    assert {r["action"]["id"] for r in done["results"]} == waiting
    assert all(r["action"]["approved_by"] == ALICE for r in done["results"])
    decisions = api.get(f"/api/manage/alerts/{MINING_KEY}")["decisions"]
    assert sorted(d["action_id"] for d in decisions if d["decision"] == "approve") == sorted(waiting)
    again = api.post(f"/api/manage/alerts/{MINING_KEY}/actions/reject", {"reason": "too late"})
    assert again["count"] == 0 and again["results"] == []
