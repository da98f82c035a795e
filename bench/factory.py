"""Factory provisioning end to end: devices per minute, against esp-secure-cert-tool.

Each device: keys, a checked eFuse plan, a CA-signed certificate, its esp_secure_cert
partition, an encrypted factory NVS, the journal's every step, a virtual chip burned and
flashed and booted (in memory), and the manifest. Two stations (processes) share one
SQLite journal, one per core. In the same run the reference is esp-secure-cert-tool's
``configure_esp_secure_cert.py`` run once per device (what a line using it does; its
partition alone, no eFuse or NVS).

Targets (2 cores): at least 20x the per-device tool, 300 devices/min with RSA-3072 DS
keys (ESP32-S3), 3,000 devices/min with ECDSA keys (ESP32-P4), memory flat in the batch
size (peak RSS of a 10,000-device run within 1.25x of a 1,000-device one).

``--quick``: small batches, one tool run.
"""

from __future__ import annotations

import multiprocessing
import resource
import subprocess
import sys
import tempfile
import time
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
    (folder / "bootloader.bin").write_bytes(build_bootloader_image(target))
    (folder / "app.bin").write_bytes(build_app_image(target, code_size=512))
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


def _station(spec: str, station: str, limit: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from espsec.factory import VirtualTarget, open_factory

    with open_factory(Path(spec), station=station) as factory:
        summary = factory.run(VirtualTarget(None), limit=limit)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((len(summary.provisioned), len(summary.failed), rss))


def run_factory(spec: Path, count: int, stations: int = 2) -> tuple[float, float]:
    """(devices per minute, peak RSS MiB of a station) for a whole batch."""
    from espsec.factory import open_factory

    with open_factory(spec, station="planner") as factory:
        factory.plan()
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    share = -(-count // stations)
    procs = [
        ctx.Process(target=_station, args=(str(spec), f"s{i}", share, queue))
        for i in range(stations)
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
    return done / elapsed * 60, max(r[2] for r in results)


def run_tool(folder: Path, chip: str, runs: int) -> float:
    """Devices per minute running esp-secure-cert-tool once per device."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from espsec.identity.tls import issue_device_certificate

    ca_cert, ca_key = generate_device_ca("tool CA")
    total = 0.0
    for i in range(runs):
        work = folder / f"tool-{chip}-{i}"
        work.mkdir(parents=True)
        start = time.perf_counter()
        # What the line does per device with the tool: make the key, issue the certificate,
        # run the tool for the partition (the certificate step is espsec's here, for both).
        key = (
            ec.generate_private_key(ec.SECP256R1())
            if chip == "esp32p4"
            else rsa.generate_private_key(65537, 3072)
        )
        cert = issue_device_certificate(ca_cert, ca_key, f"dev-{i}", key.public_key())
        (work / "key.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        (work / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (work / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        args = ["--private-key", "key.pem", "--device-cert", "cert.pem", "--ca-cert", "ca.pem",
                "--target_chip", chip, "--skip_flash", "--configure_ds"]  # fmt: skip
        if chip == "esp32p4":
            args += ["--priv_key_algo", "ECDSA", "256", "--efuse_key_id", "2"]
        else:
            (work / "hmac.bin").write_bytes(bytes(range(32)))
            args += ["--priv_key_algo", "RSA", "3072", "--efuse_key_id", "2",
                     "--efuse_key_file", "hmac.bin", "--keep_ds_data_on_host"]  # fmt: skip
        proc = subprocess.run(
            [sys.executable, str(TOOL), *args], cwd=work, capture_output=True, text=True
        )
        total += time.perf_counter() - start
        if proc.returncode != 0:
            raise BenchError(f"esp-secure-cert-tool failed: {proc.stderr[-500:]}")
    return runs / total * 60


def main() -> int:
    args = parser(__doc__).parse_args()
    results = Results("factory")
    quick = args.quick
    sizes = {"esp32s3": 8 if quick else 200, "esp32p4": 40 if quick else 3000}
    targets = {"esp32s3": 300.0, "esp32p4": 3000.0}
    label = {"esp32s3": "RSA-3072 DS (ESP32-S3)", "esp32p4": "ECDSA P-256 (ESP32-P4)"}
    tool_runs = 1 if quick else 5
    with tempfile.TemporaryDirectory(prefix="espsec-bench-factory-") as tmp:
        folder = Path(tmp)
        for chip, count in sizes.items():
            spec = make_batch(folder / chip, chip, count, f"bench-{chip}")
            rate, _ = run_factory(spec, count)
            tool = run_tool(folder, chip, tool_runs)
            results.rate_share(
                f"devices/min vs tool, {label[chip]}",
                rate,
                tool,
                "esp-secure-cert-tool per device",
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
        small, large = (50, 200) if quick else (1000, 10000)
        rss = []
        for n in (small, large):
            spec = make_batch(folder / f"mem-{n}", "esp32p4", n, f"mem-{n}")
            rss.append(run_factory(spec, n)[1])
        ratio = rss[1] / rss[0]
        results.add(
            Row(
                "factory",
                f"peak RSS, {large} vs {small} devices",
                "MiB",
                rss[1],
                rss[0],
                f"{small} devices",
                ratio,
                "x cost",
                "<= 1.25x cost",
                ratio <= 1.25,
            )
        )
    report(results, args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
