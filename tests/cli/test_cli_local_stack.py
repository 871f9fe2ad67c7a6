"""The CLI finds the running local stack by itself, says what to do when it finds no settings,
fails `token status --check` when the check fails, and ends quietly when its reader goes away.

Real processes: `python -m devhost run` (Azurite, no sandbox) in a checkout-shaped directory, and
`python -m shared.cli` run from that directory without FRAUD_RESPONDER_LOCAL_SETTINGS.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devhost.azurite import Azurite
from sandbox.core import Sandbox
from shared.settings import SPECS, STORAGE_SETTING
from tests.cli.test_alerts_cli import cli, cli_env  # noqa: F401 - cli_env is a fixture used below
from tests.conftest import settings_env
from tests.devhost.test_second_run import running_stack

ROOT = Path(__file__).resolve().parents[2]


def bare_env() -> dict[str, str]:
    """The environment with no app setting and no settings file named: as a new user's shell."""
    names = {spec.name for spec in SPECS} | {STORAGE_SETTING, "FRAUD_RESPONDER_LOCAL_SETTINGS"}
    return {k: v for k, v in os.environ.items() if k not in names and not k.startswith(STORAGE_SETTING + "__")}


def make_checkout(path: Path) -> Path:
    """A directory shaped like a checkout of this app (what the CLI looks for going up from where it runs)."""
    path.mkdir(parents=True, exist_ok=True)
    for name in ("host.json", "function_app.py"):
        shutil.copy(ROOT / name, path / name)
    return path


def run_cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], cwd=cwd, env=env or bare_env(),
                          capture_output=True, text=True, check=False, timeout=120)


def test_the_cli_uses_the_running_stack_of_this_checkout_without_an_export(tmp_path: Path) -> None:
    checkout = make_checkout(tmp_path / "checkout")
    with running_stack(tmp_path, sandbox=False, state_dir=checkout / ".run") as stack:
        assert "fraud-responder run in this checkout uses this stack" in "".join(stack.output)
        (checkout / "docs").mkdir()
        out = run_cli(checkout / "docs", "alerts", "list", "--json")  # from anywhere inside the checkout
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == []
        assert out.stderr == ""
    stopped = run_cli(checkout, "alerts", "list", "--json")
    assert "not running" in stopped.stderr and "make run" in stopped.stderr, stopped.stderr


def test_without_settings_the_cli_says_exactly_what_to_do(tmp_path: Path) -> None:
    checkout = make_checkout(tmp_path / "checkout")
    out = run_cli(checkout, "alerts", "list")
    assert out.returncode == 1
    message = out.stderr
    assert "make run" in message and ".run/local.settings.json" in message, message
    assert "local.settings.sample.json" in message and "FRAUD_RESPONDER_LOCAL_SETTINGS" in message, message
    assert "Traceback" not in message


def test_token_check_that_fails_exits_1(azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    env = {**os.environ, **settings_env(azurite, **fresh_sandbox.app_settings()),
           "FRAUD_RESPONDER_LOCAL_SETTINGS": "no-such-file.json", "REFRESH_TOKEN_SECRET_NAME": "no-such-secret"}
    out = cli(env, "token", "status", "--check")
    assert "failed:" in out.stderr, out.stderr
    assert out.returncode == 1
    as_json = cli(env, "token", "status", "--check", "--json")
    assert as_json.returncode == 1


def test_output_into_a_closed_pipe_ends_quietly(cli_env: dict[str, str]) -> None:  # noqa: F811
    process = subprocess.Popen([sys.executable, "-m", "shared.cli", "alerts", "list"], env=cli_env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader (`| head`) is gone before the first line is written
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0, err
    assert err == ""


@pytest.mark.parametrize("lines", [1, 3])
def test_piping_into_head_ends_quietly(cli_env: dict[str, str], lines: int) -> None:  # noqa: F811
    pipeline = f"set -o pipefail; {sys.executable} -m shared.cli alerts list | head -n {lines} >/dev/null"
    done = subprocess.run(["bash", "-c", pipeline], env=cli_env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.stderr == "" and done.returncode == 0, done.stderr


@pytest.mark.parametrize("since", ["999999d", "0001-01-01", "yesterday"])
def test_since_out_of_range_is_a_usage_error_not_a_traceback(cli_env: dict[str, str], since: str) -> None:  # noqa: F811
    out = cli(cli_env, "alerts", "list", "--since", since)
    assert out.returncode == 2, out.stderr
    assert "--since" in out.stderr and "Traceback" not in out.stderr, out.stderr
