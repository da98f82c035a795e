"""NVS partitions from a factory CSV: espsec against esp-idf-nvs-partition-gen.

The CSV holds per-device provisioning records as factories write them (serial number,
MAC, Wi-Fi credentials, settings, a device key and a ~700-byte DER certificate per
device, 10 rows a device). In one run:

* **whole commands**, each run a fresh process as a user runs it, in alternation:
  ``espsec nvs encrypt`` / ``espsec nvs generate`` against ``python -m
  esp_idf_nvs_partition_gen encrypt`` / ``generate``, on 10,000 and 50,000 rows.
  Targets: encrypted 50k >= 10x; plain 50k >= 3x, plain 10k >= 2x. The outputs must
  be byte-identical;
* **memory**: the peak RSS of both encrypt commands at 50,000 rows; espsec's must not
  be higher. Also shown: each command's peak above its own run on a 10-row CSV (the
  memory the work takes, without the interpreter and the libraries it loads);
* **scaling**: the cost from 10k to 50k rows, per row (1.0 is linear);
* **in process** (context): ``generate_csv_file`` against the tool's ``encrypt()``
  through its Python API, CPU time, 50,000 rows.

``--quick``: 2,000 and 5,000 rows, one run each.
"""

from __future__ import annotations

import base64
import contextlib
import io
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from _harness import BenchError, Results, command, paired, parser, peak_rss_mib, report
from esp_idf_nvs_partition_gen import nvs_partition_gen as reference

from espsec.nvs import NvsKeys, generate_csv_file


def factory_csv(path: Path, rows: int) -> int:
    """``rows`` rows of provisioning records (10 per device); returns a partition size."""
    rng = random.Random(1)
    lines = ["key,type,encoding,value"]
    for device in range(rows // 10):
        if device % 20 == 0:
            lines.append(f"batch{device // 20},namespace,,")
        d = f"{device:04x}"
        lines += [
            f"sn{d},data,string,ESP32S3-{rng.randrange(10**12):012d}",
            f"mac{d},data,hex2bin,{rng.randbytes(6).hex()}",
            f"ssid{d},data,string,factory-line-{rng.randrange(100)}",
            f"pass{d},data,string,{base64.b64encode(rng.randbytes(15)).decode()}",
            f"chan{d},data,u8,{rng.randrange(1, 14)}",
            f"boots{d},data,u32,0",
            f"tz{d},data,i32,{rng.randrange(-43200, 43200)}",
            f"flags{d},data,u16,{rng.randrange(65536)}",
            f"key{d},data,hex2bin,{rng.randbytes(32).hex()}",
            f"cert{d},data,base64,{base64.b64encode(rng.randbytes(700)).decode()}",
        ]
    path.write_text("\n".join(lines) + "\n")
    # 50,000 rows fill about 0x680000 bytes; leave some room
    return max(0x6000, -(-rows * 0x700000 // 50_000 // 0x1000) * 0x1000)


def cpu_time(fn: Callable[[], None], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def in_process(results: Results, folder: Path, rows: int, runs: int) -> None:
    csv_path = folder / "inproc.csv"
    size = factory_csv(csv_path, rows)
    keys = NvsKeys.generate()
    keys_path = folder / "inproc-keys.bin"
    keys_path.write_bytes(keys.to_bytes())
    ours_path, ref_path = folder / "inproc-ours.bin", folder / "inproc-ref.bin"

    def run_ours() -> None:
        ours_path.write_bytes(generate_csv_file(csv_path, size, keys=keys))

    def run_reference() -> None:
        args = SimpleNamespace(  # the tool rewrites some fields of args: fresh ones each run
            input=[str(csv_path)],
            output=ref_path.name,
            size=hex(size),
            version=2,
            keygen=False,
            inputkey=str(keys_path),
            keyfile=None,
            key_protect_hmac=False,
            kp_hmac_keygen=False,
            kp_hmac_keyfile=None,
            kp_hmac_inputkey=None,
            outdir=str(folder),
        )
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            reference.encrypt(args)

    ours, theirs = cpu_time(run_ours, runs), cpu_time(run_reference, runs)
    if ours_path.read_bytes() != ref_path.read_bytes():
        raise BenchError("in process: espsec's encrypted partition differs from the tool's")
    results.faster(
        f"encrypt {rows // 1000}k rows, in process (CPU)", ours, theirs, "nvs_partition_gen API"
    )


def whole_commands(results: Results, folder: Path, sizes: tuple[int, int], runs: int) -> None:
    espsec = command("espsec")
    tool = [sys.executable, "-m", "esp_idf_nvs_partition_gen"]
    keys = NvsKeys.generate()
    keys_path = folder / "keys.bin"
    keys_path.write_bytes(keys.to_bytes())
    small, large = sizes
    targets = {("encrypt", large): 10.0, ("generate", large): 3.0, ("generate", small): 2.0}
    times: dict[tuple[str, int], tuple[float, float]] = {}
    for rows in sizes:
        csv_path = folder / f"factory-{rows}.csv"
        size = factory_csv(csv_path, rows)
        for mode in ("encrypt", "generate"):
            ours_out, ref_out = folder / f"ours-{mode}.bin", folder / f"ref-{mode}.bin"
            ours = [espsec, "nvs", mode, str(csv_path), "-o", str(ours_out), "--size", hex(size)]
            theirs = [*tool, mode, str(csv_path), ref_out.name, hex(size), "--outdir", str(folder)]
            if mode == "encrypt":
                ours += ["--keys", str(keys_path)]
                theirs += ["--inputkey", str(keys_path)]
            medians = paired({"espsec": ours, "tool": theirs}, runs, cwd=folder)
            if ours_out.read_bytes() != ref_out.read_bytes():
                raise BenchError(f"espsec nvs {mode} output differs from the tool's ({rows} rows)")
            times[mode, rows] = (medians["espsec"], medians["tool"])
            label = "encrypted" if mode == "encrypt" else "plain"
            results.faster(
                f"command: {label}, {rows // 1000}k rows",
                medians["espsec"],
                medians["tool"],
                "nvs_partition_gen",
                target=targets.get((mode, rows)),
            )
            if mode == "encrypt" and rows == large:
                peaks = (peak_rss_mib(ours, cwd=folder), peak_rss_mib(theirs, cwd=folder))
                results.no_more_than(
                    f"command: encrypted, {rows // 1000}k rows, peak memory",
                    *peaks,
                    "nvs_partition_gen",
                    unit="MiB",
                )
                # the same commands on a one-device CSV: what loading the program takes
                tiny = folder / "tiny.csv"
                factory_csv(tiny, 10)
                floors = (
                    peak_rss_mib(_with_csv(ours, csv_path, tiny), cwd=folder),
                    peak_rss_mib(_with_csv(theirs, csv_path, tiny), cwd=folder),
                )
                results.info(
                    f"command: encrypted, {rows // 1000}k rows, memory above a 10-row run",
                    peaks[0] - floors[0],
                    "MiB",
                    reference=peaks[1] - floors[1],
                    reference_name="nvs_partition_gen",
                )
    for mode in ("encrypt", "generate"):
        (ours_s, ref_s), (ours_l, ref_l) = times[mode, small], times[mode, large]
        label = "encrypted" if mode == "encrypt" else "plain"
        results.scaling(
            f"command: {label}, {small // 1000}k->{large // 1000}k rows",
            ours_s,
            ours_l,
            large / small,
            reference=(ref_s, ref_l),
            reference_name="nvs_partition_gen",
        )


def _with_csv(argv: list[str], old: Path, new: Path) -> list[str]:
    return [str(new) if arg == str(old) else arg for arg in argv]


def main() -> int:
    args = parser(__doc__).parse_args()
    results = Results("nvs")
    sizes, runs = ((2_000, 5_000), 1) if args.quick else ((10_000, 50_000), 3)
    with tempfile.TemporaryDirectory(prefix="espsec-bench-nvs-") as tmp:
        folder = Path(tmp)
        whole_commands(results, folder, sizes, runs)
        in_process(results, folder, sizes[1], runs)
    report(results, args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
