"""Instant start: ``espsec --version`` and ``espsec GROUP --help`` import none of the
heavy dependencies; each command imports what it uses (``docs/cli.md``, Start-up).

Each case runs in a fresh interpreter and reads ``sys.modules`` at the end: what was
imported, never how long it took (timings live in ``bench/cli_startup.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from espsec.cli.main import GROUPS

HEAVY = (
    "numpy",
    "uvicorn",
    "starlette",
    "sqlite3",
    "asyncio",
    "ssl",
    "psycopg",
    "cryptography.x509",
    "google.protobuf",
    "esptool",
    "espefuse",
    "rich",
)
"""Modules no start-up path may load: each costs tens of milliseconds or more."""

PROBE = """
import json, sys
argv = sys.argv[1:]
if argv != ["--import-only"]:
    from espsec.cli.main import main
    try:
        main(argv, prog_name="espsec")
    except SystemExit as exc:
        assert exc.code in (0, None), exc.code
else:
    import espsec.cli.main
heavy = json.loads(sys.stdin.read())
loaded = [h for h in heavy if h in sys.modules]  # a submodule loads its package
print(json.dumps(loaded))
"""


def heavy_modules_after(*argv: str, cwd: Path | None = None) -> list[str]:
    """The heavy modules in ``sys.modules`` after ``espsec ARGV`` runs in a fresh process."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        input=json.dumps(HEAVY),
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    loaded: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_cli_loads_no_heavy_module() -> None:
    assert heavy_modules_after("--import-only") == []


def test_version_loads_no_heavy_module() -> None:
    assert heavy_modules_after("--version") == []


def test_secure_boot_help_loads_no_heavy_module() -> None:
    assert heavy_modules_after("secure-boot", "--help") == []


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_group_help_loads_no_heavy_module(group: str) -> None:
    assert heavy_modules_after(group, "--help") == []


def test_key_digest_loads_no_heavy_module(tmp_path: Path) -> None:
    espsec = str(Path(sys.executable).parent / "espsec")
    keygen = [espsec, "secure-boot", "generate-key", "--scheme", "ecdsa256", "-o", "sb.pem"]
    subprocess.run(keygen, cwd=tmp_path, check=True, capture_output=True)
    assert heavy_modules_after("secure-boot", "key-digest", "sb.pem", cwd=tmp_path) == []


def test_the_heavy_modules_are_real_module_names() -> None:
    """The probe would pass vacuously if a name were misspelt: each one imports."""
    code = "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]"
    proc = subprocess.run(
        [sys.executable, "-c", code, *HEAVY], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("preset", [None, "4"])
def test_a_command_asks_numpy_for_one_blas_thread_unless_the_user_chose(
    preset: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenBLAS starts a thread per core as NumPy loads; no command does linear algebra."""
    from click.testing import CliRunner

    from espsec.cli.main import main

    if preset is None:
        monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", preset)
    efuse_file = tmp_path / "efuse.bin"
    result = CliRunner().invoke(
        main, ["efuse", "new", "--chip", "esp32s3", "--efuse-file", str(efuse_file)]
    )
    assert result.exit_code == 0, result.output
    assert os.environ["OPENBLAS_NUM_THREADS"] == (preset or "1")
