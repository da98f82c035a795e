"""Run every bench in ``bench/`` to the end and print one table of all their results.

Each bench script in ``bench/`` (:func:`benches`) runs in its own process with
``--rows FILE``; its own output streams through as it runs. At the end one table lists
every metric: the reference tool's figure, espsec's, the ratio, the target, met or
MISSED, and which benches crashed.

The exit status is 1 when a bench crashed (a command failed, espsec's output was wrong,
a bench raised), 0 otherwise: a missed target is reported, not fatal, because the
machine may be shared and timings are noisy.

Usage: ``python bench/run.py [--quick] [NAME ...]`` (``make bench``; NAME: a bench's
file name without ``.py``, to run only some).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _harness import Row, load_rows, table

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Outcome:
    name: str
    seconds: float
    exit_code: int
    rows: tuple[Row, ...]

    @property
    def crashed(self) -> bool:
        return self.exit_code != 0


def benches(folder: Path = HERE) -> list[Path]:
    """The bench scripts in ``folder``, by name: every ``*.py`` that runs as a script
    (has a ``__main__`` block), except this runner and ``_*.py``. Modules a bench
    imports (``_harness.py``, ``fleet_scale.py``) are not benches."""
    return sorted(
        p
        for p in folder.glob("*.py")
        if not p.name.startswith("_")
        and p.name != "run.py"
        and 'if __name__ == "__main__":' in p.read_text()
    )


def run_one(path: Path, *, quick: bool, timeout: float | None) -> Outcome:
    """Run one bench in its own process; its output goes straight to ours."""
    with tempfile.TemporaryDirectory(prefix="espsec-bench-rows-") as tmp:
        rows_file = Path(tmp) / "rows.jsonl"
        argv = [sys.executable, str(path), "--rows", str(rows_file)]
        if quick:
            argv.append("--quick")
        print(f"== {path.stem}{' (quick)' if quick else ''}", flush=True)
        start = time.perf_counter()
        try:
            code = subprocess.run(argv, check=False, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            print(f"== {path.stem}: timed out after {timeout:.0f} s", flush=True)
            code = -1
        seconds = time.perf_counter() - start
        rows = tuple(load_rows(rows_file))
    print(f"== {path.stem}: {'ok' if code == 0 else f'CRASHED (exit {code})'} in {seconds:.1f} s\n")
    return Outcome(path.stem, seconds, code, rows)


def summary(outcomes: list[Outcome]) -> str:
    """The one table, then the crashed benches and the count of met and missed targets."""
    rows = [row for o in outcomes for row in o.rows]
    lines = [table(rows, with_bench=True), ""]
    for o in outcomes:
        if o.crashed:
            lines.append(f"CRASHED: {o.name} (exit {o.exit_code}); its rows above are partial")
    met = sum(1 for r in rows if r.met is True)
    missed = [r for r in rows if r.met is False]
    lines.append(
        f"{len(outcomes)} benches, {sum(o.crashed for o in outcomes)} crashed; "
        f"targets: {met} met, {len(missed)} missed"
        + (f" ({', '.join(f'{r.bench}: {r.metric}' for r in missed)})" if missed else "")
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="pass --quick to every bench")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed per bench")
    p.add_argument("--dir", type=Path, default=HERE, help=argparse.SUPPRESS)
    p.add_argument("names", nargs="*", help="run only these benches")
    args = p.parse_args(argv)
    found = benches(args.dir)
    if args.names:
        unknown = set(args.names) - {b.stem for b in found}
        if unknown:
            p.error(f"no bench named {', '.join(sorted(unknown))}")
        found = [b for b in found if b.stem in args.names]
    outcomes = [run_one(b, quick=args.quick, timeout=args.timeout) for b in found]
    print(summary(outcomes))
    return 1 if any(o.crashed for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
