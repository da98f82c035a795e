"""The console transport, as ESP-IDF ``components/protocomm/src/transports/protocomm_console.c``.

Each endpoint is a console command: ``<endpoint> <session_id> <hex request>``; the device
prints the reply as hex on its own line. A command with a new session id opens that
session (closing the previous one). :class:`ConsoleServer` is the device's command
interpreter; :class:`ConsoleTransport` a client that writes such lines to it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from espsec.provisioning.errors import ProtocommError, TransportError, status_name
from espsec.provisioning.protocomm.core import Protocomm
from espsec.provisioning.protocomm.security import NO_SESSION

ERROR_PREFIX = "error:"


class ConsoleServer:
    """The device side: runs one console line, returns what the device prints."""

    def __init__(self, protocomm: Protocomm) -> None:
        self.protocomm = protocomm
        self._session_id = NO_SESSION

    def __repr__(self) -> str:
        return f"<ConsoleServer {self.protocomm!r}>"

    def run_line(self, line: str) -> str:
        """The device's output for ``line`` (the hex reply, or ``error: <Status> <text>``)."""
        args = line.split()
        if len(args) < 3 or args[0] not in self.protocomm.endpoints:
            return f"{ERROR_PREFIX} InvalidArgument usage: <endpoint> <session_id> <hex>"
        try:
            session_id = int(args[1]) & 0xFFFFFFFF
            data = bytes.fromhex(args[2])
        except ValueError:
            return f"{ERROR_PREFIX} InvalidArgument bad session id or hex data"
        with self.protocomm.lock:
            if session_id != self._session_id:
                self.protocomm.open_session(session_id)
                self._session_id = session_id
            try:
                return self.protocomm.handle(args[0], session_id, data).hex()
            except ProtocommError as exc:
                return f"{ERROR_PREFIX} {status_name(exc.status)} {exc.message}"


class ConsoleTransport:
    """The client side: ``run_line`` sends one line to the device and returns its output."""

    def __init__(self, run_line: Callable[[str], str], *, session_id: int | None = None) -> None:
        self._run_line = run_line
        self.session_id = secrets.randbits(31) if session_id is None else session_id

    def __repr__(self) -> str:
        return f"<ConsoleTransport session {self.session_id}>"

    def send(self, endpoint: str, data: bytes) -> bytes:
        out = self._run_line(f"{endpoint} {self.session_id} {data.hex()}").strip()
        if out.startswith(ERROR_PREFIX):
            _, _, rest = out.partition(" ")
            name, _, text = rest.partition(" ")
            from espsec.provisioning.proto import constants_pb2

            try:
                status = constants_pb2.Status.Value(name)
            except ValueError:
                raise TransportError(f"{endpoint}: {rest}") from None
            raise ProtocommError(f"{endpoint}: {text}", status=status)
        try:
            return bytes.fromhex(out)
        except ValueError:
            raise TransportError(f"{endpoint}: the device printed {out[:40]!r}") from None
