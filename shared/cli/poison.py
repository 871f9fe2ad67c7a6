"""`fraud-responder poison list|replay`: messages that gave up, and putting them back once fixed."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from shared.cli import EXIT_OK, CommandFailed
from shared.cli.context import settings, store
from shared.cli.operator import add_retired_as
from shared.cli.output import print_json, print_table
from shared.formats import one_line
from shared.names import QUEUES


def register(subparsers: Any) -> None:
    poison = subparsers.add_parser("poison", help="list and replay poison queue messages")
    sub = poison.add_subparsers(dest="poison_command", metavar="COMMAND", required=True)

    lst = sub.add_parser("list", help="messages in the poison queues and why they failed",
                         description="Peek (without taking) the messages in every <queue>-poison queue and list "
                                     "the recorded failures (error, alert, when).")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(handler=list_poison)

    replay = sub.add_parser("replay", help="move a poison queue's messages back to their queue",
                            description="Move every message of QUEUE-poison back to QUEUE so the app tries "
                                        "them again; do it after fixing what made them fail (see `poison list`).")
    replay.add_argument("queue", metavar="QUEUE", help=f"the queue to refill: {' or '.join(QUEUES)}")
    add_retired_as(replay)
    replay.add_argument("--json", action="store_true", help="print the result as JSON")
    replay.set_defaults(handler=replay_poison)


def list_poison(args: argparse.Namespace) -> int:
    from shared.operations import OperationError
    from shared.operations.poison import list_poison as poison_report

    try:
        doc = poison_report(settings(), store())
    except OperationError as exc:
        raise CommandFailed(str(exc)) from None
    if args.json:
        print_json(doc)
        return EXIT_OK
    print_table(["queue", "poison queue", "messages"], [[q["queue"], q["poison_queue"], q["count"]]
                                                         for q in doc["queues"]])
    for queue in doc["queues"]:
        if queue["messages"]:
            print(f"\n{queue['poison_queue']}:")
            print_table(["message id", "tries", "body"], [[m["id"], m["dequeue_count"], one_line(m["body"], 90)]
                                                           for m in queue["messages"]])
    records = doc["records"]
    if records:
        print("\nrecorded failures (newest first):")
        print_table(["at", "queue", "alert", "error", "replayed"],
                    [[(r["at"] or "")[:19], r["queue"], r["alert_key"] + (f" v{r['version']}" if r["version"] else ""),
                      one_line(f"{r['error_type']}: {r['error']}", 70), (r["replayed_at"] or "")[:19]]
                     for r in records])
    if any(q["count"] for q in doc["queues"]):
        print("\nfix the cause, then: fraud-responder poison replay QUEUE")
    else:
        print("\nno poison messages")
    return EXIT_OK


def replay_poison(args: argparse.Namespace) -> int:
    from shared.cli.operator import checked_operator
    from shared.operations import OperationError
    from shared.operations.poison import replay

    operator = checked_operator(args.operator)
    try:
        result = replay(settings(), args.queue, store=store(), operator=operator,
                        progress=lambda line: print(line, file=sys.stderr))
    except OperationError as exc:
        raise CommandFailed(str(exc)) from None
    if args.json:
        print_json(result)
    else:
        print(f"replayed {result['moved']} message(s) from {result['from']} to {result['queue']}"
              + (f"; {result['rearmed']} poisoned respond job(s) re-armed" if result["rearmed"] else ""))
    return EXIT_OK
