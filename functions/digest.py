"""Timer daily_digest: e-mails the operators' digest once a day (schedule DIGEST_SCHEDULE)."""

import azure.functions as func

bp = func.Blueprint()


@bp.timer_trigger(schedule="%DIGEST_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def daily_digest(timer: func.TimerRequest) -> None:
    from shared.operations.digest import run_daily_digest

    run_daily_digest(past_due=timer.past_due)
