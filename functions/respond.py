"""Queue alerts-respond: apply the response policy to one stored alert."""

import azure.functions as func

from shared.names import RESPOND_QUEUE, STORAGE_CONNECTION

bp = func.Blueprint()


@bp.queue_trigger(arg_name="msg", queue_name=RESPOND_QUEUE, connection=STORAGE_CONNECTION)
def respond_to_alert(msg: func.QueueMessage) -> None:
    from shared.response.jobs import handle_respond_message

    handle_respond_message(msg.get_body(), dequeue_count=msg.dequeue_count or 1)
