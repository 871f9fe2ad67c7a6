"""Local HTTPS stand-ins for Microsoft's endpoints (Partner Center, Entra ID, Graph, ARM, Key Vault).

``from sandbox import start_sandbox`` starts every stand-in on loopback; see sandbox/README.md.
Exports load lazily so ``sandbox.ids`` stays importable without the server machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.core import (
        HttpError,
        RecordedRequest,
        Request,
        Response,
        Sandbox,
        Service,
        json_response,
        route,
        start_sandbox,
    )
    from sandbox.faults import Fault

__all__ = [
    "Fault",
    "HttpError",
    "RecordedRequest",
    "Request",
    "Response",
    "Sandbox",
    "Service",
    "json_response",
    "route",
    "start_sandbox",
]


def __getattr__(name: str) -> Any:
    if name == "Fault":
        from sandbox.faults import Fault

        return Fault
    if name in __all__:
        from sandbox import core

        return getattr(core, name)
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
