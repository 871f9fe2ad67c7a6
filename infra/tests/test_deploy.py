"""Code deployment: the upload on real blob storage (Azurite), OneDeploy's ARM exchange, the diff."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from components.deploy import DeployError, PackageDeployProvider, blob_name, one_deploy, upload_package

from devhost.azurite import Azurite, start_azurite

HASH = "ab" * 32


@pytest.fixture(scope="module")
def azurite() -> Iterator[Azurite]:
    instance = start_azurite()
    try:
        yield instance
    finally:
        instance.stop()


def test_upload_names_the_blob_by_content_hash_and_skips_unchanged(azurite: Azurite, tmp_path: Path) -> None:
    from azure.storage.blob import BlobServiceClient

    package = tmp_path / "package.zip"
    package.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.get_container_client("app-package")
    container.create_container()
    name = upload_package(container, package, HASH)
    assert name == blob_name(HASH) == f"packages/{HASH}.zip"
    props = container.get_blob_client(name).get_blob_properties()
    assert props.metadata["contenthash"] == HASH
    assert props.content_settings.content_type == "application/zip"
    assert container.download_blob(name).readall() == package.read_bytes()
    assert upload_package(container, package, HASH) == name
    assert container.get_blob_client(name).get_blob_properties().etag == props.etag  # not uploaded again


def test_redeploy_only_when_the_content_hash_changes() -> None:
    provider = PackageDeployProvider()
    olds = {"content_hash": HASH, "package_path": "/a/package.zip", "app_name": "app", "resource_group": "rg",
            "subscription_id": "sub", "container_url": "https://s.blob.core.windows.net/app-package"}
    assert provider.diff("id", olds, {**olds, "package_path": ""}).changes is False
    assert provider.diff("id", olds, {**olds, "content_hash": "cd" * 32}).changes is True
    assert provider.diff("id", olds, {**olds, "app_name": "other"}).changes is True


class _Arm(BaseHTTPRequestHandler):
    """A loopback stand-in for ARM's OneDeploy exchange: 202 + Location, then Succeeded."""

    requests: list[tuple[str, str, dict[str, Any], str]] = []
    refuse = False

    def do_PUT(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(("PUT", self.path, body, self.headers["Authorization"]))
        if self.refuse:
            self._reply(403, {"error": {"code": "AuthorizationFailed", "message": "no write on extensions"}})
            return
        self._reply(202, {}, {"Location": f"http://{self.headers['Host']}/status/1",
                              "Retry-After": "0"})

    def do_GET(self) -> None:
        self.requests.append(("GET", self.path, {}, self.headers["Authorization"]))
        self._reply(200, {"status": "Succeeded"})

    def _reply(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def arm() -> Iterator[str]:
    _Arm.requests = []
    _Arm.refuse = False
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Arm)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


SAS_URL = "https://s.blob.core.windows.net/app-package/packages/x.zip?sig=SECRET-SIGNATURE"


def test_one_deploy_puts_the_extension_and_waits_for_success(arm: str) -> None:
    one_deploy(arm_url=arm, token="tok", subscription_id="sub", resource_group="rg", app_name="app",
               package_url=SAS_URL, sleep=lambda _: None)
    method, path, body, auth = _Arm.requests[0]
    assert method == "PUT"
    assert path == ("/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Web/sites/app/extensions/onedeploy"
                    "?api-version=2024-04-01")
    assert body == {"properties": {"packageUri": SAS_URL, "remoteBuild": False}}
    assert auth == "Bearer tok"
    assert _Arm.requests[1][:2] == ("GET", "/status/1")


def test_refused_deploy_says_why_without_the_sas(arm: str) -> None:
    _Arm.refuse = True
    with pytest.raises(DeployError, match="AuthorizationFailed") as err:
        one_deploy(arm_url=arm, token="tok", subscription_id="sub", resource_group="rg", app_name="app",
                   package_url=SAS_URL, sleep=lambda _: None)
    assert "SECRET-SIGNATURE" not in str(err.value)
    assert "Bearer" not in str(err.value)
