"""A server that trickles bytes cannot hold a device's download forever: an overall
deadline and a minimum rate, checked between any two arrivals."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from espsec.fleet.tls import generate_tls
from espsec.ota import DownloadTooSlow, FleetClient, TlsTrust

LENGTH = 1000


@contextlib.contextmanager
def trickling_server(tmp_path: Path, every: float) -> Iterator[tuple[str, TlsTrust]]:
    """HTTPS on loopback answering any GET with a 1000-byte body, one byte per ``every`` s."""
    files = generate_tls(tmp_path / "tls", ("127.0.0.1",))
    assert files.ca_cert is not None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files.server_cert, files.server_key)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=trickle, args=(raw,), daemon=True).start()

    def trickle(raw: socket.socket) -> None:
        with (
            contextlib.suppress(OSError, ssl.SSLError),
            ctx.wrap_socket(raw, server_side=True) as conn,
        ):
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                b"Content-Type: application/octet-stream\r\n\r\n" % LENGTH
            )
            for _ in range(LENGTH):
                if stop.wait(every):
                    return
                conn.sendall(b"x")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        yield f"https://127.0.0.1:{port}", TlsTrust.ca(files.ca_cert.read_bytes())
    finally:
        stop.set()
        listener.close()
        thread.join(2)


def test_trickling_server_cannot_hold_a_download_past_its_deadline(tmp_path: Path) -> None:
    with trickling_server(tmp_path, every=0.05) as (url, trust), FleetClient(url, trust) as client:
        started = time.monotonic()
        with pytest.raises(DownloadTooSlow, match="deadline of 1 s"):
            client.download("/fw", lambda _: None, length=LENGTH, sha256=bytes(32), deadline=1.0)
        assert time.monotonic() - started < 10  # not the 50 s the server would take


def test_download_below_the_minimum_rate_is_abandoned(tmp_path: Path) -> None:
    with trickling_server(tmp_path, every=0.05) as (url, trust), FleetClient(url, trust) as client:
        received = bytearray()
        with pytest.raises(DownloadTooSlow, match=r"too slow: .* below the minimum 1000 B/s"):
            client.download(
                "/fw", received.extend, length=LENGTH, sha256=bytes(32), min_rate=1000, grace=0.5
            )
        assert 0 < len(received) < LENGTH


def test_silent_server_is_cut_at_the_deadline_not_the_socket_timeout(tmp_path: Path) -> None:
    with (
        trickling_server(tmp_path, every=60) as (url, trust),
        FleetClient(url, trust, timeout=30) as client,
    ):
        started = time.monotonic()
        with pytest.raises(DownloadTooSlow):
            client.download("/fw", lambda _: None, length=LENGTH, sha256=bytes(32), deadline=0.5)
        assert time.monotonic() - started < 10
