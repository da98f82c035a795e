"""``fleet serve --workers 2`` on one database: kill -9 a worker under load, and nothing a
device was answered is lost; devices retry onto the other worker, which keeps serving
while the supervisor restarts the dead one. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from espsec import secure_boot
from espsec.fleet import AdminClient, init_fleet
from espsec.fleet.config import device_ca_signer
from espsec.identity.tls import ClientKey, issue_device_certificate
from espsec.ota import CheckIn, FleetClient, ManifestTrust, TlsTrust, TransportError
from espsec.ota.manifest import load_manifest_public_key

pytestmark = pytest.mark.slow


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    admin_url: str
    log: list[str] = field(default_factory=list)

    def workers(self) -> list[int]:
        """The worker processes (the supervisor's children, minus multiprocessing's
        resource tracker)."""
        pids = []
        for pid in _children(self.proc.pid):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"resource_tracker" not in cmd:
                pids.append(pid)
        return pids


@pytest.fixture
def served(
    tmp_path: Path, signer: secure_boot.PrivateKey, database: str | None
) -> Iterator[tuple[Served, Path, str]]:
    state = tmp_path / "fleet"
    token = init_fleet(state, key_digests=[secure_boot.key_digest(signer)])
    cmd = [str(Path(sys.executable).parent / "espsec"), "fleet", "serve", "--port", "0",
           "--admin-port", "0", "--workers", "2", str(state)]  # fmt: skip
    if database is not None:
        cmd[-1:-1] = ["--database", database]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    assert proc.stderr is not None
    url = admin_url = None
    deadline = time.monotonic() + 60
    log: list[str] = []
    while (url is None or admin_url is None) and time.monotonic() < deadline:
        line = proc.stderr.readline()
        log.append(line)
        if m := re.search(r"fleet server on (https://\S+)", line):
            url = m[1]
        if m := re.search(r"fleet admin on (https://\S+)", line):
            admin_url = m[1]
    assert url and admin_url, "".join(log)
    threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
    try:
        yield Served(proc, url, admin_url, log), state, token
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_kill_9_of_a_worker_loses_nothing_acknowledged(
    served: tuple[Served, Path, str],
) -> None:
    server, state, token = served
    trust = TlsTrust.ca((state / "tls" / "ca.pem").read_bytes())
    manifest_key = load_manifest_public_key((state / "manifest-key.pub.pem").read_bytes())
    ca = device_ca_signer(state)
    deadline = time.monotonic() + 60
    while len(server.workers()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = server.workers()
    assert len(workers) == 2, "".join(server.log)
    accepted: dict[str, int] = {}
    retried = [0]
    stop = threading.Event()
    errors: list[str] = []

    def device(n: int) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        device_id = f"w-{n:03d}"
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue_device_certificate(ca[0], ca[1], device_id, key.public_key())
        trust_state = ManifestTrust(device_id, manifest_key)
        client = FleetClient(
            server.url, trust, identity=ClientKey((cert,), lambda: key), timeout=10
        )
        try:
            while not stop.is_set():
                nonce = trust_state.begin_check_in()
                request = CheckIn(device_id, "esp32p4", "1.0.0", 1, "valid", nonce,
                                  last_counter=trust_state.last_counter)  # fmt: skip
                try:
                    raw = client.check_in(request)
                except TransportError:
                    retried[0] += 1  # its worker died under it: retry (a new connection)
                    client.close()
                    time.sleep(0.05)
                    continue
                trust_state.accept(raw, now=time.time())
                accepted[device_id] = trust_state.last_counter
        except Exception as exc:  # reported below
            errors.append(f"{device_id}: {exc}")
        finally:
            client.close()

    threads = [threading.Thread(target=device, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    before = dict(accepted)
    os.kill(workers[0], signal.SIGKILL)  # kill -9 one worker under load
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join(30)
    assert errors == []
    assert all(accepted[d] > before.get(d, 0) for d in accepted)  # everyone kept going
    deadline = time.monotonic() + 30
    while len(server.workers()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(server.workers()) == 2 and workers[0] not in server.workers()  # restarted
    with AdminClient(server.admin_url, token, trust) as admin:
        rows = {d["device_id"]: d["counter"] for d in admin.devices()}
    # Every manifest a device accepted was recorded before it was sent.
    assert all(rows[d] >= counter for d, counter in accepted.items())
    assert len(rows) == 16
