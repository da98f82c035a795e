"""Fleet at scale: open-loop check-ins from many simulated devices over mutual TLS.

Imported by ``bench/fleet.py --mode scale`` (the default). The server runs as
``espsec fleet serve`` in its own process(es); the devices are one asyncio process
with one keep-alive TLS connection each (a client certificate from the fleet's device
CA per device). Load is *open-loop*: check-ins are scheduled at a fixed rate whatever
the answers, and a check-in's latency runs from its scheduled time to its answer, so
queueing shows. The rate is raised step by step; the figure is the highest rate whose
p99 stays under 100 ms with no error.

Then, on PostgreSQL with two workers, one worker is killed with SIGKILL under load:
every check-in a device got an answer to must be in the database afterwards (its
manifest counter), and the devices that lost their connection retry onto the other
worker.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import os
import re
import resource
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvloop
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from espsec import secure_boot
from espsec.fleet import AdminClient, init_fleet
from espsec.fleet.config import device_ca_signer
from espsec.identity.tls import issue_device_certificate
from espsec.ota import TlsTrust

P99_LIMIT = 0.100
TARGET = 3000.0
ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """The test suite's throw-away PostgreSQL server (Debian's packages)."""
    sys.path.insert(0, str(ROOT))
    from tests._pg import fresh_database, postgres_server

    with postgres_server() as url:
        yield fresh_database(url, "fleet_bench")


@dataclass
class Server:
    proc: subprocess.Popen[str]
    url: str
    admin_url: str
    state: Path
    token: str

    def workers(self) -> list[int]:
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if (
                int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid
                and b"resource_tracker" not in cmd
            ):
                pids.append(int(entry))
        return pids

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start(state: Path, token: str, *, workers: int, database: str | None) -> Server:
    cmd = [
        str(Path(sys.executable).parent / "espsec"), "fleet", "serve", "--port", "0",
        "--admin-port", "0", "--workers", str(workers), "--max-connections", "20000",
        # connecting 10,000 devices takes minutes here: keep the first ones' connections
        "--keep-alive", "900",
    ]  # fmt: skip
    if database is not None:
        cmd += ["--database", database]
    cmd.append(str(state))
    proc = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    assert proc.stderr is not None
    url = admin = None
    deadline = time.monotonic() + 60
    while (url is None or admin is None) and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        if m := re.search(r"fleet server on (https://\S+)", line):
            url = m[1]
        if m := re.search(r"fleet admin on (https://\S+)", line):
            admin = m[1]
    if url is None or admin is None:
        proc.kill()
        raise SystemExit("fleet server did not start")
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    server = Server(proc, url, admin, state, token)
    deadline = time.monotonic() + 60
    while workers > 1 and len(server.workers()) < workers and time.monotonic() < deadline:
        time.sleep(0.1)
    return server


class _Connection(asyncio.Protocol):
    """A device's keep-alive TLS connection: one request out, its answer back (a protocol
    rather than asyncio streams: the devices' CPU is the server's competition here)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[bytes, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TLS transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None or self.waiter.done():
            return
        head = bytes(self.buffer[: end + 4])
        match = _CONTENT_LENGTH.search(head)
        size = end + 4 + (int(match[1]) if match else 0)
        if len(self.buffer) >= size:
            body = bytes(self.buffer[end + 4 : size])
            del self.buffer[:size]
            self.waiter.set_result((head, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionResetError("connection lost"))

    async def request(self, data: bytes) -> tuple[bytes, bytes]:
        if self.transport is None:
            raise ConnectionResetError("connection lost")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


@dataclass
class Device:
    """One simulated device: its TLS context (client certificate) and its connection."""

    device_id: str
    ctx: ssl.SSLContext
    host: str
    port: int
    last_counter: int = 0
    acked: int = 0
    """The last manifest counter the server answered after recording the check-in."""
    reconnects: int = 0
    read_only: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    conn: _Connection | None = None

    async def connect(self) -> None:
        _, self.conn = await asyncio.get_running_loop().create_connection(
            _Connection, self.host, self.port, ssl=self.ctx, server_hostname="127.0.0.1",
            ssl_handshake_timeout=30,
        )  # fmt: skip

    def drop(self) -> None:
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.abort()
        self.conn = None

    async def check_in(self) -> int:
        """One check-in; the HTTP status. As a device does: a lost connection is retried
        on a new one, a 503 after its Retry-After (at most 1 s here)."""
        status = 0
        async with self.lock:
            for attempt in range(4):
                try:
                    if self.conn is None:
                        if attempt or self.reconnects:
                            self.reconnects += 1
                        await self.connect()
                    status = await self._request()
                    if status != 503:
                        return status
                    await asyncio.sleep(0.2 * (attempt + 1))
                except (OSError, ssl.SSLError, ValueError):
                    self.drop()
                    await asyncio.sleep(0.05 * attempt)
            return status

    async def _request(self) -> int:
        assert self.conn is not None
        nonce = os.urandom(16).hex().encode()
        body = _CHECK_IN % (self.device_id.encode(), nonce, self.last_counter)
        head, data = await self.conn.request(_POST % (len(body), body))
        status = int(head[9:12])
        if _CLOSE.search(head):
            self.drop()
        if status == 200:
            payload = json.loads(base64.b64decode(json.loads(data)["payload"]))
            self.last_counter = int(payload["counter"])
            if "read-only" not in payload.get("reason", ""):
                self.acked = self.last_counter  # a read-only answer records nothing
            else:
                self.read_only += 1
        return status


_CHECK_IN = (
    b'{"device_id":"%s","chip":"esp32p4","version":"1.0.0","secure_version":1,'
    b'"boot_state":"valid","nonce":"%s","last_counter":%d}'
)
"""A check-in body (the load generator formats it rather than encoding JSON: the
devices' CPU is the server's competition on this machine)."""
_POST = (
    b"POST /api/v1/device/checkin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
)
_CONTENT_LENGTH = re.compile(rb"(?i)content-length: *(\d+)")
_CLOSE = re.compile(rb"(?i)connection: *close")


def make_devices(state: Path, url: str, n: int) -> list[Device]:
    """``n`` devices with certificates from the fleet's device CA (one key pair shared:
    the certificates differ by device id, which is what the server checks)."""
    ca_cert, ca_key = device_ca_signer(state)
    key = ec.generate_private_key(ec.SECP256R1())
    trust = TlsTrust.ca((state / "tls" / "ca.pem").read_bytes())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    host, port = url.removeprefix("https://").rsplit(":", 1)
    devices = []
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "key.pem"
        key_file.write_bytes(key_pem)
        cert_file = Path(tmp) / "cert.pem"
        for i in range(n):
            device_id = f"scale-{i:05d}"
            cert = issue_device_certificate(ca_cert, ca_key, device_id, key.public_key())
            cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            ctx = trust.context()
            ctx.load_cert_chain(cert_file, key_file)
            devices.append(Device(device_id, ctx, host, int(port)))
    return devices


async def connect_all(devices: list[Device], parallel: int = 64) -> None:
    """Connect every device and check in once (a connection is kept by using it)."""
    sem = asyncio.Semaphore(parallel)

    async def one(d: Device) -> None:
        async with sem:
            await d.check_in()

    await asyncio.gather(*(one(d) for d in devices))


@dataclass
class Step:
    rate: float
    sent: int
    ok: int
    errors: int
    p50: float
    p99: float
    achieved: float
    cpu: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """CPU seconds per answered check-in: server processes, database server, devices."""
    load: float = 0.0
    """The machine's 1-minute load average at the end of the step."""

    @property
    def good(self) -> bool:
        return self.errors == 0 and self.p99 < P99_LIMIT


async def open_loop(devices: list[Device], rate: float, seconds: float, start: int) -> Step:
    """Schedule ``rate`` check-ins a second for ``seconds``, round-robin over the devices."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses: list[int] = []
    tasks: list[asyncio.Task[None]] = []

    async def one(device: Device, scheduled: float) -> None:
        status = await device.check_in()
        latencies.append(loop.time() - scheduled)
        statuses.append(status)

    def launch(i: int, scheduled: float) -> None:
        device = devices[(start + i) % len(devices)]
        tasks.append(asyncio.create_task(one(device, scheduled)))

    # Every check-in is a timer at its scheduled time: no polling loop in the devices'
    # process (it shares this machine's cores with the server).
    t0 = loop.time() + 0.05
    total = int(rate * seconds)
    for i in range(total):
        at = t0 + i / rate
        loop.call_at(at, launch, i, at)
    await asyncio.sleep(t0 + total / rate - loop.time() + 0.001)
    await asyncio.gather(*tasks)
    elapsed = loop.time() - t0
    ordered = sorted(latencies)
    ok = sum(1 for s in statuses if s == 200)
    return Step(
        rate,
        total,
        ok,
        total - ok,
        ordered[len(ordered) // 2],
        ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        ok / elapsed,
    )


async def find_max_rate(
    devices: list[Device], rates: list[float], seconds: float, label: str, probe: CpuProbe
) -> tuple[float, list[Step]]:
    steps: list[Step] = []
    best = 0.0
    start = 0
    for rate in rates:
        before = probe.read()
        step = await open_loop(devices, rate, seconds, start)
        after = probe.read()
        step.cpu = tuple(  # type: ignore[assignment]
            (b - a) / max(1, step.ok) for a, b in zip(before, after, strict=True)
        )
        step.load = os.getloadavg()[0]
        start += step.sent
        steps.append(step)
        mark = "ok" if step.good else "over"
        server, database, own = (x * 1e3 for x in step.cpu)
        print(
            f"  {label}: offered {rate:6.0f}/s  answered {step.achieved:6.0f}/s  "
            f"p50 {step.p50 * 1e3:7.1f} ms  p99 {step.p99 * 1e3:7.1f} ms  errors {step.errors}  "
            f"[{mark}]  CPU/check-in: server {server:.3f} ms, database {database:.3f} ms, "
            f"devices {own:.3f} ms; load {step.load:.2f}",
            flush=True,
        )
        if step.good:
            best = max(best, rate)
        elif step.p99 > 5 * P99_LIMIT or step.errors > step.sent // 10:
            break  # well past saturation: higher rates only queue more
    return best, steps


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds of these processes (every thread), from /proc."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited (the killed worker)
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of these processes, from /proc."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def postgres_pids(url: str) -> list[int]:
    """The PostgreSQL server listening on ``url``'s port: its postmaster and children."""
    port = str(urlsplit(url).port)
    found: dict[int, int] = {}
    postmaster = None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        found[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        if cmd and cmd[0].endswith(b"/postgres") and port.encode() in cmd:
            postmaster = int(entry)
    if postmaster is None:
        return []
    return [postmaster, *(pid for pid, parent in found.items() if parent == postmaster)]


@dataclass
class CpuProbe:
    """CPU seconds used so far by the server processes, the database server and this
    process (the devices)."""

    server: Server
    database: str | None

    def read(self) -> tuple[float, float, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        return (
            cpu_seconds([self.server.proc.pid, *self.server.workers()]),
            cpu_seconds(postgres_pids(self.database)) if self.database else 0.0,
            own.ru_utime + own.ru_stime,
        )


def check_durable(server: Server, devices: list[Device]) -> tuple[int, int]:
    """(devices whose acknowledged counter is missing from the database, devices checked)."""
    trust = TlsTrust.ca((server.state / "tls" / "ca.pem").read_bytes())
    with AdminClient(server.admin_url, server.token, trust, timeout=120) as admin:
        stored = {d["device_id"]: d["counter"] for d in admin.devices()}
    lost = sum(1 for d in devices if d.acked and stored.get(d.device_id, 0) < d.acked)
    return lost, sum(1 for d in devices if d.acked)


def run_config(
    tmp: Path, label: str, *, workers: int, database: str | None, n: int, rates: list[float],
    seconds: float, kill: bool,
) -> dict[str, Any]:  # fmt: skip
    state = tmp / label.replace(" ", "-")
    signer = secure_boot.load_private_key(secure_boot.generate_private_key("ecdsa256"))
    token = init_fleet(state, key_digests=[secure_boot.key_digest(signer)])
    server = start(state, token, workers=workers, database=database)
    result: dict[str, Any] = {"label": label}
    try:
        devices = make_devices(state, server.url, n)

        async def main() -> None:
            t0 = time.perf_counter()
            pids = [server.proc.pid, *server.workers()]
            rss_before = rss_bytes(pids)
            await connect_all(devices)
            result["rss_per_connection"] = (rss_bytes(pids) - rss_before) / n
            gc.collect()
            gc.freeze()  # the devices' connections live to the end: keep them out of GC
            print(
                f"  {label}: {n} devices connected over mutual TLS and checked in once in "
                f"{time.perf_counter() - t0:.1f} s; server RSS "
                f"{result['rss_per_connection'] / 1024:.1f} KiB per open connection",
                flush=True,
            )
            probe = CpuProbe(server, database)
            best, steps = await find_max_rate(devices, rates, seconds, label, probe)
            result["max_rate"] = best
            result["steps"] = steps
            if kill:
                rate = max(best / 2, rates[0])
                before = sum(d.reconnects for d in devices)
                victim = server.workers()[0]
                loop = asyncio.get_running_loop()
                loop.call_later(seconds / 2, os.kill, victim, signal.SIGKILL)
                step = await open_loop(devices, rate, seconds * 2, 0)
                result["kill"] = {
                    "rate": rate,
                    "read_only": sum(d.read_only for d in devices),
                    "errors": step.errors,
                    "p99": step.p99,
                    "reconnected": sum(d.reconnects for d in devices) - before,
                    "victim": victim,
                }
            for d in devices:
                d.drop()

        uvloop.run(main())  # the devices' event loop and TLS cost less CPU on uvloop
        lost, checked = check_durable(server, devices)
        result["lost"], result["checked"] = lost, checked
        if kill:
            deadline = time.monotonic() + 30
            while len(server.workers()) < workers and time.monotonic() < deadline:
                time.sleep(0.2)
            result["kill"]["restarted"] = len(server.workers()) == workers
    finally:
        server.stop()
    return result


def run_scale(args: Any) -> dict[str, tuple[float, str]]:
    """The scale bench; figures for the bench table."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    n = args.devices
    if args.quick:
        rates, seconds = [100.0, 200.0], 1.0
    else:
        rates = [500.0, 1000.0, 1500.0, 2000.0, 2500.0, 3000.0, 3500.0, 4000.0, 4500.0, 5000.0]
        seconds = 6.0
    print(
        f"fleet bench (scale): {n} simulated devices, one keep-alive mutual-TLS connection "
        f"each, open-loop check-ins; the figure is the highest offered rate with p99 < "
        f"{P99_LIMIT * 1e3:.0f} ms and no error ({os.cpu_count()} cores shared by server, "
        "database and devices)",
        flush=True,
    )
    figures: dict[str, tuple[float, str]] = {}
    with tempfile.TemporaryDirectory(prefix="espsec-bench-fleet-") as tmp:
        sqlite = run_config(Path(tmp), "sqlite 1 worker", workers=1, database=None, n=n,
                            rates=rates, seconds=seconds, kill=False)  # fmt: skip
        with postgres() as url:
            pg = run_config(Path(tmp), "postgresql 2 workers", workers=2, database=url, n=n,
                            rates=rates, seconds=seconds, kill=True)  # fmt: skip
    for r in (sqlite, pg):
        at = max((st for st in r["steps"] if st.good), key=lambda st: st.rate, default=None)
        where = (
            f" (load {at.load:.2f}; CPU per check-in: server {at.cpu[0] * 1e3:.3f} ms, "
            f"database {at.cpu[1] * 1e3:.3f} ms, devices {at.cpu[2] * 1e3:.3f} ms)"
            if at is not None
            else ""
        )
        print(
            f"  {r['label']}: max check-in rate with p99 < 100 ms: {r['max_rate']:.0f}/s"
            f"{where}; acknowledged check-ins missing from the database: {r['lost']} of "
            f"{r['checked']} devices"
        )
    k = pg["kill"]
    print(
        f"  kill -9 of worker {k['victim']} at {k['rate']:.0f}/s: {k['reconnected']} device "
        f"connection(s) re-established on the other worker, {k['read_only']} read-only "
        f"answer(s), {k['errors']} check-in(s) "
        f"failed after retries, p99 {k['p99'] * 1e3:.0f} ms, worker restarted: "
        f"{k['restarted']}, acknowledged lost: {pg['lost']}"
    )
    if sqlite["lost"] or pg["lost"]:
        raise SystemExit("acknowledged check-ins were lost")
    figures["scale: sqlite 1 worker, check-ins/s at p99 < 100 ms"] = (sqlite["max_rate"], "/s")
    figures["scale: postgresql 2 workers, check-ins/s at p99 < 100 ms"] = (pg["max_rate"], "/s")
    figures["scale: kill -9 of a worker, check-ins failed"] = (float(k["errors"]), "")
    figures["scale: server RSS per open mutual-TLS connection (sqlite)"] = (
        sqlite["rss_per_connection"] / 1024,
        "KiB",
    )
    return figures
