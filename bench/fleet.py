"""One fleet server, 500 simulated devices over HTTPS on loopback.

The server runs as ``espsec fleet serve`` in its own process (as in production, and so
it does not share a GIL with the devices). Each simulated device is a thread using the
device-side library a real OTA client uses (``espsec.ota``): it checks in with a fresh
nonce, verifies the signed manifest (``ManifestTrust``), downloads the pre-encrypted
image (RSA-3072 ``esp_encrypted_img``, one payload for the whole fleet) while decrypting
it as it streams, checks the GCM tag and the Secure Boot v2 signature, and reports
``updated``. Then every device keeps checking in (keep-alive) for a few seconds.

Printed: devices updated per minute, check-ins per second, p50/p99 check-in latency
as the server measured it (``/api/v1/admin/stats``) and as the devices saw it.
There is no Espressif reference server to compare with, so no ratio is printed.
Traffic stays on 127.0.0.1; every loop is bounded in count and time.

Usage: ``python bench/fleet.py [--devices 500] [--image-kb 256] [--checkin-seconds 10]``
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
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from espsec import ota, secure_boot
from espsec.chips import get_chip
from espsec.fleet import AdminClient, init_fleet
from espsec.image import build_app_image
from espsec.ota import CheckIn, FleetClient, ManifestTrust, OutcomeReport, TlsTrust
from espsec.ota.manifest import load_manifest_public_key

DEADLINE_S = 600


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")


def start_server(state: Path) -> tuple[subprocess.Popen[str], str]:
    espsec = Path(sys.executable).parent / "espsec"
    proc = subprocess.Popen(
        [str(espsec), "fleet", "serve", "--port", "0", str(state)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"fleet server on (https://\S+)", proc.stderr.readline())
        if match:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # drain
            return proc, match[1]
    proc.kill()
    raise SystemExit("fleet server did not start")


class Device:
    def __init__(
        self, n: int, url: str, trust: TlsTrust, manifest_key: object, key: rsa.RSAPrivateKey
    ):
        self.device_id = f"sim-{n:04d}"
        self.url = url
        self.trust = trust
        self.state = ManifestTrust(self.device_id, manifest_key)  # type: ignore[arg-type]
        self.key = key
        self.version = "1.0.0"
        self.secure_version = 1
        self.latencies: list[float] = []
        self.client = FleetClient(url, trust, timeout=120)

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--image-kb", type=int, default=256)
    parser.add_argument("--checkin-seconds", type=float, default=10.0)
    args = parser.parse_args()
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
        proc, url = start_server(state)
        try:
            trust = TlsTrust.ca((state / "tls" / "ca.pem").read_bytes())
            manifest_key = load_manifest_public_key((state / "manifest-key.pub.pem").read_bytes())
            with AdminClient(url, token, trust) as admin:
                for _ in range(100):  # the socket listens a moment before uvicorn serves
                    try:
                        release = admin.upload_release(bundle.to_bytes())
                        break
                    except ota.TransportError:
                        time.sleep(0.05)
                admin.assign_cohort("default", release["id"])
            devices = [Device(i, url, trust, manifest_key, fleet_key) for i in range(args.devices)]
            print(
                f"fleet bench: {args.devices} devices, pre-encrypted image "
                f"{payload.length / 1024:.0f} KiB (RSA-3072 esp_encrypted_img), server {url}"
            )

            t0 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=args.devices) as pool:
                updated = sum(pool.map(lambda d: d.update(digests), devices))
            update_s = time.perf_counter() - t0
            for d in devices:
                d.latencies.clear()
            with AdminClient(url, token, trust) as admin:
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
            with AdminClient(url, token, trust) as admin:
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


if __name__ == "__main__":
    main()
