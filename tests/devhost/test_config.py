"""host.json options, route templates and the app's environment, as the dev host reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from devhost.hostjson import HostConfig, HostJsonError, QueueOptions, parse_timespan
from devhost.routes import RouteError, Router
from devhost.stack import app_environment
from devhost.timers import TimerScheduleError, resolve_schedule

ROOT = Path(__file__).resolve().parents[2]


def test_repository_host_json_is_read() -> None:
    config = HostConfig.load(ROOT / "host.json")
    assert config.route_prefix == "api"
    assert config.queues == QueueOptions(batch_size=8, new_batch_threshold=4, max_dequeue_count=5,
                                         visibility_timeout=10.0, max_polling_interval=2.0, message_encoding="base64")


def test_missing_queue_options_take_the_hosts_defaults() -> None:
    queues = HostConfig.from_dict({"version": "2.0"}).queues
    assert (queues.batch_size, queues.new_batch_threshold, queues.max_dequeue_count) == (16, 8, 5)
    assert (queues.visibility_timeout, queues.max_polling_interval) == (0.0, 60.0)
    assert queues.concurrency == 24


@pytest.mark.parametrize(("text", "seconds"), [("00:00:10", 10.0), ("00:01:00", 60.0), ("1.02:03:04", 93784.0),
                                               ("00:00:00.5", 0.5)])
def test_timespans(text: str, seconds: float) -> None:
    assert parse_timespan(text, name="x") == seconds


@pytest.mark.parametrize("queues", [{"batchSize": 0}, {"batchSize": 33}, {"maxDequeueCount": "5"},
                                    {"visibilityTimeout": "10s"}, {"messageEncoding": "utf8"}])
def test_bad_queue_options_are_named(queues: dict[str, object]) -> None:
    with pytest.raises(HostJsonError, match=f"extensions.queues.{next(iter(queues))}"):
        HostConfig.from_dict({"extensions": {"queues": queues}})


def test_routes_with_parameters_constraints_and_catch_all() -> None:
    router: Router[str] = Router("api")
    for template in ("items/{id:int}", "items/new", "items/{name}", "files/{*path}", "health", "opt/{x?}"):
        router.add(template, template)
    assert router.find("/api/items/new")[0] == ("items/new", {})  # literal beats a parameter
    assert router.find("/api/items/42")[0] == ("items/{id:int}", {"id": "42"})
    assert router.find("/api/items/widget") == [("items/{name}", {"name": "widget"})]
    assert router.find("/api/files/a/b/c.txt") == [("files/{*path}", {"path": "a/b/c.txt"})]
    assert router.find("/API/Health/") == [("health", {})]  # case-insensitive, trailing slash ignored
    assert router.find("/api/opt") == [("opt/{x?}", {})]
    assert router.find("/api/opt/1") == [("opt/{x?}", {"x": "1"})]
    assert router.find("/health") == []  # the prefix is required
    assert router.find("/api/items/1/2") == []


def test_an_unreadable_route_is_refused() -> None:
    router: Router[str] = Router("api")
    with pytest.raises(RouteError, match="last segment"):
        router.add("a/{*rest}/b", "x")


def test_schedule_settings_are_resolved_from_the_environment() -> None:
    schedule = resolve_schedule("poll_alerts", "%POLL_SCHEDULE%", {"POLL_SCHEDULE": "0 */5 * * * *"})
    assert schedule.expression == "0 */5 * * * *"
    with pytest.raises(TimerScheduleError, match="POLL_SCHEDULE which is not set"):
        resolve_schedule("poll_alerts", "%POLL_SCHEDULE%", {})
    with pytest.raises(TimerScheduleError, match=r"poll_alerts: .*six"):
        resolve_schedule("poll_alerts", "%POLL_SCHEDULE%", {"POLL_SCHEDULE": "*/5 * * * *"})


def test_environment_wins_over_local_settings_and_the_sandbox_wins_over_both() -> None:
    env = app_environment(
        {"GRAPH_URL": "https://graph.env.test", "LOG_LEVEL": "DEBUG"},
        {"GRAPH_URL": "https://graph.local.test", "ARM_URL": "https://arm.local.test", "LOG_LEVEL": "INFO"},
        azurite=None, sandbox_settings={"ARM_URL": "https://localhost:9443"},
    )
    assert env["GRAPH_URL"] == "https://graph.env.test"
    assert env["LOG_LEVEL"] == "DEBUG"
    assert env["ARM_URL"] == "https://localhost:9443"
    assert env["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"  # set when unset


def test_identity_based_storage_is_left_alone() -> None:
    env = app_environment({"AzureWebJobsStorage__accountName": "contoso"}, {}, azurite=None, sandbox_settings={})
    assert "AzureWebJobsStorage" not in env


def test_a_route_the_functions_host_reserves_is_refused_as_the_host_would() -> None:
    import azure.functions as func
    import pytest

    from devhost.app import ReservedRoute, read_functions

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="admin/alerts", methods=["GET"])
    def admin_alerts(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("never served")

    with pytest.raises(ReservedRoute, match="built-in routes"):
        read_functions(app)
