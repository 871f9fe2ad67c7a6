"""The storage clients read the proxy environment once, and still honour it (HTTP_PROXY, NO_PROXY)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from shared.settings import Settings
from shared.storage.clients import table_service


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[bytes]]]:
    """A listening "proxy" that records each request line and answers 502: (its URL, the lines it saw)."""
    server = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                seen.append(conn.recv(65536).split(b"\r\n", 1)[0])
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", seen
    server.close()


def test_a_proxy_in_the_environment_carries_the_storage_calls(settings: Settings, proxy: tuple[str, list[bytes]],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    url, seen = proxy
    monkeypatch.setenv("HTTP_PROXY", url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    service = table_service(settings.storage)

    with pytest.raises(Exception):  # noqa: B017 - the proxy answers 502 to everything
        list(service.list_tables())

    assert seen and seen[0].startswith(b"GET http://127.0.0.1:")  # an absolute URI: a proxy request


def test_no_proxy_sends_the_storage_calls_straight_to_the_account(settings: Settings, proxy: tuple[str, list[bytes]],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    url, seen = proxy
    monkeypatch.setenv("HTTP_PROXY", url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    service = table_service(settings.storage)

    list(service.list_tables())  # Azurite answers

    assert seen == []
