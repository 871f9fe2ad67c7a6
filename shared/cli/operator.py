"""Who decides, for the commands that record a decision (actions, alerts resolve, poison replay).

Its own light module: the command modules import it at load time, and ``shared.cli.context`` (which
reaches storage) is imported only when a decision is made.
"""

from __future__ import annotations

import argparse

from shared.cli.errors import CommandFailed


def checked_operator(typed: str | None = None) -> str:
    """Who decides: the identity of the credential in use. A name given with the retired ``--as`` is refused."""
    from shared.cli.context import operator

    if typed is not None:
        raise CommandFailed("--as is no longer accepted: decisions are recorded as the identity you act with "
                            "(your Entra ID sign-in, or local:<OS user> against Azurite)")
    return operator()


def add_retired_as(parser: argparse.ArgumentParser) -> None:
    """``--as NAME`` once named the operator; kept hidden so old scripts get a clear refusal."""
    parser.add_argument("--as", dest="operator", metavar="NAME", help=argparse.SUPPRESS)
