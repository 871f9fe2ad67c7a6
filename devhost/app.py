"""Reads the functions a ``FunctionApp`` declares: name, trigger and the Python function to call.

Only what the Functions host itself would read (each function's trigger binding), so the dev host
runs exactly what ``func start`` and Azure run. HTTP, timer and queue triggers are supported;
any other trigger or an extra binding is reported, and that function is skipped.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from shared.admin.routes import RESERVED_ROUTE_STARTS

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")


@dataclass(frozen=True)
class HttpTrigger:
    route: str
    methods: tuple[str, ...]
    """Upper-case methods the function accepts (every method when the decorator named none)."""
    auth_level: str


@dataclass(frozen=True)
class TimerTrigger:
    schedule: str
    """As declared, before ``%SETTING%`` references are resolved."""
    run_on_startup: bool
    use_monitor: bool


@dataclass(frozen=True)
class QueueTrigger:
    queue_name: str
    connection: str


Trigger = HttpTrigger | TimerTrigger | QueueTrigger


@dataclass(frozen=True)
class AppFunction:
    """One function the dev host can run."""

    name: str
    trigger: Trigger
    arg_name: str
    """The parameter that receives the trigger value (``req``, ``timer``, ``msg``)."""
    user_function: Callable[..., Any]
    wants_context: bool
    """The function also takes ``context`` (azure.functions.Context)."""

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)


@dataclass(frozen=True)
class SkippedFunction:
    name: str
    reason: str


def _enum_value(value: Any) -> str:
    return str(getattr(value, "value", value))


class ReservedRoute(ValueError):
    """An HTTP route the Functions host would refuse to load."""


def _trigger(name: str, binding: dict[str, Any]) -> Trigger | str:
    kind = binding.get("type")
    if kind == "httpTrigger":
        methods = tuple(_enum_value(m).upper() for m in binding.get("methods") or ()) or HTTP_METHODS
        route = str(binding.get("route") or name).strip("/")
        # The Functions host refuses these; so does the dev host, so the mistake shows locally.
        if route.lower().startswith(RESERVED_ROUTE_STARTS):
            raise ReservedRoute(f"function {name}: route {route!r} conflicts with the Functions host's built-in "
                                f"routes ({', '.join(RESERVED_ROUTE_STARTS)}); the host would refuse to load it")
        return HttpTrigger(route=route, methods=methods, auth_level=_enum_value(binding.get("authLevel", "function")))
    if kind == "timerTrigger":
        return TimerTrigger(schedule=str(binding["schedule"]), run_on_startup=bool(binding.get("runOnStartup", False)),
                            use_monitor=bool(binding.get("useMonitor", True)))
    if kind == "queueTrigger":
        return QueueTrigger(queue_name=str(binding["queueName"]),
                            connection=str(binding.get("connection") or "AzureWebJobsStorage"))
    return f"{kind} triggers are not run by the dev host; use Azure Functions Core Tools (func start)"


def read_functions(app: Any) -> tuple[list[AppFunction], list[SkippedFunction]]:
    """The runnable functions of ``app`` (an ``azure.functions.FunctionApp``) and those skipped, with why."""
    runnable: list[AppFunction] = []
    skipped: list[SkippedFunction] = []
    for function in functions_of(app):
        name = str(function.get_function_name())
        binding = dict(function.get_trigger().get_dict_repr())
        trigger = _trigger(name, binding)
        if isinstance(trigger, str):
            skipped.append(SkippedFunction(name, trigger))
            continue
        arg_name = str(binding["name"])
        others = _other_bindings(function.get_bindings(), arg_name)
        user_function = function.get_user_function()
        problem = others or _signature_problem(user_function, arg_name)
        if problem:
            skipped.append(SkippedFunction(name, problem))
            continue
        wants_context = "context" in inspect.signature(user_function).parameters
        runnable.append(AppFunction(name, trigger, arg_name, user_function, wants_context))
    return runnable, skipped


def functions_of(app: Any) -> list[Any]:
    """``app.get_functions()``, callable more than once per process.

    FunctionApp.get_functions() remembers the names it validated and refuses them on a second
    call (the Python worker calls it once per process). Forget them before and after, so the app
    can be read again: by another DevHost, a test, or the worker."""
    app.functions_bindings = None
    try:
        return list(app.get_functions())
    finally:
        app.functions_bindings = None


def _other_bindings(bindings: Iterable[Any], arg_name: str) -> str:
    for binding in bindings:
        data = binding.get_dict_repr()
        if data.get("name") in (arg_name, "$return") and data.get("type") in ("http", "httpTrigger", "timerTrigger",
                                                                           "queueTrigger"):
            continue
        return f"binding {data.get('name')!r} ({data.get('type')}) is not supported by the dev host; use func start"
    return ""


def _signature_problem(user_function: Callable[..., Any], arg_name: str) -> str:
    for parameter in inspect.signature(user_function).parameters.values():
        if parameter.name in (arg_name, "context") or parameter.default is not inspect.Parameter.empty:
            continue
        return f"parameter {parameter.name!r} has no binding the dev host can fill"
    return ""
