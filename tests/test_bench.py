"""Every bench runs to the end with ``--quick``, and the runner reports them all.

These tests check that the benches work (so one can never rot unnoticed), never a
timing: the figures a quick run prints are not measurements.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _bench_scripts() -> list[Path]:
    """The runner's own list (bench/run.py ``benches``), so the two never disagree."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        scripts: list[Path] = module.benches(BENCH)
        return scripts
    finally:
        sys.path.remove(str(BENCH))


SCRIPTS = _bench_scripts()
ROW_FIELDS = {"bench", "metric", "unit", "espsec", "reference", "ratio", "target", "met"}


def run(argv: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_bench_runs_to_the_end_with_quick(script: Path, tmp_path: Path) -> None:
    rows_file = tmp_path / "rows.jsonl"
    proc = run([str(script), "--quick", "--rows", str(rows_file)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()]
    assert rows, "the bench reported no rows"
    for row in rows:
        assert row.keys() >= ROW_FIELDS
        assert row["bench"] == script.stem
        assert isinstance(row["espsec"], int | float)
        assert row["met"] in (True, False, None)
        assert row["target"] or row["met"] is None


FAKE_BENCH = """
from _harness import Results, parser, report


def main():
    args = parser(__doc__).parse_args()
    results = Results("{name}")
    results.faster("work", 2.0, 1.0, "reference tool", target=8)
    results.info("context", 3.0, "MB/s")
    report(results, args.rows)
    {tail}


if __name__ == "__main__":
    main()
"""


def _fake_benches(folder: Path, **tails: str) -> None:
    (folder / "_harness.py").write_text((BENCH / "_harness.py").read_text())
    (folder / "run.py").write_text((BENCH / "run.py").read_text())
    for name, tail in tails.items():
        (folder / f"{name}.py").write_text(FAKE_BENCH.format(name=name, tail=tail))


def test_runner_reports_missed_targets_in_one_table_and_exits_zero(tmp_path: Path) -> None:
    _fake_benches(tmp_path, alpha="", beta="")
    (tmp_path / "helper.py").write_text("VALUE = 1\n")  # imported by benches: not one
    proc = run([str(tmp_path / "run.py"), "--quick"], cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.split("== beta: ok")[1]
    assert "alpha  work" in table and "beta   work" in table
    assert "MISSED" in table
    assert "2 benches, 0 crashed; targets: 0 met, 2 missed" in table


def test_runner_runs_every_bench_after_a_crash_and_exits_non_zero(tmp_path: Path) -> None:
    _fake_benches(tmp_path, alpha="raise SystemExit('espsec output differs')", beta="")
    proc = run([str(tmp_path / "run.py")], cwd=tmp_path, timeout=60)
    assert proc.returncode == 1
    assert "== beta: ok" in proc.stdout
    assert "CRASHED: alpha (exit 1)" in proc.stdout
    assert "2 benches, 1 crashed" in proc.stdout


def test_runner_refuses_an_unknown_bench_name(tmp_path: Path) -> None:
    _fake_benches(tmp_path, alpha="")
    proc = run([str(tmp_path / "run.py"), "gamma"], cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "no bench named gamma" in proc.stderr
