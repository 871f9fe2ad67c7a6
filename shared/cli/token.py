"""`fraud-responder token status`: the SAM refresh token's age, the last token error, and the fix.

Also Partner Center MFA readiness (GET /v1/applicationmfaadoptionstatus, read by ``--check`` and
once a day by the poll) and which token reads Graph partner alerts (app-only, or the delegated
SAM token after Graph answered Unauthorized_MissingMFA).

Exit 0 when the app can work (a near expiry is a WARNING line, still 0); 1 when a token is
refused now or the refresh token has expired, with the re-consent steps, and 1 whenever
``--check`` itself failed (e.g. Key Vault or the secret could not be read).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from shared.cli import EXIT_FAILED, EXIT_OK
from shared.cli.context import settings, store
from shared.cli.output import print_json, print_table


def register(subparsers: Any) -> None:
    token = subparsers.add_parser("token", help="health of the Secure Application Model refresh token")
    sub = token.add_subparsers(dest="token_command", metavar="COMMAND", required=True)
    status = sub.add_parser(
        "status", help="when the refresh token was last rolled, when it expires if unused, the last error",
        description="Show when the SAM refresh token was last rolled (its Key Vault secret version), when it "
                    "expires if unused (90 days later), the days left and each token's last outcome. Warns "
                    "under TOKEN_WARN_DAYS days; prints the re-consent steps when action is needed.")
    status.add_argument("--check", action="store_true",
                        help="redeem the refresh token for Partner Center now and record the outcome "
                             "(rolls the token, as every poll does)")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=show_status)


def show_status(args: argparse.Namespace) -> int:
    from shared.operations.token_status import check_now, token_status

    config, tables = settings(), store()
    check_failed = False
    if args.check:
        print("redeeming the refresh token for Partner Center ...", file=sys.stderr)
        checked = check_now(config, tables)
        check_failed = not checked["ok"]
        print(("ok: " if checked["ok"] else "failed: ") + checked["message"], file=sys.stderr)
    doc = token_status(config, tables)
    # --check that failed is a failure even when nothing was recorded (e.g. the secret is unreadable)
    result = EXIT_OK if doc["ok"] and not check_failed else EXIT_FAILED
    if args.json:
        print_json(doc)
        return result
    age = doc["refresh_token"]
    print(f"{'state':>22}: {doc['state']}")
    print(f"{'refresh token secret':>22}: {age['secret_name']}")
    if age["error"]:
        print(f"{'age':>22}: unknown ({age['error']})")
    else:
        print(f"{'last rolled':>22}: {age['last_rolled_at']}")
        print(f"{'expires if unused':>22}: {age['expires_if_unused_at']}")
        print(f"{'days left':>22}: {age['days_left']} (warning under {age['warn_days']})")
    readiness = doc["mfa_readiness"]
    mine = readiness["this_app"]
    if readiness["ready"] is None:
        mfa = "unknown (" + (readiness["error"][:160] if readiness["error"] else
                             "not read yet: `token status --check`, or the next poll") + ")"
    else:
        mfa = (f"{'ready' if readiness['ready'] else 'NOT READY'}: {mine['mfa_compliant_requests']} of "
               f"{mine['total_requests']} App+User request(s) in {readiness['window_days']} days carried MFA "
               f"(read {(readiness['read_at'] or '')[:19]})")
    print(f"{'MFA readiness':>22}: {mfa}")
    graph = doc["graph_alerts"]
    if graph["mode"] != "unknown":
        how = "app-only" if graph["mode"] == "app_only" else "DELEGATED SAM token (app-only refused: MFA)"
        print(f"{'graph alerts read with':>22}: {how} since {(graph['since'] or '')[:19]}")
    error = doc["last_error"]
    print(f"{'last error':>22}: " + (f"{error['failed_at']} {error['principal']}: {error['message']}" if error
                                    else "none"))
    if doc["principals"]:
        print()
        print_table(["token", "ok", "checked", "last ok", "error"],
                    [[p["principal"], "yes" if p["ok"] else "NO", (p["checked_at"] or "")[:19],
                      (p["last_ok_at"] or "")[:19], p["kind"]] for p in doc["principals"]])
    if doc["expiry_warning"]:
        print(f"WARNING: {doc['expiry_warning']}")
    if doc["next_steps"]:
        print("\nwhat to do:")
        for number, step in enumerate(doc["next_steps"], 1):
            print(f"  {number}. {step}")
    return result
