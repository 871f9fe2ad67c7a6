"""The detector registry: detector name -> dotted path of its module, imported on first use.

Why lazy: the runner, the CLI and the policy check need the names; only a run needs the rules.
Each module exposes ``DETECTOR`` (a ``shared.detection.base.Detector``); its name is also its
alert source's name in ``shared.sources``.

To add a detector: write ``shared/detection/detectors/<name>.py`` with a pure ``DETECTOR``, add
it to ``_PATHS`` below, give it a section in ``shared.detection.config`` and a source entry in
``shared.sources`` (see ``docs/detection.md``, "How to add a detector").
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from shared.detection.base import Detector

_PATHS: Final[dict[str, str]] = {
    "compute_burst": "shared.detection.detectors.compute_burst",
    "privilege_change": "shared.detection.detectors.privilege_change",
    "quota_jump": "shared.detection.detectors.quota_jump",
    "micro_fraud": "shared.detection.detectors.micro_fraud",
}


def names() -> tuple[str, ...]:
    """Every detector's name, in a stable order."""
    return tuple(_PATHS)


def load(name: str) -> Detector:
    """The detector called ``name`` (its module imported once); KeyError naming the choices."""
    try:
        path = _PATHS[name]
    except KeyError:
        raise KeyError(f"unknown detector {name!r}; choose from {', '.join(_PATHS)}") from None
    detector: Detector = importlib.import_module(path).DETECTOR
    return detector
