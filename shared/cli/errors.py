"""The CLI's own error, in a module of its own so every command module (and ``shared.cli.context``)
can import it without importing the package that imports them."""

from __future__ import annotations

from shared.errors import FraudResponderError


class CommandFailed(FraudResponderError):
    """The operation failed; the message is one line that says what to do next."""


__all__ = ["CommandFailed"]
