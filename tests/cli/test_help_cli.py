"""Every `fraud-responder` command answers --help (exit 0) and says what each of its options does."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import subprocess
import sys

import pytest

from shared.cli import EXIT_OK, EXIT_USAGE, build_parser, main


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...],
                                                                                      argparse.ArgumentParser, str]]:
    """(path, parser, help text given in the parent's command list) of every command and group, depth first."""
    found: list[tuple[tuple[str, ...], argparse.ArgumentParser, str]] = []
    sub = _subparsers(parser)
    if sub is None:
        return found
    helps = {choice.dest: choice.help or "" for choice in sub._choices_actions}
    for name, child in sub.choices.items():
        found.append(((*path, name), child, helps.get(name, "")))
        found += commands(child, (*path, name))
    return found


ALL = commands(build_parser())


def test_the_operator_commands_of_issue_7_are_all_there() -> None:
    paths = {" ".join(path) for path, _parser, _help in ALL}
    assert paths >= {"alerts list", "alerts show", "alerts resolve", "actions list", "actions approve",
                     "actions reject", "actions undo", "poison list", "poison replay", "policy check",
                     "policy explain", "token status", "webhook register", "webhook test", "poll", "digest"}


@pytest.mark.parametrize("path", [path for path, _parser, _help in ALL], ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        main([*path, "--help"])
    assert exited.value.code == EXIT_OK
    text = out.getvalue()
    assert text.startswith(f"usage: fraud-responder {' '.join(path)}")
    parser, summary = next((p, h) for q, p, h in ALL if q == path)
    assert summary.strip(), f"`{' '.join(path)}` has no one-line help in its group's command list"
    for action in parser._actions:
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            assert action.help, f"`{' '.join(path)}` option {action.dest} has no help text"


def test_top_level_help_runs_as_a_real_process_and_lists_every_group() -> None:
    env = {**os.environ, "FRAUD_RESPONDER_LOCAL_SETTINGS": "no-such-file.json"}
    out = subprocess.run([sys.executable, "-m", "shared.cli", "--help"], env=env, capture_output=True, text=True,
                         check=False, timeout=60)
    assert out.returncode == EXIT_OK, out.stderr
    for path, _parser, _help in ALL:
        if len(path) == 1:
            # a long name gets its help on the next line: match the name followed by a space or the line's end
            assert re.search(rf"^ {{4}}{re.escape(path[0])}( |$)", out.stdout, re.MULTILINE), path[0]


def test_a_missing_command_is_a_usage_error() -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exited:
        main(["token"])
    assert exited.value.code == EXIT_USAGE and "required" in err.getvalue()
