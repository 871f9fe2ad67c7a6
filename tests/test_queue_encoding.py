"""Messages must be base64 on the wire, or the Functions queue trigger poisons them."""

import base64
import json
import uuid

from devhost.azurite import Azurite
from shared.settings import load_settings
from shared.storage.clients import queue_client
from tests.conftest import settings_env


def test_queue_client_sends_base64_that_a_plain_client_reads_back(azurite: Azurite) -> None:
    from azure.storage.queue import QueueClient

    settings = load_settings(settings_env(azurite))
    name = "enc" + uuid.uuid4().hex[:8]
    ours = queue_client(settings.storage, name)
    ours.create_queue()
    ours.send_message(json.dumps({"scope": "all"}).encode())
    plain = QueueClient.from_connection_string(azurite.connection_string, name)
    wire = next(iter(plain.receive_messages())).content
    assert json.loads(base64.b64decode(wire)) == {"scope": "all"}
    ours.delete_queue()
