"""`infra/__main__.py` as `pulumi preview` runs it, and the example stack file's keys."""

from __future__ import annotations

import runpy
from typing import Any

import pulumi
import yaml  # type: ignore[import-untyped]  # installed with pulumi (infra extra)
from components.config import SECRET_INPUTS, config_key
from conftest import INFRA_DIR, PROJECT, RecordingMocks

from shared.settings import SPECS

PROGRAM_KEYS = {"location", "namePrefix", "maximumInstances", "instanceMemoryMb", "writeCustomerSecrets",
                "deployerSecretsOfficer", "deployCode", "exportFunctionKey"}


def test_main_runs_in_preview_without_building_and_exports_the_outputs() -> None:
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="test", preview=True)
    pulumi.runtime.set_all_config({f"{PROJECT}:location": "swedencentral", f"{PROJECT}:namePrefix": "contoso"})
    namespace: dict[str, Any] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> pulumi.Output[Any]:
        namespace.update(runpy.run_path(str(INFRA_DIR / "__main__.py"), run_name="__main__"))
        return pulumi.Output.from_input(namespace["stack"].function_app.webhook_url)

    program()
    assert namespace["package_path"] == ""  # preview: hash only, no pip download
    code = mocks.one("pulumi-python:dynamic:Resource")
    assert len(code.inputs["content_hash"]) == 64
    assert mocks.one("azure-native:web:WebApp").inputs["name"].startswith("contoso-func-")


def test_example_stack_file_uses_only_known_keys() -> None:
    document = yaml.safe_load((INFRA_DIR / "Pulumi.example.yaml").read_text())
    keys = {key.split(":", 1)[1] for key in document["config"] if key.startswith(f"{PROJECT}:")}
    known = PROGRAM_KEYS | set(SECRET_INPUTS) | {config_key(spec) for spec in SPECS if spec.deploy}
    assert keys - known == set()
    project = yaml.safe_load((INFRA_DIR / "Pulumi.yaml").read_text())
    assert project["name"] == PROJECT
    assert set(project["config"]) <= PROGRAM_KEYS
