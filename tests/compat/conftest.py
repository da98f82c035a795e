"""Helpers to run Espressif's real tools (installed from PyPI) as oracles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in ``tests/compat/`` as ``compat`` (``make test-fast`` skips them)."""
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.compat)


def run_tool(tool: str, *args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``espsecure``/``espefuse``/``esptool`` from this environment."""
    proc = subprocess.run(
        [str(BIN / tool), *map(str, args)], capture_output=True, text=True, timeout=120
    )
    if check and proc.returncode != 0:
        pytest.fail(f"{tool} {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc
