"""What every bench shares: ``--quick``, fresh-process timing, medians, result rows.

A bench measures espsec and the reference tool in the same run and reports *rows*:
one metric each, with the reference figure, espsec's figure, the ratio between them,
the target and whether it was met. :func:`report` prints the bench's rows as a table
and, when the bench runs under ``bench/run.py`` (``--rows FILE``), appends them to that
file as JSON lines, so the runner can print one table for every bench.

A missed target is a result, not a failure: a bench exits non-zero only when it
crashes or espsec's output is wrong (the machine is shared, so timings are noisy).

Whole commands are timed as a user runs them: each run is a fresh process
(:func:`time_command`), and commands compared with each other run in alternation
(:func:`paired`) so that a burst of load on the machine hits both sides alike; the
figure is the median of the runs. Commands run with bytecode cached, as on a user's
machine after the first run: ``PYTHONDONTWRITEBYTECODE`` (set in some CI and sandbox
environments) is dropped and the cache goes to a temporary folder (:func:`_user_environment`).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

BIN = Path(sys.executable).parent
"""Where the venv's commands (``espsec``, ``espsecure`` …) are."""


class BenchError(Exception):
    """A command a bench runs failed, or espsec's output is wrong: the bench crashed."""


def _user_environment() -> None:
    """Child commands cache their bytecode, as a user's installed tools do."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if "PYTHONPYCACHEPREFIX" not in os.environ:
        cache = tempfile.TemporaryDirectory(prefix="espsec-bench-pycache-")
        atexit.register(cache.cleanup)
        os.environ["PYTHONPYCACHEPREFIX"] = cache.name


_user_environment()


def command(name: str) -> str:
    """The path of a console script of this venv (``espsec``, ``espsecure``)."""
    found = BIN / name
    if found.exists():
        return str(found)
    other = shutil.which(name)
    if other is None:
        raise BenchError(f"command {name!r} not found next to {sys.executable} or on PATH")
    return other


# -- arguments -----------------------------------------------------------------------


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the options every bench takes (``--quick``, ``--rows``)."""
    first = (doc or "").strip().splitlines()[0] if doc else None
    p = argparse.ArgumentParser(description=first)
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and one run each: checks the bench works (all benches < 1 min)",
    )
    p.add_argument(
        "--rows", type=Path, default=None, help="append the result rows to this file (JSON lines)"
    )
    return p


# -- timing --------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_time(fn: Callable[[], object], runs: int, *, warmup: bool = True) -> float:
    """Median seconds of ``runs`` calls of ``fn`` (after one untimed call)."""
    if warmup:
        fn()
    return median([timed(fn) for _ in range(max(1, runs))])


def cpu_timed(fn: Callable[[], object]) -> float:
    """CPU seconds (all threads) one call of ``fn`` takes: other load on a shared
    machine delays a call but adds little to its CPU time."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def median_cpu_time(fn: Callable[[], object], runs: int, *, warmup: bool = True) -> float:
    """Median CPU seconds of ``runs`` calls of ``fn`` (after one untimed call)."""
    if warmup:
        fn()
    return median([cpu_timed(fn) for _ in range(max(1, runs))])


def run_command(
    argv: Sequence[str], *, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run a command to completion; :class:`BenchError` with its output if it fails."""
    proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, check=False)
    if proc.returncode != 0:
        out = (proc.stderr or proc.stdout).decode(errors="replace").strip()
        raise BenchError(f"{' '.join(map(str, argv))} exited {proc.returncode}: {out[-2000:]}")
    return proc


def time_command(argv: Sequence[str], *, cwd: Path | None = None) -> float:
    """Wall-clock seconds of one run of ``argv`` in a fresh process."""
    start = time.perf_counter()
    run_command(argv, cwd=cwd)
    return time.perf_counter() - start


def paired(
    commands: Mapping[str, Sequence[str]],
    runs: int,
    *,
    cwd: Path | None = None,
    warmup: bool | None = None,
) -> dict[str, float]:
    """Median seconds of each command, the commands run in alternation ``runs`` times.

    One untimed run of each first (``warmup``; by default when ``runs`` > 1) puts the
    files in the page cache and the bytecode on disk, as on a user's machine after the
    first use.
    """
    if warmup or (warmup is None and runs > 1):
        for argv in commands.values():
            run_command(argv, cwd=cwd)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(max(1, runs)):
        for name, argv in commands.items():
            times[name].append(time_command(argv, cwd=cwd))
    return {name: median(t) for name, t in times.items()}


def import_floor(modules: Sequence[str]) -> list[str]:
    """The command that only starts Python and imports ``modules``: what any command
    built on them costs before it does any work (paired with the commands it bounds)."""
    return [sys.executable, "-c", "import " + ", ".join(modules)]


_PEAK_RSS = """\
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def peak_rss_mib(argv: Sequence[str], *, cwd: Path | None = None) -> float:
    """Peak resident memory (MiB) of a fresh process running ``argv``.

    A small Python process forks and execs the command and reads its ``ru_maxrss``
    with ``wait4``: the command's own high-water mark (plus at most the few MiB the
    forked helper held), not the caller's pages.
    """
    proc = subprocess.run(
        [sys.executable, "-S", "-c", _PEAK_RSS, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    try:
        code, kib = (int(x) for x in lines[-1].split())
    except (IndexError, ValueError):
        raise BenchError(f"peak memory of {argv[0]}: {proc.stderr[-2000:]}") from None
    if code != 0:
        raise BenchError(f"{' '.join(map(str, argv))} exited {code}")
    return kib / 1024


def python_startup(runs: int) -> float:
    """Median seconds of a bare ``python -c pass`` (the floor of any command)."""
    return paired({"python": [sys.executable, "-c", "pass"]}, runs)["python"]


# -- rows ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One measured figure, its reference, and the target it is held to."""

    bench: str
    metric: str
    unit: str
    espsec: float
    reference: float | None = None
    reference_name: str = ""
    ratio: float | None = None
    ratio_unit: str = "x"
    """How :attr:`ratio` reads: ``x`` (times better), ``x cost`` (times the
    reference's cost: lower is better), ``ms`` (difference)."""
    target: str = ""
    met: bool | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class Results:
    """The rows of one bench run."""

    def __init__(self, bench: str) -> None:
        self.bench = bench
        self.rows: list[Row] = []

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def _compared(
        self,
        metric: str,
        unit: str,
        espsec: float,
        reference: float | None,
        reference_name: str,
        ratio: float | None,
        ratio_unit: str,
        *,
        at_least: float | None = None,
        at_most: float | None = None,
    ) -> Row:
        """A row whose target, if any, bounds ``ratio`` from below or from above."""
        target, met = "", None
        if ratio is not None and (at_least, at_most) != (None, None):
            bound = at_least if at_least is not None else at_most
            shown = f"+{bound:g} ms" if ratio_unit == "ms" else f"{bound:g}{ratio_unit}"
            if at_least is not None:
                target, met = f">= {shown}", ratio >= at_least
            else:
                assert at_most is not None
                target, met = f"<= {shown}", ratio <= at_most
        row = Row(self.bench, metric, unit, espsec, reference, reference_name, ratio, ratio_unit)
        return self.add(replace(row, target=target, met=met))

    def faster(
        self,
        metric: str,
        espsec_s: float,
        reference_s: float,
        reference_name: str,
        *,
        target: float | None = None,
    ) -> Row:
        """Times: espsec should be at least ``target`` times faster than the reference."""
        ratio = reference_s / espsec_s
        return self._compared(
            metric, "s", espsec_s, reference_s, reference_name, ratio, "x", at_least=target
        )

    def rate_share(
        self,
        metric: str,
        espsec_rate: float,
        reference_rate: float,
        reference_name: str,
        *,
        unit: str = "MB/s",
        target: float | None = None,
    ) -> Row:
        """Rates: espsec's rate should be at least ``target`` of the reference's."""
        ratio = espsec_rate / reference_rate
        return self._compared(
            metric, unit, espsec_rate, reference_rate, reference_name, ratio, "x", at_least=target
        )

    def cost_multiple(
        self,
        metric: str,
        espsec_s: float,
        base_s: float,
        base_name: str,
        *,
        at_most: float | None = None,
    ) -> Row:
        """espsec's cost as a multiple of a floor (raw crypto): at most ``at_most`` times."""
        ratio = espsec_s / base_s
        return self._compared(
            metric, "s", espsec_s, base_s, base_name, ratio, "x cost", at_most=at_most
        )

    def overhead(
        self,
        metric: str,
        espsec_s: float,
        base_s: float,
        base_name: str,
        *,
        at_most_ms: float | None = None,
    ) -> Row:
        """espsec's time above a floor (bare Python start-up): at most ``at_most_ms``
        (no target without one)."""
        extra = (espsec_s - base_s) * 1e3
        return self._compared(
            metric, "s", espsec_s, base_s, base_name, extra, "ms", at_most=at_most_ms
        )

    def no_more_than(
        self, metric: str, espsec: float, reference: float, reference_name: str, *, unit: str
    ) -> Row:
        """A resource (memory): espsec uses no more than the reference."""
        ratio = espsec / reference
        return self._compared(
            metric, unit, espsec, reference, reference_name, ratio, "x cost", at_most=1.0
        )

    def limit(
        self,
        metric: str,
        espsec: float,
        at_most: float,
        *,
        unit: str,
        reference: float | None = None,
        reference_name: str = "",
    ) -> Row:
        """An absolute bound (peak memory of streaming); a reference figure for context."""
        ratio = None if reference is None else espsec / reference
        return self.add(
            Row(
                self.bench,
                metric,
                unit,
                espsec,
                reference,
                reference_name,
                ratio,
                "x cost",
                f"<= {at_most:g} {unit}",
                espsec <= at_most,
            )
        )

    def at_least(self, metric: str, espsec: float, minimum: float, *, unit: str) -> Row:
        """An absolute floor (a rate that must not become the bottleneck)."""
        return self.add(
            Row(
                self.bench,
                metric,
                unit,
                espsec,
                target=f">= {minimum:g} {unit}",
                met=espsec >= minimum,
            )
        )

    def scaling(
        self,
        metric: str,
        small_s: float,
        large_s: float,
        factor: float,
        *,
        reference: tuple[float, float] | None = None,
        reference_name: str = "",
        at_most: float = 1.25,
    ) -> Row:
        """Growth from a small to a ``factor`` times larger input: the cost per unit of
        work at the large size over that at the small size (1.0 is linear). The
        reference's growth, if given, is shown beside it."""
        growth = large_s / small_s / factor
        ref = None if reference is None else reference[1] / reference[0] / factor
        return self._compared(
            metric, "x/unit", growth, ref, reference_name, growth, "x cost", at_most=at_most
        )

    def floor(self, metric: str, floor_s: float, reference_s: float, reference_name: str) -> Row:
        """The import floor of a command (:func:`import_floor`) and the most a ratio
        against the reference can be at that floor, whatever the command does."""
        return self.add(
            Row(
                self.bench,
                metric,
                "s",
                floor_s,
                reference_s,
                reference_name,
                reference_s / floor_s,
                "x at most",
            )
        )

    def info(
        self,
        metric: str,
        espsec: float,
        unit: str,
        *,
        reference: float | None = None,
        reference_name: str = "",
    ) -> Row:
        """A figure with no target (shown for context)."""
        return self.add(Row(self.bench, metric, unit, espsec, reference, reference_name))


# -- output --------------------------------------------------------------------------


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "s":
        return f"{value:.3f} s" if value >= 1 else f"{value * 1e3:.1f} ms"
    if unit == "x/unit":
        return f"{value:.2f}x"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}"


def fmt_ratio(row: Row) -> str:
    if row.ratio is None:
        return ""
    if row.ratio_unit == "ms":
        return f"{row.ratio:+.0f} ms"
    if row.ratio_unit == "x cost":
        return f"{row.ratio:.2f}x cost"
    return f"{row.ratio:.2f}x" if row.ratio < 10 else f"{row.ratio:.1f}x"


def verdict(row: Row) -> str:
    return "" if row.met is None else ("met" if row.met else "MISSED")


def table(rows: Sequence[Row], *, with_bench: bool = False) -> str:
    """The rows as an aligned text table."""
    head = ["metric", "reference", "espsec", "ratio", "target", ""]
    if with_bench:
        head.insert(0, "bench")
    lines = [head]
    for r in rows:
        ref = fmt_value(r.reference, r.unit)
        if r.reference_name:
            ref = f"{r.reference_name} {ref}".strip()
        cells = [r.metric, ref, fmt_value(r.espsec, r.unit), fmt_ratio(r), r.target, verdict(r)]
        if with_bench:
            cells.insert(0, r.bench)
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths).rstrip())
    return "\n".join(out)


def report(results: Results, rows_file: Path | None) -> None:
    """Print the bench's table; append its rows to ``rows_file`` (the runner's) if given."""
    print(table(results.rows))
    if rows_file is not None:
        with rows_file.open("a") as fh:
            for row in results.rows:
                fh.write(json.dumps(row.to_json()) + "\n")


def load_rows(path: Path) -> list[Row]:
    """Rows a bench appended with :func:`report`."""
    if not path.exists():
        return []
    return [Row(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
