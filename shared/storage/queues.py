"""Queue helpers: send JSON the way the Functions queue trigger reads it, inspect, replay poison.

The Functions host decodes queue messages as base64 by default (host.json ``messageEncoding``),
so every message is sent as the base64 of its UTF-8 JSON. The encoding is done here, explicitly:
``QueueServiceClient.get_queue_client`` does not carry message encode policies over from the
service client, and a plain-text message would land in the poison queue.

azure.storage.queue is imported inside methods so importing this module stays cheap.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.errors import FraudResponderError
from shared.settings import Settings
from shared.storage.errors import translated_errors

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient, QueueServiceClient

MAX_MESSAGE_CHARS = 64 * 1024
"""Azure Queue Storage's cap on a message as stored (after base64): 64 KiB."""
MAX_BATCH = 32
"""Most messages one peek or receive returns."""

_SERVICE = "Queue Storage"
_QUEUE_NAME = re.compile(r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


class MessageTooLarge(FraudResponderError, ValueError):
    """The encoded message exceeds 64 KiB: store the payload in a table and queue its key."""


@dataclass(frozen=True)
class QueueMessage:
    """A message as stored: ``text`` is the exact queue text (base64 for messages sent here)."""

    id: str
    text: str
    dequeue_count: int
    pop_receipt: str | None = None

    def body(self) -> bytes:
        """The bytes the Functions trigger hands the function (``get_body()``): base64-decoded."""
        try:
            return base64.b64decode(self.text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise ValueError(f"message {self.id} is not base64: the queue trigger would fail on it") from None

    def json(self) -> Any:
        """The decoded JSON document."""
        return json.loads(self.body())


def encode_json(obj: Any) -> str:
    """The queue text for ``obj``: base64 of its compact UTF-8 JSON, as the queue trigger reads it."""
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text = base64.b64encode(data).decode("ascii")
    if len(text) > MAX_MESSAGE_CHARS:
        raise MessageTooLarge(
            f"the message is {len(text)} characters after base64, over the {MAX_MESSAGE_CHARS} limit of a "
            "queue message: store the payload in a table and queue its key"
        )
    return text


def check_queue_name(queue: str) -> str:
    """The name, if Azure accepts it as a queue name; otherwise a ValueError giving the rule."""
    if not _QUEUE_NAME.fullmatch(queue):
        raise ValueError(
            f"queue name {queue!r} is not valid: 3-63 lower-case letters, digits and single dashes, "
            "starting and ending with a letter or digit"
        )
    return queue


_created_queues: set[tuple[str, str]] = set()
_created_lock = threading.Lock()


class QueueSender:
    """Sends, inspects and replays messages on the app's queues (``shared.names``).

    Queues are created on first use, once per process. Thread-safe.
    """

    def __init__(self, settings: Settings, *, service: QueueServiceClient | None = None) -> None:
        """``service`` overrides the client built from ``settings.storage``."""
        if service is None:
            from shared.storage.clients import queue_service

            service = queue_service(settings.storage)
        self._service = service
        self._clients: dict[str, QueueClient] = {}
        self._lock = threading.Lock()

    def _errors(self) -> AbstractContextManager[None]:
        return translated_errors(_SERVICE, self._service.url)

    def _client(self, queue: str) -> QueueClient:
        client = self._clients.get(queue)
        if client is not None:
            return client
        from azure.core.exceptions import ResourceExistsError

        check_queue_name(queue)
        # No encode/decode policy: this module encodes explicitly and reads the stored text.
        client = self._service.get_queue_client(queue, message_encode_policy=None, message_decode_policy=None)
        key = (self._service.url, queue)
        with _created_lock:
            created = key in _created_queues
        if not created:
            with self._errors(), suppress(ResourceExistsError):
                client.create_queue()
            with _created_lock:
                _created_queues.add(key)
        with self._lock:
            self._clients[queue] = client
        return client

    def send_json(self, queue: str, obj: Any, visibility_timeout: int | None = None) -> str:
        """Queue ``obj`` as JSON for a queue trigger; returns the message id.

        ``visibility_timeout`` (seconds) delays when the message becomes visible.
        """
        text = encode_json(obj)
        client = self._client(queue)
        with self._errors():
            sent = client.send_message(text, visibility_timeout=visibility_timeout)
        return str(sent.id)

    def send_held(self, queue: str, obj: Any, *, hold_seconds: int) -> QueueMessage:
        """Queue ``obj`` invisible for ``hold_seconds``: the sender handles it itself, then ``delete``s or
        ``release``s it; should the sender die first, the queue delivers it when the hold ends."""
        text = encode_json(obj)
        client = self._client(queue)
        with self._errors():
            sent = client.send_message(text, visibility_timeout=hold_seconds)
        return QueueMessage(str(sent.id), text, 0, sent.pop_receipt)

    def release(self, queue: str, message: QueueMessage, *, after_seconds: int = 0) -> None:
        """Hand a held (or received) message to the queue's own consumer, visible ``after_seconds`` from now."""
        if message.pop_receipt is None:
            raise ValueError("only a message sent with send_held() or taken with receive() can be released")
        client = self._client(queue)
        with self._errors():
            client.update_message(message.id, message.pop_receipt, visibility_timeout=after_seconds)

    def peek(self, queue: str, max_messages: int = MAX_BATCH) -> list[QueueMessage]:
        """Up to ``max_messages`` (1-32) visible messages, without taking them."""
        client = self._client(queue)
        with self._errors():
            messages = client.peek_messages(max_messages=max_messages)
        return [QueueMessage(m.id, str(m.content), m.dequeue_count or 0) for m in messages]

    def receive(self, queue: str, max_messages: int = MAX_BATCH, visibility_timeout: int = 30) -> list[QueueMessage]:
        """Take up to ``max_messages`` messages, hidden for ``visibility_timeout`` seconds.

        A received message comes back after the timeout unless it is ``delete``d.
        """
        client = self._client(queue)
        with self._errors():
            messages = list(client.receive_messages(messages_per_page=min(max_messages, MAX_BATCH),
                                                    max_messages=max_messages,
                                                    visibility_timeout=visibility_timeout))
        return [QueueMessage(m.id, str(m.content), m.dequeue_count or 0, m.pop_receipt) for m in messages]

    def delete(self, queue: str, message: QueueMessage) -> None:
        """Delete a message taken with ``receive`` (or sent with ``send_held``)."""
        if message.pop_receipt is None:
            raise ValueError("only a message taken with receive() can be deleted (a peeked one has no pop receipt)")
        client = self._client(queue)
        with self._errors():
            client.delete_message(message.id, message.pop_receipt)

    def count(self, queue: str) -> int:
        """Approximate number of messages, including ones currently hidden by a receive."""
        client = self._client(queue)
        with self._errors():
            return int(client.get_queue_properties().approximate_message_count or 0)

    def move_all(self, source: str, dest: str) -> int:
        """Move every visible message from ``source`` to ``dest`` unchanged; returns how many moved.

        For replaying a poison queue (``names.poison_queue(q)`` -> ``q``). Each message is deleted
        from ``source`` only after ``dest`` has accepted it: a failure part-way leaves a message
        on both queues (delivered at least once), never on neither. Messages arriving meanwhile
        are moved too.
        """
        from azure.core.exceptions import ResourceNotFoundError

        if source == dest:
            raise ValueError("source and dest are the same queue")
        src, dst = self._client(source), self._client(dest)
        moved = 0
        while True:
            with self._errors():
                batch = list(src.receive_messages(messages_per_page=MAX_BATCH, max_messages=MAX_BATCH,
                                                  visibility_timeout=300))
            if not batch:
                return moved
            for message in batch:
                with self._errors():
                    dst.send_message(message.content)
                    # If its receipt expired, it reappears on source and moves again: a duplicate, not a loss.
                    with suppress(ResourceNotFoundError):
                        src.delete_message(message.id, message.pop_receipt)
                moved += 1
