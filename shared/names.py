"""Names of queues and tables, shared by the app, the dev host, the CLI and the infrastructure."""

from typing import Final

SYNC_QUEUE: Final = "alerts-sync"
RESPOND_QUEUE: Final = "alerts-respond"
DETECT_QUEUE: Final = "alerts-detect"
"""Detection jobs: one per group of watched subscriptions, plus one partner-scope job per run."""
QUEUES: Final = (SYNC_QUEUE, RESPOND_QUEUE, DETECT_QUEUE)


def poison_queue(queue: str) -> str:
    """The Functions host moves a message here after maxDequeueCount failed tries."""
    return f"{queue}-poison"


ALERTS_TABLE: Final = "alerts"
DELIVERIES_TABLE: Final = "deliveries"
LEDGER_TABLE: Final = "ledger"
CHECKPOINTS_TABLE: Final = "checkpoints"
CONTACTS_TABLE: Final = "contacts"
DECISIONS_TABLE: Final = "decisions"
"""Operators' decisions, insert-only: one record per resolve, approve, reject, undo or expiry."""
SPEND_TABLE: Final = "spenddays"
"""One row per subscription and usage day, from the billing export (``shared.spend.series``)."""
WATCHLIST_TABLE: Final = "watchlist"
"""The subscriptions detection watches (Partner Center's Azure plan entitlements), cached."""
DETECTION_TABLE: Final = "detection"
"""Detection checkpoints and detector state: one partition per subscription (and one for the partner)."""
TABLES: Final = (ALERTS_TABLE, DELIVERIES_TABLE, LEDGER_TABLE, CHECKPOINTS_TABLE, CONTACTS_TABLE, DECISIONS_TABLE,
                 SPEND_TABLE, WATCHLIST_TABLE, DETECTION_TABLE)

STORAGE_CONNECTION: Final = "AzureWebJobsStorage"
"""The connection setting every queue trigger names (the host's own storage account)."""
