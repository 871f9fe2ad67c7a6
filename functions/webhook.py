"""POST /api/webhooks/partner-center: Partner Center's signed webhook receiver."""

import json

import azure.functions as func

bp = func.Blueprint()


@bp.route(route="webhooks/partner-center", methods=["POST"])
def receive_webhook(req: func.HttpRequest) -> func.HttpResponse:
    # Not built yet (issue 4): answer 501 so Partner Center retries and nothing is lost.
    return func.HttpResponse(
        json.dumps({"error": "not_implemented", "message": "webhook verification is not built yet"}),
        status_code=501, mimetype="application/json",
    )
