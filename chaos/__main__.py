"""``python -m chaos campaign`` (``make chaos``) and ``python -m chaos fuzz`` (``make fuzz``).

Both print their figures and exit 1 when one is wrong, 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    campaign = commands.add_parser("campaign", help="kill the host again and again under injected faults")
    campaign.add_argument("--kills", type=int, default=20, help="SIGKILLs of the host (default 20)")
    campaign.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    campaign.add_argument("--max-seconds", type=float, default=300.0,
                          help="hard bound on the whole campaign (default 300)")
    campaign.add_argument("--work-dir", type=Path, default=None,
                          help="keep the host's logs here (default: a temporary directory, removed)")
    fuzz = commands.add_parser("fuzz", help="hostile requests at the webhook receiver through the dev host")
    fuzz.add_argument("--requests", type=int, default=10_000, help="requests to send (default 10000)")
    fuzz.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    fuzz.add_argument("--max-seconds", type=float, default=300.0, help="stop sending after this (default 300)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "campaign":
        from chaos.campaign import Campaign, CampaignOptions

        if args.kills < 0 or args.max_seconds <= 60:
            print("chaos: --kills must be 0 or more and --max-seconds more than 60", file=sys.stderr)
            return 2
        options = CampaignOptions(kills=args.kills, seed=args.seed, max_seconds=args.max_seconds,
                                  work_dir=args.work_dir)
        try:
            report = Campaign(options, out=sys.stdout).run()
        except (RuntimeError, TimeoutError, OSError) as exc:  # the stack could not start or the host not run
            print(f"chaos: the campaign could not run: {exc}", file=sys.stderr)
            return 1
        print(report.render())
        return 1 if report.failures() else 0
    from chaos.fuzz import FuzzOptions, run_fuzz

    if args.requests < 1 or args.max_seconds <= 0:
        print("chaos: --requests must be 1 or more and --max-seconds more than 0", file=sys.stderr)
        return 2
    result = run_fuzz(FuzzOptions(requests=args.requests, seed=args.seed, max_seconds=args.max_seconds),
                      out=sys.stdout)
    print(result.render())
    return 1 if result.failures() else 0


if __name__ == "__main__":
    raise SystemExit(main())
