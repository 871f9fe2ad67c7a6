"""HTTP front end: ``/api/<route>`` to HTTP-triggered functions, ``/admin/...`` like Core Tools.

Loopback only. Answers as the Functions host does: 404 for no route, 405 for a method the
function does not declare (or no HTTP method at all), 500 (short JSON, traceback in the log) when
the function raises. Broken framing (two Content-Length headers, Content-Length with chunked, a
malformed chunk size) is a 400 and the connection is closed; a client that hangs up early (short
body, reset while the answer is written) is logged on one debug line, never as a traceback.
Function keys are checked as the Functions host checks them (``devhost.keys``): 401 with no body.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from devhost.app import HTTP_METHODS, AppFunction, HttpTrigger
from devhost.invoker import Invoker
from devhost.keys import FunctionKeys, presented_key
from devhost.routes import Router

logger = logging.getLogger("devhost.http")

MAX_BODY_BYTES = 100 * 1024 * 1024  # the Functions host's request size limit
ADMIN_PREFIX = "/admin/functions/"


class AdminError(Exception):
    """An admin request the host refuses; carries the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _ClientGone(Exception):
    """The client closed the connection (or stopped sending) before the request was complete."""


_DISCONNECTS = (ConnectionError, TimeoutError, _ClientGone)
"""What a client hanging up early looks like while reading a request or writing its answer."""
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
"""A chunk size: hex digits only (no sign, 0x or underscores, which int(..., 16) would accept)."""


FireFunction = Callable[[str, str], None]
"""Runs a non-HTTP function now with an input string (raises AdminError when it cannot)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    """The listen backlog. socketserver's default of 5 drops the SYNs of a burst (50 webhook deliveries at
    once) and each dropped connection waits a TCP retransmission (1 s, then 3 s) before it starts."""
    front: HttpFrontEnd

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away is one debug line; anything else is logged (socketserver prints to stderr)."""
        import sys

        error = sys.exc_info()[1]
        if isinstance(error, _DISCONNECTS):
            logger.debug("client %s went away: %s", client_address[0], type(error).__name__)
            return
        logger.error("request from %s failed in the dev host", client_address[0], exc_info=error)


class HttpFrontEnd:
    """A threaded HTTP server on 127.0.0.1 dispatching to the app's HTTP functions."""

    def __init__(self, functions: list[AppFunction], invoker: Invoker, *, route_prefix: str,
                 fire: FireFunction, port: int = 7071, public_host: str = "localhost",
                 keys: FunctionKeys | None = None) -> None:
        self.router: Router[AppFunction] = Router(route_prefix)
        for function in functions:
            if isinstance(function.trigger, HttpTrigger):
                self.router.add(function.trigger.route, function)
        self.invoker = invoker
        self.fire = fire
        self.keys = keys or FunctionKeys()
        self._requested_port = port
        self._public_host = public_host
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the HTTP front end is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self._public_host}:{self.port}"

    def url_for(self, function: AppFunction) -> str:
        assert isinstance(function.trigger, HttpTrigger)
        return f"{self.base_url}{self.router.prefix}/{function.trigger.route}"

    def start(self) -> None:
        try:
            server = _Server(("127.0.0.1", self._requested_port), _Handler)
        except OSError as exc:
            raise OSError(f"cannot listen on 127.0.0.1:{self._requested_port} ({exc.strerror}); "
                          "is another host running? choose another with --port") from None
        server.front = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="devhost-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server, self._thread = None, None


def _methods(function: AppFunction) -> tuple[str, ...]:
    return function.trigger.methods if isinstance(function.trigger, HttpTrigger) else ()


def _json(status: int, document: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("Content-Type", "application/json; charset=utf-8")], json.dumps(document).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "devhost"
    timeout = 120
    server: _Server

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_TRACE = do_GET

    def __getattr__(self, name: str) -> Callable[[], None]:
        """Any other method (BREW, PROPFIND, CONNECT...): 405 as the Functions host, not http.server's 501 page."""
        if name.startswith("do_"):
            return self._unknown_method
        raise AttributeError(name)

    def _unknown_method(self) -> None:
        self.close_connection = True  # its body, if any, is not read
        matches = self.server.front.router.find(urlsplit(self.path).path)
        methods = sorted({m for f, _ in matches for m in _methods(f)}) or list(HTTP_METHODS)
        status, headers, payload = _json(HTTPStatus.METHOD_NOT_ALLOWED, {
            "error": "method_not_allowed", "message": f"{self.command[:32]} is not allowed here; use "
                                                      f"{', '.join(methods)}"})
        self._send(status, [*headers, ("Allow", ", ".join(methods))], payload)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _dispatch(self) -> None:
        front = self.server.front
        try:
            body = self._read_body()
        except ValueError as exc:
            self.close_connection = True  # the framing is lost: nothing after this request can be trusted
            self._send(*_json(HTTPStatus.BAD_REQUEST, {"error": "bad_request", "message": str(exc)}))
            return
        except _DISCONNECTS as exc:
            self.close_connection = True
            logger.debug("client %s went away before its request was complete: %s", self.address_string(),
                         type(exc).__name__)
            return
        if body is None:
            self._send(*_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                              {"error": "too_large", "message": f"request body over {MAX_BODY_BYTES} bytes"}))
            return
        parts = urlsplit(self.path)
        if parts.path.lower().startswith("/admin/"):
            self._send(*self._admin(front, parts.path, body))
            return
        matches = front.router.find(parts.path)
        if not matches:
            self._send(*_json(HTTPStatus.NOT_FOUND, {
                "error": "not_found", "message": f"no function is routed at {parts.path}",
                "routes": [f"{front.router.prefix}/{t}" for t in front.router.templates],
            }))
            return
        allowed = [(f, p) for f, p in matches if self.command in _methods(f)]
        if not allowed:
            methods = sorted({m for f, _ in matches for m in _methods(f)})
            status, headers, payload = _json(HTTPStatus.METHOD_NOT_ALLOWED, {
                "error": "method_not_allowed",
                "message": f"{self.command} is not allowed here; use {', '.join(methods)}",
            })
            self._send(status, [*headers, ("Allow", ", ".join(methods))], payload)
            return
        function, params = allowed[0]
        auth_level = function.trigger.auth_level if isinstance(function.trigger, HttpTrigger) else "function"
        if not front.keys.allows(function.name, auth_level,
                                 presented_key(dict(self.headers.items()), parse_qsl(parts.query))):
            self._send(HTTPStatus.UNAUTHORIZED, [], b"")  # as the host: no body, the function does not run
            return
        self._send(*self._invoke(front, function, params, parts.query, body))

    def _invoke(self, front: HttpFrontEnd, function: AppFunction, params: dict[str, str], query: str,
                body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        import azure.functions as func

        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        query_params: dict[str, str] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            query_params.setdefault(name, value)
        request = func.HttpRequest(
            method=self.command, url=f"http://{self.headers.get('Host', 'localhost')}{self.path}",
            headers=headers, params=query_params, route_params={k: unquote(v) for k, v in params.items()},
            body=body,
        )
        try:
            result = front.invoker.invoke(function, request, trigger="http",
                                          reason="This function was programmatically called via the host APIs.",
                                          details={"method": self.command, "path": self.path})
        except Exception as exc:
            return _json(HTTPStatus.INTERNAL_SERVER_ERROR, {
                "error": "internal_error",
                "message": f"{function.name} raised {type(exc).__name__}; the traceback is in the dev host log",
            })
        return _response(function.name, result)

    def _admin(self, front: HttpFrontEnd, path: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        if path.rstrip("/").lower() == "/admin/host/status" and self.command in ("GET", "HEAD"):
            return _json(HTTPStatus.OK, {"state": "Running", "host": "devhost"})
        if not path.lower().startswith(ADMIN_PREFIX) or self.command != "POST":
            return _json(HTTPStatus.NOT_FOUND, {
                "error": "not_found", "message": "admin API: POST /admin/functions/<name> or GET /admin/host/status",
            })
        name = unquote(path[len(ADMIN_PREFIX):].strip("/"))
        from shared.jsonbody import JsonBodyError, parse_json_body

        try:
            document = parse_json_body(body or b"{}")
        except JsonBodyError as exc:
            return _json(HTTPStatus.BAD_REQUEST,
                         {"error": "bad_request", "message": f'{exc}; the body must be JSON: {{"input": "..."}}'})
        if not isinstance(document, dict):
            return _json(HTTPStatus.BAD_REQUEST,
                         {"error": "bad_request", "message": 'the body must be a JSON object: {"input": "..."}'})
        value = document.get("input", "")
        try:
            front.fire(name, value if isinstance(value, str) else json.dumps(value))
        except AdminError as exc:
            return _json(exc.status, {"error": HTTPStatus(exc.status).phrase.lower().replace(" ", "_"),
                                      "message": str(exc)})
        return HTTPStatus.ACCEPTED, [("Content-Length", "0")], b""

    def _read_body(self) -> bytes | None:
        """The request body; None when over MAX_BODY_BYTES. ValueError (400) for broken framing,
        _ClientGone when the client stops before the body is complete."""
        lengths = self.headers.get_all("Content-Length") or []
        encodings = [e.strip().lower() for v in self.headers.get_all("Transfer-Encoding") or [] for e in v.split(",")]
        if len(lengths) > 1:
            raise ValueError("the request has more than one Content-Length header; send exactly one")
        if encodings:
            if lengths:
                raise ValueError("the request has both Content-Length and Transfer-Encoding; send one of them")
            if encodings != ["chunked"]:
                raise ValueError("only Transfer-Encoding: chunked is supported")
            return self._read_chunked()
        length_text = (lengths[0] if lengths else "0").strip() or "0"
        if not length_text.isdigit() or not length_text.isascii():
            raise ValueError("Content-Length must be a whole number")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            return None
        return self._read_exactly(length) if length else b""

    def _read_exactly(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) < size:
            raise _ClientGone(f"{len(data)} of {size} bytes arrived")
        return data

    def _read_line(self) -> bytes:
        line = self.rfile.readline(1024)
        if not line.endswith(b"\n"):
            if not line:
                raise _ClientGone("the connection closed inside a chunked body")
            raise ValueError("malformed chunked body: a line is longer than 1024 bytes")
        return line

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self._read_line().split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_line):
                raise ValueError(f"malformed chunked body: chunk size {size_line[:20]!r} is not a hex number")
            size = int(size_line, 16)
            if size == 0:
                while self._read_line().strip():
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                self.close_connection = True
                return None
            chunks.append(self._read_exactly(size))
            if self._read_line().strip():
                raise ValueError("malformed chunked body: a chunk is longer than its size says")

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        try:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and body:
                self.wfile.write(body)
        except _DISCONNECTS as exc:  # the client left before reading its answer: nothing to report to anyone
            self.close_connection = True
            logger.debug("client %s went away before its answer was sent: %s", self.address_string(),
                         type(exc).__name__)


def _response(name: str, result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Turn what an HTTP function returned into status, headers and body."""
    if result is None:
        return HTTPStatus.NO_CONTENT, [], b""
    if isinstance(result, str | bytes):
        body = result.encode() if isinstance(result, str) else result
        return HTTPStatus.OK, [("Content-Type", "text/plain; charset=utf-8")], body
    get_body = getattr(result, "get_body", None)
    if get_body is None or not hasattr(result, "status_code"):
        logger.error("Functions.%s returned %s; an HTTP function returns func.HttpResponse", name,
                     type(result).__name__)
        return _json(HTTPStatus.INTERNAL_SERVER_ERROR, {
            "error": "internal_error", "message": f"{name} returned {type(result).__name__}, not an HttpResponse",
        })
    headers = [(str(k), str(v)) for k, v in result.headers.items()]
    if not any(k.lower() == "content-type" for k, _ in headers):
        mimetype = str(result.mimetype or "text/plain")
        text_like = mimetype.startswith("text/") or mimetype.endswith(("json", "xml"))
        headers.append(("Content-Type", f"{mimetype}; charset={result.charset}" if text_like else mimetype))
    return int(result.status_code), headers, bytes(get_body())
