"""The admin API under /api/manage/ (thin glue): one function per operation.

Routes and handlers live in shared.admin (imported on first call, so cold start stays light); the
OpenAPI document is at /api/manage/openapi.json. Not /api/admin/: the Functions host refuses routes
that start with ``admin``. The host lets every call through (anonymous auth level): the app itself
requires a Microsoft Entra ID access token with an app role (shared.auth.operator_tokens), so the
check is the same under the Functions host, Core Tools and the dev host, and no function key (in
particular the webhook's) opens it.
"""

import azure.functions as func

bp = func.Blueprint()

_KEY = func.AuthLevel.ANONYMOUS  # the app checks the caller's Entra ID token


def _call(operation: str, req: func.HttpRequest) -> func.HttpResponse:
    from shared.admin.api import AdminRequest, handle

    answer = handle(operation, AdminRequest(params=dict(req.params), route_params=dict(req.route_params),
                                            body=req.get_body() or b"", headers=dict(req.headers)))
    return func.HttpResponse(answer.body(), status_code=answer.status, headers=dict(answer.headers),
                             mimetype=answer.media_type, charset="utf-8")


@bp.route(route="manage/alerts", methods=["GET"], auth_level=_KEY)
def admin_list_alerts(req: func.HttpRequest) -> func.HttpResponse:
    return _call("list_alerts", req)


@bp.route(route="manage/alerts/{alert_id}", methods=["GET"], auth_level=_KEY)
def admin_get_alert(req: func.HttpRequest) -> func.HttpResponse:
    return _call("get_alert", req)


@bp.route(route="manage/alerts/{alert_id}/resolve", methods=["POST"], auth_level=_KEY)
def admin_resolve_alert(req: func.HttpRequest) -> func.HttpResponse:
    return _call("resolve_alert", req)


@bp.route(route="manage/alerts/{alert_id}/incident", methods=["GET"], auth_level=_KEY)
def admin_export_incident(req: func.HttpRequest) -> func.HttpResponse:
    return _call("export_incident", req)


@bp.route(route="manage/alerts/{alert_id}/actions/approve", methods=["POST"], auth_level=_KEY)
def admin_approve_alert_actions(req: func.HttpRequest) -> func.HttpResponse:
    return _call("approve_alert_actions", req)


@bp.route(route="manage/alerts/{alert_id}/actions/reject", methods=["POST"], auth_level=_KEY)
def admin_reject_alert_actions(req: func.HttpRequest) -> func.HttpResponse:
    return _call("reject_alert_actions", req)


@bp.route(route="manage/actions", methods=["GET"], auth_level=_KEY)
def admin_list_actions(req: func.HttpRequest) -> func.HttpResponse:
    return _call("list_actions", req)


@bp.route(route="manage/actions/{action_id}/approve", methods=["POST"], auth_level=_KEY)
def admin_approve_action(req: func.HttpRequest) -> func.HttpResponse:
    return _call("approve_action", req)


@bp.route(route="manage/actions/{action_id}/reject", methods=["POST"], auth_level=_KEY)
def admin_reject_action(req: func.HttpRequest) -> func.HttpResponse:
    return _call("reject_action", req)


@bp.route(route="manage/actions/{action_id}/undo", methods=["POST"], auth_level=_KEY)
def admin_undo_action(req: func.HttpRequest) -> func.HttpResponse:
    return _call("undo_action", req)


@bp.route(route="manage/tokens", methods=["GET"], auth_level=_KEY)
def admin_get_tokens(req: func.HttpRequest) -> func.HttpResponse:
    return _call("get_tokens", req)


@bp.route(route="manage/digest", methods=["GET"], auth_level=_KEY)
def admin_get_digest(req: func.HttpRequest) -> func.HttpResponse:
    return _call("get_digest", req)


@bp.route(route="manage/poison", methods=["GET"], auth_level=_KEY)
def admin_list_poison(req: func.HttpRequest) -> func.HttpResponse:
    return _call("list_poison", req)


@bp.route(route="manage/openapi.json", methods=["GET"], auth_level=_KEY)
def admin_get_openapi(req: func.HttpRequest) -> func.HttpResponse:
    return _call("get_openapi", req)
