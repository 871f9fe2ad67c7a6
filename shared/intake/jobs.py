"""Entry points of the poll timer and the alerts-sync queue (built in issue 4)."""

from __future__ import annotations

from shared.jobs import parse_job


def run_poll(*, past_due: bool = False) -> None:
    raise NotImplementedError("poll_alerts: polling the alert sources is not built yet (issue 4)")


def handle_sync_message(body: bytes, *, dequeue_count: int = 1) -> None:
    parse_job(body, kind="alerts-sync", required=("scope",))
    raise NotImplementedError("sync_alerts: syncing alerts is not built yet (issue 4)")
