"""The option names of ``docs/cli.md``, checked on every command of the click tree."""

from __future__ import annotations

import click
import pytest

from espsec.chips import CHIPS
from espsec.cli._common import InputPath, OutputPath
from espsec.cli.main import GROUPS, main

from .test_output_rule import _commands


def commands() -> list[tuple[str, click.Command]]:
    ctx = click.Context(main)
    found = []
    for name in GROUPS:
        group = main.get_command(ctx, name)
        assert group is not None
        found += list(_commands(group, name))
    return sorted(found, key=lambda pc: pc[0])


COMMANDS = commands()
IDS = [path for path, _ in COMMANDS]


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_outputs_are_named_with_dash_o_or_an_option_ending_in_output(
    path: str, command: click.Command
) -> None:
    for param in command.params:
        if isinstance(param.type, OutputPath):
            assert isinstance(param, click.Option), f"{path}: positional output {param.name}"
            names = set(param.opts)
            assert names == {"-o", "--output"} or all(n.endswith("-output") for n in names), (
                f"{path}: output option {param.opts}"
            )


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_pub_key_and_key_are_inputs(path: str, command: click.Command) -> None:
    for param in command.params:
        if {"--pub-key", "-k", "--key"} & set(param.opts):
            assert isinstance(param.type, InputPath), f"{path}: {param.opts} is not an input"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_chip_is_a_choice_of_catalogued_chips(path: str, command: click.Command) -> None:
    for param in command.params:
        if "--chip" in param.opts:
            assert isinstance(param.type, click.Choice), f"{path}: --chip is free text"
            assert set(param.type.choices) <= set(CHIPS), f"{path}: --chip names unknown chips"


SERVERS = {"device serve", "fleet serve"}
"""Commands that run until stopped and report nothing at the end (their logs are not a report)."""


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_every_command_that_reports_has_json(path: str, command: click.Command) -> None:
    has_json = any("--json" in param.opts for param in command.params)
    assert has_json or path in SERVERS, f"{path}: no --json"
