"""Azure Functions entry point: builds the FunctionApp and registers the blueprints.

Keep this module thin and its imports light: it is imported on every cold start. Heavy SDKs
(azure.data.tables, azure.identity, msal, httpx, cryptography, ...) load inside handlers on first
use; tests/test_cold_start.py enforces it.
"""

import azure.functions as func

from functions.admin import bp as admin_bp
from functions.detect import bp as detect_bp
from functions.digest import bp as digest_bp
from functions.health import bp as health_bp
from functions.poll import bp as poll_bp
from functions.respond import bp as respond_bp
from functions.sync import bp as sync_bp
from functions.webhook import bp as webhook_bp

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (webhook_bp, poll_bp, sync_bp, respond_bp, health_bp):
    app.register_functions(blueprint)
app.register_functions(admin_bp)
app.register_functions(digest_bp)
app.register_functions(detect_bp)
