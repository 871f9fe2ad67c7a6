"""Every secret the sandbox handed out, and a scan of log files for any of them.

A secret must never reach a log. The campaign collects what the app could have seen: the app
registrations' client secrets, every refresh token Entra issued (each redemption rolls it),
every Key Vault secret version, every bearer access token the app presented to a stand-in, and
the webhook's function key; then it looks for each in the host's captured output.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIN_SECRET_LENGTH = 12
"""Shorter values (an empty secret, a flag) would match ordinary text; none of the sandbox's are this short."""


@dataclass(frozen=True)
class Leak:
    """Where a secret was found; the secret itself is never printed, only its kind and a hint."""

    kind: str
    file: str
    line: int

    def describe(self) -> str:
        return f"{self.kind} in {self.file} line {self.line}"


def issued_secrets(sandbox: Any, *, extra: Iterable[tuple[str, str]] = ()) -> dict[str, str]:
    """{secret value: kind} for every secret the sandbox issued or holds, plus ``extra``."""
    found: dict[str, str] = {}

    def add(value: str, kind: str) -> None:
        if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
            found.setdefault(value, kind)

    entra = sandbox.services.get("entra")
    if entra is not None:
        with entra.lock:
            for app in entra.apps.values():
                for secret in app.secrets:
                    add(secret, "client secret")
            for token in entra.refresh_tokens:
                add(token, "refresh token")
    key_vault = sandbox.services.get("key_vault")
    if key_vault is not None:
        with key_vault.lock:
            for name, versions in key_vault.secrets.items():
                for version in versions:
                    add(version.value, f"Key Vault secret {name}")
    for request in sandbox.requests():
        auth = request.headers.get("Authorization") or request.headers.get("authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token:
            add(token.strip(), "access token")
            signature = token.strip().rsplit(".", 1)[-1]
            add(signature, "access token signature")
    for value, kind in extra:
        add(value, kind)
    return found


def scan(paths: Iterable[Path], secrets: dict[str, str]) -> list[Leak]:
    """Every occurrence of one of ``secrets`` in the files (read as bytes: logs may hold any text)."""
    encoded = [(value.encode("utf-8"), kind) for value, kind in secrets.items()]
    leaks: list[Leak] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        for value, kind in encoded:
            at = data.find(value)
            while at != -1:
                leaks.append(Leak(kind, path.name, data.count(b"\n", 0, at) + 1))
                at = data.find(value, at + len(value))
    return leaks
