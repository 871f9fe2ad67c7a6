"""Checks HTTP answers against the admin API's OpenAPI document.

``Contract.check`` finds the operation for a method and a concrete path (``/api/manage/alerts/x``),
requires the status to be one the operation documents, and validates the JSON body against that
response's schema with jsonschema (OpenAPI 3.1 schemas are JSON Schema 2020-12). A status or body
the document does not describe fails the test that got it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOC_URI = "urn:fraud-responder:admin-openapi"


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass
class Contract:
    document: dict[str, Any]
    checked: list[tuple[str, str, int]] = field(default_factory=list)
    """(operationId, method, status) of every response checked, to prove coverage."""

    def __post_init__(self) -> None:
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(DOC_URI, resource)
        prefix = self.document["servers"][0]["url"].rstrip("/")
        self._paths = [(re.compile("^" + re.escape(prefix) + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
                                   + "$"), template) for template in self.document["paths"]]

    def template_for(self, path: str) -> str:
        found = [template for pattern, template in self._paths if pattern.match(path)]
        # a literal segment beats a parameter: /manage/openapi.json over nothing, /alerts/{id} over none
        found.sort(key=lambda t: t.count("{"))
        assert found, f"{path} is not in the OpenAPI document"
        return str(found[0])

    def check(self, response: httpx.Response) -> Any:
        """Validate ``response`` against the document; returns its JSON body (None when it has none)."""
        method = response.request.method.lower()
        path = response.request.url.path
        template = self.template_for(path)
        operation = self.document["paths"][template].get(method)
        assert operation is not None, f"{method.upper()} {template} is not documented"
        responses = operation["responses"]
        status = str(response.status_code)
        assert status in responses, (f"{method.upper()} {path} answered {status}, which the document does not list "
                                     f"({', '.join(responses)}): {response.text[:500]}")
        self.checked.append((operation["operationId"], method, response.status_code))
        content = responses[status].get("content")
        if content is None:
            assert not response.content, f"{status} is documented without a body, got {response.text[:200]}"
            return None
        media = response.headers["content-type"].split(";")[0].strip()
        if media != "application/json" and media in content:  # a documented text answer (the incident record)
            return response.text
        assert response.headers["content-type"].startswith("application/json"), response.headers["content-type"]
        body = response.json()
        ref = f"{DOC_URI}#/" + _pointer("paths", template, method, "responses", status, "content", "application/json",
                                        "schema")
        validator = Draft202012Validator({"$ref": ref}, registry=self._registry)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        assert not errors, (f"{method.upper()} {path} {status} does not match the document: "
                            + "; ".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:5]))
        return body

    def schema_validator(self, name: str) -> Draft202012Validator:
        return Draft202012Validator({"$ref": f"{DOC_URI}#/components/schemas/{name}"}, registry=self._registry)
