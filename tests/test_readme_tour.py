"""The README's tour runs as written, in order, in an empty folder.

The tour is every fenced ``sh`` block between the ``<!-- tour: ... -->`` and
``<!-- end of tour -->`` markers of README.md. They run as one bash script (``set -euo
pipefail``) with this venv's commands first on ``PATH``, in a fresh process group, so
the servers the tour starts in the background (``device serve``, ``fleet serve``) are
stopped with it even when a command fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
START = re.compile(r"^<!-- tour:.*-->$", re.M)
END = "<!-- end of tour -->"
BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.M | re.S)


def tour_script(readme: str) -> str:
    """The tour's commands: the ``sh`` blocks between the markers, in order."""
    start = START.search(readme)
    assert start is not None, "README.md has no '<!-- tour: ... -->' marker"
    end = readme.index(END, start.end())
    blocks = BLOCK.findall(readme[start.end() : end])
    assert blocks, "the tour has no ```sh blocks"
    return "\n".join(blocks)


def test_tour_is_found_between_the_markers() -> None:
    script = tour_script(README.read_text())
    assert script.startswith("espsec ")
    assert "espsec fleet serve" in script and "espsec device serve" in script
    assert "make demo" not in script  # the two-commands section is not part of it


def _stop(group: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


@pytest.mark.slow
def test_readme_tour_runs_as_written_in_an_empty_folder(tmp_path: Path) -> None:
    script = "set -euo pipefail\n" + tour_script(README.read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESPSEC_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(tmp_path / "home")  # no user data dir (audit, advisories) leaks in
    env["NO_COLOR"] = "1"
    work = tmp_path / "tour"
    work.mkdir()
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        _stop(proc.pid)
        out, _ = proc.communicate()
        pytest.fail("the tour did not finish in 15 minutes:\n" + out.decode()[-6000:])
    finally:
        _stop(proc.pid)  # the servers the tour left running, if any
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    assert "updated to 2.0.0" in text  # the fleet update happened
    assert "rolled back: exit 1" in text  # and the failed self-test rolled back
