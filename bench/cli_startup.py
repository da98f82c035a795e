"""CLI start-up: ``espsec --version``, ``espsec secure-boot --help`` and
``espsec secure-boot key-digest KEY`` against ``esptool version`` and a bare
``python -c pass``, in the same run.

Each run is a fresh process, all five commands in alternation; each figure is the
median wall-clock time. Targets, for each of the three espsec commands: no slower than
``esptool version``, and within 80 ms of bare Python (command groups load lazily and
each command imports only what it uses, so a command pays only for its own work). The
same runs' CPU time (user + system) is shown beside: on a loaded machine a process
waits for a core, which stretches every wall-clock figure but not its CPU time.

Every command runs with its bytecode cached, as on a user's machine after the first
run (``bench/_harness.py`` sets that up for every bench). Without a cache, each run would
compile espsec's modules again (esptool's come compiled by pip).

``--quick``: one run each.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from _harness import Results, command, median, parser, report, run_command

OVER_PYTHON_MS = 80


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wall_and_cpu(
    commands: Mapping[str, Sequence[str]], runs: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall-clock and CPU seconds of each command, run in alternation ``runs``
    times after one untimed run of each (page cache, bytecode on disk)."""
    for argv in commands.values():
        run_command(argv)
    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(max(1, runs)):
        for name, argv in commands.items():
            cpu_before, start = _children_cpu(), time.perf_counter()
            run_command(argv)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(_children_cpu() - cpu_before)
    return (
        {name: median(t) for name, t in wall.items()},
        {name: median(t) for name, t in cpu.items()},
    )


def main() -> int:
    args = parser(__doc__).parse_args()
    results = Results("cli_startup")
    runs = 1 if args.quick else 21
    espsec, esptool = command("espsec"), command("esptool")
    with tempfile.TemporaryDirectory(prefix="espsec-bench-startup-") as tmp:
        key = Path(tmp) / "sb.pem"
        run_command([espsec, "secure-boot", "generate-key", "--scheme", "rsa3072", "-o", str(key)])
        commands = {
            "espsec --version": [espsec, "--version"],
            "espsec secure-boot --help": [espsec, "secure-boot", "--help"],
            "espsec secure-boot key-digest KEY": [espsec, "secure-boot", "key-digest", str(key)],
        }
        medians, cpu = wall_and_cpu(
            {
                "python": [sys.executable, "-c", "pass"],
                "esptool": [esptool, "version"],
                **commands,
            },
            runs,
        )
    python, esptool_s = medians["python"], medians["esptool"]
    for name in commands:
        results.overhead(
            f"{name} (above python)",
            medians[name],
            python,
            "python -c pass",
            at_most_ms=OVER_PYTHON_MS,
        )
        results.faster(f"{name} (vs esptool)", medians[name], esptool_s, "esptool", target=1)
    for name in ("esptool", *commands):
        label = "esptool version" if name == "esptool" else name
        results.info(
            f"{label}: CPU time", cpu[name], "s", reference=cpu["python"], reference_name="python"
        )
    report(results, args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
