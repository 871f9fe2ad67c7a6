"""Function keys, checked as the Functions host checks them.

A function with auth level ``function`` opens to one of its own function keys, to a host key
(which opens every function-level function) or to the master key; ``admin`` only to the master
key; ``anonymous`` to anyone. The key comes as the ``x-functions-key`` header or the ``code``
query parameter; a missing or wrong key is answered 401 with no body, before the function runs.

So a function key handed out for one function (the webhook's, stored in Partner Center's
registration) cannot call another: the tests prove it here, where the host's rule runs locally.
Keys are random per dev host unless given (``make run`` keeps them in ``.run/`` for the CLI).
"""

from __future__ import annotations

import hmac
import json
import secrets
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEY_HEADER = "x-functions-key"
KEY_QUERY = "code"


def _new_key() -> str:
    return secrets.token_urlsafe(40)


@dataclass
class FunctionKeys:
    """The master key, host keys (name -> value) and each function's keys (function -> name -> value)."""

    master: str = field(default_factory=_new_key, repr=False)
    host: dict[str, str] = field(default_factory=lambda: {"default": _new_key()}, repr=False)
    functions: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)

    def function_key(self, function: str, name: str = "default") -> str:
        """A key of ``function`` (created on first use, as the host creates a function's default key)."""
        keys = self.functions.setdefault(function.lower(), {})
        return keys.setdefault(name, _new_key())

    def ensure(self, functions: Iterable[str]) -> FunctionKeys:
        for function in functions:
            self.function_key(function)
        return self

    def allows(self, function: str, auth_level: str, presented: str | None) -> bool:
        """Whether ``presented`` opens ``function`` at ``auth_level`` (compared in constant time)."""
        level = auth_level.lower()
        if level == "anonymous":
            return True
        if not presented:
            return False
        accepted = [self.master]
        if level == "function":
            accepted += [*self.host.values(), *self.functions.get(function.lower(), {}).values()]
        found = False
        for key in accepted:
            found |= hmac.compare_digest(presented.encode(), key.encode())
        return found

    # -- on disk (owner-only: they are secrets) ---------------------------------------------------

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        document = {"masterKey": self.master, "hostKeys": self.host, "functionKeys": self.functions}
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> FunctionKeys:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
        return cls(master=str(document["masterKey"]), host={str(k): str(v) for k, v in document["hostKeys"].items()},
                   functions={str(f).lower(): {str(k): str(v) for k, v in keys.items()}
                              for f, keys in document["functionKeys"].items()})


def presented_key(headers: Mapping[str, str], query: Iterable[tuple[str, str]]) -> str | None:
    """The key a request presents: the ``x-functions-key`` header, else ``?code=``."""
    header = next((v for k, v in headers.items() if k.lower() == KEY_HEADER), None)
    if header:
        return header.strip()
    return next((v for k, v in query if k == KEY_QUERY and v), None)


def main(argv: list[str]) -> int:
    """``python -m devhost.keys FILE FUNCTION``: print FUNCTION's default key from a running stack's key file."""
    if len(argv) != 3:
        print("usage: python -m devhost.keys .run/function-keys.json receive_webhook", file=sys.stderr)
        return 2
    path = Path(argv[1])
    if not path.is_file():
        print(f"{path} not found: `make run` writes it when the dev host starts", file=sys.stderr)
        return 1
    print(FunctionKeys.load(path).function_key(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
