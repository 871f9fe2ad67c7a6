"""The OpenAPI document is well formed and describes exactly the admin functions the app registers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from devhost.app import HttpTrigger, read_functions
from devhost.host import load_function_app
from shared.admin.openapi import openapi_document
from shared.admin.routes import BASE, OPERATIONS, RESERVED_ROUTE_STARTS
from shared.response.actions.base import Target
from shared.response.ledger import LedgerEntry
from tests.admin.openapi_support import Contract

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references are used: {ref}"
    node: Any = document
    for escaped in ref[2:].split("/"):
        part = escaped.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


def test_document_structure_is_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] and document["info"]["version"]
    assert document["servers"] == [{"url": "/api"}]
    schemes = document["components"]["securitySchemes"]
    # an Entra ID bearer token, checked by the app: no function key (the webhook's included) opens the API
    assert [(s["type"], s["scheme"]) for s in schemes.values()] == [("http", "bearer")]
    for item in document["paths"].values():
        for operation in item.values():
            if operation["operationId"] == "get_openapi":
                assert operation["security"] == []
            else:
                assert operation["x-app-role"] in ("FraudResponder.Read", "FraudResponder.Decide")
                assert {"401", "403"} <= set(operation["responses"])
                body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
                if body:
                    name = body["schema"]["$ref"].rsplit("/", 1)[1]
                    assert "operator" not in document["components"]["schemas"][name]["properties"]
    assert all(set(requirement) <= set(schemes) for requirement in document["security"])
    for node in _walk(document):
        if isinstance(node, dict) and "$ref" in node:
            _resolve(document, node["$ref"])
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    ids = []
    for path, item in document["paths"].items():
        assert path.startswith("/") and set(item) <= set(METHODS), path
        declared = set(re.findall(r"\{([^}]+)\}", path))
        for method, operation in item.items():
            ids.append(operation["operationId"])
            in_path = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert in_path == declared, f"{method} {path}: path parameters {in_path} != {declared}"
            assert all(p["required"] for p in operation["parameters"] if p["in"] == "path")
            for parameter in operation["parameters"]:
                Draft202012Validator.check_schema(parameter["schema"])
            assert "200" in operation["responses"]
            for status, response in operation["responses"].items():
                assert re.fullmatch(r"[1-5]\d\d", status) and response["description"], (path, status)
                if "content" in response:
                    schema = response["content"]["application/json"]["schema"]
                    Draft202012Validator.check_schema(schema)
                    if status != "200":
                        assert schema == {"$ref": "#/components/schemas/Error"}
            if method == "post":
                assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert len(ids) == len(set(ids)), "operationIds are unique"


def test_document_lists_exactly_the_admin_functions_of_the_app(document: dict[str, Any]) -> None:
    functions, _skipped = read_functions(load_function_app())
    admin = {f.name: f for f in functions if f.name.startswith("admin_")}
    documented = {(path, method.upper()): operation["operationId"] for path, item in document["paths"].items()
                  for method, operation in item.items()}
    served = {}
    for name, function in admin.items():
        trigger = function.trigger
        assert isinstance(trigger, HttpTrigger)
        # the app checks an Entra ID token itself; a host key level would let a function key stand in for it
        assert trigger.auth_level == "anonymous", f"{name}: the app, not a function key, decides who may call"
        assert trigger.route.startswith(f"{BASE}/"), trigger.route
        for method in trigger.methods:
            served[("/" + trigger.route, method)] = name.removeprefix("admin_")
    assert served == documented
    assert {op.function_name for op in OPERATIONS} == set(admin)


def test_no_http_function_uses_a_route_the_functions_host_reserves() -> None:
    # The host refuses to load a function whose route starts with "admin" or "runtime" ("The
    # specified route conflicts with one or more built in routes"), whatever the route prefix.
    functions, _skipped = read_functions(load_function_app())
    routes = {f.name: f.trigger.route for f in functions if isinstance(f.trigger, HttpTrigger)}
    assert routes
    for name, route in routes.items():
        assert not route.strip("/").lower().startswith(RESERVED_ROUTE_STARTS), f"{name}: {route}"


def test_the_action_schema_covers_every_field_of_a_ledger_row(document: dict[str, Any]) -> None:
    row = LedgerEntry(partition="p", row="r", action_id="0123456789", alert_key="partner_center:x", alert_id="x",
                      alert_partition="c", alert_row="x", customer_tenant_id="c", subscription_id="s",
                      action="stop_resources", target=Target("vm", "/subscriptions/s/vm"), mode="approve",
                      state="awaiting-approval", attempts=0, created_at=None, updated_at=None, actor="policy:r",
                      rule="r", reason="why", version=1).as_json()
    schema = document["components"]["schemas"]["Action"]
    assert set(row) == set(schema["properties"]) == set(schema["required"])
    contract = Contract(document)
    assert not list(contract.schema_validator("Action").iter_errors(row))
    assert list(contract.schema_validator("Action").iter_errors({**row, "state": "exploded"}))
