"""The output rule of ``docs/cli.md`` as :mod:`espsec._io` enforces it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from espsec import _io
from espsec.errors import EspsecError, OutputExistsError


def test_output_replaces_a_regular_file_atomically(tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    out.write_bytes(b"old")
    _io.write_output(out, b"new")
    assert out.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_refuses_to_write_over_an_input_of_the_same_command(tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(b"input")
    link = tmp_path / "alias.bin"
    link.symlink_to(src)
    with _io.command_scope():
        _io.read_bytes(src)
        for target in (src, link):
            with pytest.raises(OutputExistsError, match="input of this command"):
                _io.write_output(target, b"x")
    assert src.read_bytes() == b"input"


def test_inputs_are_forgotten_outside_the_command(tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(b"input")
    with _io.command_scope():
        _io.read_bytes(src)
    _io.write_output(src, b"replaced")  # a later command may replace it
    assert src.read_bytes() == b"replaced"


def test_refuses_to_overwrite_a_0600_file(tmp_path: Path) -> None:
    secret = tmp_path / "fe.key"
    _io.write_secret(secret, b"k" * 32)
    with pytest.raises(OutputExistsError, match="secret"):
        _io.write_output(secret, b"ciphertext")
    assert secret.read_bytes() == b"k" * 32


def test_refuses_to_overwrite_a_private_key_whatever_its_mode(tmp_path: Path) -> None:
    pem = tmp_path / "sb.pem"
    pem.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    pem.chmod(0o644)
    with pytest.raises(OutputExistsError, match="secret"):
        _io.write_output(pem, b"public")


def test_refuses_to_overwrite_a_read_only_file(tmp_path: Path) -> None:
    ro = tmp_path / "ro.bin"
    ro.write_bytes(b"keep")
    ro.chmod(0o444)
    with pytest.raises(OutputExistsError, match="read-only"):
        _io.write_output(ro, b"x")
    assert ro.read_bytes() == b"keep"


def test_writes_through_a_symlink_and_keeps_it(tmp_path: Path) -> None:
    real = tmp_path / "real.bin"
    real.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(real)
    _io.write_output(link, b"new")
    assert link.is_symlink()
    assert real.read_bytes() == b"new"


def test_writes_through_a_fifo_without_replacing_it(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        _io.write_output(fifo, b"through")
        assert os.read(reader, 100) == b"through"
    finally:
        os.close(reader)
    assert fifo.is_fifo()


def test_device_node_is_written_through_not_replaced() -> None:
    with pytest.raises(EspsecError, match="cannot write"):
        _io.write_output("/dev/full", b"x" * 65536)
    assert Path("/dev/full").is_char_device()


def test_dash_is_standard_output(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    _io.write_output("-", b"to stdout")
    assert capfdbinary.readouterr().out == b"to stdout"


def test_failed_write_leaves_no_partial_output(tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    with pytest.raises(RuntimeError), _io.output_file(out) as fh:
        fh.write(b"half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_state_is_synced_before_it_replaces_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    monkeypatch.setattr(_io.os, "fsync", lambda fd: events.append("fsync"))
    real_replace = os.replace
    monkeypatch.setattr(
        _io.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))
    )
    _io.write_atomic(tmp_path / "efuses.bin", b"state")
    assert events == ["fsync", "replace"]
    events.clear()
    _io.write_output(tmp_path / "out.bin", b"output")  # an output is not synced, as cp
    assert events == ["replace"]


def test_output_is_written_in_a_private_temporary_file_beside_it(tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    with _io.output_file(out) as fh:
        fh.write(b"data")
        (temporary,) = [p for p in tmp_path.iterdir()]
        # the name the fleet's cleanup recognises (fleet/service.py, _TEMP)
        assert re.fullmatch(r"\.out\.bin\.[A-Za-z0-9_]{8}", temporary.name)
        assert temporary.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    assert out.stat().st_mode & 0o777 == 0o644


def test_secret_is_never_created_over_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    link = tmp_path / "key.bin"
    link.symlink_to(target)
    with pytest.raises(OutputExistsError):
        _io.write_secret(link, b"k")
    assert not target.exists()
