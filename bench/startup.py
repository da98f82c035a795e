"""Start-up: ``espsec --version`` against a bare ``python -c pass``.

Each run is a fresh process, the two in alternation; the figure is the median.
Target: ``espsec --version`` within 80 ms of bare Python (command groups load lazily,
so a command pays only for what it uses). ``espsec --help`` is shown for context.

``--quick``: one run each.
"""

from __future__ import annotations

import sys

from _harness import Results, command, paired, parser, report


def main() -> int:
    args = parser(__doc__).parse_args()
    results = Results("startup")
    runs = 1 if args.quick else 15
    espsec = command("espsec")
    medians = paired(
        {
            "python": [sys.executable, "-c", "pass"],
            "version": [espsec, "--version"],
            "help": [espsec, "--help"],
        },
        runs,
    )
    results.overhead(
        "espsec --version", medians["version"], medians["python"], "python -c pass", at_most_ms=80
    )
    results.info(
        "espsec --help",
        medians["help"],
        "s",
        reference=medians["python"],
        reference_name="python -c pass",
    )
    report(results, args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
