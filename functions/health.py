"""GET /api/health: 200 with a JSON report, or 503 naming the failing part."""

import json

import azure.functions as func

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    from shared.health import build_report

    report = build_report()
    return func.HttpResponse(
        json.dumps(report.as_dict()), status_code=200 if report.ok else 503, mimetype="application/json"
    )
