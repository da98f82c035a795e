"""The chip's download port over TCP: ``socket://HOST:PORT`` for esptool and espefuse.

pyserial's ``socket://`` URL handler (which esptool and espefuse use for ``--port``)
carries the raw serial bytes over one TCP connection. Each connection is one session of
the chip's UART after a reset with GPIO0 held low: the ROM starts afresh (RAM, and so a
running stub, is gone), eFuses and flash are as the last session left them. Connections
are served one at a time, as one UART serves one host. Whatever a command changes is
written to the device folder before its answer is sent. Connections are served one at a
time: a new connection takes the port over and the previous one is dropped (a host that
went away without closing, like a crashed esptool, must not lock the chip out).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

from espsec.device.download.chip import DownloadChip
from espsec.device.download.session import DownloadSession
from espsec.device.virtual_device import VirtualDevice
from espsec.efuse.download_mode import Interface
from espsec.errors import EspsecError

RECV_SIZE = 1 << 16


def _unused(_: str) -> None:
    """A ``notify`` that drops the message."""


class DownloadServer:
    """Serves one virtual chip's download mode on a TCP port.

    ``port=0`` picks a free port; :attr:`url` is what to pass to ``--port``. Use
    :meth:`serve_forever` in the foreground or :meth:`start` for a background thread;
    :meth:`close` stops either. ``notify`` receives one line per notable event (a refused
    command, an eFuse burn, a dropped connection).
    """

    def __init__(
        self,
        device: VirtualDevice,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        interface: Interface = Interface.UART,
        notify: Callable[[str], None] = _unused,
    ) -> None:
        self.chip = DownloadChip(device, notify=notify)
        self.interface = interface
        self.notify = notify
        try:
            self._listener = socket.create_server((host, port))
        except OSError as exc:
            raise EspsecError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        self.host = host
        self.port = int(self._listener.getsockname()[1])
        self._conn: socket.socket | None = None
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self.connections = 0

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    def serve_forever(self) -> None:
        """Accept and serve connections until :meth:`close`."""
        worker: threading.Thread | None = None
        try:
            while not self._closed.is_set():
                try:
                    conn, _ = self._listener.accept()
                except OSError:
                    break
                if worker is not None:
                    self._drop_current()
                    worker.join()
                self._conn = conn
                worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
                worker.start()
        finally:
            self._drop_current()
            if worker is not None:
                worker.join(timeout=10)
            self.chip.close()

    def _drop_current(self) -> None:
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def start(self) -> Self:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving; the current connection is dropped, the device folder is current."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._drop_current()
        if self._thread is not None:
            self._thread.join(timeout=10)
        else:
            self.chip.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _serve(self, conn: socket.socket) -> None:
        self.connections += 1
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = DownloadSession(self.chip, self.interface)
        try:
            while True:
                data = conn.recv(RECV_SIZE)
                if not data:
                    break
                try:
                    out = session.receive(data)
                except EspsecError as exc:
                    self.notify(f"connection dropped: {exc.message}")
                    break
                except Exception as exc:  # a model bug must not take the server down
                    self.notify(f"connection dropped: internal error {type(exc).__name__}: {exc}")
                    break
                if out:
                    conn.sendall(out)
        except OSError as exc:
            if not self._closed.is_set():
                self.notify(f"connection lost: {exc.strerror or exc}")
        finally:
            self.chip.flush()
            conn.close()
