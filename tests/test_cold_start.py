"""Importing function_app must not pay for heavy SDKs: they load inside handlers."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("azure.data.tables", "azure.storage.queue", "azure.identity", "azure.keyvault", "msal", "httpx",
         "cryptography", "pulumi")


def test_function_app_import_keeps_heavy_sdks_out() -> None:
    code = "import json, sys, function_app; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    heavy = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert heavy == []
    assert "azure.functions" in loaded


def test_all_functions_are_registered() -> None:
    import function_app
    from devhost.app import functions_of

    names = {f.get_function_name() for f in functions_of(function_app.app)}
    assert names >= {"receive_webhook", "poll_alerts", "sync_alerts", "respond_to_alert", "health",
                     "detect_fanout", "detect_subscriptions"}
