"""The HTTP transport, as ESP-IDF ``components/protocomm/src/transports/protocomm_httpd.c``.

Every endpoint is ``POST /<endpoint>`` with the raw protobuf as the body (at most
4096 bytes, ``MAX_REQ_BODY_LEN``). The device keeps one session: the first reply of a
session sets the cookie ``session=<u32>``; a request carrying that cookie (or, from a
client without cookies, arriving on the same connection) continues it, and any other
request closes it and starts a new one.

Where ESP-IDF closes the connection on a failed request, this server answers with an HTTP
error and the protocomm ``Status`` in the ``X-Protocomm-Status`` header, so clients can
say why. A body over 4 KB is refused before it is read.
"""

from __future__ import annotations

import http.client
import secrets
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from typing import Any

from espsec.errors import EspsecError
from espsec.provisioning.errors import ProtocommError, TransportError, status_name
from espsec.provisioning.protocomm.core import Protocomm, UnknownEndpoint
from espsec.provisioning.protocomm.security import (
    CRYPTO_ERROR,
    INTERNAL_ERROR,
    INVALID_ARGUMENT,
    INVALID_PROTO,
    INVALID_SEC_SCHEME,
    INVALID_SESSION,
    NO_SESSION,
    TOO_MANY_SESSIONS,
)

MAX_REQ_BODY_LEN = 4096
STATUS_HEADER = "X-Protocomm-Status"
COOKIE = "session"

_HTTP_CODE: dict[int, int] = {
    INVALID_SEC_SCHEME: 400,
    INVALID_PROTO: 400,
    INVALID_ARGUMENT: 400,
    TOO_MANY_SESSIONS: 429,
    INTERNAL_ERROR: 500,
    CRYPTO_ERROR: 403,
    INVALID_SESSION: 401,
}
_STATUS_BY_NAME = {status_name(code): code for code in _HTTP_CODE}
_connections = count(1)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.socket_id = next(_connections)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # library code never prints; session events go to the protocomm log

    def do_GET(self) -> None:
        self._error(405, "protocomm endpoints take POST", None)

    def do_POST(self) -> None:
        length_text = self.headers.get("Content-Length")
        try:
            length = int(length_text) if length_text is not None else 0
        except ValueError:
            length = 0
        if length <= 0:
            self._error(400, "Content-Length missing or zero", INVALID_ARGUMENT, close=True)
            return
        if length > MAX_REQ_BODY_LEN:
            self._error(
                413,
                f"request body of {length} bytes exceeds {MAX_REQ_BODY_LEN}",
                INVALID_ARGUMENT,
                close=True,
            )
            return
        body = self.rfile.read(length)
        endpoint = self.path.split("?", 1)[0].removeprefix("/")
        state = self.server.sessions
        pc = self.server.protocomm
        if endpoint not in pc.endpoints:  # no URI handler: the session is left alone
            self._error(404, f"no endpoint {endpoint!r}", None)
            return
        with pc.lock:
            same, session_id = state.continue_or_start(self.headers.get("Cookie"), self.socket_id)
            if not same:
                pc.open_session(session_id)
            try:
                reply = pc.handle(endpoint, session_id, body)
            except UnknownEndpoint as exc:
                self._error(404, exc.message, None)
                return
            except ProtocommError as exc:
                self._error(_HTTP_CODE.get(exc.status, 500), exc.message, exc.status)
                return
            except EspsecError as exc:  # the device failed (e.g. its NVS): no traceback
                self._error(500, exc.message, INTERNAL_ERROR)
                return
        self.send_response(200)
        if not same:
            self.send_header("Set-Cookie", f"{COOKIE}={session_id}")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def _error(self, code: int, text: str, status: int | None, *, close: bool = False) -> None:
        body = (text + "\n").encode()
        self.send_response(code)
        if status is not None:
            self.send_header(STATUS_HEADER, status_name(status))
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)


class _SessionState:
    """``cookie_session_id`` and ``sock_session_id`` of ``protocomm_httpd.c``."""

    def __init__(self) -> None:
        self.cookie_session_id = NO_SESSION
        self.sock_session_id = NO_SESSION

    def continue_or_start(self, cookie: str | None, socket_id: int) -> tuple[bool, int]:
        if cookie is not None:
            if self.cookie_session_id != NO_SESSION and cookie.strip() == (
                f"{COOKIE}={self.cookie_session_id}"
            ):
                self.sock_session_id = NO_SESSION
                return True, self.cookie_session_id
        elif socket_id == self.sock_session_id:
            return True, self.cookie_session_id
        self.cookie_session_id = secrets.randbits(32)
        self.sock_session_id = socket_id
        return False, self.cookie_session_id


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that vanishes mid-request (or a bad TLS handshake) is not ours to print

    def __init__(
        self,
        address: tuple[str, int],
        protocomm: Protocomm,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(address, _Handler)
        self.protocomm = protocomm
        self.sessions = _SessionState()
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(self.socket, server_side=True)


class ProtocommHttpServer:
    """``protocomm_httpd_start``: serve ``protocomm`` over HTTP (HTTPS with ``ssl_context``)."""

    def __init__(
        self,
        protocomm: Protocomm,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._server = _Server((host, port), protocomm, ssl_context)
        self._thread: threading.Thread | None = None
        self.scheme = "https" if ssl_context is not None else "http"

    def __repr__(self) -> str:
        return f"<ProtocommHttpServer {self.address}>"

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def address(self) -> str:
        """``host:port`` as esp_prov's ``--service_name`` takes it."""
        return f"{self.host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve until :meth:`stop` is called from another thread."""
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> ProtocommHttpServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ProtocommHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class HttpTransport:
    """The client side (esp_prov ``transport_http.py``): one keep-alive connection that
    echoes the session cookie back."""

    def __init__(
        self, address: str, *, ssl_context: ssl.SSLContext | None = None, timeout: float = 30
    ) -> None:
        host, sep, port_text = address.rpartition(":")
        if not sep or not port_text.isdigit():
            raise TransportError(f"service name must be HOST:PORT, got {address!r}")
        self.address = address
        host = host.strip("[]")
        self._conn: http.client.HTTPConnection
        if ssl_context is None:
            self._conn = http.client.HTTPConnection(host, int(port_text), timeout=timeout)
        else:
            self._conn = http.client.HTTPSConnection(
                host, int(port_text), timeout=timeout, context=ssl_context
            )
        self.cookie: str | None = None

    def __repr__(self) -> str:
        return f"<HttpTransport {self.address}>"

    @property
    def peer_certificate(self) -> bytes | None:
        """The server's certificate (DER) on an HTTPS connection."""
        sock = self._conn.sock
        if isinstance(sock, ssl.SSLSocket):
            return sock.getpeercert(binary_form=True)
        return None

    def connect(self) -> None:
        try:
            self._conn.connect()
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(f"cannot connect to {self.address}: {exc}") from None

    def send(self, endpoint: str, data: bytes) -> bytes:
        """POST ``data`` to ``/<endpoint>``; the reply body, or :class:`ProtocommError` with
        the device's Status (:class:`TransportError` without one)."""
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/plain"}
        if self.cookie is not None:
            headers["Cookie"] = self.cookie
        try:
            self._conn.request("POST", f"/{endpoint}", data, headers)
            response = self._conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            self._conn.close()
            what = str(exc) or type(exc).__name__
            raise TransportError(f"{self.address}/{endpoint}: {what}") from None
        cookie = response.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0].strip()
        if response.status == 200:
            return body
        text = body.decode("utf-8", "replace").strip()
        status = _STATUS_BY_NAME.get(response.getheader(STATUS_HEADER) or "")
        if status is not None:
            raise ProtocommError(f"{endpoint}: {text}", status=status)
        raise TransportError(f"{endpoint}: HTTP {response.status} {text}")

    def close(self) -> None:
        self._conn.close()
