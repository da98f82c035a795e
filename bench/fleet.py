"""One fleet server and 500 devices updating and checking in over HTTPS on loopback.

The server runs as ``espsec fleet serve`` in its own process (as in production, and so
it does not share a GIL with the devices). Two kinds of devices:

* ``--mode virtual`` (default): each device is a real :class:`espsec.device.VirtualDevice`
  (ESP32-S3, 1 MB flash, Secure Boot v2, release-mode flash encryption, rollback and
  anti-rollback, its own ``HMAC_UP`` eFuse key), created once in a temp dir with its
  first boot done, running the device OTA client (:func:`espsec.device.run_ota`): check
  in, verify the signed manifest, read the app descriptor and check it against the
  eFuse secure version, download the image pre-encrypted for *its* ECIES key while
  decrypting it into the passive slot through the flash-encryption engine, GCM tag,
  ``esp_ota_end`` (Secure Boot), switch, reboot, self-test, confirm (burns the eFuse),
  report. Then every device keeps running update cycles (check-in, manifest, "up to
  date") for a few seconds, each on a new TLS connection, as a sleeping device would.
* ``--mode sim``: lighter simulated devices using only the ``espsec.ota`` client
  library (no flash, no boot), one RSA-3072 payload for the fleet, keep-alive check-ins.

Printed: devices updated per minute, check-ins per second, p50/p99 check-in latency as
the server measured it (``/api/v1/admin/stats``) and as the devices saw it. Both sides
share this machine's cores; there is no Espressif reference server to compare with, so
no ratio is printed. Traffic stays on 127.0.0.1; every loop is bounded in count and time.

Usage: ``python bench/fleet.py [--mode virtual|sim] [--devices 500] [--checkin-seconds 10]``
(``--quick``: 2 devices, 1 s of check-ins). The figures go to the bench table as rows
without a reference or target.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _harness import Results, parser, report
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from espsec import efuse, ota, secure_boot
from espsec.chips import get_chip
from espsec.device import (
    DecryptionScheme,
    OtaOutcome,
    OtaProvisioning,
    VirtualDevice,
    provision_ota,
    run_ota,
)
from espsec.device.identity import provision_identity
from espsec.fleet import AdminClient, init_fleet
from espsec.fleet.config import device_ca_signer
from espsec.identity.tls import ClientKey, issue_device_certificate
from espsec.image import build_app_image, build_bootloader_image
from espsec.image.partition_table import PartitionTable
from espsec.ota import CheckIn, FleetClient, ManifestTrust, OutcomeReport, TlsTrust
from espsec.ota import release as release_module
from espsec.ota.manifest import load_manifest_public_key
from espsec.sdkconfig import BootloaderConfig

DEADLINE_S = 600


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")


def start_server(state: Path) -> tuple[subprocess.Popen[str], str, str]:
    """The server process, its device URL and its admin URL."""
    espsec = Path(sys.executable).parent / "espsec"
    proc = subprocess.Popen(
        [str(espsec), "fleet", "serve", "--port", "0", "--admin-port", "0", str(state)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    url = None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if match := re.search(r"fleet server on (https://\S+)", line):
            url = match[1]
        if (match := re.search(r"fleet admin on (https://\S+)", line)) and url:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # drain
            return proc, url, match[1]
    proc.kill()
    raise SystemExit("fleet server did not start")


class Device:
    def __init__(
        self,
        n: int,
        url: str,
        trust: TlsTrust,
        manifest_key: object,
        key: rsa.RSAPrivateKey,
        identity: ClientKey,
    ):
        self.device_id = f"sim-{n:04d}"
        self.url = url
        self.trust = trust
        self.state = ManifestTrust(self.device_id, manifest_key)  # type: ignore[arg-type]
        self.key = key
        self.version = "1.0.0"
        self.secure_version = 1
        self.latencies: list[float] = []
        self.client = FleetClient(url, trust, timeout=120, identity=identity)

    def check_in(self) -> ota.Manifest:
        nonce = self.state.begin_check_in()
        started = time.perf_counter()
        raw = self.client.check_in(
            CheckIn(
                self.device_id,
                "esp32p4",
                self.version,
                self.secure_version,
                "valid",
                nonce,
                last_counter=self.state.last_counter,
                enc_key_id=ota.recipient_id(self.key),
            )
        )
        self.latencies.append(time.perf_counter() - started)
        return self.state.accept(raw, now=time.time(), min_secure_version=self.secure_version)

    def update(self, digests: list[bytes | None]) -> bool:
        manifest = self.check_in()
        target = manifest.release
        if target is None:
            return False
        dec = ota.EncryptedImageDecryptor(self.key)
        slot = bytearray()
        self.client.download(
            target.url,
            lambda c: slot.extend(dec.feed(c)),
            length=target.length,
            sha256=bytes.fromhex(target.sha256),
        )
        dec.finish()
        if not secure_boot.verify(bytes(slot), key_digests=digests).ok:
            raise RuntimeError("Secure Boot verification failed")
        self.version, self.secure_version = target.version, target.secure_version
        self.client.report(
            OutcomeReport(self.device_id, target.release_id, "updated", counter=manifest.counter)
        )
        return True

    def keep_checking_in(self, until: float, limit: int) -> int:
        n = 0
        while time.monotonic() < until and n < limit:
            self.check_in()
            n += 1
        return n


Figures = dict[str, tuple[float, str]]
"""Metric name -> (value, unit), for the bench table."""


def _sim_identity(n: int, ca: tuple[Any, Any]) -> ClientKey:
    """A mutual-TLS client certificate for simulated device ``n`` from the fleet's device CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue_device_certificate(ca[0], ca[1], f"sim-{n:04d}", key.public_key())
    return ClientKey((cert,), lambda: key)


def run_sim(args: argparse.Namespace) -> Figures:
    """Simulated devices: the ``espsec.ota`` client library without a device."""
    started = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="espsec-bench-fleet-") as tmp:
        state = Path(tmp) / "fleet"
        signer = secure_boot.load_private_key(secure_boot.generate_private_key("ecdsa256"))
        fleet_key = rsa.generate_private_key(65537, 3072)
        digests: list[bytes | None] = [secure_boot.key_digest(signer)]
        token = init_fleet(state, key_digests=digests)
        image = build_app_image(
            get_chip("esp32p4"), version="2.0.0", secure_version=2, code_size=args.image_kb * 1024
        )
        bundle = ota.pack(image, [signer], encrypt_to=[fleet_key.public_key()])
        payload = bundle.statement.payloads[0]
        proc, url, admin_url = start_server(state)
        try:
            trust = TlsTrust.ca((state / "tls" / "ca.pem").read_bytes())
            manifest_key = load_manifest_public_key((state / "manifest-key.pub.pem").read_bytes())
            with AdminClient(admin_url, token, trust) as admin:
                for _ in range(100):  # the socket listens a moment before uvicorn serves
                    try:
                        release = admin.upload_release(bundle.to_bytes())
                        break
                    except ota.TransportError:
                        time.sleep(0.05)
                admin.assign_cohort("default", release["id"])
            ca = device_ca_signer(state)
            devices = [
                Device(i, url, trust, manifest_key, fleet_key, _sim_identity(i, ca))
                for i in range(args.devices)
            ]
            print(
                f"fleet bench (sim): {args.devices} simulated devices, pre-encrypted image "
                f"{payload.length / 1024:.0f} KiB (RSA-3072 esp_encrypted_img), server {url}"
            )

            t0 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=args.devices) as pool:
                updated = sum(pool.map(lambda d: d.update(digests), devices))
            update_s = time.perf_counter() - t0
            for d in devices:
                d.latencies.clear()
            with AdminClient(admin_url, token, trust) as admin:
                before = admin.stats()["counts"].get("check_ins", 0)

            until = time.monotonic() + min(
                args.checkin_seconds, DEADLINE_S - (time.monotonic() - started)
            )
            t1 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=args.devices) as pool:
                checkins = sum(pool.map(lambda d: d.keep_checking_in(until, 10_000), devices))
            checkin_s = time.perf_counter() - t1
            for d in devices:
                d.client.close()
            with AdminClient(admin_url, token, trust) as admin:
                stats = admin.stats()
                updated_rows = sum(1 for d in admin.devices() if d["last_outcome"] == "updated")
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()

    client_lat = [x for d in devices for x in d.latencies]
    server_lat = stats["check_in_latency_s"]
    mib = updated * payload.length / 2**20
    per_min = updated / update_s * 60
    c50, c99 = _percentile(client_lat, 0.5) * 1e3, _percentile(client_lat, 0.99) * 1e3
    counted = stats["counts"]["check_ins"] - before
    print(
        f"  updates:   {updated}/{args.devices} devices in {update_s:.1f} s "
        f"= {per_min:,.0f} devices updated per minute ({mib / update_s:.1f} MiB/s served)"
    )
    print(
        f"  check-ins: {checkins:,} in {checkin_s:.1f} s = "
        f"{checkins / checkin_s:,.0f} check-ins per second ({counted:,} counted by the server)"
    )
    print(
        f"  check-in latency, server (handler, all {server_lat['n']:,}): "
        f"p50 {server_lat['p50'] * 1e3:.2f} ms, p99 {server_lat['p99'] * 1e3:.2f} ms"
    )
    print(
        f"  check-in latency, devices (round trip, steady phase): "
        f"p50 {c50:.1f} ms, p99 {c99:.1f} ms"
    )
    if updated_rows != args.devices or updated != args.devices:
        raise SystemExit(f"only {updated_rows} devices recorded as updated")
    return {
        "sim: devices updated per minute": (per_min, "/min"),
        "sim: check-ins per second": (checkins / checkin_s, "/s"),
        "sim: check-in p99, server": (server_lat["p99"], "s"),
    }


# -- virtual devices --------------------------------------------------------------------

PARTITIONS = PartitionTable.from_csv(
    """nvs,      data, nvs,     0x9000,  0x4000,
otadata,  data, ota,     0xd000,  0x2000,
phy_init, data, phy,     0xf000,  0x1000,
ota_0,    app,  ota_0,   0x10000, 0x30000,
ota_1,    app,  ota_1,   0x40000, 0x30000,
nvs_keys, data, nvs_keys, 0x70000, 0x1000, encrypted
esp_secure_cert, 0x3F, , 0x71000, 0x2000, encrypted
"""
)
"""With flash encryption on, ESP-IDF turns ``CONFIG_NVS_ENCRYPTION`` on, whose keys live
in an ``nvs_keys`` partition: a device without one cannot be provisioned."""
PRODUCTION = BootloaderConfig.from_options(
    secure_boot=True,
    secure_flash_enc_enabled=True,
    secure_flash_encryption_mode="release",
    bootloader_app_rollback_enable=True,
    bootloader_app_anti_rollback=True,
)
HMAC_BLOCK = "BLOCK_KEY4"
FLASH_SIZE = 1 << 20


@dataclass
class Fleet:
    url: str
    token: str
    trust: TlsTrust
    ca_pem: bytes
    manifest_pub: bytes
    device_ca: tuple[Any, Any] | None = None
    """The fleet's device CA (certificate, key): the factory signs device identities."""


def make_device(
    folder: Path, n: int, fleet: Fleet, files: list[tuple[int, bytes, str]]
) -> tuple[VirtualDevice, ota.RecipientKey]:
    """A factory-fresh device: flashed, its HMAC key burned, first boot, OTA provisioned,
    saved to its folder."""
    dev = VirtualDevice.new("esp32s3", FLASH_SIZE, config=PRODUCTION)
    dev.write_files(files)
    efuse.burn_key(dev.efuses, HMAC_BLOCK, os.urandom(32), "HMAC_UP")
    if fleet.device_ca is not None:  # mutual TLS: the identity goes in before the first boot
        provision_identity(dev, device_id(n), *fleet.device_ca)
    if not dev.boot().ok or dev.running is None:
        raise SystemExit(f"device {n} did not boot")
    identity = provision_ota(
        dev.running,
        OtaProvisioning(
            device_id=device_id(n),
            server_url=fleet.url,
            manifest_key_pem=fleet.manifest_pub,
            tls_ca_pem=fleet.ca_pem,
            decryption=DecryptionScheme.ECIES_P256,
            hmac_key_id=HMAC_BLOCK,
        ),
    )
    dev.save(folder / f"dev-{n:04d}")
    assert identity.recipient_pem is not None
    return dev, ota.load_recipient_key(identity.recipient_pem)


def device_id(n: int) -> str:
    return f"vdev-{n:04d}"


def _upload(admin: AdminClient, bundle: bytes) -> str:
    for _ in range(100):  # the socket listens a moment before uvicorn serves
        try:
            release_id: str = admin.upload_release(bundle)["id"]
            return release_id
        except ota.HttpError:
            raise
        except ota.TransportError:
            time.sleep(0.05)
    raise SystemExit("could not upload the release")


class VirtualFleetDevice:
    """One virtual device and its update cycles, timed."""

    def __init__(self, dev: VirtualDevice) -> None:
        self.dev = dev
        self.cycles: list[float] = []

    def update(self) -> bool:
        started = time.perf_counter()
        report = run_ota(self.dev, timeout=120)
        self.cycles.append(time.perf_counter() - started)
        if report.outcome is not OtaOutcome.UPDATED:
            raise RuntimeError(f"{report.device_id}: {report.outcome}: {report.reason}")
        return True

    def confirmed(self, version: str, secure_version: int) -> bool:
        """Runs ``version``, marked VALID, with the eFuse raised to ``secure_version``."""
        runtime, report = self.dev.running, self.dev.last_report
        return (
            runtime is not None
            and report is not None
            and report.app is not None
            and report.app.version == version
            and runtime.state_of(runtime.running) == "VALID"
            and efuse.security_state(self.dev.efuses).secure_version == secure_version
        )

    def keep_checking_in(self, until: float, limit: int) -> int:
        n = 0
        while time.monotonic() < until and n < limit:
            started = time.perf_counter()
            report = run_ota(self.dev, timeout=120)
            self.cycles.append(time.perf_counter() - started)
            if report.outcome is not OtaOutcome.NO_UPDATE:
                raise RuntimeError(f"{report.device_id}: {report.outcome}: {report.reason}")
            n += 1
        return n


def run_virtual(args: argparse.Namespace) -> Figures:
    """Real virtual devices running the device OTA client."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="espsec-bench-fleet-") as tmp:
        root = Path(tmp)
        state = root / "fleet"
        signer = secure_boot.load_private_key(secure_boot.generate_private_key("rsa3072"))
        chip = get_chip("esp32s3")
        digests: list[bytes | None] = [secure_boot.key_digest(signer)]
        token = init_fleet(state, key_digests=digests)
        files = [
            (0x0, secure_boot.sign(build_bootloader_image(chip), [signer]), "bootloader"),
            (0x8000, PARTITIONS.to_bytes(), "partition table"),
            (
                0x10000,
                secure_boot.sign(
                    build_app_image(chip, version="1.0.0", secure_version=1, code_size=4096),
                    [signer],
                ),
                "app 1.0.0",
            ),
        ]
        proc, url, admin_url = start_server(state)
        try:
            ca_pem = (state / "tls" / "ca.pem").read_bytes()
            fleet = Fleet(
                url,
                token,
                TlsTrust.ca(ca_pem),
                ca_pem,
                (state / "manifest-key.pub.pem").read_bytes(),
                device_ca_signer(state),
            )
            t0 = time.perf_counter()
            made = [make_device(root / "devices", i, fleet, files) for i in range(args.devices)]
            create_s = time.perf_counter() - t0
            devices = [VirtualFleetDevice(dev) for dev, _ in made]
            image = build_app_image(chip, version="2.0.0", secure_version=2, code_size=4096)
            # ECIES is per device: one payload per device, at most MAX_PAYLOADS per
            # release, so the fleet is split into cohorts ("waves") with a release each.
            wave = release_module.MAX_PAYLOADS * 9 // 10
            bundle_mib = 0.0
            with AdminClient(admin_url, token, fleet.trust, timeout=300) as admin:
                for first in range(0, len(made), wave):
                    keys = [key for _, key in made[first : first + wave]]
                    bundle = ota.pack(image, [signer], encrypt_to=keys).to_bytes()
                    bundle_mib = max(bundle_mib, len(bundle) / 2**20)
                    cohort = f"wave-{first // wave}"
                    admin.assign_cohort(cohort, _upload(admin, bundle))
                    for n in range(first, min(first + wave, len(made))):
                        admin.assign_device(device_id(n), cohort)
            payload_kib = len(ota.encrypt_image(image, made[0][1])) / 1024
            print(
                f"fleet bench (virtual): {args.devices} virtual ESP32-S3 devices (1 MB flash, "
                f"Secure Boot v2, release flash encryption, anti-rollback) made and first-booted "
                f"in {create_s:.1f} s under {root}; release 2.0.0 pre-encrypted for each "
                f"device's ECIES key ({payload_kib:.0f} KiB each, in "
                f"{-(-len(made) // wave)} cohort releases of up to {bundle_mib:.1f} MiB), "
                f"server {url}"
            )

            t0 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=args.devices) as pool:
                updated = sum(pool.map(lambda d: d.update(), devices))
            update_s = time.perf_counter() - t0
            update_cycles = [c for d in devices for c in d.cycles]
            for d in devices:
                d.cycles.clear()
            with AdminClient(admin_url, token, fleet.trust) as admin:
                before = admin.stats()["counts"].get("check_ins", 0)

            until = time.monotonic() + min(
                args.checkin_seconds, DEADLINE_S - (time.monotonic() - started)
            )
            t1 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=args.devices) as pool:
                checkins = sum(pool.map(lambda d: d.keep_checking_in(until, 10_000), devices))
            checkin_s = time.perf_counter() - t1
            with AdminClient(admin_url, token, fleet.trust) as admin:
                stats = admin.stats()
                rows = admin.devices()
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()

        confirmed = sum(1 for d in devices if d.confirmed("2.0.0", 2))
    cycle_lat = [x for d in devices for x in d.cycles]
    server_lat = stats["check_in_latency_s"]
    per_min = updated / update_s * 60
    counted = stats["counts"]["check_ins"] - before
    updated_rows = sum(1 for r in rows if r["last_outcome"] == "updated")
    print(
        f"  updates:   {updated}/{args.devices} devices in {update_s:.1f} s "
        f"= {per_min:,.0f} devices updated per minute (cycle p50 "
        f"{_percentile(update_cycles, 0.5):.2f} s, p99 {_percentile(update_cycles, 0.99):.2f} s)"
    )
    print(
        f"  check-ins: {checkins:,} in {checkin_s:.1f} s = "
        f"{checkins / checkin_s:,.0f} check-ins per second ({counted:,} counted by the server; "
        f"each a full device cycle on a new TLS connection)"
    )
    print(
        f"  check-in latency, server (handler, all {server_lat['n']:,}): "
        f"p50 {server_lat['p50'] * 1e3:.2f} ms, p99 {server_lat['p99'] * 1e3:.2f} ms"
    )
    print(
        f"  no-update cycle on a device (steady phase, TLS handshake included): "
        f"p50 {_percentile(cycle_lat, 0.5) * 1e3:.1f} ms, "
        f"p99 {_percentile(cycle_lat, 0.99) * 1e3:.1f} ms"
    )
    if updated_rows != args.devices or confirmed != args.devices:
        raise SystemExit(
            f"only {updated_rows} devices recorded as updated, {confirmed} confirmed 2.0.0"
        )
    return {
        "virtual: devices updated per minute": (per_min, "/min"),
        "virtual: check-ins per second": (checkins / checkin_s, "/s"),
        "virtual: no-update cycle p50": (_percentile(cycle_lat, 0.5), "s"),
    }


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--mode", choices=("scale", "virtual", "sim"), default="scale")
    options.add_argument(
        "--devices", type=int, default=None, help="default: 10000 (scale), 500 (virtual, sim)"
    )
    options.add_argument("--image-kb", type=int, default=256, help="sim mode: image size")
    options.add_argument("--checkin-seconds", type=float, default=10.0)
    args = options.parse_args()
    if args.devices is None:
        args.devices = 10_000 if args.mode == "scale" else 500
    if args.quick:
        args.devices, args.checkin_seconds = (200 if args.mode == "scale" else 2), 1.0
    if args.mode == "scale":
        from fleet_scale import TARGET, run_scale

        figures = run_scale(args)
    else:
        figures = run_virtual(args) if args.mode == "virtual" else run_sim(args)
    results = Results("fleet")
    for metric, (value, unit) in figures.items():
        if metric.startswith("scale: ") and unit == "/s":
            results.at_least(metric, value, TARGET, unit="/s")
        else:
            results.info(metric, value, unit)
    report(results, args.rows)


if __name__ == "__main__":
    main()
