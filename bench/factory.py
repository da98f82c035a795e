"""Factory provisioning end to end: devices/min against esp-secure-cert-tool per device.

Each device: keys, a checked eFuse plan, a CA-signed certificate, its esp_secure_cert
partition, an encrypted factory NVS, the journal's every step (the flash parts forced
to disk before the burn), a virtual chip burned, flashed and booted (in memory), and
the manifest. Two stations (processes) share one SQLite journal, one per core; each
makes its DS RSA keys ahead on every core (the factory's default).

The reference, in the same run: esp-secure-cert-tool's ``configure_esp_secure_cert.py``
run once per device as a line using it does (make the key, issue the certificate, run
the tool for the partition; no eFuse, NVS or flash), as many at a time as the factory
has stations, so both sides have the same cores.

The RSA-3072 keygen floor, also in the same run: OpenSSL's RSA-3072 key generation
alone, one thread per core, measured before and after the RSA batch (the machine's
load changes). A factory making one new key per device cannot beat it; the rows show
how close the factory comes, and the most the ratio against the tool can be at that
floor (the tool's devices make the same keys).

Targets (2 cores): at least 20x the per-device tool, 300 devices/min with RSA-3072 DS
keys (ESP32-S3), 3,000 devices/min with ECDSA keys (ESP32-P4), memory flat in the batch
size (peak RSS of a 10,000-device run within 1.1x of a 1,000-device one).

``--quick``: small batches, two tool runs.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _harness import BenchError, Results, Row, parser, report
from cryptography.hazmat.primitives import serialization

from espsec import secure_boot
from espsec.chips import get_chip
from espsec.identity.tls import generate_device_ca
from espsec.image import build_app_image, build_bootloader_image

TOOL = Path(sys.executable).parent / "configure_esp_secure_cert.py"
TABLE = """\
nvs,             data, nvs,      0x9000,  0x6000,
esp_secure_cert, 0x3F, ,         0x10000, 0x2000,
factory,         app,  factory,  0x20000, 0x30000,
"""
NVS = (
    "key,type,encoding,value\nfactory,namespace,,\n"
    "serial,data,string,{serial}\nmac,data,string,{mac}\n"
)


def make_batch(folder: Path, chip: str, count: int, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = generate_device_ca("bench CA")
    (folder / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "ca.key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (folder / "partitions.csv").write_text(TABLE)
    (folder / "nvs.csv").write_text(NVS)
    target = get_chip(chip)
    # Built for the silicon the virtual chips are (the newest revision espsec knows).
    rev = target.latest_revision // 100 * 100
    (folder / "bootloader.bin").write_bytes(build_bootloader_image(target, min_chip_rev_full=rev))
    (folder / "app.bin").write_bytes(build_app_image(target, code_size=512, min_chip_rev_full=rev))
    sb = secure_boot.load_private_key(secure_boot.generate_private_key("ecdsa256"))
    (folder / "sb.pub.pem").write_bytes(secure_boot.public_key_pem(sb))
    spec = folder / "batch.toml"
    spec.write_text(
        f"""
[batch]
name = "{name}"
chip = "{chip}"
count = {count}
output = "out"
[keys]
ds_rsa_bits = 3072
[secure_boot]
digests = ["sb.pub.pem"]
[nvs]
template = "nvs.csv"
[secure_cert]
ca_chain = ["ca.pem"]
[ca]
certificate = "ca.pem"
key = "ca.key.pem"
[firmware]
partition_table = "partitions.csv"
bootloader = "bootloader.bin"
app = "app.bin"
flash_size = "1MB"
"""
    )
    return spec


def _station(spec: str, station: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """One station: claims devices until the batch is used up."""
    from espsec.factory import VirtualTarget, open_factory

    with open_factory(Path(spec), station=station) as factory:
        cpu = time.process_time()  # every thread of the station
        summary = factory.run(VirtualTarget(None))
        cpu = time.process_time() - cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((summary.provisioned, summary.failed_count, rss, cpu))


def run_factory(spec: Path, count: int, stations: int) -> tuple[float, float, float]:
    """(devices per minute, peak RSS MiB of a station, CPU seconds per device) for a
    whole batch."""
    from espsec.factory import open_factory

    with open_factory(spec, station="planner") as factory:
        factory.plan()
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_station, args=(str(spec), f"s{i}", queue)) for i in range(stations)
    ]
    start = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - start
    done = sum(r[0] for r in results)
    failed = sum(r[1] for r in results)
    if failed or done != count:
        raise BenchError(f"factory provisioned {done} of {count} devices ({failed} failed)")
    return done / elapsed * 60, max(r[2] for r in results), sum(r[3] for r in results) / done


def cores() -> int:
    return len(os.sched_getaffinity(0))


def keygen_floor(seconds: float) -> tuple[float, float]:
    """(RSA-3072 keys per minute, CPU seconds per key), one OpenSSL keygen thread per
    core, for ``seconds``."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    workers = cores()
    made = 0
    cpu = time.process_time()
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        while time.perf_counter() - start < seconds:
            keys = pool.map(lambda _: rsa.generate_private_key(65537, 3072), range(workers))
            made += len(list(keys))
    elapsed = time.perf_counter() - start
    return made / elapsed * 60, (time.process_time() - cpu) / made


def _tool_device(folder: Path, chip: str, i: int, ca: tuple[object, object]) -> None:
    """One device as a line running esp-secure-cert-tool makes it."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from espsec.identity.tls import issue_device_certificate

    ca_cert, ca_key = ca
    work = folder / f"tool-{chip}-{i}"
    work.mkdir(parents=True)
    # The key and the certificate: espsec's code here, for both sides alike.
    key = (
        ec.generate_private_key(ec.SECP256R1())
        if chip == "esp32p4"
        else rsa.generate_private_key(65537, 3072)
    )
    cert = issue_device_certificate(ca_cert, ca_key, f"dev-{i}", key.public_key())  # type: ignore[arg-type]
    (work / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    (work / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (work / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))  # type: ignore[attr-defined]
    args = ["--private-key", "key.pem", "--device-cert", "cert.pem", "--ca-cert", "ca.pem",
            "--target_chip", chip, "--skip_flash", "--configure_ds"]  # fmt: skip
    if chip == "esp32p4":
        args += ["--priv_key_algo", "ECDSA", "256", "--efuse_key_id", "2"]
    else:
        (work / "hmac.bin").write_bytes(os.urandom(32))
        args += ["--priv_key_algo", "RSA", "3072", "--efuse_key_id", "2",
                 "--efuse_key_file", "hmac.bin", "--keep_ds_data_on_host"]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(TOOL), *args], cwd=work, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise BenchError(f"esp-secure-cert-tool failed: {proc.stderr[-500:]}")


def run_tool(folder: Path, chip: str, runs: int, workers: int) -> float:
    """Devices per minute running esp-secure-cert-tool once per device, ``workers`` at a
    time (one untimed run first: files in the page cache, bytecode compiled)."""
    ca = generate_device_ca("tool CA")
    _tool_device(folder, chip, -1, ca)
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda i: _tool_device(folder, chip, i, ca), range(runs)))
    return runs / (time.perf_counter() - start) * 60


def main() -> int:
    args = parser(__doc__).parse_args()
    results = Results("factory")
    quick = args.quick
    stations = 2
    sizes = {"esp32s3": 12 if quick else 300, "esp32p4": 60 if quick else 4000}
    targets = {"esp32s3": 300.0, "esp32p4": 3000.0}
    label = {"esp32s3": "RSA-3072 DS (ESP32-S3)", "esp32p4": "ECDSA P-256 (ESP32-P4)"}
    tool_runs = 2 if quick else 8
    floor_seconds = 3.0 if quick else 15.0
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="espsec-bench-factory-") as tmp:
        folder = Path(tmp)
        for chip, count in sizes.items():
            spec = make_batch(folder / chip, chip, count, f"bench-{chip}")
            floor = None
            if chip == "esp32s3":
                before = keygen_floor(floor_seconds)
                rate, _, cpu = run_factory(spec, count, stations)
                after = keygen_floor(floor_seconds)
                floor = (before[0] + after[0]) / 2
                key_cpu = (before[1] + after[1]) / 2
            else:
                rate, _, cpu = run_factory(spec, count, stations)
            tool = run_tool(folder, chip, tool_runs, stations)
            load.append(os.getloadavg()[0])
            results.rate_share(
                f"devices/min vs tool, {label[chip]}",
                rate,
                tool,
                f"esp-secure-cert-tool per device, {stations} at a time",
                unit="dev/min",
                target=20.0,
            )
            results.add(
                Row(
                    "factory",
                    f"devices/min, {label[chip]}",
                    "dev/min",
                    rate,
                    target=f">= {targets[chip]:g}",
                    met=rate >= targets[chip],
                )
            )
            if floor is not None:
                results.rate_share(
                    f"devices/min against the RSA-3072 keygen floor ({cores()} cores)",
                    rate,
                    floor,
                    "keys/min, keygen alone",
                    unit="dev/min",
                    target=0.8,
                )
                results.cost_multiple(
                    "CPU per device, RSA-3072 (every step, all threads)",
                    cpu,
                    key_cpu,
                    "RSA-3072 keygen alone, per key",
                    at_most=1.25,
                )
                results.info(
                    "most the ratio vs tool can be at the keygen floor",
                    floor / tool,
                    "x",
                    reference=tool,
                    reference_name="tool dev/min",
                )
        small, large = (50, 500) if quick else (1000, 10000)
        rss = []
        for n in (small, large):
            spec = make_batch(folder / f"mem-{n}", "esp32p4", n, f"mem-{n}")
            rss.append(run_factory(spec, n, stations)[1])
        load.append(os.getloadavg()[0])
        ratio = rss[1] / rss[0]
        results.add(
            Row(
                "factory",
                f"peak RSS of a station, {large} vs {small} devices",
                "MiB",
                rss[1],
                rss[0],
                f"{small} devices",
                ratio,
                "x cost",
                "<= 1.1x cost",
                ratio <= 1.1,
            )
        )
    print(
        f"machine: {cores()} cores; 1-minute load average during the run: "
        + ", ".join(f"{x:.1f}" for x in load)
    )
    report(results, args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
