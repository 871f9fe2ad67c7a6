"""`fraud-responder contacts set|list|remove`: customers' e-mail contacts and policy tags."""

from __future__ import annotations

import argparse
from typing import Any

from shared.cli import EXIT_OK, CommandFailed
from shared.cli.output import print_json, print_table


def register(subparsers: Any) -> None:
    contacts = subparsers.add_parser("contacts", help="customers' notification contacts and policy tags")
    sub = contacts.add_subparsers(dest="contacts_command", metavar="COMMAND", required=True)

    st = sub.add_parser("set", help="set a customer's name, e-mail contacts and tags (only those given change)")
    st.add_argument("tenant", metavar="TENANT", help="customer tenant id")
    st.add_argument("--name", help="display name")
    st.add_argument("--email", action="append", metavar="ADDRESS",
                    help="an e-mail contact (repeatable; replaces the stored list)")
    st.add_argument("--tag", action="append", metavar="TAG",
                    help="a tag policy rules match with customer_tags (repeatable; replaces the stored tags)")
    st.add_argument("--clear-emails", action="store_true", help="remove every e-mail contact")
    st.add_argument("--clear-tags", action="store_true", help="remove every tag")
    st.set_defaults(handler=set_contacts)

    lst = sub.add_parser("list", help="every customer with contacts or tags")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(handler=list_contacts)

    rm = sub.add_parser("remove", help="forget a customer's contacts and tags")
    rm.add_argument("tenant", metavar="TENANT", help="customer tenant id")
    rm.set_defaults(handler=remove_contacts)


def set_contacts(args: argparse.Namespace) -> int:
    from shared.cli.context import operator, store
    from shared.response import contacts

    emails = [] if args.clear_emails else args.email
    tags = [] if args.clear_tags else args.tag
    if args.name is None and emails is None and tags is None:
        raise CommandFailed("nothing to set: give --name, --email, --tag, --clear-emails or --clear-tags")
    try:
        row = contacts.set_contacts(store(), args.tenant, name=args.name, emails=emails, tags=tags,
                                    operator=operator())
    except contacts.ContactsError as exc:
        raise CommandFailed(str(exc)) from None
    print(f"{row.tenant_id}: {row.name or '(no name)'}; emails {', '.join(row.emails) or '(none)'}; "
          f"tags {', '.join(row.tags) or '(none)'}")
    return EXIT_OK


def list_contacts(args: argparse.Namespace) -> int:
    from shared.cli.context import settings, store
    from shared.response import contacts

    rows = contacts.list_contacts(store())
    if args.json:
        print_json({"partner": list(settings().security_contacts), "customers": [r.as_json() for r in rows]})
        return EXIT_OK
    partner = settings().security_contacts
    print(f"partner security contacts (SECURITY_CONTACTS): {', '.join(partner) or '(none set)'}")
    if not rows:
        print("no customer contacts; add them with `fraud-responder contacts set TENANT --email ADDRESS`")
        return EXIT_OK
    print_table(["tenant", "name", "emails", "tags"],
                [[r.tenant_id, r.name, ", ".join(r.emails), ", ".join(r.tags)] for r in rows])
    return EXIT_OK


def remove_contacts(args: argparse.Namespace) -> int:
    from shared.cli.context import store
    from shared.response import contacts

    try:
        contacts.remove_contacts(store(), args.tenant)
    except contacts.ContactsError as exc:
        raise CommandFailed(str(exc)) from None
    print(f"{args.tenant}: contacts removed")
    return EXIT_OK
