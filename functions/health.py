"""GET /api/health: anonymous callers get up or down (cached); a token with the read role gets the report."""

import azure.functions as func

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    from shared.health import answer

    result = answer(dict(req.headers))
    return func.HttpResponse(result.body(), status_code=result.status, headers=result.headers,
                             mimetype="application/json")
