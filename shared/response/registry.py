"""Action name -> the ``Action`` instance that implements it, importing action modules lazily.

The catalogue (``shared.response.catalogue``) says which actions exist and where each one's module
is (``ActionSpec.module``; by default ``shared/response/actions/<name>.py``, with a module-level
``ACTION``). An action whose module does not exist yet fails loudly (``ActionNotBuilt``: the
engine records the ledger row failed, "action X is not built"); it never silently succeeds.
"""

from __future__ import annotations

import importlib

from shared.response import catalogue
from shared.response.actions.base import Action, ActionFailed

PACKAGE = catalogue.ACTIONS_PACKAGE


class ActionNotBuilt(ActionFailed):
    """The policy names an action whose module is missing from this build."""


def module_name(action: str) -> str:
    """The dotted path of the module implementing ``action`` (UnknownAction when it is not catalogued)."""
    return catalogue.spec(action).module or f"{PACKAGE}.{action}"


def get_action(name: str) -> Action:
    """The implementation of ``name``; ActionNotBuilt when its module is missing."""
    try:
        module_path = module_name(name)
    except catalogue.UnknownAction as exc:
        raise ActionFailed(str(exc)) from None
    try:
        module = importlib.import_module(module_path)
    except ModuleNotFoundError as exc:
        if exc.name != module_path:  # the module exists but one of ITS imports is missing: a real error
            raise
        raise ActionNotBuilt(f"action {name} is not built (no module {module_path}); nothing was done") from None
    action = getattr(module, "ACTION", None)
    if action is None or getattr(action, "name", None) != name:
        raise ActionNotBuilt(f"action {name} is not built ({module_path} defines no ACTION named {name!r}); "
                             "nothing was done")
    return action  # type: ignore[no-any-return]


def built_actions() -> dict[str, bool]:
    """Which catalogue actions this build implements (for health and docs)."""
    built: dict[str, bool] = {}
    for name in catalogue.names():
        try:
            get_action(name)
        except ActionNotBuilt:
            built[name] = False
        else:
            built[name] = True
    return built
