"""Queue alerts-sync: fetch alerts for a subscription (or all) and store what changed."""

import azure.functions as func

from shared.names import STORAGE_CONNECTION, SYNC_QUEUE

bp = func.Blueprint()


@bp.queue_trigger(arg_name="msg", queue_name=SYNC_QUEUE, connection=STORAGE_CONNECTION)
def sync_alerts(msg: func.QueueMessage) -> None:
    from shared.intake.jobs import handle_sync_message

    handle_sync_message(msg.get_body(), dequeue_count=msg.dequeue_count or 1)
