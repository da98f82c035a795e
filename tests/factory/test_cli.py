"""``espsec factory``: plan, run, status and resume from the command line; journal URLs and
ports checked in one line; exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from espsec.cli.main import main

from .kit import write_batch


def run(*args: object, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["factory", *map(str, args)], env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_plan_run_and_status_on_virtual_devices(tmp_path: Path) -> None:
    spec = write_batch(tmp_path, count=2)
    code, out, err = run("plan", spec, "--json")
    assert code == 0, err
    assert json.loads(out)["devices"] == 2
    code, out, err = run("run", "--devices", tmp_path / "devices", spec, "--json")
    assert code == 0, err
    assert json.loads(out)["provisioned"] == 2
    code, out, _ = run("status", spec)
    assert code == 0 and "2 devices" in out
    code, out, _ = run("status", spec, "--json")
    assert code == 0 and json.loads(out)["attention"] == []


@pytest.mark.parametrize(
    "journal,message",
    [
        ("postgresql://[::1", "expected a URL starting postgresql:// or postgres://"),
        ("postgresql://db.example:99999/x", "Port out of range"),
        ("mysql://db.example/x", "expected postgresql://... or sqlite:PATH"),
        ("postgresql://u:hunter2@db.example/x", "the journal URL holds a password"),
    ],
)
def test_a_bad_journal_url_is_a_usage_error_in_one_line(tmp_path, journal, message):
    spec = write_batch(tmp_path, count=1)
    code, _, err = run("plan", "--journal", journal, spec)
    assert code == 2 and message in err and "Traceback" not in err
    assert "hunter2" not in err
    assert not (tmp_path / "out").exists()


def test_the_journal_variable_shows_in_help() -> None:
    code, out, _ = run("run", "--help")
    assert code == 0 and "ESPSEC_FACTORY_JOURNAL" in out


def test_targets_are_devices_or_ports_and_ports_are_checked(tmp_path: Path) -> None:
    spec = write_batch(tmp_path, count=1)
    code, _, err = run("run", spec)
    assert code == 2 and "nothing to provision" in err
    code, _, err = run("run", "--devices", tmp_path / "d", "--port", "socket://[::1", spec)
    assert code == 2 and "expected a serial port or socket://HOST:PORT" in err
    code, _, err = run(
        "run", "--devices", tmp_path / "d", "--port", "socket://127.0.0.1:5555", spec
    )
    assert code == 2 and "not both" in err


def test_a_missing_spec_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = run("plan", tmp_path / "nope.toml")
    assert code == 2 and "does not exist" in err
