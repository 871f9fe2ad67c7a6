"""``make fuzz``: hostile requests at the webhook receiver, through the dev host's HTTP server.

Each request goes on its own loopback connection as raw bytes, so nothing a client library
would tidy up is tidied: malformed and hostile JSON (huge numbers, deep nesting, invalid UTF-8),
oversized bodies, wrong content types, forged, missing or malformed signature headers, bad
certificate URLs, odd methods, and header abuse (two Content-Lengths, negative or non-numeric
lengths, bad chunk sizes, very long or very many headers). Some requests carry a valid
signature (from the sandbox's signing certificate), some a valid signature over other bytes.

The dev host checks function keys as the Functions host does, so requests present the receiver's
own key (``x-functions-key``, or ``?code=`` as Partner Center's registered URL does); a share
presents none, a wrong one or another function's key, and those must be answered 401.

Every request must get an HTTP answer below 500: a dropped connection, a timeout or a 5xx is a
failure, and the run names the kinds of input that caused them. The run is bounded by a
request count and a time limit, and only ever talks to 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO

PATH = "/api/webhooks/partner-center"
FRAUD_EVENT = "azure-fraud-event-detected"
READ_TIMEOUT = 20.0
DROPPED = "dropped"
TIMEOUT = "timeout"
NO_STATUS_LINE = "no-status-line"
"""An answer without an HTTP/1.x status line: http.server answers a request line it cannot parse in
HTTP/0.9 form (the body alone). Counted and shown, but not a failure: the client did get an answer."""


@dataclass(frozen=True)
class FuzzOptions:
    requests: int = 10_000
    seed: int = 1
    max_seconds: float = 300.0
    workers: int = 4


@dataclass
class FuzzResult:
    """Answers by status (or ``dropped`` / ``timeout``), and which kinds of input got a bad one."""

    sent: int = 0
    seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    """{kind of input: {status: count}}."""
    wanted: int = 0

    def record(self, kind: str, outcome: str) -> None:
        self.sent += 1
        self.statuses[outcome] += 1
        self.by_kind.setdefault(kind, Counter())[outcome] += 1

    @staticmethod
    def is_bad(outcome: str) -> bool:
        """A 5xx, a dropped connection or a timeout."""
        return int(outcome) >= 500 if outcome.isdigit() else outcome in (DROPPED, TIMEOUT)

    @property
    def bad(self) -> dict[str, Counter[str]]:
        """{kind of input: {outcome: count}} for every answer >= 500, drop or timeout."""
        found = {kind: Counter({o: n for o, n in c.items() if self.is_bad(o)}) for kind, c in self.by_kind.items()}
        return {kind: c for kind, c in found.items() if c}

    def failures(self) -> list[str]:
        problems = [f"{kind}: {', '.join(f'{o} x{n}' for o, n in sorted(c.items()))}"
                    for kind, c in sorted(self.bad.items())]
        if self.sent < self.wanted:
            problems.append(f"only {self.sent} of {self.wanted} requests were sent within the time limit")
        return problems

    def render(self) -> str:
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(self.statuses.items()))
        server_errors = sum(n for s, n in self.statuses.items() if s.isdigit() and int(s) >= 500)
        lines = [
            "Webhook fuzz figures",
            f"  requests          {self.sent} in {self.seconds:.1f}s (loopback only)",
            f"  answers           {statuses}",
            f"  answers >= 500    {server_errors}",
            f"  dropped / timeout {self.statuses.get(DROPPED, 0)} / {self.statuses.get(TIMEOUT, 0)}",
            "  by kind of input:",
        ]
        width = max((len(kind) for kind in self.by_kind), default=0)
        lines += [f"    {kind:<{width}}  " + ", ".join(f"{o}: {n}" for o, n in sorted(c.items()))
                  for kind, c in sorted(self.by_kind.items())]
        problems = self.failures()
        lines.append("RESULT: " + ("OK" if not problems else "FAILED"))
        lines += [f"  - {p}" for p in problems]
        return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    """What a request generator needs: the address, a signer and a valid certificate URL."""

    port: int
    cert_url: str
    sign: Callable[[bytes], str]
    max_body: int
    key: str = ""
    """The receiver's function key (sent as ``x-functions-key`` unless a case says otherwise)."""
    other_key: str = ""
    """A key of another function, which must not open the receiver."""


# -- building requests ---------------------------------------------------------------------------


def _event(rng: random.Random) -> dict[str, Any]:
    subscription = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return {
        "EventName": FRAUD_EVENT,
        "ResourceUri": f"https://api.partnercenter.microsoft.com/v1/fraudEvents?SubscriptionId={subscription}"
                       "&EventStatus=Active",
        "AuditUri": None,
        "ResourceChangeUtcDate": f"2026-01-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00.0000000+00:00",
    }


def _request(method: str, headers: list[tuple[str, str]], body: bytes, *, target: str = PATH,
             version: str = "HTTP/1.1", content_length: bool = True) -> bytes:
    lines = [f"{method} {target} {version}", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body


def _key_header(t: Target) -> list[tuple[str, str]]:
    return [("x-functions-key", t.key)] if t.key else []


def _signed_headers(t: Target, body: bytes, *, signature: str | None = None,
                    content_type: str = "application/json; charset=utf-8") -> list[tuple[str, str]]:
    return [*_key_header(t), ("Content-Type", content_type),
            ("Authorization", f"Signature {signature or t.sign(body)}"),
            ("X-MS-Certificate-Url", t.cert_url), ("X-MS-Signature-Algorithm", "rsa-sha256")]


def _hostile_json(rng: random.Random) -> tuple[str, bytes]:
    """(what it is, body): JSON that is malformed, hostile or merely odd."""
    choice = rng.randrange(14)
    if choice == 0:
        return "number over 4300 digits", b'{"EventName": ' + b"9" * rng.choice((4301, 5000, 20000)) + b"}"
    if choice == 1:
        depth = rng.choice((100, 1000, 5000, 50000))
        return f"objects nested {depth} deep", b'{"a":' * depth + b"1" + b"}" * depth
    if choice == 2:
        depth = rng.choice((1000, 100000))
        return f"arrays nested {depth} deep", b"[" * depth + b"]" * depth
    if choice == 3:
        return "invalid UTF-8", b'{"EventName": "\xff\xfe\xc3\x28", "ResourceUri": "\xed\xa0\x80"}'
    if choice == 4:
        return "UTF-8 BOM", b"\xef\xbb\xbf" + json.dumps(_event(rng)).encode()
    if choice == 5:
        return "truncated", json.dumps(_event(rng)).encode()[: rng.randrange(1, 60)]
    if choice == 6:
        return "not an object", rng.choice((b"[]", b"null", b'"x"', b"1e999999", b"-0", b"NaN", b"Infinity",
                                            b"true", b""))
    if choice == 7:
        event = _event(rng)
        event["EventName"] = rng.choice((None, 1, [], {}, "x" * 10000, "\u0000", "\ud800", 1.5e308))
        return "odd EventName", json.dumps(event).encode("utf-8", "surrogatepass")
    if choice == 8:
        event = _event(rng)
        event["ResourceUri"] = rng.choice(("", "not a url", "https://x/v1/fraudEvents?SubscriptionId=../../etc",
                                           "https://x/v1/fraudEvents?SubscriptionId=" + "a" * 5000,
                                           "javascript:alert(1)", "https://x/?SubscriptionId=%00%ff"))
        return "odd ResourceUri", json.dumps(event).encode()
    if choice == 9:
        return "duplicate keys", b'{"EventName": "a", "EventName": "b", "eventname": "c"}'
    if choice == 10:
        return "random bytes", bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 512)))
    if choice == 11:
        return "bad escapes", b'{"a": "\\ud800", "b": "\\ud800\\udc00\\uZZZZ"}'
    if choice == 12:
        return "long float", b'{"EventName": 1' + b"0" * 4000 + b'.5e-99999}'
    return "many long keys", json.dumps({"k" * rng.randrange(1, 300): "v" * rng.randrange(0, 3000)
                                         for _ in range(rng.randrange(1, 50))}).encode()


def _case_valid(rng: random.Random, t: Target) -> tuple[str, bytes]:
    body = json.dumps(_event(rng)).encode()
    return "valid signed event", _request("POST", _signed_headers(t, body), body)


def _case_hostile_json_signed(rng: random.Random, t: Target) -> tuple[str, bytes]:
    what, body = _hostile_json(rng)
    return f"hostile JSON, signed: {what}", _request("POST", _signed_headers(t, body), body)


def _case_hostile_json_unsigned(rng: random.Random, t: Target) -> tuple[str, bytes]:
    what, body = _hostile_json(rng)
    headers = [*_key_header(t), ("Content-Type", "application/json")]
    if rng.random() < 0.5:
        headers += [("Authorization", "Signature " + base64.b64encode(rng.randbytes(256)).decode()),
                    ("X-MS-Certificate-Url", t.cert_url), ("X-MS-Signature-Algorithm", "rsa-sha256")]
    return f"hostile JSON, unsigned: {what}", _request("POST", headers, body)


def _case_tampered(rng: random.Random, t: Target) -> tuple[str, bytes]:
    body = json.dumps(_event(rng)).encode()
    signature = t.sign(body)
    tampered = body.replace(b"Active", b"Resolved") if rng.random() < 0.5 else body + b" "
    return "signature over other bytes", _request("POST", _signed_headers(t, tampered, signature=signature), tampered)


def _case_signature_headers(rng: random.Random, t: Target) -> tuple[str, bytes]:
    body = json.dumps(_event(rng)).encode()
    good = t.sign(body)
    headers = _signed_headers(t, body)
    variant = rng.randrange(12)
    if variant == 0:
        headers = [h for h in headers if h[0] != "Authorization"]
    elif variant == 1:
        headers = [h for h in headers if h[0] != "X-MS-Signature-Algorithm"]
    elif variant == 2:
        headers = [h for h in headers if h[0] != "X-MS-Certificate-Url"]
    else:
        value = rng.choice((
            "Signature", "Signature ", "Bearer " + good, "Signature !!!not-base64!!!", "Signature " + good[:-4],
            "Signature " + "A" * 20000, "signature " + good, "Signature\t" + good, "Signature " + good + " extra",
        ))
        headers = [(n, value if n == "Authorization" else v) for n, v in headers]
        if rng.random() < 0.3:
            headers = [(n, v) for n, v in headers if n != "Authorization"] + [("x-ms-signature", value)]
        if rng.random() < 0.3:
            headers = [(n, rng.choice(("rsa-sha1", "RSA-SHA256", "", "none", "hmac-sha256")) if
                        n == "X-MS-Signature-Algorithm" else v) for n, v in headers]
    return "forged or missing signature headers", _request("POST", headers, body)


def _case_cert_url(rng: random.Random, t: Target) -> tuple[str, bytes]:
    body = json.dumps(_event(rng)).encode()
    host_port = t.cert_url.split("/")[2]
    host = host_port.split(":")[0]
    what, url = rng.choice((
        ("http", t.cert_url.replace("https://", "http://")), ("ftp", t.cert_url.replace("https://", "ftp://")),
        ("host not allowed", "https://evil.example/cert.cer"),
        ("credentials in URL", f"https://user:pw@{host_port}/cert/x.cer"), ("other port", f"https://{host}:1/cert.cer"),
        ("private address", "https://10.0.0.1/cert.cer"), ("metadata address", "https://169.254.169.254/metadata"),
        ("IPv6 loopback", "https://[::1]/cert.cer"), ("odd IP form", "https://0x7f.1/cert.cer"),
        ("file", "file:///etc/passwd"), ("empty", ""), ("not a URL", "not a url"),
        ("very long host", "https://" + "a" * 3000 + "/c.cer"), ("dot segments", t.cert_url + "/../../etc"),
        ("query string", t.cert_url + "?x=" + "y" * 1000), ("no certificate there", f"https://{host_port}/cert/missing.cer"),
        ("IDN host", "https://xn--80ak6aa92e.com/c.cer"),
        ("look-alike host", "https://pcnotifications-dispatch.microsoft.com.evil.example/c.cer"),
    ))
    headers = [(n, url if n == "X-MS-Certificate-Url" else v) for n, v in _signed_headers(t, body)]
    return f"certificate URL: {what}", _request("POST", headers, body)


def _case_content_type(rng: random.Random, t: Target) -> tuple[str, bytes]:
    body = json.dumps(_event(rng)).encode()
    content_type = rng.choice(("text/plain", "application/xml", "multipart/form-data; boundary=x",
                               "application/json; charset=latin-1", "application/json; charset=utf-16",
                               "application/jsonx", "", "application/x-www-form-urlencoded", "*/*",
                               "application/json;;;", "APPLICATION/JSON", "application/json; charset=\u00ff"))
    headers = _signed_headers(t, body, content_type=content_type)
    if rng.random() < 0.2:
        headers = [h for h in headers if h[0] != "Content-Type"]
    return "wrong content type", _request("POST", headers, body)


def _case_huge(rng: random.Random, t: Target) -> tuple[str, bytes]:
    variant = rng.randrange(4)
    if variant == 0:  # over the receiver's limit, sent in full
        body = b'{"EventName": "' + b"x" * (t.max_body + rng.randrange(1, 4096)) + b'"}'
        return "huge body", _request("POST", _signed_headers(t, body), body)
    if variant == 1:  # a length over every limit; the body is never sent
        headers = _signed_headers(t, b"")
        length = rng.choice((10**9, 10**12, 2**63, 10**30))
        raw = _request("POST", [*headers, ("Content-Length", str(length))], b"", content_length=False)
        return "huge Content-Length", raw
    if variant == 2:  # chunked, over the limit
        chunk = b"y" * 8192
        count = t.max_body // len(chunk) + 2
        chunks = b"".join(b"2000\r\n" + chunk + b"\r\n" for _ in range(count)) + b"0\r\n\r\n"
        headers = [*_signed_headers(t, b""), ("Transfer-Encoding", "chunked")]
        return "huge chunked body", _request("POST", headers, chunks, content_length=False)
    body = json.dumps({"EventName": FRAUD_EVENT, "pad": ["z" * 100] * (t.max_body // 110)}).encode()
    return "huge body", _request("POST", _signed_headers(t, body), body)


def _case_method(rng: random.Random, t: Target) -> tuple[str, bytes]:
    method = rng.choice(("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "CONNECT", "FOO", "post",
                         "PROPFIND", "M-SEARCH", "X" * 200, "GET\x00"))
    body = json.dumps(_event(rng)).encode() if rng.random() < 0.5 else b""
    return "odd method", _request(method, _signed_headers(t, body), body)


def _case_headers(rng: random.Random, t: Target) -> tuple[str, bytes]:
    body = json.dumps(_event(rng)).encode()
    headers = _signed_headers(t, body)
    variant = rng.randrange(13)
    if variant == 0:
        return "two Content-Lengths", _request("POST", [*headers, ("Content-Length", str(len(body))),
                                                        ("Content-Length", str(len(body) + 5))], body,
                                               content_length=False)
    if variant == 1:
        return "negative Content-Length", _request("POST", [*headers, ("Content-Length", "-1")], body,
                                                   content_length=False)
    if variant == 2:
        value = rng.choice(("abc", "1e3", "0x10", " 12", "+5", "1,2", ""))
        return "non-numeric Content-Length", _request("POST", [*headers, ("Content-Length", value)], body,
                                                      content_length=False)
    if variant == 3:
        size = rng.choice((b"-5", b"zz", b"ffffffffffffffffffff", b"", b"1;" + b"x" * 2000))
        raw = _request("POST", [*headers, ("Transfer-Encoding", "chunked")], size + b"\r\nabc\r\n0\r\n\r\n",
                       content_length=False)
        return "bad chunk size", raw
    if variant == 4:
        return "chunked and Content-Length", _request(
            "POST", [*headers, ("Transfer-Encoding", "chunked")],
            f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
    if variant == 5:
        return "very long header", _request("POST", [*headers, ("X-Long", "a" * rng.choice((9000, 70000)))], body)
    if variant == 6:
        extra = [(f"X-H{i}", "v") for i in range(rng.choice((101, 500)))]
        return "too many headers", _request("POST", [*headers, *extra], body)
    if variant == 7:
        raw = _request("POST", headers, body).replace(b"\r\nX-MS-Certificate-Url",
                                                      b"\r\nNoColonHere\r\nX-MS-Certificate-Url")
        return "malformed header line", raw
    if variant == 8:
        return "header with control bytes", _request("POST", [*headers, ("X-Bad", "a\x00b\x7f\xff")], body)
    if variant == 9:
        target = rng.choice((PATH + "?code=" + "k" * 5000, PATH + "/../" + PATH, "http://evil.example" + PATH,
                             PATH + "%00", PATH + "?" + "&".join(f"a{i}=b" for i in range(2000)), "*",
                             "/" + "a" * 70000))
        return "odd request target", _request("POST", headers, body, target=target)
    if variant == 10:
        version = rng.choice(("HTTP/1.0", "HTTP/0.9", "HTTP/1.2", "HTTP/x", "FOO"))
        return "odd HTTP version", _request("POST", headers, body, version=version)
    if variant == 11:
        if rng.random() < 0.5:
            return "garbage request line: random bytes", bytes(rng.getrandbits(8) for _ in range(64)) + b"\r\n\r\n"
        return "garbage request line: one word", rng.choice((b"GARBAGE\r\n\r\n", b"POST\r\n\r\n"))
    return "folded header", _request("POST", headers, body).replace(
        b"\r\nX-MS-Signature-Algorithm: rsa-sha256", b"\r\nX-MS-Signature-Algorithm: rsa-\r\n sha256")


def _case_function_key(rng: random.Random, t: Target) -> tuple[str, bytes]:
    """A valid signed event with the function key missing, wrong, another function's, or in ``?code=``."""
    body = json.dumps(_event(rng)).encode()
    headers = [h for h in _signed_headers(t, body) if h[0] != "x-functions-key"]
    variant = rng.randrange(6)
    if variant == 0:
        return "function key: none", _request("POST", headers, body)
    if variant == 1:
        wrong = rng.choice((t.key[:-1], t.key + "x", t.key.upper(), "x" * len(t.key), " ", "\u00e9"))
        return "function key: wrong", _request("POST", [("x-functions-key", wrong), *headers], body)
    if variant == 2:
        return "function key: another function's", _request("POST", [("x-functions-key", t.other_key), *headers],
                                                             body)
    if variant == 3:
        return "function key: wrong ?code=", _request("POST", headers, body, target=f"{PATH}?code=not-{t.key}")
    if variant == 4:
        return "function key: empty header", _request("POST", [("x-functions-key", ""), *headers], body)
    return "function key: the receiver's in ?code=", _request("POST", headers, body, target=f"{PATH}?code={t.key}")


CASES: tuple[tuple[Callable[[random.Random, Target], tuple[str, bytes]], int], ...] = (
    (_case_valid, 3), (_case_hostile_json_signed, 12), (_case_hostile_json_unsigned, 8), (_case_tampered, 6),
    (_case_signature_headers, 12), (_case_cert_url, 10), (_case_content_type, 8), (_case_huge, 3),
    (_case_method, 8), (_case_headers, 14), (_case_function_key, 6),
)


def build_request(seed: int, index: int, target: Target) -> tuple[str, bytes]:
    """Request ``index`` of a run: the same seed and index give the same bytes (any thread order)."""
    rng = random.Random(seed * 1_000_003 + index)  # noqa: S311 - replayable inputs, not cryptography
    makers = [maker for maker, _ in CASES]
    weights = [weight for _, weight in CASES]
    maker = rng.choices(makers, weights)[0]
    return maker(rng, target)


# -- sending -------------------------------------------------------------------------------------


def send(port: int, raw: bytes, *, timeout: float = READ_TIMEOUT) -> str:
    """Send raw bytes on a new loopback connection: the answer's status, ``dropped`` or ``timeout``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # the server may answer and close before reading it all
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            return TIMEOUT
        except OSError:
            pass  # reset after an answer that was already read still counts as answered
        line = data.split(b"\r\n", 1)[0].split()
        if len(line) >= 2 and line[0].startswith(b"HTTP/") and line[1].isdigit():
            return line[1].decode()
        return NO_STATUS_LINE if data else DROPPED


def run_against(port: int, target: Target, options: FuzzOptions, *, out: TextIO | None = None) -> FuzzResult:
    """Send ``options.requests`` requests (or until ``max_seconds``) to a receiver already listening."""
    result = FuzzResult(wanted=options.requests)
    started = time.monotonic()
    deadline = started + options.max_seconds

    def one(index: int) -> tuple[str, str] | None:
        if time.monotonic() > deadline:
            return None
        kind, raw = build_request(options.seed, index, target)
        try:
            return kind, send(port, raw)
        except OSError:
            return kind, DROPPED

    with ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="fuzz") as pool:
        for answer in pool.map(one, range(options.requests)):
            if answer is not None:
                result.record(*answer)
                if out is not None and result.sent % 2000 == 0:
                    out.write(f"fuzz: {result.sent} requests, {time.monotonic() - started:.0f}s\n")
                    out.flush()
    result.seconds = time.monotonic() - started
    return result


def run_fuzz(options: FuzzOptions, *, out: TextIO | None = None) -> FuzzResult:
    """Start Azurite, the sandbox and the dev host (the receiver only), then fuzz it."""
    import logging
    import tempfile
    from pathlib import Path

    from devhost.azurite import start_azurite
    from devhost.host import DevHost
    from devhost.keys import FunctionKeys
    from sandbox.core import start_sandbox
    from sandbox.webhooks import CERT_FILE_NAME, webhook_signer
    from shared.settings import load_settings

    with contextlib.ExitStack() as stack:
        for name in ("devhost", "shared"):  # thousands of rejections are expected here; quiet for this run only
            logger = logging.getLogger(name)
            stack.callback(logger.setLevel, logger.level)
            logger.setLevel(logging.CRITICAL)
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fuzz-")))
        azurite = start_azurite()
        stack.callback(azurite.stop)
        sandbox = start_sandbox(state_dir=work / "sandbox")
        stack.callback(sandbox.stop)
        env = {**sandbox.app_settings(), "AzureWebJobsStorage": azurite.connection_string,
               "TABLE_NAME_PREFIX": "fuzz" + uuid.uuid4().hex[:8],
               "FRAUD_RESPONDER_LOCAL_SETTINGS": str(work / "none.json")}
        settings = load_settings(env, local_settings=work / "none.json")
        signer = webhook_signer(sandbox)
        target = Target(port=0, cert_url=f"{sandbox.url('cert_host')}/cert/{CERT_FILE_NAME}", sign=signer.sign,
                        max_body=settings.webhook_max_body_bytes)
        keys = FunctionKeys()
        host = DevHost(environ=env, http_port=0, functions=["receive_webhook"], keys=keys)
        stack.enter_context(host)
        port = int(host.base_url.rsplit(":", 1)[1])
        target = Target(port, target.cert_url, target.sign, target.max_body, key=keys.function_key("receive_webhook"),
                        other_key=keys.function_key("health"))
        if out is not None:
            out.write(f"fuzz: {options.requests} requests, seed {options.seed}, at most {options.max_seconds:.0f}s, "
                      f"to 127.0.0.1:{port}{PATH}\n")
            out.flush()
        return run_against(port, target, options, out=out)
    raise AssertionError("unreachable")  # pragma: no cover
