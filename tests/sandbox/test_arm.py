"""The ARM stand-in through the app's ArmClient, with real tokens from the sandbox Entra (MSAL)."""

from __future__ import annotations

import datetime as dt
import ssl
import time
from collections.abc import Iterator

import httpx
import pytest

from sandbox import ids
from sandbox.arm import ArmService
from sandbox.core import Sandbox
from sandbox.faults import Fault
from sandbox.testing import sandbox_settings
from shared.auth import ARM_RESOURCE
from shared.auth.partner_tokens import PartnerTokenProvider
from shared.clients.arm import ArmClient, OperationFailed, OperationTimedOut, StillInTransition
from shared.http import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    RetryPolicy,
    TransientError,
    Unauthorized,
    verify_from_settings,
)
from shared.settings import Settings

FAST_RETRY = RetryPolicy(max_attempts=3, total_seconds=20, backoff_base=0.0)
VMSS = (f"/subscriptions/{ids.SUB_FABRIKAM_PROD}/resourceGroups/{ids.MINING_RESOURCE_GROUP}"
        "/providers/Microsoft.Compute/virtualMachineScaleSets/vmss-gpu-pool")
FABRIKAM_EVENTS_LAST_DAY = 9


class FakeTime:
    """A clock that only moves when the client sleeps: records every wait without spending it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def settings(fresh_sandbox: Sandbox) -> Settings:
    return sandbox_settings(fresh_sandbox)


@pytest.fixture
def arm_state(fresh_sandbox: Sandbox) -> ArmService:
    service = fresh_sandbox.services["arm"]
    assert isinstance(service, ArmService)
    return service


@pytest.fixture
def partner_tokens(settings: Settings) -> PartnerTokenProvider:
    return PartnerTokenProvider(settings)


def arm_client(settings: Settings, tokens: PartnerTokenProvider, tenant: str,
               fake: FakeTime | None = None) -> ArmClient:
    """A client for one customer: the SAM refresh token redeemed in that customer's tenant."""
    clock = fake or FakeTime()
    return ArmClient(settings.arm_url, token=lambda: tokens.token(ARM_RESOURCE, tenant),
                     verify=verify_from_settings(settings), retry=FAST_RETRY,
                     sleep=clock.sleep if fake else time.sleep, clock=clock.clock if fake else time.monotonic)


@pytest.fixture
def fabrikam(settings: Settings, partner_tokens: PartnerTokenProvider) -> Iterator[ArmClient]:
    with arm_client(settings, partner_tokens, ids.CUSTOMER_FABRIKAM) as client:
        yield client


def last_day() -> dict[str, dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    return {"start": now - dt.timedelta(days=1), "end": now + dt.timedelta(minutes=1)}


def raw_client(sandbox: Sandbox, token: str) -> httpx.Client:
    return httpx.Client(base_url=sandbox.url("arm"), headers={"Authorization": f"Bearer {token}"},
                        verify=ssl.create_default_context(cafile=sandbox.ca_cert_path))


# -- activity log ----------------------------------------------------------------------------------


def test_activity_log_window_is_paged_newest_first(fabrikam: ArmClient, fresh_sandbox: Sandbox) -> None:
    window = last_day()
    pages = list(fabrikam.activity_log_pages(ids.SUB_FABRIKAM_PROD, start=window["start"], end=window["end"]))
    assert [len(page) for page in pages] == [4, 4, 1]
    events = [event for page in pages for event in page]
    stamps = [event.timestamp for event in events if event.timestamp is not None]
    assert len(stamps) == len(events)
    assert stamps == sorted(stamps, reverse=True)
    assert {event.subscription_id for event in events} == {ids.SUB_FABRIKAM_PROD}
    assert sum("$skipToken" in r.query for r in fresh_sandbox.requests("arm")) == 2

    now = dt.datetime.now(dt.UTC)
    wide = list(fabrikam.activity_log(ids.SUB_FABRIKAM_PROD, start=now - dt.timedelta(days=60), end=now))
    ordinary = fresh_sandbox.services["arm"].ordinary_history(ids.SUB_FABRIKAM_PROD)  # type: ignore[attr-defined]
    assert len(ordinary) > 20  # weeks of day-to-day work, none of it in the last day
    assert len(wide) == FABRIKAM_EVENTS_LAST_DAY + 1 + len(ordinary)  # the 40-day-old VM creation too


def test_activity_log_shows_who_created_the_mining_vms(fabrikam: ArmClient) -> None:
    first = [e for e in fabrikam.activity_log(ids.SUB_FABRIKAM_PROD, resource_uri=ids.MINING_VM_1, **last_day())
             if e.status == "Succeeded"]
    assert len(first) == 1
    assert first[0].operation == "Microsoft.Compute/virtualMachines/write"
    assert first[0].operation_display == "Create or Update Virtual Machine"
    assert first[0].caller == ids.COMPROMISED_USER_UPN
    assert first[0].caller_is_user
    assert first[0].caller_object_id == ids.COMPROMISED_USER_ID
    assert first[0].authorization_action == "Microsoft.Compute/virtualMachines/write"
    assert first[0].authorization_scope == ids.MINING_VM_1
    assert first[0].resource_group == ids.MINING_RESOURCE_GROUP

    second = list(fabrikam.activity_log(ids.SUB_FABRIKAM_PROD, resource_uri=ids.MINING_VM_2, **last_day()))
    assert {e.status for e in second} == {"Started", "Succeeded"}
    assert len({e.correlation_id for e in second}) == 1
    assert {e.caller for e in second} == {ids.ROGUE_SP_ID}
    assert not second[0].caller_is_user
    assert second[0].caller_app_id == ids.ROGUE_APP_CLIENT_ID


def test_activity_log_filters_by_resource_group(fabrikam: ArmClient) -> None:
    events = list(fabrikam.activity_log(ids.SUB_FABRIKAM_PROD, resource_group="rg-web-prod", **last_day()))
    assert [e.operation for e in events] == ["Microsoft.Storage/storageAccounts/listKeys/action"]


def test_activity_log_refuses_a_window_longer_than_90_days(fabrikam: ArmClient) -> None:
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(BadRequest, match="90 days"):
        list(fabrikam.activity_log(ids.SUB_FABRIKAM_PROD, start=now - dt.timedelta(days=91), end=now))


def test_activity_log_needs_a_start_time(fresh_sandbox: Sandbox, partner_tokens: PartnerTokenProvider) -> None:
    token = partner_tokens.token(ARM_RESOURCE, ids.CUSTOMER_FABRIKAM)
    path = f"/subscriptions/{ids.SUB_FABRIKAM_PROD}/providers/Microsoft.Insights/eventtypes/management/values"
    with raw_client(fresh_sandbox, token) as http:
        response = http.get(path, params={"api-version": "2015-04-01",
                                          "$filter": "resourceGroupName eq 'rg-web-prod'"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"
    assert "eventTimestamp ge" in response.json()["error"]["message"]


# -- VMs, scale sets, long-running operations ----------------------------------------------------


def test_deallocate_follows_the_operation_then_start_restores_running(
    settings: Settings, partner_tokens: PartnerTokenProvider, arm_state: ArmService, fresh_sandbox: Sandbox,
) -> None:
    arm_state.lro_polls = 2
    seen_while_waiting: list[str] = []
    fake = FakeTime()

    def sleep(seconds: float) -> None:
        seen_while_waiting.append(arm_state.power_state(ids.MINING_VM_1))
        fake.sleep(seconds)

    with ArmClient(settings.arm_url, token=lambda: partner_tokens.token(ARM_RESOURCE, ids.CUSTOMER_FABRIKAM),
                   verify=verify_from_settings(settings), retry=FAST_RETRY, sleep=sleep, clock=fake.clock) as arm:
        assert arm.get_vm(ids.MINING_VM_1).running
        state = arm.deallocate_vm(ids.MINING_VM_1)
        assert state.power_state == "deallocated"
        assert state.stopped and state.provisioning_state == "Succeeded"
        # From the accepted POST the instance view shows Azure's transitional state until the operation ends.
        assert seen_while_waiting == ["deallocating", "deallocating", "deallocating"]
        polls = [r for r in fresh_sandbox.requests("arm") if "/operations/" in r.path]
        assert len(polls) == 3

        assert arm.start_vm(ids.MINING_VM_1).running
        assert arm_state.power_state(ids.MINING_VM_1) == "running"
        assert arm_state.power_state(ids.MINING_VM_2) == "running"


def test_polling_honours_retry_after(settings: Settings, partner_tokens: PartnerTokenProvider,
                                     arm_state: ArmService) -> None:
    arm_state.lro_polls, arm_state.lro_retry_after = 2, 7
    fake = FakeTime()
    with arm_client(settings, partner_tokens, ids.CUSTOMER_FABRIKAM, fake) as arm:
        assert arm.power_off_vm(ids.MINING_VM_2).power_state == "stopped"
    assert fake.sleeps == [7, 7, 7]


def test_polling_stops_at_the_time_bound(settings: Settings, partner_tokens: PartnerTokenProvider,
                                         arm_state: ArmService) -> None:
    arm_state.lro_polls, arm_state.lro_retry_after = 1000, 5
    fake = FakeTime()
    with arm_client(settings, partner_tokens, ids.CUSTOMER_FABRIKAM, fake) as arm, \
            pytest.raises(OperationTimedOut) as caught:
        arm.deallocate_vm(ids.MINING_VM_1, timeout=12)
    assert fake.sleeps == [5, 5]
    assert "/operations/" in caught.value.operation_url
    assert arm_state.power_state(ids.MINING_VM_1) == "deallocating"  # still under way at "Azure"


@pytest.mark.parametrize("case", [("deallocate", "deallocating", "deallocated"), ("powerOff", "stopping", "stopped")])
def test_an_accepted_operation_shows_the_transitional_state_to_a_reader_until_it_ends(
        settings: Settings, partner_tokens: PartnerTokenProvider, arm_state: ArmService, fresh_sandbox: Sandbox,
        case: tuple[str, str, str]) -> None:
    """A worker that dies after the 202 never polls the operation: whoever reads the VM next sees it
    under way (the documented PowerState/deallocating, stopping, starting), and then sees it end."""
    action, during, after = case
    arm_state.lro_polls = 2
    token = partner_tokens.token(ARM_RESOURCE, ids.CUSTOMER_FABRIKAM)
    with raw_client(fresh_sandbox, token) as http, arm_client(settings, partner_tokens, ids.CUSTOMER_FABRIKAM) as arm:
        accepted = http.post(f"{ids.MINING_VM_1}/{action}", params={"api-version": "2024-07-01"})
        assert accepted.status_code == 202  # and the caller is gone: nobody polls Azure-AsyncOperation
        seen = [arm.get_vm(ids.MINING_VM_1) for _ in range(3)]
        assert [s.power_state for s in seen] == [during, during, after]
        assert [s.provisioning_state for s in seen] == ["Updating", "Updating", "Succeeded"]
        view = http.get(f"{ids.MINING_VM_1}/instanceView", params={"api-version": "2024-07-01"}).json()
        assert f"PowerState/{after}" in {status["code"] for status in view["statuses"]}
        started = http.post(f"{ids.MINING_VM_1}/start", params={"api-version": "2024-07-01"})
        assert started.status_code == 202 and arm.get_vm(ids.MINING_VM_1).power_state == "starting"


def test_following_a_transition_that_outlasts_the_wait_is_a_retryable_error(
        settings: Settings, partner_tokens: PartnerTokenProvider, arm_state: ArmService,
        fresh_sandbox: Sandbox) -> None:
    arm_state.lro_polls = 1000
    token = partner_tokens.token(ARM_RESOURCE, ids.CUSTOMER_FABRIKAM)
    with raw_client(fresh_sandbox, token) as http:
        assert http.post(f"{ids.MINING_VM_1}/deallocate", params={"api-version": "2024-07-01"}).status_code == 202
    fake = FakeTime()
    with arm_client(settings, partner_tokens, ids.CUSTOMER_FABRIKAM, fake) as arm:
        assert arm.wait_while(ids.MINING_VM_2, "virtualMachines", ("deallocating",)).running  # nothing under way
        with pytest.raises(StillInTransition) as caught:
            arm.wait_while(ids.MINING_VM_1, "virtualMachines", ("deallocating",), timeout=30)
    assert isinstance(caught.value, TransientError)  # the job is retried, the call is not sent again
    assert "still deallocating" in str(caught.value)
    assert fake.sleeps[:3] == [0.25, 0.5, 1.0] and max(fake.sleeps) == 10.0 and sum(fake.sleeps) <= 30


def test_a_failed_operation_puts_the_previous_power_state_back(fabrikam: ArmClient, arm_state: ArmService) -> None:
    arm_state.fail_next_operation("OperationPreempted", "Preempted in the sandbox.")
    with pytest.raises(OperationFailed):
        fabrikam.power_off_vm(ids.MINING_VM_2)
    assert arm_state.power_state(ids.MINING_VM_2) == "running"
    assert fabrikam.get_vm(ids.MINING_VM_2).provisioning_state == "Succeeded"


def test_a_failed_operation_raises_and_leaves_the_vm_running(fabrikam: ArmClient, arm_state: ArmService) -> None:
    arm_state.fail_next_operation("AllocationFailed", "Allocation failed in the sandbox.")
    with pytest.raises(OperationFailed) as caught:
        fabrikam.deallocate_vm(ids.MINING_VM_1)
    assert caught.value.code == "AllocationFailed"
    assert arm_state.power_state(ids.MINING_VM_1) == "running"


def test_a_throttled_poll_is_retried(fabrikam: ArmClient, fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.add_fault(Fault(service="arm", kind="status", status=429, retry_after=0, path="/operations/"))
    assert fabrikam.deallocate_vm(ids.MINING_VM_2).power_state == "deallocated"
    polls = [r.status for r in fresh_sandbox.requests("arm") if "/operations/" in r.path]
    assert polls[0] == 429


def test_scale_set_deallocate_and_start(fabrikam: ArmClient) -> None:
    before = fabrikam.get_vmss(VMSS)
    assert before.running and before.capacity == 4 and before.instance_power_states == {"running": 4}
    after = fabrikam.deallocate_vmss(VMSS)
    assert after.power_state == "deallocated" and after.instance_power_states == {"deallocated": 4}
    assert fabrikam.start_vmss(VMSS).running


def test_an_unknown_vm_is_not_found(fabrikam: ArmClient) -> None:
    missing = ids.MINING_VM_1.replace("vm-gpu-01", "vm-gpu-99")
    with pytest.raises(NotFound) as caught:
        fabrikam.get_vm(missing)
    assert caught.value.code == "ResourceNotFound"
    with pytest.raises(ValueError, match="virtualMachines resource id"):
        fabrikam.get_vm(VMSS)


# -- subscriptions ----------------------------------------------------------------------------------


def test_cancelled_subscription_is_read_only_until_enabled(fabrikam: ArmClient) -> None:
    assert fabrikam.cancel_subscription(ids.SUB_FABRIKAM_PROD) == ids.SUB_FABRIKAM_PROD
    assert fabrikam.get_subscription(ids.SUB_FABRIKAM_PROD).state == "Disabled"
    with pytest.raises(Conflict) as caught:
        fabrikam.deallocate_vm(ids.MINING_VM_1)
    assert caught.value.code == "ReadOnlyDisabledSubscription"
    fabrikam.enable_subscription(ids.SUB_FABRIKAM_PROD)
    assert fabrikam.get_subscription(ids.SUB_FABRIKAM_PROD).state == "Enabled"


# -- auth and request checks ------------------------------------------------------------------------


def test_a_token_from_another_tenant_gets_arms_401(settings: Settings, partner_tokens: PartnerTokenProvider,
                                                   fresh_sandbox: Sandbox) -> None:
    with arm_client(settings, partner_tokens, ids.CUSTOMER_NORTHWIND) as northwind:
        with pytest.raises(Unauthorized) as caught:
            northwind.deallocate_vm(ids.MINING_VM_1)
        assert caught.value.code == "InvalidAuthenticationTokenTenant"
        assert northwind.get_subscription(ids.SUB_NORTHWIND_DEV).tenant_id == ids.CUSTOMER_NORTHWIND
    token = partner_tokens.token(ARM_RESOURCE, ids.CUSTOMER_NORTHWIND)
    with raw_client(fresh_sandbox, token) as http:
        response = http.get(ids.MINING_VM_1, params={"api-version": "2024-07-01"})
    assert response.status_code == 401
    assert set(response.json()) == {"error"}
    assert set(response.json()["error"]) == {"code", "message"}
    assert ids.CUSTOMER_FABRIKAM in response.headers["WWW-Authenticate"]


def test_without_aobo_access_the_client_gets_arms_authorization_failed(fabrikam: ArmClient,
                                                                         arm_state: ArmService) -> None:
    """The failure a partner hits when admin-on-behalf-of / GDAP access to the subscription is gone."""
    assert arm_state.remove_role_assignments(f"/subscriptions/{ids.SUB_FABRIKAM_PROD}") == 1
    with pytest.raises(Forbidden) as caught:
        fabrikam.deallocate_vm(ids.MINING_VM_1)
    assert caught.value.code == "AuthorizationFailed"
    assert "Microsoft.Compute/virtualMachines/deallocate/action" in str(caught.value)
    assert arm_state.power_state(ids.MINING_VM_1) == "running"
    arm_state.add_role_assignment(f"/subscriptions/{ids.SUB_FABRIKAM_PROD}/resourceGroups/{ids.MINING_RESOURCE_GROUP}",
                                  ids.ADMIN_AGENT_USER_ID, "Reader")
    assert fabrikam.get_vm(ids.MINING_VM_1).running
    with pytest.raises(Forbidden):
        fabrikam.deallocate_vm(ids.MINING_VM_1)


def test_a_request_without_api_version_is_refused(fresh_sandbox: Sandbox,
                                                  partner_tokens: PartnerTokenProvider) -> None:
    token = partner_tokens.token(ARM_RESOURCE, ids.CUSTOMER_FABRIKAM)
    with raw_client(fresh_sandbox, token) as http:
        response = http.get(ids.MINING_VM_1)
        missing_token = httpx.get(f"{fresh_sandbox.url('arm')}{ids.MINING_VM_1}?api-version=2024-07-01",
                                  verify=ssl.create_default_context(cafile=fresh_sandbox.ca_cert_path))
    assert response.status_code == 400
    assert response.json() == {"error": {"code": "MissingApiVersionParameter", "message": (
        "The api-version query parameter (?api-version=) is required for all requests.")}}
    assert missing_token.status_code == 401
    assert missing_token.json()["error"]["code"] == "AuthenticationFailed"
