"""The output rule of ``docs/cli.md``, walked through every command that writes a file.

The commands and how to run them are the table in ``output_cases.py``; a command with
an ``OutputPath`` option but no row there fails :func:`test_every_output_has_a_row`.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from espsec.cli._common import OutputPath
from espsec.cli.main import GROUPS, main

from .output_cases import CASES, Invocation, Kit, OutputCase

PEM_KEY = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
OLD = b"old contents\n"


def _commands(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None
            yield from _commands(sub, f"{path} {name}".strip())
    else:
        yield path, command


def output_rows() -> set[str]:
    """Every output of every command in the click tree, as a row name of ``CASES``."""
    rows = set()
    ctx = click.Context(main)
    for name in GROUPS:
        group = main.get_command(ctx, name)
        assert group is not None
        for path, command in _commands(group, name):
            for param in command.params:
                if isinstance(param.type, OutputPath):
                    main_output = "--output" in param.opts
                    rows.add(path if main_output else f"{path} {max(param.opts, key=len)}")
    return rows


def test_every_output_has_a_row() -> None:
    rows = output_rows()
    assert sorted(rows - set(CASES)) == [], "commands with an output missing from output_cases"
    assert sorted(set(CASES) - rows) == [], "rows in output_cases for no command"


ROWS = sorted(CASES)
WITH_INPUTS = [r for r in ROWS if CASES[r].reads_inputs]
PLAIN = [r for r in ROWS if not CASES[r].secret]
SECRET = [r for r in ROWS if CASES[r].secret]


@pytest.fixture
def kit(tmp_path: Path, sb_key_dir: Path) -> Kit:
    folder = tmp_path / "work"
    folder.mkdir()
    return Kit(folder, sb_key_dir)


def run(invocation: Invocation, output: str | Path) -> Result:
    result = CliRunner().invoke(main, invocation.with_output(output))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def snapshot(folder: Path) -> dict[str, tuple[bytes | str, int]]:
    """Every entry of ``folder``: contents (or link target) and mode."""
    out: dict[str, tuple[bytes | str, int]] = {}
    for p in sorted(folder.iterdir()):
        st = p.lstat()
        if stat.S_ISLNK(st.st_mode):
            out[p.name] = (os.readlink(p), st.st_mode)
        elif stat.S_ISREG(st.st_mode):
            out[p.name] = (p.read_bytes(), st.st_mode)
        else:
            out[p.name] = ("", st.st_mode)
    return out


def assert_refused(result: Result, before: dict[str, tuple[bytes | str, int]], kit: Kit) -> None:
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output
    assert snapshot(kit.folder) == before  # nothing changed, nothing left behind


def build(row: str, kit: Kit) -> tuple[OutputCase, Invocation]:
    case = CASES[row]
    return case, case.build(kit)


@pytest.mark.parametrize("row", ROWS)
def test_writes_a_new_file(row: str, kit: Kit) -> None:
    case, inv = build(row, kit)
    out = kit.folder / "new.out"
    result = run(inv, out)
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0
    if case.secret:
        assert stat.S_IMODE(out.stat().st_mode) == 0o600


@pytest.mark.parametrize("way", ["same path", "symlink", "hard link"])
@pytest.mark.parametrize("row", WITH_INPUTS)
def test_refuses_to_write_over_one_of_its_inputs(row: str, way: str, kit: Kit) -> None:
    _, inv = build(row, kit)
    assert inv.inputs, "a row that reads inputs must list them"
    for n, source in enumerate(inv.inputs):
        if way == "same path":
            target = source
        else:
            target = kit.folder / f"alias-{n}"
            if way == "symlink":
                target.symlink_to(source)
            else:
                target.hardlink_to(source)
        before = snapshot(kit.folder)
        assert_refused(run(inv, target), before, kit)


@pytest.mark.parametrize("existing", ["0600 file", "private key 0644", "read-only file"])
@pytest.mark.parametrize("row", ROWS)
def test_refuses_to_overwrite_a_secret_or_read_only_file(row: str, existing: str, kit: Kit) -> None:
    _, inv = build(row, kit)
    if existing == "0600 file":
        target = kit.file("target", OLD, mode=0o600)
    elif existing == "private key 0644":
        target = kit.file("target", PEM_KEY, mode=0o644)
    else:
        target = kit.file("target", OLD, mode=0o444)
    before = snapshot(kit.folder)
    assert_refused(run(inv, target), before, kit)


@pytest.mark.parametrize("row", PLAIN)
def test_replaces_a_regular_file_atomically(row: str, kit: Kit) -> None:
    _, inv = build(row, kit)
    target = kit.file("target", OLD)
    result = run(inv, target)
    assert result.exit_code == 0, result.output
    assert target.read_bytes() != OLD
    assert not [p for p in kit.folder.iterdir() if p.name.startswith(".target.")]


@pytest.mark.parametrize("row", PLAIN)
def test_writes_through_a_symlink_and_keeps_it(row: str, kit: Kit) -> None:
    _, inv = build(row, kit)
    real = kit.file("real", OLD)
    link = kit.folder / "link"
    link.symlink_to(real)
    result = run(inv, link)
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() != OLD


@pytest.mark.parametrize("row", PLAIN)
def test_writes_through_a_fifo_without_replacing_it(row: str, kit: Kit) -> None:
    _, inv = build(row, kit)
    fifo = kit.folder / "pipe"
    os.mkfifo(fifo)
    received = bytearray()
    done = threading.Event()

    def drain() -> None:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            while True:
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    chunk = None
                if chunk:
                    received.extend(chunk)
                elif done.is_set():
                    if chunk == b"" or chunk is None:
                        break
                else:
                    done.wait(0.005)
        finally:
            os.close(fd)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        result = run(inv, fifo)
    finally:
        done.set()
        reader.join(10)
    assert result.exit_code == 0, result.output
    assert fifo.is_fifo() and received


@pytest.mark.parametrize("row", PLAIN)
def test_writes_through_dev_null_without_replacing_it(row: str, kit: Kit) -> None:
    _, inv = build(row, kit)
    result = run(inv, "/dev/null")
    assert result.exit_code == 0, result.output
    assert Path("/dev/null").is_char_device()


@pytest.mark.parametrize("row", [r for r in PLAIN if CASES[r].stdout])
def test_dash_writes_standard_output(row: str, kit: Kit) -> None:
    _, inv = build(row, kit)
    result = run(inv, "-")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes
    assert not (kit.folder / "-").exists()


@pytest.mark.parametrize("row", SECRET)
def test_a_generated_secret_is_created_0600_and_never_written_over_anything(
    row: str, kit: Kit
) -> None:
    _, inv = build(row, kit)
    real = kit.file("real", OLD)
    link = kit.folder / "link"
    link.symlink_to(real)
    dangling = kit.folder / "dangling"
    dangling.symlink_to(kit.folder / "nowhere")
    fifo = kit.folder / "pipe"
    os.mkfifo(fifo)
    for target in (real, link, dangling, fifo, "/dev/null", "-"):
        before = snapshot(kit.folder)
        assert_refused(run(inv, target), before, kit)
    assert Path("/dev/null").is_char_device()


@pytest.mark.parametrize(
    ("argv", "victim"),
    [
        (["secure-boot", "extract-public-key", "{sb}", "-o", "{sb}"], "{sb}"),
        (
            ["flash-encryption", "encrypt", "-k", "{fe}", "--address", "0", "-o", "{fe}", "{app}"],
            "{fe}",
        ),
        (["secure-boot", "key-digest", "-o", "{fe}", "{sb}"], "{fe}"),
        (["ota", "pack", "-k", "{sb}", "-o", "{sb}", "{app}"], "{sb}"),
        (["nvs", "generate", "{csv}", "--size", "0x3000", "-o", "{csv}"], "{csv}"),
    ],
    ids=[
        "extract-public-key over its private key",
        "flash-encryption encrypt over its key",
        "key-digest over an XTS key",
        "ota pack over its signing key",
        "nvs generate over its CSV source",
    ],
)
def test_never_destroys_a_key_or_a_source(argv: list[str], victim: str, kit: Kit) -> None:
    names = {
        "sb": kit.sb_key(),
        "fe": kit.fe_key(),
        "app": kit.app(),
        "csv": kit.nvs_csv(),
    }
    before = snapshot(kit.folder)
    result = CliRunner().invoke(main, [a.format(**names) for a in argv])
    assert_refused(result, before, kit)
    assert str(victim.format(**names)) in result.stderr


def test_build_app_to_dev_full_writes_through_and_keeps_the_device_node() -> None:
    result = CliRunner().invoke(
        main, ["image", "build-app", "--chip", "esp32s3", "-o", "/dev/full"]
    )
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: /dev/full: cannot write: No space left on device"
    ]
    assert Path("/dev/full").is_char_device()
