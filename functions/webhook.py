"""POST /api/webhooks/partner-center: Partner Center's signed webhook receiver (thin glue).

Verification, dedupe and enqueueing live in shared.intake.webhook, imported on first call so
the function app's cold start stays light. Function auth level: Partner Center's registered URL
carries a key of this function only (``?code=``), so that key opens nothing else (the admin API
needs an Entra ID token).
"""

import azure.functions as func

bp = func.Blueprint()


@bp.route(route="webhooks/partner-center", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def receive_webhook(req: func.HttpRequest) -> func.HttpResponse:
    from shared.intake.webhook import handle_request

    answer = handle_request(req.headers, req.get_body)
    return func.HttpResponse(answer.json(), status_code=answer.status, mimetype="application/json")
