"""The sandbox core: one HTTPS server per stand-in, routing, bearer auth, faults and recording.

Each stand-in is a ``Service`` subclass whose handler methods carry ``@route``; the core gives it
its own loopback port (so paths are exactly Microsoft's paths), checks bearer tokens on
authenticated routes, applies injected faults, records every request and serves the control
endpoints under ``/_sandbox/``. Stdlib only (http.server + ssl) so the real SDK clients talk to
it over real HTTP/1.1 and real TLS.

Writing a stand-in::

    class GraphService(Service):
        name = "graph"
        audiences = ("https://graph.microsoft.com",)

        def reset(self) -> None:                 # called by __init__ and POST /_sandbox/reset
            self.alerts = copy.deepcopy(self.section.get("alerts", []))

        @route("GET", r"/beta/security/partner/securityAlerts")
        def list_alerts(self, request: Request) -> Response:
            return json_response(200, {"value": self.alerts})

Handlers run on server threads: guard shared state with ``self.lock``.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import importlib
import ipaddress
import json
import logging
import re
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from sandbox import ids
from sandbox.faults import Fault, FaultError, FaultSet
from sandbox.scenario import load_scenario, resolve
from sandbox.tls import SandboxTls, create_tls
from sandbox.tokens import TokenIssuer, TokenRejected

log = logging.getLogger("sandbox")

# The order services get ports in (consecutive from --port) and appear in `serve` output.
SERVICE_ORDER: tuple[str, ...] = ("partner_center", "entra", "graph", "arm", "key_vault", "cert_host")

# Modules holding stand-ins: every Service subclass defined in them is registered under its
# ``name``. A module that does not exist yet (being written) is skipped with a warning.
SERVICE_MODULES: tuple[str, ...] = (
    "sandbox.entra",
    "sandbox.key_vault",
    "sandbox.partner_center",
    "sandbox.webhooks",
    "sandbox.graph",
    "sandbox.arm",
)

CONTROL_PREFIX = "/_sandbox/"
KEEP_ALIVE_SECONDS = 30.0


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only header mapping; repeated headers are joined with ", "."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in pairs:
            key = name.lower()
            if key in self._items:
                self._items[key] = (self._items[key][0], self._items[key][1] + ", " + value)
            else:
                self._items[key] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (original for original, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class HttpError(Exception):
    """Raise from a handler to answer with an error; the service renders it in its own shape."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Headers
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    claims: dict[str, Any] | None = None
    raw_path: str = ""
    """The request target as sent (path and query, not decoded)."""
    client: str = ""

    def json(self) -> Any:
        """The body parsed as JSON; 400 when it is empty or malformed."""
        if not self.body.strip():
            raise HttpError(400, "BadRequest", "The request body is empty; a JSON body is required.")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, "BadRequest", f"The request body is not valid JSON: {exc}") from None

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter, matching its name case-insensitively."""
        wanted = name.lower()
        for key, values in self.query.items():
            if key.lower() == wanted and values:
                return values[0]
        return default

    def form(self) -> dict[str, str]:
        """An application/x-www-form-urlencoded body (first value of each field)."""
        try:
            parsed = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise HttpError(400, "BadRequest", "The form body is not UTF-8.") from None
        return {key: values[0] for key, values in parsed.items()}


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON response with Content-Type application/json; charset=utf-8."""
    merged = {"Content-Type": "application/json; charset=utf-8"}
    merged.update(headers or {})
    return Response(status, json.dumps(obj).encode("utf-8"), merged)


@dataclass(frozen=True)
class RecordedRequest:
    service: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int
    """The status answered; 0 when a "drop" fault closed the connection without one."""
    time: float

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service, "method": self.method, "path": self.path, "query": self.query,
            "headers": self.headers, "body": self.body.decode("utf-8", "replace"), "status": self.status,
            "time": dt.datetime.fromtimestamp(self.time, dt.UTC).isoformat(),
        }


F = TypeVar("F", bound=Callable[..., Response])


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    auth: bool
    handler_name: str


_ROUTE_ATTR = "__sandbox_routes__"


def route(method: str, pattern: str, *, auth: bool = True) -> Callable[[F], F]:
    """Mark a Service method as the handler of ``method`` on paths fully matching ``pattern``.

    The regex is case-insensitive; its named groups land in ``request.params``. ``auth=False``
    skips the bearer-token check (discovery documents, token endpoint, control endpoints).
    """
    compiled = re.compile(pattern, re.IGNORECASE)

    def decorate(func: F) -> F:
        routes = list(getattr(func, _ROUTE_ATTR, ()))
        routes.append((method.upper(), compiled, auth))
        setattr(func, _ROUTE_ATTR, routes)
        return func

    return decorate


class Service:
    """Base class of the stand-ins; see the module docstring for how to write one."""

    name: ClassVar[str] = ""
    audiences: ClassVar[tuple[str, ...]] = ()
    section_name: ClassVar[str | None] = None
    """The scenario section this service reads, when not ``name`` (e.g. cert_host -> "webhooks")."""

    def __init__(self, sandbox: Sandbox, section: dict[str, Any]) -> None:
        self.sandbox = sandbox
        self.section = section
        self.base_url = sandbox.url(self.name)
        self.lock = threading.RLock()
        self.reset()

    # -- overridable ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Go back to the scenario's initial state (``self.section``); called by __init__ too."""

    def accepted_audiences(self) -> tuple[str, ...]:
        """Audiences a bearer token may carry for this service (Key Vault: its own origin)."""
        return self.audiences

    def error(self, err: HttpError) -> Response:
        """The error body; override with the service's real shape."""
        return json_response(err.status, {"error": {"code": err.code, "message": err.message}}, err.headers)

    def unauthorized(self, reason: str) -> Response:
        """The 401 for a missing or invalid token; override with the service's real shape."""
        return self.error(
            HttpError(401, "InvalidAuthenticationToken", f"Access token validation failure: {reason}.",
                      {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        )

    def authorize(self, request: Request, claims: dict[str, Any]) -> None:
        """Extra checks after the token is valid (tenant, scp / roles); raise HttpError to refuse."""

    def fault_response(self, fault: Fault) -> Response:
        """The response for "status" and "pc_mfa_required" faults, in this service's error shape."""
        if fault.kind == "pc_mfa_required":
            return self.error(
                HttpError(401, "900421", fault.message or "Multi-factor authentication is required for "
                          "App+User calls: the access token has no 'mfa' in its amr claim.")
            )
        status = fault.status or 500
        code = {429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable"}.get(status, "Error")
        headers = {"Retry-After": _seconds(fault.retry_after)} if fault.retry_after is not None else {}
        message = fault.message or (
            f"Rate limit is exceeded. Try again in {_seconds(fault.retry_after or 1)} seconds."
            if status == 429 else "The service is temporarily unavailable (injected fault)."
        )
        return self.error(HttpError(status, code, message, headers))

    # -- used by the core ----------------------------------------------------------------------

    @classmethod
    def routes(cls) -> list[Route]:
        found: list[Route] = []
        seen: set[str] = set()
        for klass in cls.__mro__:
            for attr, value in vars(klass).items():
                if attr in seen:
                    continue
                seen.add(attr)
                for method, pattern, auth in getattr(value, _ROUTE_ATTR, ()):
                    found.append(Route(method, pattern, auth, attr))
        return found

    def bearer_claims(self, request: Request) -> dict[str, Any]:
        """Validated claims of the request's bearer token, or HttpError-like 401 via _Unauthorized."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Unauthorized("no bearer token in the Authorization header")
        try:
            return self.sandbox.tokens.validate(token.strip(), self.accepted_audiences())
        except TokenRejected as exc:
            raise _Unauthorized(exc.reason) from None


class _Unauthorized(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _seconds(value: float | None) -> str:
    number = float(value or 0)
    return str(int(number)) if number.is_integer() else str(number)


def registered_services() -> dict[str, type[Service]]:
    """Every available stand-in class by name; modules not written yet are skipped."""
    found: dict[str, type[Service]] = {}
    for module_name in SERVICE_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            log.warning("sandbox: %s is not available yet; its stand-in is not started", module_name)
            continue
        for value in vars(module).values():
            if (
                isinstance(value, type) and issubclass(value, Service) and value is not Service
                and value.__module__ == module_name and value.name
            ):
                found[value.name] = value
    return found


class _Server(ThreadingHTTPServer):
    """One stand-in's listener; TLS is negotiated on the connection's own thread."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], sandbox: Sandbox, service_name: str, context: ssl.SSLContext):
        self.sandbox = sandbox
        self.service_name = service_name
        self.ssl_context = context
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        raw: socket.socket = request
        with self.connections_lock:
            self.connections.add(raw)
        try:
            raw.settimeout(KEEP_ALIVE_SECONDS)
            try:
                tls = self.ssl_context.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                log.debug("sandbox %s: TLS handshake failed: %s", self.service_name, exc)
                return
            with self.connections_lock:
                self.connections.discard(raw)
                self.connections.add(tls)
            try:
                _RequestHandler(tls, client_address, self)
            finally:
                with self.connections_lock:
                    self.connections.discard(tls)
                with contextlib.suppress(OSError):
                    tls.close()
        finally:
            with self.connections_lock:
                self.connections.discard(raw)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("sandbox %s: connection error from %s", self.service_name, client_address, exc_info=True)

    def close_connections(self) -> None:
        with self.connections_lock:
            open_sockets = list(self.connections)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _DropConnection(Exception):
    pass


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "sandbox"
    sys_version = ""
    # Headers and body go out in two writes; with Nagle's algorithm the body waits for the client's
    # delayed ACK (about 40 ms a request on keep-alive connections).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sandbox %s: " + format, self.server.service_name, *args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537).strip():
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        target = urlsplit(self.path)
        request = Request(
            method=self.command.upper(),
            path=unquote(target.path) or "/",
            query=parse_qs(target.query, keep_blank_values=True),
            headers=Headers(self.headers.items()),
            body=body,
            raw_path=self.path,
            client=self.client_address[0] if self.client_address else "",
        )
        sandbox = self.server.sandbox
        try:
            response = sandbox.handle(self.server.service_name, request)
        except _DropConnection:
            sandbox.record(self.server.service_name, request, 0)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if not request.path.startswith(CONTROL_PREFIX):
            sandbox.record(self.server.service_name, request, response.status)
        self.send_response(response.status)
        headers = {k.lower(): (k, v) for k, v in response.headers.items()}
        for _, (name, value) in headers.items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        payload = b"" if self.command == "HEAD" else response.body
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


class Sandbox:
    """Every stand-in, their shared state, the CA and the token issuer.

    Start it with ``start_sandbox()``; ``stop()`` closes every port and connection it opened.
    """

    def __init__(self, scenario: Path | str | dict[str, Any] | None = None, *, host: str = "127.0.0.1",
                 port: int | None = None, state_dir: Path | None = None,
                 services: Iterable[type[Service]] | None = None) -> None:
        if not _is_loopback(host):
            raise ValueError(f"the sandbox listens on loopback only, not {host!r}")
        self.host = host
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if state_dir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="sandbox-")
            state_dir = Path(self._tempdir.name)
        self.state_dir = state_dir
        self.tls: SandboxTls = create_tls(state_dir)
        self.ca_cert_path: Path = self.tls.ca_cert_path
        self.raw_scenario = load_scenario(scenario)
        self.faults = FaultSet()
        self._requests: list[RecordedRequest] = []
        self._requests_lock = threading.Lock()
        self._stopping = threading.Event()
        self.shared: dict[str, Any] = {}
        """Free-form state services share (e.g. the webhook root CA path), keyed by convention."""
        self.extra_app_settings: dict[str, str] = {}
        """Settings services add to ``app_settings()`` (e.g. WEBHOOK_TRUSTED_ROOTS from webhooks)."""

        classes = registered_services() if services is None else {klass.name: klass for klass in services}
        names = [n for n in SERVICE_ORDER if n in classes] + sorted(set(classes) - set(SERVICE_ORDER))
        context = self.tls.server_context()
        self._servers: dict[str, _Server] = {}
        try:
            for index, name in enumerate(names):
                wanted = port + SERVICE_ORDER.index(name) if port and name in SERVICE_ORDER else \
                    (port + len(SERVICE_ORDER) + index if port else 0)
                self._servers[name] = _Server((host, wanted), self, name, context)
        except OSError:
            for server in self._servers.values():
                server.server_close()
            raise
        url_host = f"[{host}]" if ":" in host else host
        self._urls = {name: f"https://{url_host}:{server.server_address[1]}" for name, server in self._servers.items()}
        self.tokens = TokenIssuer(self._urls.get("entra", "https://login.microsoftonline.com"))
        self.scenario: dict[str, Any] = resolve(self.raw_scenario, urls=self._urls)
        self.services: dict[str, Service] = {}
        for name in names:
            klass = classes[name]
            section_key = klass.section_name or name
            self.services[name] = klass(self, self._section(section_key))
        self._load_faults()
        self._threads: list[threading.Thread] = []
        for name, server in self._servers.items():
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                      name=f"sandbox-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    # -- scenario ------------------------------------------------------------------------------

    def _section(self, key: str) -> dict[str, Any]:
        section = self.scenario.get(key, {})
        return copy.deepcopy(section) if isinstance(section, dict) else {}

    def _load_faults(self) -> None:
        self.faults.clear()
        for item in self.scenario.get("faults", []):
            self.faults.add(Fault.from_dict(item))

    def reset(self) -> None:
        """Back to the scenario's initial state: services, faults and the request log."""
        self.scenario = resolve(self.raw_scenario, urls=self._urls)
        for service in self.services.values():
            with service.lock:
                service.section = self._section(service.section_name or service.name)
                service.reset()
        self._load_faults()
        with self._requests_lock:
            self._requests.clear()

    # -- public API ----------------------------------------------------------------------------

    def url(self, service: str) -> str:
        try:
            return self._urls[service]
        except KeyError:
            raise KeyError(f"no {service!r} stand-in is running; running: {', '.join(self._urls)}") from None

    def urls(self) -> dict[str, str]:
        return dict(self._urls)

    def requests(self, service: str | None = None) -> list[RecordedRequest]:
        """Every request received (control endpoints excluded), oldest first."""
        with self._requests_lock:
            return [r for r in self._requests if service is None or r.service == service]

    def clear_requests(self) -> None:
        with self._requests_lock:
            self._requests.clear()

    def add_fault(self, fault: Fault) -> Fault:
        return self.faults.add(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    def app_settings(self) -> dict[str, str]:
        """Environment variables that point the app at this sandbox."""
        settings = {
            "PARTNER_CENTER_URL": self._urls.get("partner_center", ""),
            "GRAPH_URL": self._urls.get("graph", ""),
            "ARM_URL": self._urls.get("arm", ""),
            "ENTRA_AUTHORITY_HOST": self._urls.get("entra", ""),
            "KEY_VAULT_URL": self._urls.get("key_vault", ""),
            "TRUSTED_CA_BUNDLE": str(self.ca_cert_path),
            "PARTNER_TENANT_ID": ids.PARTNER_TENANT_ID,
            "PARTNER_APP_CLIENT_ID": ids.PARTNER_APP_CLIENT_ID,
            "GRAPH_APP_CLIENT_ID": ids.GRAPH_APP_CLIENT_ID,
            "NOTIFY_SENDER": ids.NOTIFY_SENDER,
            "SECURITY_CONTACTS": ids.SECURITY_CONTACT,
        }
        if "cert_host" in self._urls:
            cert_host = urlsplit(self._urls["cert_host"]).hostname or self.host
            settings["WEBHOOK_CERT_HOSTS"] = cert_host
            settings["WEBHOOK_ALLOW_PRIVATE_CERT_HOSTS"] = cert_host
        for service in self.services.values():
            contribute = getattr(service, "app_settings", None)
            if callable(contribute):
                settings.update(contribute())
        settings.update(self.extra_app_settings)
        return {k: v for k, v in settings.items() if v != ""}

    def stop(self) -> None:
        """Stop every listener, close open connections and remove generated files."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        for server in self._servers.values():
            server.shutdown()
        for server in self._servers.values():
            server.server_close()
            server.close_connections()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._tempdir is not None:
            self._tempdir.cleanup()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def sleep(self, seconds: float) -> None:
        """Wait, but wake up at once when the sandbox stops (delay faults use this)."""
        self._stopping.wait(seconds)

    # -- request handling (server threads) -----------------------------------------------------

    def record(self, service: str, request: Request, status: int) -> None:
        entry = RecordedRequest(service, request.method, request.path, request.query, dict(request.headers.items()),
                                request.body, status, time.time())
        with self._requests_lock:
            self._requests.append(entry)

    def handle(self, service_name: str, request: Request) -> Response:
        service = self.services[service_name]
        if request.path.startswith(CONTROL_PREFIX):
            if not _is_loopback(request.client):
                return service.error(HttpError(403, "Forbidden", "Control endpoints answer loopback clients only."))
            control = self._control(service_name, request)
            if control is not None:
                return control
        else:
            fault = self.faults.take(service_name, request.method, request.path)
            if fault is not None:
                if fault.kind == "drop":
                    raise _DropConnection
                if fault.kind == "delay":
                    self.sleep(fault.seconds)
                elif fault.kind == "malformed_json":
                    return Response(200, b'{"value": [{"id": "truncated', {"Content-Type": "application/json"})
                else:
                    return service.fault_response(fault)
        return self._route(service, request)

    def _route(self, service: Service, request: Request) -> Response:
        allowed: list[str] = []
        for entry in service.routes():
            match = entry.pattern.fullmatch(request.path)
            if match is None:
                continue
            if entry.method != request.method and not (entry.method == "GET" and request.method == "HEAD"):
                allowed.append(entry.method)
                continue
            request.params = {k: v for k, v in match.groupdict().items() if v is not None}
            try:
                if entry.auth:
                    try:
                        claims = service.bearer_claims(request)
                    except _Unauthorized as exc:
                        return service.unauthorized(exc.reason)
                    request.claims = claims
                    service.authorize(request, claims)
                handler: Callable[[Request], Response] = getattr(service, entry.handler_name)
                return handler(request)
            except HttpError as err:
                return service.error(err)
            except Exception:
                log.exception("sandbox %s: handler %s failed", service.name, entry.handler_name)
                return service.error(HttpError(500, "InternalServerError", "The sandbox handler failed; see its log."))
        if allowed:
            return service.error(HttpError(405, "MethodNotAllowed", f"{request.method} is not supported on "
                                           f"{request.path}; use {', '.join(sorted(set(allowed)))}.",
                                           {"Allow": ", ".join(sorted(set(allowed)))}))
        return service.error(HttpError(404, "NotFound", f"The sandbox {service.name} has no resource {request.path}."))

    def _control(self, service_name: str, request: Request) -> Response | None:
        """Generic control endpoints; None lets service-specific /_sandbox/ routes answer."""
        path = request.path.rstrip("/")
        if path == "/_sandbox/requests" and request.method == "GET":
            wanted = request.arg("service")
            return json_response(200, {"value": [r.to_dict() for r in self.requests(wanted)]})
        if path == "/_sandbox/requests" and request.method == "DELETE":
            self.clear_requests()
            return Response(204)
        if path == "/_sandbox/faults":
            if request.method == "GET":
                return json_response(200, {"value": [f.to_dict() for f in self.faults.list()]})
            if request.method == "DELETE":
                self.clear_faults()
                return Response(204)
            if request.method == "POST":
                try:
                    body = request.json()
                    items = body if isinstance(body, list) else [body]
                    added = [self.add_fault(Fault.from_dict(item, default_service=service_name)) for item in items]
                except HttpError as err:
                    return json_response(400, {"error": {"code": err.code, "message": err.message}})
                except FaultError as exc:
                    return json_response(400, {"error": {"code": "InvalidFault", "message": str(exc)}})
                return json_response(201, {"value": [f.to_dict() for f in added]})
        if path == "/_sandbox/reset" and request.method == "POST":
            self.reset()
            return Response(204)
        if path == "/_sandbox/urls" and request.method == "GET":
            return json_response(200, {**self._urls, "ca_cert": str(self.ca_cert_path)})
        return None


def start_sandbox(scenario: Path | str | dict[str, Any] | None = None, *, host: str = "127.0.0.1",
                  port: int | None = None, state_dir: Path | None = None,
                  services: Iterable[type[Service]] | None = None) -> Sandbox:
    """Start every available stand-in on loopback (free ports, or consecutive from ``port``).

    ``scenario``: a JSON file, a dict, or None for ``sandbox/scenarios/default.json``.
    ``state_dir``: where the CA and server certificate go (a temporary directory by default).
    ``services``: the stand-in classes to run (default: every registered one).
    """
    return Sandbox(scenario, host=host, port=port, state_dir=state_dir, services=services)
