"""QueueSender against Azurite: base64 messages as the queue trigger reads them, replay of poison."""

from __future__ import annotations

import base64
import json

import pytest
from azure.storage.queue import QueueClient, QueueServiceClient

from devhost.azurite import DEV_KEY, Azurite, connection_string, free_port
from shared import names
from shared.settings import Settings
from shared.storage.errors import StorageUnreachable
from shared.storage.queues import MessageTooLarge, QueueSender
from tests.storage.conftest import unique_queue


def raw_client(azurite: Azurite, queue: str) -> QueueClient:
    """A plain QueueClient with no encode/decode policy: it sees the text exactly as stored."""
    return QueueClient.from_connection_string(azurite.connection_string, queue)


def test_send_json_stores_base64_of_the_json(sender: QueueSender, azurite: Azurite) -> None:
    queue = unique_queue()
    job = {"alert_id": "a1", "customer": "Fabrikam — prod", "actions": ["notify", "stop_resources"]}

    sender.send_json(queue, job)

    [message] = raw_client(azurite, queue).receive_messages()
    assert isinstance(message.content, str)
    assert json.loads(base64.b64decode(message.content, validate=True)) == job


def test_receive_peek_delete_and_count(sender: QueueSender) -> None:
    queue = unique_queue()
    for n in range(3):
        sender.send_json(queue, {"n": n})

    assert [m.json() for m in sender.peek(queue)] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert sender.count(queue) == 3  # peeking takes nothing

    taken = sender.receive(queue, max_messages=2)
    assert [m.json() for m in taken] == [{"n": 0}, {"n": 1}]
    assert all(m.dequeue_count == 1 for m in taken)
    assert [m.json() for m in sender.peek(queue)] == [{"n": 2}]  # the taken ones are hidden

    for message in taken:
        sender.delete(queue, message)
    assert sender.count(queue) == 1


def test_a_delayed_message_is_not_visible_yet(sender: QueueSender) -> None:
    queue = unique_queue()

    sender.send_json(queue, {"later": True}, visibility_timeout=300)

    assert sender.peek(queue) == []
    assert sender.count(queue) == 1


def test_a_peeked_message_cannot_be_deleted(sender: QueueSender) -> None:
    queue = unique_queue()
    sender.send_json(queue, {})
    [peeked] = sender.peek(queue)
    with pytest.raises(ValueError, match="receive"):
        sender.delete(queue, peeked)


def test_move_all_replays_a_poison_queue_unchanged(sender: QueueSender, azurite: Azurite) -> None:
    queue = unique_queue("respond")
    poison = names.poison_queue(queue)
    for n in range(40):  # more than one receive batch (32)
        sender.send_json(poison, {"n": n})
    raw_client(azurite, poison).send_message("plain text, not base64")  # moved verbatim too
    sender.send_json(queue, {"already": "there"})

    moved = sender.move_all(poison, queue)

    assert moved == 41
    assert sender.count(poison) == 0
    texts = [m.content for m in raw_client(azurite, queue).receive_messages(messages_per_page=32)]
    assert len(texts) == 42
    assert "plain text, not base64" in texts
    decoded = [json.loads(base64.b64decode(t)) for t in texts if t != "plain text, not base64"]
    assert sorted(d.get("n", -1) for d in decoded) == [-1, *range(40)]


def test_move_all_of_an_empty_queue_moves_nothing(sender: QueueSender) -> None:
    assert sender.move_all(unique_queue("empty"), unique_queue("dest")) == 0
    with pytest.raises(ValueError, match="same queue"):
        sender.move_all("same-queue", "same-queue")


def test_too_large_a_message_is_refused_with_the_fix(sender: QueueSender) -> None:
    with pytest.raises(MessageTooLarge, match="store the payload in a table"):
        sender.send_json(unique_queue(), {"blob": "x" * 60_000})


def test_an_invalid_queue_name_is_explained(sender: QueueSender) -> None:
    with pytest.raises(ValueError, match="lower-case"):
        sender.send_json("Alerts_Sync", {})


def test_unreachable_queue_storage_says_what_to_do(settings: Settings) -> None:
    port = free_port()
    service = QueueServiceClient.from_connection_string(connection_string(port, port, port), retry_total=0)

    with pytest.raises(StorageUnreachable) as caught:
        QueueSender(settings, service=service).send_json(names.SYNC_QUEUE, {})

    message = str(caught.value)
    assert message == (f"cannot reach Queue Storage at http://127.0.0.1:{port}/devstoreaccount1: "
                       "is Azurite running? (make run starts it)")
    assert DEV_KEY not in message
