"""Timer detect_fanout (on DETECT_SCHEDULE) and queue alerts-detect: independent detection.

The timer sends one job per group of watched subscriptions (and one for the partner scope); the
queue trigger runs them, so the host spreads the work over its instances. Glue only.
"""

import azure.functions as func

from shared.names import DETECT_QUEUE, STORAGE_CONNECTION

bp = func.Blueprint()


@bp.timer_trigger(schedule="%DETECT_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def detect_fanout(timer: func.TimerRequest) -> None:
    from shared.detection.jobs import fan_out

    fan_out(past_due=timer.past_due)


@bp.queue_trigger(arg_name="msg", queue_name=DETECT_QUEUE, connection=STORAGE_CONNECTION)
def detect_subscriptions(msg: func.QueueMessage) -> None:
    from shared.detection.jobs import handle_detect_message

    handle_detect_message(msg.get_body())
