"""Customer contacts and tags (the contacts table): who to tell at a customer, and how policy sees it.

One row per customer tenant (PartitionKey the tenant id, RowKey ``contacts``): a display name,
the customer's e-mail addresses and free-form tags (``vip``, ``lab``, ...) that policy rules match
with ``customer_tags``. The partner's own recipients are not stored here: they are the
``SECURITY_CONTACTS`` setting, so a new deployment notifies someone before any row exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from shared.errors import FraudResponderError
from shared.formats import is_guid
from shared.names import CONTACTS_TABLE
from shared.settings import Settings
from shared.storage.tables import TableStore

ROW: Final = "contacts"
_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ContactsError(FraudResponderError, ValueError):
    """A contacts value is invalid; the message names it and shows a good one."""


@dataclass(frozen=True)
class CustomerContacts:
    tenant_id: str
    name: str = ""
    emails: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    updated_at: datetime | None = None
    updated_by: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "name": self.name, "emails": list(self.emails), "tags": list(self.tags),
                "updated_at": self.updated_at.isoformat() if self.updated_at else None,
                "updated_by": self.updated_by}


def _split(text: Any) -> tuple[str, ...]:
    return tuple(v for v in str(text or "").split(",") if v)


def _from_entity(entity: dict[str, Any]) -> CustomerContacts:
    return CustomerContacts(tenant_id=str(entity["PartitionKey"]), name=str(entity.get("name", "")),
                            emails=_split(entity.get("emails")), tags=_split(entity.get("tags")),
                            updated_at=entity.get("updated_at"), updated_by=str(entity.get("updated_by", "")))


def check_tenant(tenant: str) -> str:
    value = tenant.strip().lower()
    if not is_guid(value):
        raise ContactsError(f"{tenant!r} is not a customer tenant id; example: aaaaaaaa-0001-4000-8000-000000000001")
    return value


def check_emails(emails: Iterable[str]) -> tuple[str, ...]:
    values: list[str] = []
    for raw in emails:
        value = raw.strip()
        if not _EMAIL.match(value):
            raise ContactsError(f"{raw!r} is not an e-mail address; example: security@fabrikam.com")
        if value.lower() not in (v.lower() for v in values):
            values.append(value)
    return tuple(values)


def check_tags(tags: Iterable[str]) -> tuple[str, ...]:
    values: list[str] = []
    for raw in tags:
        value = raw.strip().casefold()
        if not _TAG.match(value):
            raise ContactsError(f"{raw!r} is not a tag: letters, digits, '-', '_' or '.', e.g. vip or lab")
        if value not in values:
            values.append(value)
    return tuple(values)


def get_contacts(store: TableStore, tenant: str) -> CustomerContacts | None:
    entity = store.get(CONTACTS_TABLE, tenant.strip().lower(), ROW)
    return _from_entity(entity) if entity is not None else None


def customer_tags(store: TableStore, tenant: str) -> frozenset[str]:
    """The tags policy rules match with ``customer_tags`` (empty when the customer has no row)."""
    found = get_contacts(store, tenant)
    return frozenset(found.tags) if found else frozenset()


def list_contacts(store: TableStore) -> list[CustomerContacts]:
    rows = [e for page in store.query(CONTACTS_TABLE, "RowKey eq @row", {"row": ROW}) for e in page.entities]
    return sorted((_from_entity(e) for e in rows), key=lambda c: (c.name.casefold(), c.tenant_id))


def set_contacts(store: TableStore, tenant: str, *, name: str | None = None, emails: Iterable[str] | None = None,
                 tags: Iterable[str] | None = None, operator: str = "") -> CustomerContacts:
    """Create or update a customer's row; only the fields given change (an empty list clears one)."""
    tenant_id = check_tenant(tenant)
    entity: dict[str, Any] = {"PartitionKey": tenant_id, "RowKey": ROW, "updated_at": datetime.now(UTC),
                              "updated_by": operator}
    if name is not None:
        entity["name"] = name.strip()
    if emails is not None:
        entity["emails"] = ",".join(check_emails(emails))
    if tags is not None:
        entity["tags"] = ",".join(check_tags(tags))
    store.upsert(CONTACTS_TABLE, entity, mode="merge")
    stored = get_contacts(store, tenant_id)
    assert stored is not None
    return stored


def remove_contacts(store: TableStore, tenant: str) -> None:
    store.delete(CONTACTS_TABLE, check_tenant(tenant), ROW)


@dataclass(frozen=True)
class Recipients:
    partner: tuple[str, ...]
    customer: tuple[str, ...]

    def all(self) -> tuple[str, ...]:
        seen: list[str] = []
        for address in (*self.partner, *self.customer):
            if address.lower() not in (s.lower() for s in seen):
                seen.append(address)
        return tuple(seen)


def recipients(settings: Settings, store: TableStore, tenant: str, to: Iterable[str]) -> Recipients:
    """Who a notification goes to: ``to`` holds "partner" (SECURITY_CONTACTS) and/or "customer"
    (the customer's row in the contacts table; none when it has no row)."""
    wanted = set(to)
    partner = settings.security_contacts if "partner" in wanted else ()
    customer: tuple[str, ...] = ()
    if "customer" in wanted:
        found = get_contacts(store, tenant)
        customer = found.emails if found else ()
    return Recipients(partner=tuple(partner), customer=customer)
