"""Queue triggers: poll a storage queue and run the function per message, as the Functions host does.

Honours host.json ``extensions.queues``: a batch of ``batchSize`` is fetched when no more than
``newBatchThreshold`` messages are in flight; an empty queue is polled with exponential back-off
from 100 ms up to ``maxPollingInterval``; a message whose function succeeded is deleted; a
failed one reappears after ``visibilityTimeout``; after ``maxDequeueCount`` failed tries it is
copied unchanged to ``<queue>-poison`` and deleted.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from devhost.app import AppFunction, QueueTrigger
from devhost.hostjson import QueueOptions
from devhost.invoker import Invoker
from shared.names import poison_queue
from shared.settings import StorageConnection

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient, QueueMessage

logger = logging.getLogger("devhost.queues")

FIRST_POLL_DELAY_SECONDS = 0.1
LEASE_SECONDS = 600
"""How long a fetched message stays invisible while its function runs (the host fetches with 10 minutes)."""


class MessageDecodeError(ValueError):
    """A message the trigger cannot read (not base64 when host.json says base64); it counts as a failed try."""


class QueueConnectionError(ValueError):
    """A queue trigger names a connection setting that is not set; the message shows an example."""


def storage_connection(name: str, environ: Mapping[str, str]) -> StorageConnection:
    """The storage account a trigger's ``connection`` setting names, read the way the host reads it."""
    value = environ.get(name, "").strip()
    if value:
        return StorageConnection(connection_string=value)
    prefix = name + "__"
    account = environ.get(prefix + "accountName", "").strip()
    queue_uri = environ.get(prefix + "queueServiceUri", "").strip()
    if not account and not queue_uri:
        raise QueueConnectionError(
            f"queue connection {name} is not set; example: {name}=UseDevelopmentStorage=true (Azurite), "
            f"or {name}__accountName=<storage account> for an identity-based connection"
        )
    return StorageConnection(queue_service_uri=queue_uri or f"https://{account}.queue.core.windows.net",
                             client_id=environ.get(prefix + "clientId", "").strip())


def raw_queue_client(connection: StorageConnection, queue_name: str) -> QueueClient:
    """A client that reads and writes message text as stored: decoding is the listener's job."""
    from azure.storage.queue._message_encoding import NoDecodePolicy, NoEncodePolicy

    from shared.storage.clients import queue_service

    return queue_service(connection).get_queue_client(
        queue_name, message_encode_policy=NoEncodePolicy(), message_decode_policy=NoDecodePolicy()
    )


def ensure_queue(client: QueueClient) -> None:
    from azure.core.exceptions import ResourceExistsError

    with contextlib.suppress(ResourceExistsError):
        client.create_queue()


class QueueListener:
    """Polls one queue for one function on a thread, running messages on a bounded thread pool."""

    def __init__(self, function: AppFunction, connection: StorageConnection, options: QueueOptions,
                 invoker: Invoker, *, lease_seconds: float = LEASE_SECONDS) -> None:
        if not isinstance(function.trigger, QueueTrigger):
            raise TypeError(f"{function.name} is not a queue function")
        self.function = function
        self.queue_name = function.trigger.queue_name
        self.poison_name = poison_queue(self.queue_name)
        self.options = options
        self.lease_seconds = max(1, int(lease_seconds))
        self._connection = connection
        self._invoker = invoker
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._queue: QueueClient | None = None
        self._poison: QueueClient | None = None

    def start(self) -> None:
        self._queue = raw_queue_client(self._connection, self.queue_name)
        self._poison = raw_queue_client(self._connection, self.poison_name)
        self._pool = ThreadPoolExecutor(max_workers=self.options.concurrency,
                                        thread_name_prefix=f"devhost-queue-{self.queue_name}")
        self._thread = threading.Thread(target=self._poll_loop, name=f"devhost-poll-{self.queue_name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop fetching, let running functions finish (up to ``timeout``), release what never started."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread:
            self._thread.join(timeout=timeout)
        with self._changed:
            if not self._changed.wait_for(lambda: self._in_flight == 0, timeout=timeout):
                logger.warning("%s: %d message(s) still running after %.0fs; they reappear after their lease",
                               self.queue_name, self._in_flight, timeout)
        if self._pool:
            self._pool.shutdown(wait=False, cancel_futures=True)
        for client in (self._queue, self._poison):
            if client is not None:
                client.close()

    def _poll_loop(self) -> None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        assert self._queue is not None and self._pool is not None
        delay = 0.0
        failing = False
        ensured = False
        while not self._stop.is_set():
            with self._changed:
                self._changed.wait_for(
                    lambda: self._stop.is_set() or self._in_flight <= self.options.new_batch_threshold
                )
            if self._stop.is_set():
                return
            try:
                if not ensured:
                    ensure_queue(self._queue)
                    ensured = True
                messages = list(self._queue.receive_messages(
                    messages_per_page=self.options.batch_size, max_messages=self.options.batch_size,
                    visibility_timeout=self.lease_seconds,
                ))
            except ResourceNotFoundError:
                ensured = False
                continue
            except AzureError as exc:
                if not failing:
                    logger.warning("%s: cannot fetch messages (%s); retrying", self.queue_name,
                                   str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                failing = True
                delay = self._back_off(delay)
                continue
            if failing:
                logger.info("%s: fetching messages again", self.queue_name)
                failing = False
            if not messages:
                delay = self._back_off(delay)
                continue
            delay = 0.0
            for message in messages:
                with self._changed:
                    self._in_flight += 1
                self._pool.submit(self._process, message)

    def _back_off(self, delay: float) -> float:
        delay = min(max(delay * 2, FIRST_POLL_DELAY_SECONDS), self.options.max_polling_interval)
        self._stop.wait(delay)
        return delay

    def _process(self, message: QueueMessage) -> None:
        try:
            self._handle(message)
        except Exception:
            logger.exception("%s: could not settle message %s; it reappears after its lease",
                             self.queue_name, message.id)
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    def _handle(self, message: QueueMessage) -> None:
        assert self._queue is not None
        if self._stop.is_set():
            self._queue.update_message(message, pop_receipt=message.pop_receipt, visibility_timeout=0)
            return
        dequeue_count = int(message.dequeue_count or 1)
        if dequeue_count > self.options.max_dequeue_count:
            self._move_to_poison(message)
            return
        try:
            value = self._trigger_value(message)
        except MessageDecodeError as exc:
            logger.error("Functions.%s: %s", self.function.name, exc)
            self._failed(message, dequeue_count)
            return
        try:
            self._invoker.invoke(
                self.function, value, trigger="queue",
                reason=f"New queue message detected on '{self.queue_name}'.",
                details={"queue": self.queue_name, "message_id": message.id, "dequeue_count": dequeue_count},
            )
        except Exception:  # logged with its traceback by the invoker
            self._failed(message, dequeue_count)
            return
        self._queue.delete_message(message, pop_receipt=message.pop_receipt)

    def _failed(self, message: QueueMessage, dequeue_count: int) -> None:
        """Retry after visibilityTimeout, or give up into the poison queue after maxDequeueCount tries."""
        assert self._queue is not None
        if dequeue_count >= self.options.max_dequeue_count:
            self._move_to_poison(message)
        else:
            self._queue.update_message(message, pop_receipt=message.pop_receipt,
                                       visibility_timeout=int(self.options.visibility_timeout))

    def _trigger_value(self, message: QueueMessage) -> Any:
        from azure.functions.queue import QueueMessage as TriggerMessage

        text = message.content if isinstance(message.content, str) else bytes(message.content or b"").decode()
        if self.options.message_encoding == "base64":
            try:
                body = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise MessageDecodeError(
                    f"message {message.id} on {self.queue_name} is not base64 (host.json messageEncoding=base64); "
                    "send it with BinaryBase64EncodePolicy, as shared.storage.clients.queue_service() does"
                ) from None
        else:
            body = text.encode("utf-8")
        return TriggerMessage(  # type: ignore[no-untyped-call]
            id=message.id, body=body, pop_receipt=message.pop_receipt, dequeue_count=int(message.dequeue_count or 1),
            insertion_time=message.inserted_on, expiration_time=message.expires_on,
            time_next_visible=message.next_visible_on,
        )

    def _move_to_poison(self, message: QueueMessage) -> None:
        assert self._queue is not None and self._poison is not None
        logger.warning("Message %s has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
                       message.id, self.options.max_dequeue_count, self.poison_name)
        ensure_queue(self._poison)
        self._poison.send_message(message.content)
        self._queue.delete_message(message, pop_receipt=message.pop_receipt)
