"""`pulumi up` entry point: the whole CSP fraud responder in an empty subscription, code included."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
INFRA_DIR = Path(__file__).resolve().parent
for path in (str(REPO_ROOT), str(INFRA_DIR)):
    if path not in sys.path:
        sys.path.insert(0, path)

import pulumi  # noqa: E402
import pulumi_azure_native as azure_native  # noqa: E402
from components.config import read_config  # noqa: E402
from components.package import build_package, clean_old_packages  # noqa: E402
from stack import build_stack  # noqa: E402

BUILD_DIR = INFRA_DIR / ".build"

config = read_config()
package_path = ""
if config.deploy_code and not pulumi.runtime.is_dry_run():
    # Only a real update builds (pip downloads Linux wheels); preview needs the content hash only.
    package = build_package(REPO_ROOT, BUILD_DIR)
    clean_old_packages(BUILD_DIR, keep=package.path)
    package_path = str(package.path)

stack = build_stack(config, repo_root=REPO_ROOT, package_path=package_path)
app = stack.function_app

pulumi.export("resource_group", stack.resource_group.name)
pulumi.export("app_name", app.app.name)
pulumi.export("webhook_url", app.webhook_url)
# The webhook's own function key: it opens receive_webhook only (a host key would open every
# function-level function). Register it with Partner Center; the admin API takes Entra ID tokens.
pulumi.export("webhook_key_command", pulumi.Output.concat(
    "az functionapp function keys list --resource-group ", stack.resource_group.name, " --name ", app.app.name,
    " --function-name receive_webhook --query default --output tsv"))
pulumi.export("key_vault_uri", stack.key_vault.vault_uri)
pulumi.export("key_vault_name", stack.key_vault.vault.name)
pulumi.export("storage_account", stack.storage.account.name)
if stack.deployment is not None:
    pulumi.export("deployed_package", stack.deployment.blob_name)
if pulumi.Config().get_bool("exportFunctionKey"):
    # Opt-in: the host creates a function's default key when it first starts, so on a brand-new app
    # this invoke can fail until the code is running; `webhook_key_command` always works.
    keys = azure_native.web.list_web_app_function_keys_output(
        function_name="receive_webhook", name=app.app.name, resource_group_name=stack.resource_group.name,
        opts=pulumi.InvokeOutputOptions(depends_on=[stack.deployment] if stack.deployment else []))
    webhook_key = keys.properties.apply(lambda k: (k or {}).get("default", ""))
    pulumi.export("webhook_key", pulumi.Output.secret(webhook_key))
