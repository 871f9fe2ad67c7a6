"""placeholder"""
from typing import Any


def run() -> dict[str, Any]:
    raise NotImplementedError
