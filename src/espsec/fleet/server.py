"""Running the fleet server: uvicorn over TLS, in the foreground or in a background thread."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from espsec.errors import EspsecError, UsageError
from espsec.fleet.app import FleetApp
from espsec.fleet.config import TLS_DIR, load_device_ca
from espsec.fleet.service import FleetService
from espsec.fleet.tls import TlsFiles, ensure_tls


def _tls_files(service: FleetService, certfile: Path | None, keyfile: Path | None) -> TlsFiles:
    if (certfile is None) != (keyfile is None):
        raise UsageError("give both a certificate and its key, or neither")
    if certfile is not None and keyfile is not None:
        return TlsFiles(certfile, keyfile, None)
    return ensure_tls(service.state_dir / TLS_DIR, service.config.hostnames)


def _server_context(files: TlsFiles, device_ca_pem: bytes) -> ssl.SSLContext:
    """The server's TLS context (TLS >= 1.2), loaded now so a bad file is one clear error.

    Mutual TLS: a client certificate is verified against the device CA (chain, validity);
    it is optional at the TLS layer because the admin API authenticates by token, and the
    device API refuses a request without one (:mod:`espsec.fleet.app`).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_OPTIONAL
    try:
        ctx.load_verify_locations(cadata=device_ca_pem.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError):
        raise EspsecError("the device CA holds no usable certificate") from None
    try:
        ctx.load_cert_chain(str(files.server_cert), str(files.server_key))
    except (ssl.SSLError, OSError) as exc:
        raise EspsecError(
            "cannot load the server certificate and key "
            f"({getattr(exc, 'reason', None) or exc.strerror or exc})",
            source=f"{files.server_cert}, {files.server_key}",
        ) from None
    return ctx


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when
    # the protocol says TCP, and without it every response waits ~40 ms on delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(4096)
    except OSError as exc:
        sock.close()
        raise EspsecError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


class _MutualTlsH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol that hands the verified client certificate to the app
    as the ASGI TLS extension (``scope["extensions"]["tls"]["client_cert_chain"]``)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
        inner = self.app

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})["tls"] = {"client_cert_chain": chain}
            await inner(scope, receive, send)

        self.app = app


def _config(
    service: FleetService, files: TlsFiles, *, log_level: str, access_log: bool
) -> uvicorn.Config:
    ctx = _server_context(files, load_device_ca(service.state_dir))
    return uvicorn.Config(
        FleetApp(service),
        http=_MutualTlsH11,
        loop="asyncio",
        ws="none",
        lifespan="on",
        interface="asgi3",
        log_config=None,
        log_level=log_level,
        access_log=access_log,
        ssl_context_factory=lambda _config, _default: ctx,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=2,
        server_header=False,
        proxy_headers=False,
    )


def _url(host: str, port: int) -> str:
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


@dataclass
class RunningServer:
    """A fleet server running in a background thread (tests, benchmarks, demos)."""

    url: str
    port: int
    tls: TlsFiles
    service: FleetService
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self.service.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    state_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    certfile: Path | None = None,
    keyfile: Path | None = None,
    clock: Callable[[], float] = time.time,
    log_level: str = "warning",
    startup_timeout: float = 20.0,
) -> RunningServer:
    """Start the fleet server in a thread on ``host:port`` (0: an ephemeral port)."""
    service = FleetService(state_dir, clock=clock)
    try:
        files = _tls_files(service, certfile, keyfile)
        server = uvicorn.Server(_config(service, files, log_level=log_level, access_log=False))
        sock = _listen(host, port)
    except BaseException:
        service.close()
        raise
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            service.close()
            raise EspsecError("fleet server failed to start")
        time.sleep(0.01)
    bound = sock.getsockname()[1]
    return RunningServer(_url(host, bound), bound, files, service, server, thread)


def serve(
    state_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8443,
    certfile: Path | None = None,
    keyfile: Path | None = None,
    log_level: str = "info",
    access_log: bool = False,
    on_ready: Callable[[str, TlsFiles], None] | None = None,
) -> None:
    """Run the fleet server in the foreground until interrupted (``espsec fleet serve``)."""
    service = FleetService(state_dir)
    try:
        files = _tls_files(service, certfile, keyfile)
        server = uvicorn.Server(_config(service, files, log_level=log_level, access_log=access_log))
        sock = _listen(host, port)
        if on_ready is not None:
            on_ready(_url(host, sock.getsockname()[1]), files)
        server.run(sockets=[sock])
    finally:
        service.close()
