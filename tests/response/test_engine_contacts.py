"""Customer contacts and tags (the contacts table) that the engine and notify read."""

from __future__ import annotations

import dataclasses

import pytest

from shared.response import contacts
from shared.settings import Settings
from shared.storage.tables import TableStore

TENANT = "aaaaaaaa-0001-4000-8000-000000000001"


def test_contacts_are_set_field_by_field_and_feed_tags_and_recipients(settings: Settings) -> None:
    store = TableStore(settings)
    assert contacts.customer_tags(store, TENANT) == frozenset()

    contacts.set_contacts(store, TENANT.upper(), name="Fabrikam", emails=["sec@fabrikam.example"], tags=["VIP"])
    contacts.set_contacts(store, TENANT, tags=["vip", "lab"])  # emails and name keep their values

    row = contacts.get_contacts(store, TENANT)
    assert row is not None and row.name == "Fabrikam" and row.emails == ("sec@fabrikam.example",)
    assert contacts.customer_tags(store, TENANT) == frozenset({"vip", "lab"})
    assert [c.tenant_id for c in contacts.list_contacts(store)] == [TENANT]
    partner = dataclasses.replace(settings, security_contacts=("soc@contoso.example",))
    both = contacts.recipients(partner, store, TENANT, ("partner", "customer"))
    assert both.all() == ("soc@contoso.example", "sec@fabrikam.example")
    assert contacts.recipients(partner, store, TENANT, ("partner",)).customer == ()

    contacts.remove_contacts(store, TENANT)
    assert contacts.get_contacts(store, TENANT) is None


@pytest.mark.parametrize(("field", "value", "message"), [
    ("tenant", "fabrikam", "not a customer tenant id"),
    ("emails", ["not-an-address"], "not an e-mail address"),
    ("tags", ["two words"], "not a tag"),
])
def test_invalid_contacts_are_refused_with_an_example(settings: Settings, field: str, value: object,
                                                      message: str) -> None:
    store = TableStore(settings)
    kwargs: dict[str, object] = {"tenant": TENANT, field: value}
    with pytest.raises(contacts.ContactsError, match=message):
        contacts.set_contacts(store, **kwargs)  # type: ignore[arg-type]
