"""The ledger on Azurite: claim once, ETag-guarded state changes, operator ids and queries."""

from __future__ import annotations

import pytest

from shared.alerts import Alert
from shared.response.actions.base import Target
from shared.response.ledger import (
    AWAITING_APPROVAL,
    RUNNING,
    SUCCEEDED,
    Ledger,
    LedgerConflict,
    NewRow,
    action_id_for,
    ledger_keys,
)
from shared.settings import Settings
from shared.sources.partner_center import parse as from_partner_center
from shared.storage.tables import TableStore

VM = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1"


def _alert(event_id: str = "sub_vm-1") -> Alert:
    return from_partner_center({"eventId": event_id, "customerTenantId": "aaaaaaaa-0001-4000-8000-000000000001",
                                "subscriptionId": "bbbbbbbb-0001-4000-8000-000000000001",
                                "eventType": "NetworkConnectionsToCryptoMiningPools"})


def _row(alert: Alert, state: str = AWAITING_APPROVAL, target: Target | None = None) -> NewRow:
    return NewRow(alert=alert, alert_partition=alert.customer_tenant_id, alert_row="row", action="stop_resources",
                  target=target or Target("vm", VM, display="vm-1"), mode="approve", state=state,
                  actor="policy:rule", rule="rule", reason="why", version=1, params={"operation": "deallocate"})


def test_a_row_is_claimed_once_and_keyed_for_operators(settings: Settings) -> None:
    ledger = Ledger(TableStore(settings))
    alert = _alert()

    created, entry = ledger.claim(_row(alert))
    again, same = ledger.claim(_row(alert, state=RUNNING))

    assert created and not again
    assert same.state == AWAITING_APPROVAL and same.action_id == entry.action_id
    partition, row = ledger_keys(alert.key, "stop_resources", Target("vm", VM))
    assert (entry.partition, entry.row) == (partition, row) and "/" not in row
    assert entry.action_id == action_id_for(partition, row) and len(entry.action_id) == 10
    assert entry.target.id == VM and entry.params == {"operation": "deallocate"} and entry.attempts == 0
    assert ledger.find(entry.action_id.upper()) == entry
    assert ledger.find("0000000000") is None


def test_a_state_change_needs_the_etag_it_was_read_with(settings: Settings) -> None:
    ledger = Ledger(TableStore(settings))
    _, entry = ledger.claim(_row(_alert()))

    running = ledger.transition(entry, {"state": RUNNING, "approved_by": "alice"})
    with pytest.raises(LedgerConflict, match="changed by another worker or operator"):
        ledger.transition(entry, {"state": RUNNING, "approved_by": "mallory"})  # a second approver, too late

    assert running.state == RUNNING and running.approved_by == "alice"
    done = ledger.transition(running, {"state": SUCCEEDED, "data": {"was": "running"},
                                       "error": "line one\nline two"})
    assert done.data == {"was": "running"} and done.error == "line one line two"


def test_rows_are_listed_by_state_and_by_alert(settings: Settings) -> None:
    ledger = Ledger(TableStore(settings))
    first, second = _alert("sub_vm-1"), _alert("sub_vm-2")
    ledger.claim(_row(first))
    ledger.claim(_row(first, state=RUNNING, target=Target("vm", VM + "x")))
    ledger.claim(_row(second))

    pending = list(ledger.query(states=(AWAITING_APPROVAL,)))
    assert sorted(r.alert_key for r in pending) == [first.key, second.key]
    assert {r.target.id for r in ledger.query(alert=first.id)} == {VM, VM + "x"}
    assert {r.target.id for r in ledger.query(alert=first.key)} == {VM, VM + "x"}
    assert len(ledger.for_alert(second.key)) == 1


def test_the_row_a_claim_or_a_state_change_returns_is_the_row_stored(settings: Settings) -> None:
    # claim and transition build the row they return from the write, not from a read: it must be what is stored,
    # field for field and ETag included, or the next conditional change would act on a row that is not there.
    store = TableStore(settings)
    ledger = Ledger(store)
    _, entry = ledger.claim(_row(_alert()))
    assert entry == ledger.get(entry.partition, entry.row)

    running = ledger.transition(entry, {"state": RUNNING, "attempts": 2, "lease_owner": "me", "called_at": None,
                                        "data": {"big": 2**40}, "params": {"operation": "deallocate"}})
    stored = ledger.get(entry.partition, entry.row)
    assert running == stored and running.entity == stored.entity  # None left the column as it was
    assert running.data == {"big": 2**40} and running.called_at is None and running.attempts == 2

    long_summary = "x" * 40_000  # beyond Table Storage's string cap: cut on the way in, and the returned row shows it
    done = ledger.transition(running, {"state": SUCCEEDED, "summary": long_summary, **ledger.released()})
    assert done == ledger.get(entry.partition, entry.row) and 0 < len(done.summary) < len(long_summary)
    ledger.transition(done, {"summary": "the ETag it returned is the stored one"})
