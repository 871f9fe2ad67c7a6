"""`fraud-responder whoami` and `fraud-responder api-token`: who the CLI decides as, and a token for the admin API.

``whoami`` prints the identity the CLI records on its decisions (``shared.cli.context.operator``).
``api-token`` prints a Microsoft Entra ID access token for the admin API (scope
``api://<ADMIN_API_CLIENT_ID>/.default``) for use as ``Authorization: Bearer``: in Azure from
DefaultAzureCredential (``az login``: the API's app registration must pre-authorise the Azure CLI,
see infra/README.md); against the sandbox's Entra from its sandbox-only operator token endpoint,
for a user of its scenario (``--user``).
"""

from __future__ import annotations

import argparse
from typing import Any

from shared.cli import EXIT_OK, CommandFailed
from shared.cli.context import settings
from shared.formats import one_line

SANDBOX_OPERATOR_TOKENS = "/_sandbox/entra/operator_tokens"


def register(subparsers: Any) -> None:
    whoami = subparsers.add_parser("whoami", help="the identity recorded on your decisions",
                                   description="Print the identity the CLI records on approvals, rejections, undos "
                                               "and resolutions: your Entra ID sign-in, or local:<OS user> against "
                                               "Azurite.")
    whoami.set_defaults(handler=show_identity)
    token = subparsers.add_parser("api-token", help="print an access token for the admin API",
                                  description="Print a Microsoft Entra ID access token for the admin API, for "
                                              "curl -H \"Authorization: Bearer $(fraud-responder api-token)\".")
    token.add_argument("--user", metavar="UPN", help="against the sandbox only: the scenario's user to sign in as, "
                                                     "e.g. alice@contoso-csp.example")
    token.set_defaults(handler=print_api_token)


def show_identity(args: argparse.Namespace) -> int:
    from shared.cli.context import operator

    print(operator())
    return EXIT_OK


def print_api_token(args: argparse.Namespace) -> int:
    from shared.auth.hosts import is_microsoft_authority

    config = settings()
    if not config.admin_api_client_id:
        raise CommandFailed("ADMIN_API_CLIENT_ID is not set: it names the app registration whose tokens open the "
                            "admin API")
    scope = f"api://{config.admin_api_client_id}/.default"
    if is_microsoft_authority(config.entra_authority_host):
        if args.user:
            raise CommandFailed("--user is for the sandbox only: in Azure the token is for whoever is signed in "
                                "(az login)")
        print(_azure_token(config.entra_authority_host, scope))
    else:
        if not args.user:
            raise CommandFailed("against the sandbox give --user, a user of its scenario, e.g. "
                                "--user alice@contoso-csp.example (reads and decides) or bob@contoso-csp.example "
                                "(reads)")
        print(_sandbox_token(args.user))
    return EXIT_OK


def _azure_token(authority: str, scope: str) -> str:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import CredentialUnavailableError, DefaultAzureCredential

    credential = DefaultAzureCredential(authority=authority)
    try:
        return str(credential.get_token(scope).token)
    except (CredentialUnavailableError, ClientAuthenticationError) as exc:
        raise CommandFailed(f"cannot get a token for {scope}: sign in with `az login`; "
                            f"{one_line(exc, 200, first_only=True)}") from None
    finally:
        credential.close()


def _sandbox_token(user: str) -> str:
    import httpx

    from shared.http import verify_from_settings

    config = settings()
    url = config.entra_authority_host.rstrip("/") + SANDBOX_OPERATOR_TOKENS
    try:
        response = httpx.post(url, json={"username": user}, verify=verify_from_settings(config), timeout=30)
    except httpx.HTTPError as exc:
        raise CommandFailed(f"cannot reach the sandbox's Entra at {config.entra_authority_host}: {exc}") from None
    if response.status_code != 201:
        try:
            detail = str(response.json().get("error_description", response.text))
        except ValueError:
            detail = response.text
        raise CommandFailed(f"the sandbox refused: {one_line(detail, 300)}")
    return str(response.json()["access_token"])
