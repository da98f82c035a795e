"""A fleet server over real HTTPS on loopback, releases to upload, and a simulated device."""

from __future__ import annotations

import contextlib
import itertools
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from espsec import ota, secure_boot
from espsec.chips import get_chip
from espsec.fleet import AdminClient, RunningServer, init_fleet, start_server
from espsec.fleet.config import device_ca_signer
from espsec.identity.tls import ClientKey, issue_device_certificate
from espsec.image import build_app_image
from espsec.ota import CheckIn, FleetClient, Manifest, ManifestTrust, TlsTrust
from espsec.ota.manifest import load_manifest_public_key

HMAC_KEY = bytes(range(32))


@dataclass
class Fleet:
    server: RunningServer
    state: Path
    token: str
    trust: TlsTrust
    manifest_key: object
    database: str | None = None
    """``None``: SQLite in the state folder; else a ``postgresql://`` URL."""

    @property
    def url(self) -> str:
        """The device listener (mutual TLS)."""
        return self.server.url

    @property
    def admin_url(self) -> str:
        """The admin listener (token; 127.0.0.1)."""
        return self.server.admin_url

    def admin(self) -> AdminClient:
        return AdminClient(self.admin_url, self.token, self.trust)

    def identity(self, device_id: str, **cert_options: object) -> ClientKey:
        """A client certificate for ``device_id`` from the fleet's device CA."""
        ca_cert, ca_key = device_ca_signer(self.state)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue_device_certificate(
            ca_cert,
            ca_key,
            device_id,
            key.public_key(),
            **cert_options,  # type: ignore[arg-type]
        )
        return ClientKey((cert,), lambda: key)

    def client(
        self,
        url: str | None = None,
        *,
        device_id: str | None = None,
        identity: ClientKey | None = None,
    ) -> FleetClient:
        """A device's client: with the identity of ``device_id`` (or ``identity``)."""
        if device_id is not None:
            identity = self.identity(device_id)
        return FleetClient(url or self.url, self.trust, identity=identity)


@pytest.fixture(scope="session")
def signer(sb_keys: dict[str, secure_boot.PrivateKey]) -> secure_boot.PrivateKey:
    return sb_keys["ecdsa256"]


@pytest.fixture(scope="session")
def device_key() -> ota.DecryptionKey:
    return ota.device_private_key(HMAC_KEY)


@pytest.fixture(scope="session")
def release_factory(
    signer: secure_boot.PrivateKey, device_key: ota.DecryptionKey
) -> Callable[..., bytes]:
    cache: dict[tuple[str, int, int], bytes] = {}

    def make(version: str, secure_version: int, code_size: int = 8000) -> bytes:
        key = (version, secure_version, code_size)
        if key not in cache:
            image = build_app_image(
                get_chip("esp32p4"),
                version=version,
                secure_version=secure_version,
                code_size=code_size,
            )
            cache[key] = ota.pack(
                image, [signer], encrypt_to=[device_key.public_key()], include_plaintext=True
            ).to_bytes()
        return cache[key]

    return make


_DB_NUMBER = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """The fleet's database: SQLite in the state folder, or a fresh PostgreSQL database
    on the session's test server (every fleet test runs on both)."""
    if request.param == "sqlite":
        return None
    from .._pg import fresh_database

    url: str = request.getfixturevalue("postgres_url")
    return fresh_database(url, f"fleet_{os.getpid()}_{next(_DB_NUMBER)}")


@pytest.fixture
def make_fleet(
    tmp_path: Path, signer: secure_boot.PrivateKey, database: str | None
) -> Iterator[Callable[..., Fleet]]:
    """Start a fleet server; keyword arguments go to :func:`espsec.fleet.start_server`."""
    made: list[Fleet] = []

    def make(name: str = "fleet", **options: object) -> Fleet:
        state = tmp_path / name
        token = init_fleet(state, key_digests=[secure_boot.key_digest(signer)])
        server = start_server(state, database=database, **options)  # type: ignore[arg-type]
        assert server.tls.ca_cert is not None
        trust = TlsTrust.ca(server.tls.ca_cert.read_bytes())
        key = load_manifest_public_key((state / "manifest-key.pub.pem").read_bytes())
        made.append(Fleet(server, state, token, trust, key, database))
        return made[-1]

    try:
        yield make
    finally:
        for f in made:
            f.server.stop()


@pytest.fixture
def fleet(make_fleet: Callable[..., Fleet]) -> Fleet:
    return make_fleet()


@dataclass
class SimDevice:
    """The smallest honest device: check in, verify the manifest, download, decrypt, report."""

    fleet: Fleet
    device_id: str
    key: ota.DecryptionKey
    version: str = "1.0.0"
    secure_version: int = 1
    boot_state: str = "valid"
    chip: str = "esp32p4"
    trust: ManifestTrust = field(init=False)
    last_raw: bytes = b""

    def __post_init__(self) -> None:
        self.trust = ManifestTrust(self.device_id, self.fleet.manifest_key)  # type: ignore[arg-type]

    def check_in(self, client: FleetClient) -> Manifest:
        nonce = self.trust.begin_check_in()
        self.last_raw = client.check_in(
            CheckIn(
                self.device_id,
                self.chip,
                self.version,
                self.secure_version,
                self.boot_state,
                nonce,
                last_counter=self.trust.last_counter,
                enc_key_id=ota.recipient_id(self.key),
            )
        )
        return self.trust.accept(
            self.last_raw, now=time.time(), min_secure_version=self.secure_version
        )


@pytest.fixture
def make_device(fleet: Fleet, device_key: ota.DecryptionKey) -> Callable[..., SimDevice]:
    def make(device_id: str, **kwargs: object) -> SimDevice:
        return SimDevice(fleet, device_id, device_key, **kwargs)  # type: ignore[arg-type]

    return make


class CuttingProxy:
    """A TCP proxy on loopback that cuts the first ``cuts`` connections after
    ``cut_after`` bytes from the server (a dropped link mid-download)."""

    def __init__(self, upstream_port: int, *, cut_after: int, cuts: int = 1) -> None:
        self.upstream = upstream_port
        self.cut_after = cut_after
        self.cuts_left = cuts
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            limit = None
            if self.cuts_left > 0:
                self.cuts_left -= 1
                limit = self.cut_after
            threading.Thread(target=self._pump, args=(client, limit), daemon=True).start()

    def _pump(self, client: socket.socket, limit: int | None) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream))
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)
        down = 0
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline and not self._stop.is_set():
                for key, _ in sel.select(0.2):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = src.recv(65536)
                    if not data:
                        return
                    if src is upstream and limit is not None:
                        data = data[: max(0, limit - down)]
                        down += len(data)
                        if data:
                            key.data.sendall(data)
                        if down >= limit:
                            return  # cut the link mid-transfer
                        continue
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        self._thread.join(2)
