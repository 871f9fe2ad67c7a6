"""`python -m sandbox serve` and scenario placeholders."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sandbox import ids
from sandbox.scenario import ScenarioError, resolve

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_serve_prints_the_json_first_line_and_stops_on_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--state-dir", str(tmp_path)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())
        assert {"partner_center", "entra", "graph", "arm", "key_vault", "cert_host", "ca_cert"} <= set(first)
        settings = first["app_settings"]
        assert settings["ENTRA_AUTHORITY_HOST"] == first["entra"]
        assert settings["KEY_VAULT_URL"] == first["key_vault"]
        assert settings["TRUSTED_CA_BUNDLE"] == first["ca_cert"] == str(tmp_path / "ca.pem")
        assert settings["AZURE_CLIENT_ID"] == ids.LOCAL_APP_CLIENT_ID
        import ssl

        context = ssl.create_default_context(cafile=first["ca_cert"])
        response = httpx.get(f"{first['entra']}/{ids.PARTNER_TENANT_ID}/v2.0/.well-known/openid-configuration",
                             verify=context)
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=15) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()


def test_placeholders_fill_times_ids_and_urls() -> None:
    now = dt.datetime(2025, 1, 31, 9, 15, tzinfo=dt.UTC)
    document = {
        "at": "{{now-2h}}", "day": "{{now-3d|date}}", "epoch": "{{now+30m|epoch}}", "pc": "{{now|ms}}",
        "sub": "{{id:SUB_FABRIKAM_PROD}}", "cert": "{{url:cert_host}}/certs/{{id:PARTNER_TENANT_ID}}.cer",
    }
    filled = resolve(document, now=now, urls={"cert_host": "https://127.0.0.1:5000"})
    assert filled == {
        "at": "2025-01-31T07:15:00Z", "day": "2025-01-28", "epoch": int(now.timestamp()) + 1800,
        "pc": "2025-01-31T09:15:00.0000000Z", "sub": ids.SUB_FABRIKAM_PROD,
        "cert": f"https://127.0.0.1:5000/certs/{ids.PARTNER_TENANT_ID}.cer",
    }


@pytest.mark.parametrize("placeholder", ["{{id:NO_SUCH_ID}}", "{{url:nowhere}}", "{{yesterday}}"])
def test_unknown_placeholders_are_errors_naming_them(placeholder: str) -> None:
    with pytest.raises(ScenarioError, match="unknown placeholder"):
        resolve({"x": placeholder}, urls={})
