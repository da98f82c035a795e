"""Every command exits as ``docs/cli.md`` says: 0 done, 1 failed check or bad input,
2 usage error; errors are one line with no traceback. The rows are in ``exit_cases.py``."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from espsec.cli.main import GROUPS, main

from .exit_cases import EXIT_CASES, ExitCase
from .output_cases import Kit
from .test_output_rule import _commands


def all_commands() -> set[str]:
    ctx = click.Context(main)
    found = set()
    for name in GROUPS:
        group = main.get_command(ctx, name)
        assert group is not None
        found |= {path for path, _ in _commands(group, name)}
    return found


def test_every_command_has_a_row_exiting_0_and_one_exiting_non_zero() -> None:
    commands = all_commands()
    ok = {c.path for c in EXIT_CASES if c.code == 0}
    failing = {c.path for c in EXIT_CASES if c.code != 0}
    assert sorted(commands - ok) == [], "commands with no row exiting 0 in exit_cases"
    assert sorted(commands - failing) == [], "commands with no row exiting non-zero"
    assert sorted({c.path for c in EXIT_CASES} - commands) == [], "rows for no command"


@pytest.fixture
def kit(tmp_path: Path, sb_key_dir: Path) -> Kit:
    folder = tmp_path / "work"
    folder.mkdir()
    return Kit(folder, sb_key_dir)


@pytest.mark.parametrize("case", EXIT_CASES, ids=[f"{c.path}: {c.name}" for c in EXIT_CASES])
def test_exit_code(case: ExitCase, kit: Kit) -> None:
    argv = [str(a) for a in case.build(kit)]
    result = CliRunner().invoke(main, argv)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == case.code, result.output
    assert "Traceback" not in result.output
    assert case.message in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    if case.code == 0:
        assert not errors
    elif errors:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
