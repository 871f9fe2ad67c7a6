"""Test support for the responder: a real sync of the sandbox into Azurite, and the job it queued.

``stage`` runs the real poller (IntakeRuntime + run_sync) against the sandbox, so the alert row,
its job state and the alerts-respond message are exactly what production would produce.
``take_job`` reads that message (or the batch holding it) from the alerts-respond queue (the
queue is shared by every test on the session's Azurite, but a job names only partition, row and
version, so any copy of the mining alert's job is the same job): the first one equal to the job
this test's alert row records (a copy of another version is left on the queue).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import RecordedRequest, Sandbox
from shared.alerts import Alert, from_entity, row_key
from shared.intake.jobs import IntakeRuntime, run_sync
from shared.intake.sync import PENDING, SyncScope
from shared.jobs import respond_jobs_of
from shared.names import ALERTS_TABLE, LEDGER_TABLE, RESPOND_QUEUE
from shared.response.engine import Responder, RespondResult
from shared.response.jobs import BatchResult, handle_respond_message
from shared.response.ledger import LedgerEntry
from shared.settings import Settings, load_settings
from shared.storage.tables import TableStore
from tests.conftest import REPO_ROOT, settings_env

MINING_KEY = f"partner_center:{ids.MINING_ALERT_EVENT_ID}"
WRITE_SERVICES = ("partner_center", "graph", "arm")
"""The stand-ins whose non-GET requests change something at "Microsoft"."""


@dataclass
class Stage:
    settings: Settings
    runtime: IntakeRuntime
    env: dict[str, str]

    @property
    def store(self) -> TableStore:
        return self.runtime.store

    def responder(self, **kwargs: Any) -> Responder:
        return Responder(self.settings, self.store, **kwargs)

    def alert(self, key: str = MINING_KEY) -> Alert:
        entity = self.store.get(ALERTS_TABLE, ids.CUSTOMER_FABRIKAM, row_key(key))
        assert entity is not None, f"alert {key} was not synced"
        return from_entity(entity)

    def job_state(self, job: dict[str, Any]) -> str:
        """The alert row's record of this job: pending (waits for the responder), handled, poisoned."""
        entity = self.store.get(ALERTS_TABLE, job["partition"], job["row"])
        assert entity is not None and int(entity["respond_version"]) == job["version"]
        return str(entity["respond_state"])

    def make_pending(self, job: dict[str, Any]) -> None:
        """As if the job had not been handled yet (the sync re-sent it before the responder finished)."""
        self.store.upsert(ALERTS_TABLE, {"PartitionKey": job["partition"], "RowKey": job["row"],
                                         "respond_state": PENDING})

    def ledger_rows(self, key: str = MINING_KEY) -> list[dict[str, Any]]:
        """The alert's ledger rows as stored (without ETags), for before/after comparisons."""
        return [dict(e) for e in self.store.list_partition(LEDGER_TABLE, row_key(key))]


def stage(azurite: Azurite, sandbox: Sandbox, *, policy: str | None = None, tmp_path: Path | None = None,
          **overrides: str) -> Stage:
    """Settings pointing at Azurite (a fresh table prefix) and the sandbox; the sandbox synced in."""
    if policy is not None:
        assert tmp_path is not None
        path = tmp_path / "policy.toml"
        path.write_text(policy, encoding="utf-8")
        overrides["POLICY_PATH"] = str(path)
    env = settings_env(azurite, **sandbox.app_settings(), **overrides)
    settings = load_settings(env, local_settings=REPO_ROOT / "does-not-exist.json")
    runtime = IntakeRuntime.from_settings(settings)
    run = run_sync(runtime, SyncScope(), trigger="test", sources=("partner_center",))
    assert run.ok, run.as_dict()
    return Stage(settings, runtime, env)


def take_job(stage: Stage, key: str = MINING_KEY) -> tuple[dict[str, Any], bytes]:
    """The respond job for ``key`` from the alerts-respond queue (taken off it), and its body."""
    queue = stage.runtime.queue
    for _ in range(200):
        messages = queue.receive(RESPOND_QUEUE, visibility_timeout=1)
        if not messages:
            break
        for message in messages:
            for job in (j.to_json() for j in respond_jobs_of(message.json())):
                if job.get("alert_key") != key:
                    continue
                entity = stage.store.get(ALERTS_TABLE, job["partition"], job["row"])
                if entity is None or json.loads(entity.get("respond_job") or "null") != job:
                    continue  # another test's job (another version): left on the queue
                # The whole message goes (a batch holds one sync transaction of this test's alerts);
                # the job is returned as the single message the respond side would split it into.
                queue.delete(RESPOND_QUEUE, message)
                assert stage.job_state(job) == PENDING
                return job, json.dumps(job).encode()
    raise AssertionError(f"no respond job for {key} on {RESPOND_QUEUE}")


def writes(sandbox: Sandbox, since: int = 0) -> list[RecordedRequest]:
    """Requests after the first ``since`` that could change state at Partner Center, Graph or ARM."""
    return [r for r in sandbox.requests()[since:] if r.service in WRITE_SERVICES and r.method != "GET"]


def by_action(rows: list[LedgerEntry], action: str) -> list[LedgerEntry]:
    return [r for r in rows if r.action == action]


POLICY_HEAD = 'version = 1\n'


def policy(*actions: tuple[str, str, str], match: str = 'category = "crypto_mining"') -> str:
    """A one-rule policy for the crypto alert, then a notify-only catch-all: (action, mode, extra TOML)."""
    text = POLICY_HEAD + f'[[rules]]\nname = "test-rule"\n[rules.match]\n{match}\n'
    for action, mode, extra in actions:
        text += f'[[rules.actions]]\naction = "{action}"\nmode = "{mode}"\n{extra}\n'
    text += '[[rules]]\nname = "rest"\n[[rules.actions]]\naction = "notify"\nmode = "enforce"\n'
    return text


def respond_one(body: bytes, **kwargs: Any) -> RespondResult | None:
    """``handle_respond_message`` for a single-alert message: its RespondResult (None when dropped)."""
    result = handle_respond_message(body, **kwargs)
    assert not isinstance(result, BatchResult), "a single-alert message was answered as a batch"
    return result
