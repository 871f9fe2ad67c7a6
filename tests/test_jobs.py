"""Typed job messages: what producers write is what consumers read, and jobs already on a queue
(written before ``schema_version`` existed) still parse."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest

from shared.intake.jobs import handle_sync_message
from shared.intake.webhook import sync_job
from shared.jobs import SCHEMA_VERSION, InvalidJob, RespondJob, SyncJob, UnsupportedJob

SUB = "BBBBBBBB-0001-4000-8000-000000000001"

# Exactly what the webhook receiver and the sync queued before the typed messages (version 1).
OLD_SYNC = {"scope": "subscription", "subscription_id": SUB, "source": "partner_center", "event_status": "Active",
            "trigger": "webhook", "delivery_id": "d-1", "requested_at": "2026-11-21T07:16:23Z"}
OLD_RESPOND = {"alert_key": "partner_center:e-1", "partition": "aaaaaaaa-0001-4000-8000-000000000001",
               "row": "partner_center:e-1", "version": 3, "reasons": ["new alert"], "is_test": False}


def test_old_sync_jobs_on_the_queue_still_parse() -> None:
    job = SyncJob.from_json(json.dumps(OLD_SYNC).encode())
    assert job == SyncJob(scope="subscription", subscription_id=SUB.lower(), source="partner_center",
                          event_status="Active", trigger="webhook", delivery_id="d-1",
                          requested_at="2026-11-21T07:16:23Z", schema_version=1)
    assert SyncJob.from_json(b'{"scope": "all", "trigger": "test"}') == SyncJob(trigger="test")


def test_old_respond_jobs_on_the_queue_still_parse() -> None:
    job = RespondJob.from_json(json.dumps(OLD_RESPOND).encode())
    assert (job.alert_key, job.partition, job.row, job.version) == ("partner_center:e-1", OLD_RESPOND["partition"],
                                                                     "partner_center:e-1", 3)
    assert (job.reasons, job.is_test, job.schema_version, job.alert_id) == (("new alert",), False, 1, "e-1")
    # written back (re-sent after a lease), it is the old document plus its version: nothing lost
    assert job.to_json() == {**OLD_RESPOND, "schema_version": 1}


def test_jobs_round_trip_through_json() -> None:
    made = sync_job(subscription_id=SUB.lower(), event_status=None, delivery_id="d-2",
                    now=datetime(2026, 12, 1, tzinfo=UTC))
    assert made.to_json()["schema_version"] == SCHEMA_VERSION
    assert SyncJob.from_json(json.dumps(made.to_json())) == made
    respond = RespondJob("graph:a", "p", "graph:a", 2, ("status active -> resolved",), True)
    assert RespondJob.from_json(json.dumps(respond.to_json()).encode()) == respond
    with pytest.raises(dataclasses.FrozenInstanceError):
        respond.version = 3  # type: ignore[misc]


def test_fields_a_newer_worker_added_are_kept_when_a_job_is_re_sent() -> None:
    job = RespondJob.from_json(json.dumps({**OLD_RESPOND, "trace": "abc"}))
    assert job.to_json()["trace"] == "abc"


@pytest.mark.parametrize(("body", "message"), [
    (b"not json", "not JSON"),
    (b"[1]", "must be a JSON object"),
    (b'{"trigger": "x"}', "lacks scope"),
    (b'{"scope": "tenant"}', "expected 'all' or 'subscription'"),
    (b'{"scope": "subscription", "subscription_id": "sub-1"}', "not a GUID"),
    (b'{"scope": "all", "source": "carrier_pigeon"}', "unknown source 'carrier_pigeon'; known: partner_center, graph"),
    (b'{"scope": "all", "schema_version": "2"}', "schema_version must be a whole number"),
])
def test_a_malformed_sync_job_says_why(body: bytes, message: str) -> None:
    with pytest.raises(InvalidJob, match=message):
        SyncJob.from_json(body)
    assert handle_sync_message(body) is None  # dropped (logged), never retried


@pytest.mark.parametrize(("change", "message"), [
    ({"version": 0}, "version must be a whole number of 1 or more"),
    ({"version": True}, "version must be a whole number"),
    ({"row": ""}, "row must be a non-empty string"),
    ({"partition": "a/b"}, "partition is not a table key"),
])
def test_a_malformed_respond_job_says_why(change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidJob, match=message):
        RespondJob.from_json(json.dumps({**OLD_RESPOND, **change}))


def test_a_job_from_newer_code_is_retried_not_dropped() -> None:
    newer = json.dumps({**OLD_SYNC, "schema_version": SCHEMA_VERSION + 1}).encode()
    with pytest.raises(UnsupportedJob, match="replay it from the poison queue"):
        handle_sync_message(newer)  # raises: the queue retries it, then keeps it in the poison queue
    with pytest.raises(UnsupportedJob):
        RespondJob.from_json(json.dumps({**OLD_RESPOND, "schema_version": SCHEMA_VERSION + 1}))


# --- alerts-detect ----------------------------------------------------------------------------------

from shared.jobs import MAX_DETECT_GROUP, DetectJob, DetectTarget  # noqa: E402

D_TENANT = "aaaaaaaa-0004-4000-8000-000000000004"
D_SUB = "bbbbbbbb-0004-4000-8000-000000000004"


def test_detect_jobs_round_trip_through_json() -> None:
    job = DetectJob(scope="subscriptions", targets=(DetectTarget(D_TENANT, D_SUB, "Woodgrove", "4871234"),),
                    run_id="r1", requested_at="2026-12-02T14:00:00+00:00")
    assert DetectJob.from_json(json.dumps(job.to_json())) == job
    partner = DetectJob(scope="partner", run_id="r1")
    assert DetectJob.from_json(json.dumps(partner.to_json()).encode()) == partner


@pytest.mark.parametrize(("document", "message"), [
    ({"scope": "everything"}, "expected 'subscriptions' or 'partner'"),
    ({"scope": "subscriptions"}, "targets must be a non-empty list"),
    ({"scope": "subscriptions", "targets": [{"customer_tenant_id": D_TENANT, "subscription_id": "prod"}]},
     "is not a pair of GUIDs"),
    ({"scope": "subscriptions", "targets": ["x"]}, "each target must be an object"),
    ({"scope": "subscriptions", "targets": [{"customer_tenant_id": D_TENANT, "subscription_id": D_SUB}]
      * (MAX_DETECT_GROUP + 1)}, f"at most {MAX_DETECT_GROUP}"),
])
def test_a_malformed_detect_job_says_why(document: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidJob, match=message):
        DetectJob.from_json(json.dumps(document))


def test_a_detect_job_from_newer_code_is_retried_not_dropped() -> None:
    with pytest.raises(UnsupportedJob):
        DetectJob.from_json(json.dumps({"scope": "partner", "schema_version": SCHEMA_VERSION + 1}))
