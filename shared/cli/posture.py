"""`fraud-responder posture [--json]`: the partner's own security posture, read only.

Microsoft's partner security requirements (the partner security score), partner users seen
without MFA, and GDAP relationships that grant Global Administrator or never expire, each finding
with the step that fixes it. The same section is in the daily digest.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from shared.cli import EXIT_FAILED, EXIT_OK
from shared.cli.output import print_json


def register(subparsers: Any) -> None:
    posture = subparsers.add_parser(
        "posture", help="the partner's own security posture: security score requirements, users without MFA, GDAP",
        description="Read (never change) Microsoft's partner security requirements (Graph beta "
                    "security/partner/securityScore), the partner users who used Partner Center without MFA in the "
                    "last 7 days, and the GDAP relationships that grant Global Administrator or auto-extend for "
                    "ever; print each finding with the step that fixes it.",
        epilog="Exit code: 0 when clean (no findings, every source read); 1 when there are findings or a source "
               "could not be read (named in the output).")
    posture.add_argument("--json", action="store_true", help="print JSON (the documented, stable shape)")
    posture.set_defaults(handler=run_posture)


def run_posture(args: argparse.Namespace) -> int:
    from shared.cli.context import settings, store
    from shared.operations.posture import collect
    from shared.response.actions.base import Clients

    print("reading the partner security score, non-MFA partner principals and GDAP relationships ...",
          file=sys.stderr)
    report = collect(Clients(settings(), store()))
    if args.json:
        print_json(report.as_dict())
    else:
        print(f"PARTNER SECURITY POSTURE ({len(report.findings)} finding" + ("" if len(report.findings) == 1 else "s")
              + ")")
        print("\n".join(report.as_text()))
    return EXIT_OK if report.clean else EXIT_FAILED
