"""A webhook's alerts answered by the sync that stored them: the respond queue's hop, saved where it costs.

A fraud webhook's sync stores the few alerts of one subscription. Leaving their answer to the
respond queue adds that queue's poll (up to ``maxPollingInterval``, 2 s, in Azure too) and a wait
for one of its slots while a burst of webhooks is being synced. So that sync sends its respond
messages *held* (invisible for one function timeout: as long as a crashed respond worker's message
stays hidden) and answers them itself at once, through the respond side's own entry point (a batch
answered concurrently; an alert that fails sent on alone). A message answered is deleted. One
beyond ``RESPOND_INLINE_MAX`` alerts is released to the respond queue at once; one whose answer
raised is released after the host's retry delay (host.json ``visibilityTimeout``), as the queue
would retry it. If the worker dies meanwhile, the held messages are delivered when the hold ends:
at-least-once holds, and the ledger keeps every effect to one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.formats import one_line
from shared.jobs import respond_jobs_of
from shared.names import RESPOND_QUEUE

if TYPE_CHECKING:
    from shared.settings import Settings
    from shared.storage.queues import QueueMessage, QueueSender

log = logging.getLogger(__name__)


@dataclass
class InlineResult:
    """What the sync did with the respond messages it held: alerts answered here, alerts handed on."""

    answered: int = 0
    released: int = 0
    failed: int = 0


def hold_seconds() -> int:
    """How long a held message stays invisible: one function timeout (no answer here can outlive it)."""
    from shared.response.jobs import function_timeout_seconds

    return max(1, int(function_timeout_seconds()))


def answer_held(settings: Settings, queue: QueueSender, held: list[tuple[QueueMessage, dict[str, Any]]]
                ) -> InlineResult:
    """Answer the held respond messages here, up to ``RESPOND_INLINE_MAX`` alerts; hand the others to the
    respond queue.

    Never raises for an answer: a message this cannot finish goes to the respond queue, which
    retries it as it retries any. :raises StorageError: a held message could not be deleted or
    released (after every other message was seen to; that one is delivered when its hold ends).
    """
    from shared.response.jobs import handle_respond_message, responder_for, retry_delay_seconds

    result = InlineResult()
    budget = settings.respond_inline_max
    responder = responder_for(settings)
    failures: list[Exception] = []
    for message, document in held:
        alerts = len(respond_jobs_of(document))
        try:
            if alerts > budget:
                result.released += alerts
                queue.release(RESPOND_QUEUE, message)
                continue
            budget -= alerts
            try:
                handle_respond_message(message.body(), dequeue_count=1, responder=responder)
            except Exception as exc:  # retried by the respond queue, as a failed delivery would be
                log.warning("answering %d alert(s) in the sync failed; the respond queue retries them in %d s: %s",
                            alerts, retry_delay_seconds(), one_line(str(exc), 300))
                result.failed += alerts
                queue.release(RESPOND_QUEUE, message, after_seconds=retry_delay_seconds())
                continue
            result.answered += alerts
            queue.delete(RESPOND_QUEUE, message)
        except Exception as exc:  # the queue's own call: the others still get theirs
            failures.append(exc)
    if failures:
        raise failures[0]
    return result


def release_held(queue: QueueSender, held: list[tuple[QueueMessage, dict[str, Any]]]) -> None:
    """Hand every held message to the respond queue now (the sync that held them failed).

    Never raises: a message that cannot be released is delivered when its hold ends.
    """
    for message, _document in held:
        try:
            queue.release(RESPOND_QUEUE, message)
        except Exception as exc:
            log.warning("a held respond message could not be released; it is delivered when its hold ends: %s",
                        one_line(str(exc), 300))
