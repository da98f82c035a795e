"""Running the fleet server: uvicorn over TLS, two listeners, one or several processes.

* The **device listener** (``--host``/``--port``) asks for a client certificate from the
  fleet's device CA (mutual TLS) and serves :func:`espsec.fleet.app.device_app`.
* The **admin listener** (``--admin-host``/``--admin-port``, default 127.0.0.1) serves
  the admin API and the dashboard (:func:`espsec.fleet.app.admin_app`).

Both run on one event loop per process. ``workers > 1`` starts that many processes on the
same listening sockets (the kernel spreads connections between them) and one database
(PostgreSQL for scale; SQLite works too, its writes then queue between processes); a
worker that dies is restarted, and devices whose connection it held retry onto another.

Connection hygiene (:class:`Limits`): a cap on open connections per process, a TLS
handshake timeout, a deadline for the request line and headers, an idle timeout while a
body arrives and between keep-alive requests, a whole-request deadline, and a bound on
header size. A connection over the cap is closed at once; the others are closed when
a deadline passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import multiprocessing
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from espsec import _pem
from espsec.errors import EspsecError, UsageError
from espsec.fleet.app import admin_app, device_app
from espsec.fleet.config import TLS_DIR, load_device_ca
from espsec.fleet.service import FleetService
from espsec.fleet.tls import TlsFiles, check_expiry, ensure_tls
from espsec.identity.tls import device_id_of

log = logging.getLogger("espsec.fleet")

CERT_RELOAD_S = 60.0
"""Seconds between checks for a renewed server certificate."""


@dataclass(frozen=True)
class Limits:
    """Per-process connection limits and timeouts (seconds)."""

    max_connections: int = 4096
    """Open device connections per process; more are closed at once."""
    admin_max_connections: int = 64
    handshake_timeout: float = 10.0
    header_timeout: float = 10.0
    """From the connection (or the end of the previous request) to complete headers."""
    idle_timeout: float = 10.0
    """Silence tolerated while a request body arrives."""
    keep_alive: int = 30
    """Idle seconds a kept-alive connection stays open between requests."""
    request_timeout: float = 300.0
    """Whole request (headers and body) deadline."""
    max_header_bytes: int = 16 * 1024
    threads: int = 16
    """Threads running service calls (each holds at most one database connection)."""


def _tls_files(state_dir: Path, hostnames: tuple[str, ...], certfile: Path | None,
               keyfile: Path | None) -> TlsFiles:  # fmt: skip
    if (certfile is None) != (keyfile is None):
        raise UsageError("give both a certificate and its key, or neither")
    if certfile is not None and keyfile is not None:
        return TlsFiles(certfile, keyfile, None)
    return ensure_tls(state_dir / TLS_DIR, hostnames)


def _load_chain(ctx: ssl.SSLContext, files: TlsFiles) -> None:
    try:
        ctx.load_cert_chain(str(files.server_cert), str(files.server_key))
    except (ssl.SSLError, OSError) as exc:
        raise EspsecError(
            "cannot load the server certificate and key "
            f"({getattr(exc, 'reason', None) or exc.strerror or exc})",
            source=f"{files.server_cert}, {files.server_key}",
        ) from None


def _device_context(files: TlsFiles, device_ca_pem: bytes) -> ssl.SSLContext:
    """The device listener's TLS context (TLS >= 1.2, mutual TLS).

    A client certificate is verified against the device CA (chain, validity). It is
    optional at the TLS layer so that a device without one gets a clear 401 and the
    manifest key stays readable; every device endpoint refuses a request without one.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_OPTIONAL
    try:
        ctx.load_verify_locations(cadata=device_ca_pem.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError):
        raise EspsecError("the device CA holds no usable certificate") from None
    _load_chain(ctx, files)
    return ctx


def _admin_context(files: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(ctx, files)
    return ctx


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket (shared by the worker processes)."""
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
    sock.set_inheritable(True)
    return sock


class _Guard:
    """Connection limits and deadlines for uvicorn's HTTP/1.1 protocol, and (on the
    device listener) the verified client certificate handed to the app as the ASGI TLS
    extension (``scope["extensions"]["tls"]``), read once per connection.

    Deadlines (and uvicorn's keep-alive) are times on the loop's clock kept on the
    connection; one sweep per listener closes the connections past one, a few times per
    shortest timeout (a timer armed and cancelled several times per request costs more
    than the request's parsing).
    """

    limits: Limits = Limits()
    cap: int = 4096
    mutual_tls: bool = False
    stats: Any = None
    sweeper: asyncio.Task[None] | None = None
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    connections: set[Any]
    app: Any

    def _guard_start(self, transport: asyncio.Transport) -> None:
        self._header_at = self._idle_at = self._request_at = self._keep_alive_at = 0.0
        if len(self.connections) > self.cap:
            self.stats.count("connections_refused")
            transport.abort()
            return
        cls = type(self)
        if cls.sweeper is None or cls.sweeper.done():
            cls.sweeper = self.loop.create_task(cls._sweep(self.connections, self.loop))
        self._arm_header_timer()
        if self.mutual_tls:
            ext = _client_tls(transport)
            inner = self.app

            async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
                scope.setdefault("extensions", {})["tls"] = ext
                await inner(scope, receive, send)

            self.app = app

    @classmethod
    async def _sweep(cls, connections: set[Any], loop: asyncio.AbstractEventLoop) -> None:
        """Close this listener's connections past a deadline (for as long as the loop runs)."""
        limits = cls.limits
        shortest = min(
            limits.header_timeout, limits.idle_timeout, limits.request_timeout, limits.keep_alive
        )
        every = min(1.0, max(0.02, shortest / 5))
        while True:
            await asyncio.sleep(every)
            now = loop.time()
            for conn in list(connections):
                if not isinstance(conn, _Guard):
                    continue
                if conn._header_at and now >= conn._header_at:
                    conn._expire("headers")
                elif conn._idle_at and now >= conn._idle_at:
                    conn._expire("body")
                elif conn._request_at and now >= conn._request_at:
                    conn._expire("request")
                elif conn._keep_alive_at and now >= conn._keep_alive_at:
                    conn._keep_alive_at = 0.0
                    if not conn.transport.is_closing():
                        conn.transport.close()  # idle between requests: a graceful close

    def _cancel_timers(self) -> None:
        self._header_at = self._idle_at = self._request_at = self._keep_alive_at = 0.0

    def _arm_header_timer(self) -> None:
        if not self._header_at:
            self._header_at = self.loop.time() + self.limits.header_timeout

    def _headers_done(self) -> None:
        now = self.loop.time()
        self._header_at = 0.0
        if not self._request_at:
            self._request_at = now + self.limits.request_timeout
        self._idle_at = now + self.limits.idle_timeout

    def _body_arriving(self) -> None:
        self._idle_at = self.loop.time() + self.limits.idle_timeout

    def _request_done(self) -> None:
        self._idle_at = self._request_at = 0.0

    def _expire(self, what: str) -> None:
        self._cancel_timers()
        self.stats.count(f"timeouts_{what}")
        if not self.transport.is_closing():
            self.transport.abort()


class _CoalescingTransport:
    """A transport whose writes in one event-loop step go out in one write.

    uvicorn writes a response's head and its body separately; over TLS that is two
    records, two encryptions and two ``send`` calls. Here they are joined when the loop
    runs its next callbacks (before any I/O), so a small answer is one record.
    """

    __slots__ = ("_loop", "_parts", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._parts: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._parts:
            self._loop.call_soon(self._flush)
        self._parts.append(bytes(data))

    def _flush(self) -> None:
        parts, self._parts = self._parts, []
        if parts and not self._transport.is_closing():
            self._transport.write(parts[0] if len(parts) == 1 else b"".join(parts))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _GuardedHttpTools(_Guard, HttpToolsProtocol):
    """uvicorn's httptools protocol (the C parser: several times cheaper per request than
    h11), guarded, writing through a :class:`_CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        transport = _CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        super().connection_made(transport)
        self._between = True
        self._header_bytes = 0
        self._guard_start(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._between:
            self._keep_alive_at = 0.0
            self._arm_header_timer()
            self._header_bytes += len(data)
        super().data_received(data)
        if self._between and self._header_bytes > self.limits.max_header_bytes:
            self._expire("header_size")  # still no end of headers

    def on_headers_complete(self) -> None:
        self._between = False
        self._header_bytes = 0
        self._headers_done()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_arriving()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._between = True
        self._request_done()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        # uvicorn's (0.55), with its keep-alive timer (armed after every response and
        # cancelled by the next request) replaced by a deadline the sweep checks.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._keep_alive_at = self.loop.time() + self.timeout_keep_alive


def _client_tls(transport: asyncio.Transport) -> dict[str, Any]:
    ssl_object = transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return {"client_cert_chain": []}
    pem = ssl.DER_cert_to_PEM_cert(der)
    try:
        device_id = device_id_of(_pem.load_certificate(der, allow_der=True))
    except _pem.PemError:
        device_id = None
    return {
        "client_cert_chain": [pem],
        "device_id": device_id,
        "cert_sha256": hashlib.sha256(der).hexdigest(),
    }


def _protocol(limits: Limits, stats: Any, *, cap: int, mutual_tls: bool) -> type[Any]:
    """The HTTP protocol class of one listener."""
    return type(
        "FleetHttp",
        (_GuardedHttpTools,),
        {"limits": limits, "cap": cap, "mutual_tls": mutual_tls, "stats": stats},
    )


class _Loop(uvloop.Loop):
    """The event loop (uvloop: libuv, and TLS in C rather than asyncio's pure-Python
    ``sslproto``), with a TLS handshake deadline on every server it creates."""

    handshake_timeout = 10.0

    async def create_server(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("ssl") is not None:
            kwargs.setdefault("ssl_handshake_timeout", self.handshake_timeout)
        return await super().create_server(*args, **kwargs)


def _uvicorn(app: Any, ctx: ssl.SSLContext, protocol: type[Any], limits: Limits,
             *, log_level: str, access_log: bool) -> uvicorn.Server:  # fmt: skip
    config = uvicorn.Config(
        app,
        http=protocol,
        loop="asyncio",
        ws="none",
        lifespan="on",
        interface="asgi3",
        log_config=None,
        log_level=log_level,
        access_log=access_log,
        ssl_context_factory=lambda _config, _default: ctx,
        timeout_keep_alive=limits.keep_alive,
        timeout_graceful_shutdown=2,
        server_header=False,
        proxy_headers=False,
    )
    return uvicorn.Server(config)


class FleetRuntime:
    """One server process: both listeners on one event loop, in a background thread."""

    def __init__(
        self,
        service: FleetService,
        files: TlsFiles,
        device_sock: socket.socket,
        admin_sock: socket.socket,
        *,
        limits: Limits = Limits(),
        log_level: str = "warning",
        access_log: bool = False,
        tick: float | None = 5.0,
    ) -> None:
        self.service = service
        self.files = files
        self.limits = limits
        service.posture_audit.load()  # not in the first check-in that carries a posture
        self._contexts = [
            _device_context(files, load_device_ca(service.state_dir)),
            _admin_context(files),
        ]
        self._cert_mtime = _mtime(files)
        # PostgreSQL takes writes from several connections: two check-in batches at once
        # overlap one's round trips with the other's work. SQLite has a single writer.
        parallel = 2 if service.db.dialect == "postgresql" else 1
        self.device_server = _uvicorn(
            device_app(service, parallel=parallel),
            self._contexts[0],
            _protocol(limits, service.stats, cap=limits.max_connections, mutual_tls=True),
            limits,
            log_level=log_level,
            access_log=access_log,
        )
        self.admin_server = _uvicorn(
            admin_app(service, tick=tick),
            self._contexts[1],
            _protocol(limits, service.stats, cap=limits.admin_max_connections, mutual_tls=False),
            limits,
            log_level=log_level,
            access_log=access_log,
        )
        self.sockets = (device_sock, admin_sock)
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def started(self) -> bool:
        return self.device_server.started and self.admin_server.started

    async def _main(self) -> None:
        import anyio.to_thread

        _Loop.handshake_timeout = self.limits.handshake_timeout
        # Service calls run in this many threads, so a process holds at most this many
        # database connections (PostgreSQL's default limit is 100 for every worker).
        anyio.to_thread.current_default_thread_limiter().total_tokens = self.limits.threads
        reload = asyncio.create_task(self._reload_certificates())
        try:
            await asyncio.gather(
                self.device_server.serve(sockets=[self.sockets[0]]),
                self.admin_server.serve(sockets=[self.sockets[1]]),
            )
        finally:
            reload.cancel()

    async def _reload_certificates(self) -> None:
        """Pick up a certificate renewed by ``espsec fleet tls renew`` (new handshakes)."""
        while True:
            await asyncio.sleep(CERT_RELOAD_S)
            mtime = _mtime(self.files)
            if mtime != self._cert_mtime:
                try:
                    for ctx in self._contexts:
                        _load_chain(ctx, self.files)
                    self._cert_mtime = mtime
                    log.warning("server certificate reloaded from %s", self.files.server_cert)
                except EspsecError as exc:
                    log.error("renewed certificate not loaded: %s", exc)

    def run(self) -> None:
        """Serve until :meth:`stop` (blocks; no signal handling: the caller's job)."""
        try:
            with asyncio.Runner(loop_factory=_Loop) as runner:
                runner.run(self._main())
        except BaseException as exc:  # reported by start_server / serve
            self.error = exc

    def start(self, timeout: float = 20.0) -> None:
        self._thread = threading.Thread(target=self.run, name="fleet-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise EspsecError("fleet server failed to start")
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        self.device_server.should_exit = True
        self.admin_server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self) -> None:
        if self._thread is not None:
            while self._thread.is_alive():
                self._thread.join(0.5)


def tune_gc() -> None:
    """For a server process: what exists after start-up is never collected again, and
    collections run less often. With thousands of open TLS connections, a full cyclic
    collection otherwise stalls every request for tens to hundreds of milliseconds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def _mtime(files: TlsFiles) -> tuple[float, float]:
    try:
        return files.server_cert.stat().st_mtime, files.server_key.stat().st_mtime
    except OSError:
        return (0.0, 0.0)


def _url(host: str, port: int) -> str:
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


@dataclass
class RunningServer:
    """A fleet server running in a background thread (tests, benchmarks, demos)."""

    url: str
    """The device listener."""
    port: int
    admin_url: str
    admin_port: int
    tls: TlsFiles
    service: FleetService
    warning: str | None
    _runtime: FleetRuntime = field(repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        self._runtime.stop(timeout)
        for sock in self._runtime.sockets:
            with contextlib.suppress(OSError):
                sock.close()
        self.service.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _prepare(service: FleetService, files: TlsFiles) -> str | None:
    """Checks before serving: the certificate's expiry, orphans from a crash, postures
    judged by older rules."""
    warning = check_expiry(files.server_cert)
    service.sweep_orphans()
    service.refresh_posture_flags()
    return warning


def start_server(
    state_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    admin_host: str = "127.0.0.1",
    admin_port: int = 0,
    certfile: Path | None = None,
    keyfile: Path | None = None,
    database: str | Path | None = None,
    clock: Callable[[], float] = time.time,
    limits: Limits = Limits(),
    log_level: str = "warning",
    tick: float | None = 5.0,
    startup_timeout: float = 20.0,
    **service_options: Any,
) -> RunningServer:
    """Start the fleet server in a thread (port 0: an ephemeral port)."""
    service = FleetService(state_dir, database=database, clock=clock, **service_options)
    socks: list[socket.socket] = []
    try:
        files = _tls_files(state_dir, service.config.hostnames, certfile, keyfile)
        warning = _prepare(service, files)
        socks.append(listen(host, port))
        socks.append(listen(admin_host, admin_port))
        runtime = FleetRuntime(
            service, files, socks[0], socks[1], limits=limits, log_level=log_level, tick=tick
        )
        runtime.start(startup_timeout)
    except BaseException:
        for sock in socks:
            sock.close()
        service.close()
        raise
    bound, admin_bound = socks[0].getsockname()[1], socks[1].getsockname()[1]
    return RunningServer(
        _url(host, bound),
        bound,
        _url(admin_host, admin_bound),
        admin_bound,
        files,
        service,
        warning,
        runtime,
    )


@dataclass(frozen=True)
class ServeOptions:
    """Everything a server process needs (picklable: worker processes get a copy)."""

    state_dir: Path
    database: str | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    limits: Limits = Limits()
    log_level: str = "info"
    access_log: bool = False


def _worker(options: ServeOptions, device_sock: socket.socket, admin_sock: socket.socket) -> None:
    """A worker process: serve on the inherited sockets until SIGTERM/SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when to stop
    service = FleetService(options.state_dir, database=options.database)
    try:
        files = _tls_files(
            options.state_dir, service.config.hostnames, options.certfile, options.keyfile
        )
        runtime = FleetRuntime(
            service,
            files,
            device_sock,
            admin_sock,
            limits=options.limits,
            log_level=options.log_level,
            access_log=options.access_log,
        )
        signal.signal(signal.SIGTERM, lambda *_: runtime.stop())
        runtime.start()
        tune_gc()
        runtime.wait()
    finally:
        service.close()


def serve(
    state_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8443,
    admin_host: str = "127.0.0.1",
    admin_port: int = 8444,
    certfile: Path | None = None,
    keyfile: Path | None = None,
    database: str | None = None,
    workers: int = 1,
    limits: Limits = Limits(),
    log_level: str = "info",
    access_log: bool = False,
    on_ready: Callable[[str, str, TlsFiles, str | None], None] | None = None,
    max_seconds: float | None = None,
) -> None:
    """Run the fleet server in the foreground until SIGINT/SIGTERM (``espsec fleet serve``),
    or for ``max_seconds``.

    ``on_ready(device_url, admin_url, tls_files, warning)`` is called once listening.
    """
    if not 1 <= workers <= 64:
        raise UsageError("--workers must be between 1 and 64")
    # Open the database once here: it is migrated, and orphans are swept, before any
    # worker serves; the certificate's expiry is checked before listening.
    service = FleetService(state_dir, database=database)
    socks: list[socket.socket] = []
    try:
        files = _tls_files(state_dir, service.config.hostnames, certfile, keyfile)
        warning = _prepare(service, files)
        socks.append(listen(host, port))
        socks.append(listen(admin_host, admin_port))
        urls = (_url(host, socks[0].getsockname()[1]), _url(admin_host, socks[1].getsockname()[1]))
        stop = threading.Event()
        previous = {
            sig: signal.signal(sig, lambda *_: stop.set())
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        deadline = None if max_seconds is None else threading.Timer(max_seconds, stop.set)
        if deadline is not None:
            deadline.daemon = True
            deadline.start()
        try:
            if workers == 1:
                runtime = FleetRuntime(
                    service, files, socks[0], socks[1], limits=limits, log_level=log_level,
                    access_log=access_log,
                )  # fmt: skip
                runtime.start()
                tune_gc()
                if on_ready is not None:
                    on_ready(*urls, files, warning)
                while not stop.wait(0.5) and runtime._thread is not None:
                    if not runtime._thread.is_alive():
                        break
                runtime.stop()
                if runtime.error is not None and not isinstance(runtime.error, SystemExit):
                    raise EspsecError(f"fleet server stopped: {runtime.error}")
            else:
                service.close()
                options = ServeOptions(
                    state_dir, database, certfile, keyfile, limits, log_level, access_log
                )
                _supervise(
                    options,
                    socks[0],
                    socks[1],
                    workers,
                    stop,
                    lambda: on_ready and on_ready(*urls, files, warning),
                )
        finally:
            if deadline is not None:
                deadline.cancel()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        for sock in socks:
            sock.close()
        service.close()


def _supervise(
    options: ServeOptions,
    device_sock: socket.socket,
    admin_sock: socket.socket,
    workers: int,
    stop: threading.Event,
    ready: Callable[[], object],
) -> None:
    """Keep ``workers`` processes serving; restart one that dies; stop them all on ``stop``."""
    ctx = multiprocessing.get_context("spawn")
    procs: list[Any] = []

    def spawn() -> Any:
        proc = ctx.Process(
            target=_worker, args=(options, device_sock, admin_sock), name="fleet-worker"
        )
        proc.start()
        return proc

    procs = [spawn() for _ in range(workers)]
    ready()
    restarts: list[float] = []
    try:
        while not stop.wait(0.2):
            for i, proc in enumerate(procs):
                if proc.is_alive():
                    continue
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < 60]
                if len(restarts) > 10 * workers:
                    raise EspsecError("fleet workers keep dying; stopping (see the log above)")
                restarts.append(now)
                log.warning("worker %s exited with %s; restarting it", proc.pid, proc.exitcode)
                procs[i] = spawn()
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + 10
        for proc in procs:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(1)


def worker_pids() -> list[int]:
    """Process ids of this supervisor's live workers (for the benchmark's kill -9)."""
    return [
        p.pid
        for p in multiprocessing.active_children()
        if p.name == "fleet-worker" and p.pid is not None
    ]
