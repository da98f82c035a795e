"""Colour and progress bars only on a terminal, never with ``NO_COLOR``, never when piped
(``docs/cli.md``, Terminal output). Each command runs in a fresh process, once on a
pseudo-terminal (where it does colour: the test is not vacuous) and then as a user
would turn colour off."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from espsec.cli._common import colour

ESPSEC = str(Path(sys.executable).parent / "espsec")
ESC = b"\x1b["


def _env(no_color: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["TERM"] = "xterm-256color"
    if no_color is not None:
        env["NO_COLOR"] = no_color
    return env


def on_terminal(argv: list[str], cwd: Path, *, no_color: str | None = None) -> bytes:
    """Standard output and error of ``argv`` run on a pseudo-terminal."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=_env(no_color),
    )
    os.close(follower)
    out = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's last writer exited
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=120)
    os.close(leader)
    return bytes(out)


def piped(argv: list[str], cwd: Path) -> bytes:
    """Standard output and error of ``argv`` with both piped (no terminal)."""
    proc = subprocess.run(
        argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, env=_env(None), timeout=120
    )
    return proc.stdout + proc.stderr


@pytest.fixture
def blank_device(tmp_path: Path) -> Path:
    subprocess.run(
        [ESPSEC, "device", "create", "--chip", "esp32s3", "dev"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    return tmp_path


@pytest.mark.slow
def test_boot_report_is_coloured_on_a_terminal_only(blank_device: Path) -> None:
    argv = [ESPSEC, "device", "boot", "dev"]  # a blank chip: the ROM refuses, in red
    assert ESC in on_terminal(argv, blank_device)
    plain = on_terminal(argv, blank_device, no_color="1")
    assert b"FAILED" in plain and ESC not in plain
    assert ESC not in piped(argv, blank_device)


@pytest.mark.slow
def test_progress_bar_is_drawn_on_a_terminal_only(tmp_path: Path) -> None:
    subprocess.run(
        [ESPSEC, "flash-encryption", "generate-key", "-o", "fe.key"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    (tmp_path / "flash.bin").write_bytes(bytes(16 << 20))  # the size that shows a bar

    def encrypt(out: str) -> list[str]:
        return [
            ESPSEC,
            "flash-encryption",
            "encrypt",
            "-k",
            "fe.key",
            "--address",
            "0",
            "-o",
            out,
            "flash.bin",
        ]

    assert ESC in on_terminal(encrypt("a.bin"), tmp_path)
    assert ESC not in on_terminal(encrypt("b.bin"), tmp_path, no_color="1")
    assert ESC not in piped(encrypt("c.bin"), tmp_path)
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "c.bin").read_bytes()


def test_colour_is_off_with_no_color_set_and_when_piped(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdout", Terminal())
    monkeypatch.setattr(sys, "stderr", subprocess.PIPE)  # no isatty at all: not a terminal
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert colour() and not colour(err=True)
    monkeypatch.setenv("NO_COLOR", "1")
    assert not colour()
    monkeypatch.setenv("NO_COLOR", "")  # no-color.org: only a non-empty value turns it off
    assert colour()
