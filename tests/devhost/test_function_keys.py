"""Function keys in the dev host follow the Functions host's rule, and the webhook's key opens nothing else."""

from __future__ import annotations

from collections.abc import Iterator

import azure.functions as func
import httpx
import pytest

from devhost.azurite import Azurite
from devhost.host import DevHost
from devhost.keys import FunctionKeys
from sandbox.core import Sandbox
from shared.admin.routes import OPERATIONS
from tests.conftest import REPO_ROOT, settings_env


def build_keyed_app() -> func.FunctionApp:
    app = func.FunctionApp()

    def answer(name: str) -> func.HttpResponse:
        return func.HttpResponse(name, status_code=200)

    @app.route(route="alpha", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
    def alpha(req: func.HttpRequest) -> func.HttpResponse:
        return answer("alpha")

    @app.route(route="beta", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
    def beta(req: func.HttpRequest) -> func.HttpResponse:
        return answer("beta")

    @app.route(route="gamma", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
    def gamma(req: func.HttpRequest) -> func.HttpResponse:
        return answer("gamma")

    @app.route(route="open", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def open_(req: func.HttpRequest) -> func.HttpResponse:
        return answer("open")

    return app


@pytest.fixture
def keyed() -> Iterator[DevHost]:
    with DevHost(build_keyed_app(), environ={}, host_json={}, http_port=0) as running:
        yield running


def test_a_function_key_opens_its_function_only_a_host_key_every_function_level_one(keyed: DevHost) -> None:
    host, keys = keyed, keyed.keys
    alpha_key = keys.function_key("alpha")

    def status(route: str, key: str | None = None, *, query: bool = False) -> int:
        if key is None:
            response = httpx.get(f"{host.base_url}/api/{route}")
        elif query:
            response = httpx.get(f"{host.base_url}/api/{route}", params={"code": key})
        else:
            response = httpx.get(f"{host.base_url}/api/{route}", headers={"x-functions-key": key})
        if response.status_code == 401:
            assert response.content == b""  # the host refuses before the function runs
        return response.status_code

    assert [status(r) for r in ("alpha", "beta", "gamma", "open")] == [401, 401, 401, 200]
    assert status("alpha", alpha_key) == status("alpha", alpha_key, query=True) == 200
    assert status("beta", alpha_key) == status("beta", alpha_key, query=True) == 401  # not its function
    assert status("gamma", alpha_key) == 401
    assert status("alpha", "wrong") == 401
    host_key = keys.host["default"]
    assert [status(r, host_key) for r in ("alpha", "beta", "gamma")] == [200, 200, 401]
    assert [status(r, keys.master) for r in ("alpha", "beta", "gamma")] == [200, 200, 200]
    ran = [i.function for i in host.invocations.snapshot()]
    assert (ran.count("alpha"), ran.count("beta")) == (4, 2)  # a refused call never ran the function


def test_keys_survive_on_disk_owner_only(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "keys.json"
    keys = FunctionKeys()
    key = keys.function_key("receive_webhook")
    keys.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    again = FunctionKeys.load(path)
    assert again.allows("receive_webhook", "function", key) and not again.allows("admin_x", "function", key)


def test_the_webhook_key_cannot_call_the_admin_api(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    environ = {**settings_env(azurite, **fresh_sandbox.app_settings()),
               "FRAUD_RESPONDER_LOCAL_SETTINGS": str(REPO_ROOT / "does-not-exist.json")}
    functions = ["receive_webhook", *(op.function_name for op in OPERATIONS)]
    with DevHost(environ=environ, http_port=0, functions=functions) as host:
        webhook_key = host.keys.function_key("receive_webhook")
        url = f"{host.base_url}/api/webhooks/partner-center"
        assert httpx.post(url, content=b"{}").status_code == 401  # no key: the host refuses
        reached = httpx.post(url, content=b"{}", params={"code": webhook_key})
        assert reached.content  # the receiver itself answered (an unsigned body is its to refuse)
        for key in (webhook_key, host.keys.host["default"]):  # neither opens a decision
            for headers, params in (({"x-functions-key": key}, {}), ({}, {"code": key})):
                listed = httpx.get(f"{host.base_url}/api/manage/alerts", headers=headers, params=params)
                assert listed.status_code == 401 and listed.json()["error"] == "unauthorized"
                approve = httpx.post(f"{host.base_url}/api/manage/actions/x/approve", headers=headers, params=params)
                assert approve.status_code == 401
