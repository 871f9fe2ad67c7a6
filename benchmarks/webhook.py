"""Verified webhook requests against Azurite, next to the bare storage work they need.

The handler is called in-process (as the Functions worker calls it), so the figures are the
handler's own cost: verification with a cached certificate, one insert-once, one queue put, one
state update. The baseline is one insert and one queue put with the same clients.
Target: p50 ratio at most 1.5.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.common import local_stack, summary_ms

REQUESTS = 300


def run(requests: int = REQUESTS) -> dict[str, Any]:
    from sandbox import ids
    from sandbox.webhooks import CERT_FILE_NAME, webhook_signer
    from shared.intake.webhook import build_receiver
    from shared.names import DELIVERIES_TABLE, SYNC_QUEUE
    from shared.settings import load_settings
    from shared.storage.queues import QueueSender
    from shared.storage.tables import TableStore

    with local_stack() as (azurite, sandbox):
        env = {"AzureWebJobsStorage": azurite.connection_string, "TABLE_NAME_PREFIX": "bench",
               **sandbox.app_settings()}
        settings = load_settings(env, local_settings=None)
        receiver = build_receiver(settings)
        signer = webhook_signer(sandbox)
        cert_url = f"{sandbox.url('cert_host')}/cert/{CERT_FILE_NAME}"
        start = datetime(2026, 1, 1, tzinfo=UTC)

        def signed(i: int) -> tuple[dict[str, str], bytes]:
            body = json.dumps({
                "EventName": "azure-fraud-event-detected",
                "ResourceUri": f"{settings.partner_center_url}/v1/fraudEvents?SubscriptionId="
                               f"{ids.SUB_FABRIKAM_PROD}&EventStatus=Active",
                "ResourceChangeUtcDate": (start + timedelta(seconds=i)).isoformat(),
                "AuditUri": None,
            }).encode()
            return ({"content-type": "application/json", "authorization": f"Signature {signer.sign(body)}",
                     "x-ms-certificate-url": cert_url, "x-ms-signature-algorithm": "rsa-sha256",
                     "content-length": str(len(body))}, body)

        prepared = [signed(i) for i in range(requests + 20)]
        for headers, body in prepared[:20]:  # warm: certificate fetched and cached, tables/queues created
            assert receiver.receive(headers=headers, body=body).status == 200
        handler: list[float] = []
        wall = time.perf_counter()
        for headers, body in prepared[20:]:
            t = time.perf_counter()
            answer = receiver.receive(headers=headers, body=body)
            handler.append(time.perf_counter() - t)
            assert answer.status == 200, answer.body
        handler_wall = time.perf_counter() - wall

        store, queue = TableStore(settings), QueueSender(settings)
        store.insert_once(DELIVERIES_TABLE, {"PartitionKey": "warm", "RowKey": "warm"})
        bare: list[float] = []
        wall = time.perf_counter()
        for i in range(requests):
            t = time.perf_counter()
            store.insert_once(DELIVERIES_TABLE, {"PartitionKey": "bare", "RowKey": uuid.uuid4().hex, "n": i})
            queue.send_json(SYNC_QUEUE, {"scope": "subscription", "n": i})
            bare.append(time.perf_counter() - t)
        bare_wall = time.perf_counter() - wall

    h, b = summary_ms(handler), summary_ms(bare)
    return {
        "requests": requests,
        "handler_p50_ms": h["p50_ms"], "handler_p99_ms": h["p99_ms"], "handler_rps": requests / handler_wall,
        "bare_p50_ms": b["p50_ms"], "bare_p99_ms": b["p99_ms"], "bare_rps": requests / bare_wall,
        "p50_ratio": h["p50_ms"] / b["p50_ms"], "target_p50_ratio": 1.5,
    }
