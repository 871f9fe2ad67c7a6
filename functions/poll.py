"""Timer poll_alerts: polls the alert sources so nothing depends on a webhook arriving."""

import azure.functions as func

bp = func.Blueprint()


@bp.timer_trigger(schedule="%POLL_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def poll_alerts(timer: func.TimerRequest) -> None:
    from shared.intake.jobs import run_poll
    from shared.operations.approvals import expire_after_poll
    from shared.operations.token_watch import watch_after_poll

    run_poll(past_due=timer.past_due)
    watch_after_poll()  # e-mails the security contacts (once a day) when the SAM token needs a person
    expire_after_poll()  # approvals waiting longer than APPROVAL_EXPIRY_HOURS expire, and are re-notified
