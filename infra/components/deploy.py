"""Code deployment for Flex Consumption: upload the package, then OneDeploy it through ARM.

How Flex picks the code: the app runs the package that a OneDeploy deployment put in the
container named in ``functionAppConfig.deployment.storage`` (the platform stores it there as
``released-package.zip``, restarts the app and syncs the triggers). Writing that blob directly
skips the trigger sync, so the scale controller would not learn about new or changed triggers.
The closest real thing Pulumi can do without the ``func``/``az`` CLIs is what the
``Microsoft.Web/sites/extensions/onedeploy`` ARM resource does in Bicep: we

1. upload the zip as ``packages/<content-hash>.zip`` (metadata ``contenthash``) with the
   deployer's Entra ID login (shared keys are off, so the azure-native ``Blob`` resource cannot
   write here, pulumi-azure-native issue 2015);
2. give OneDeploy a one-hour, read-only user-delegation SAS for that blob;
3. ``PUT .../sites/<app>/extensions/onedeploy`` (``remoteBuild: false``: the dependencies are
   already in the package) and wait for ARM to finish.

A dynamic resource whose only diffed input is the content hash does this, so ``pulumi up``
redeploys exactly when the code or ``requirements.txt`` changed. This module must not import
``shared``: Pulumi runs dynamic providers in a separate process from the ``infra/`` directory.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pulumi
import pulumi.dynamic

ONEDEPLOY_API_VERSION: Final = "2024-04-01"
SAS_LIFETIME: Final = dt.timedelta(hours=1)
DEPLOY_TIMEOUT_SECONDS: Final = 900
ARM_SCOPE: Final = "https://management.azure.com/.default"
DIFFED_INPUTS: Final = ("content_hash", "app_name", "resource_group", "subscription_id", "container_url")


class DeployError(RuntimeError):
    """The package could not be deployed; the message says what to check."""


def blob_name(content_hash: str) -> str:
    return f"packages/{content_hash}.zip"


def upload_package(container: Any, path: Path, content_hash: str) -> str:
    """Upload the zip to ``container`` (an azure.storage.blob ContainerClient) unless already there."""
    name = blob_name(content_hash)
    blob = container.get_blob_client(name)
    if blob.exists() and blob.get_blob_properties().metadata.get("contenthash") == content_hash:
        return name
    from azure.storage.blob import ContentSettings

    with path.open("rb") as data:
        blob.upload_blob(data, overwrite=True, metadata={"contenthash": content_hash},
                         content_settings=ContentSettings(content_type="application/zip"))
    return name


def read_sas_url(service: Any, container_name: str, name: str) -> str:
    """A read-only user-delegation SAS URL for one blob, valid for SAS_LIFETIME (needs Blob Delegator)."""
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    expiry = start + SAS_LIFETIME
    key = service.get_user_delegation_key(key_start_time=start, key_expiry_time=expiry)
    sas = generate_blob_sas(account_name=service.account_name, container_name=container_name, blob_name=name,
                            user_delegation_key=key, permission=BlobSasPermissions(read=True),
                            start=start, expiry=expiry)
    return f"{service.url.rstrip('/')}/{container_name}/{name}?{sas}"


def one_deploy(*, arm_url: str, token: str, subscription_id: str, resource_group: str, app_name: str,
               package_url: str, sleep: Callable[[float], None] = time.sleep) -> None:
    """PUT the onedeploy site extension and wait until ARM reports it finished."""
    import httpx

    url = (f"{arm_url.rstrip('/')}/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
           f"/providers/Microsoft.Web/sites/{app_name}/extensions/onedeploy")
    headers = {"Authorization": f"Bearer {token}"}
    body = {"properties": {"packageUri": package_url, "remoteBuild": False}}
    with httpx.Client(timeout=60) as client:
        response = client.put(url, params={"api-version": ONEDEPLOY_API_VERSION}, json=body, headers=headers)
        if response.status_code not in (200, 201, 202):
            raise DeployError(f"OneDeploy to {app_name} was refused ({response.status_code}): {_arm_error(response)}; "
                              "check that you may write Microsoft.Web/sites/extensions on the app")
        poll = response.headers.get("Azure-AsyncOperation") or response.headers.get("Location")
        deadline = time.monotonic() + DEPLOY_TIMEOUT_SECONDS
        while response.status_code == 202 and poll:
            if time.monotonic() > deadline:
                raise DeployError(f"OneDeploy to {app_name} did not finish in {DEPLOY_TIMEOUT_SECONDS} s; "
                                  "see Deployment Center in the portal")
            sleep(float(response.headers.get("Retry-After", "5")))
            response = client.get(poll, headers=headers)
            status = response.json().get("status", "") if response.content else ""
            if status.lower() in ("failed", "canceled"):
                raise DeployError(f"OneDeploy to {app_name} failed: {_arm_error(response)}")
            if status.lower() == "succeeded":
                return
            if response.status_code not in (200, 202):
                raise DeployError(f"OneDeploy status for {app_name} returned {response.status_code}: "
                                  f"{_arm_error(response)}")


def _arm_error(response: Any) -> str:
    try:
        error = response.json().get("error") or {}
        return f"{error.get('code', '')} {error.get('message', '')}".strip() or response.reason_phrase
    except ValueError:
        return str(response.reason_phrase)


def _deploy(props: dict[str, Any]) -> dict[str, Any]:
    from azure.identity import DefaultAzureCredential
    from azure.storage.blob import BlobServiceClient

    credential = DefaultAzureCredential()
    container_url: str = props["container_url"]
    account_url, container_name = container_url.rstrip("/").rsplit("/", 1)
    service = BlobServiceClient(account_url=account_url, credential=credential)
    name = upload_package(service.get_container_client(container_name), Path(props["package_path"]),
                          props["content_hash"])
    package_url = read_sas_url(service, container_name, name)
    one_deploy(arm_url=props["arm_url"], token=credential.get_token(ARM_SCOPE).token,
               subscription_id=props["subscription_id"], resource_group=props["resource_group"],
               app_name=props["app_name"], package_url=package_url)
    return {**props, "blob_name": name,
            "deployed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


class PackageDeployProvider(pulumi.dynamic.ResourceProvider):
    """Redeploys when the content hash (or the target app) changes, never otherwise."""

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed = [key for key in DIFFED_INPUTS if olds.get(key) != news.get(key)]
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        outs = _deploy(props)
        return pulumi.dynamic.CreateResult(id_=f"{props['app_name']}/{props['content_hash'][:16]}", outs=outs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(outs=_deploy(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing to undo: the app and its container are deleted with the rest of the stack."""


class PackageDeployment(pulumi.dynamic.Resource):
    """The deployed code: outputs ``content_hash`` and ``blob_name`` of the package the app runs."""

    content_hash: pulumi.Output[str]
    blob_name: pulumi.Output[str]

    def __init__(self, name: str, *, package_path: pulumi.Input[str], content_hash: pulumi.Input[str],
                 container_url: pulumi.Input[str], subscription_id: pulumi.Input[str],
                 resource_group: pulumi.Input[str], app_name: pulumi.Input[str],
                 arm_url: str = "https://management.azure.com", opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            PackageDeployProvider(), name,
            {"package_path": package_path, "content_hash": content_hash, "container_url": container_url,
             "subscription_id": subscription_id, "resource_group": resource_group, "app_name": app_name,
             "arm_url": arm_url, "blob_name": None, "deployed_at": None},
            opts,
        )
