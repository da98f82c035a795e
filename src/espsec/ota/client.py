"""HTTPS to the fleet server, as a device's OTA client (and the admin CLI) speaks it.

No device knowledge here: the device's OTA client builds a
:class:`~espsec.ota.protocol.CheckIn`, gets the manifest bytes from
:meth:`FleetClient.check_in`, verifies them with :mod:`espsec.ota.manifest`, streams the
payload with :meth:`FleetClient.download` into its decryptor and flash, and reports an
:class:`~espsec.ota.protocol.OutcomeReport` with :meth:`FleetClient.report`. The
messages themselves live in :mod:`espsec.ota.protocol`.

Transport rules: ``https://`` only (plain ``http://`` is refused before any connection);
the server certificate must chain to the given CA bundle, or be exactly the pinned
certificate; hostname checked; TLS 1.2 or later; no redirects followed; response sizes
bounded; an interrupted download resumes with an HTTP ``Range`` request.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import re
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization

from espsec import _pem
from espsec._text import printable
from espsec.errors import EspsecError, FormatError, UsageError, VerificationError
from espsec.identity.tls import ClientKey
from espsec.ota.manifest import MAX_MANIFEST_SIZE
from espsec.ota.protocol import CHECK_IN_PATH, REPORT_PATH, CheckIn, OutcomeReport

MAX_JSON_RESPONSE = 1 << 20
DEFAULT_TIMEOUT = 30.0


class TransportError(EspsecError):
    """The server could not be reached or answered outside the protocol."""


class DownloadTooSlow(TransportError):
    """A download passed its overall deadline, or fell below its minimum rate."""


class HashMismatch(VerificationError):
    """The downloaded bytes do not hash to what the manifest says (corrupted in transit or
    on the server): worth another try, not a reason to give up on the release."""


class HttpError(TransportError):
    """The server answered with an HTTP error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"server answered {status}: {message}")
        self.status = status


@dataclass(frozen=True)
class TlsTrust:
    """What a client trusts: CA certificates (PEM), or one pinned server certificate."""

    ca_pem: bytes | None = field(default=None, repr=False)
    pinned_cert_pem: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.ca_pem is None) == (self.pinned_cert_pem is None):
            raise UsageError("trust either a CA bundle or one pinned server certificate")

    @classmethod
    def ca(cls, pem: bytes) -> TlsTrust:
        """Trust servers whose certificate chains to these CA certificates."""
        return cls(ca_pem=pem)

    @classmethod
    def pinned(cls, cert: bytes) -> TlsTrust:
        """Trust exactly this server certificate (PEM or DER)."""
        parsed = _pem.load_certificate(cert, allow_der=True)
        if b"-----BEGIN" not in cert:
            cert = parsed.public_bytes(serialization.Encoding.PEM)
        return cls(pinned_cert_pem=cert)

    @property
    def pin_sha256(self) -> bytes | None:
        """SHA-256 of the pinned certificate's DER, if pinning."""
        if self.pinned_cert_pem is None:
            return None
        cert = _pem.load_certificate(self.pinned_cert_pem)
        return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()

    def context(self) -> ssl.SSLContext:
        """A client context: CERT_REQUIRED, hostname checked, TLS >= 1.2."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        pem = self.ca_pem if self.ca_pem is not None else self.pinned_cert_pem
        _pem.load_certificates(pem or b"")
        try:
            ctx.load_verify_locations(cadata=(pem or b"").decode("ascii"))
        except (ssl.SSLError, UnicodeDecodeError, ValueError):
            raise FormatError("no usable certificate in the trust PEM") from None
        if self.pinned_cert_pem is not None:
            # The pinned leaf is the trust anchor itself; the exact DER is checked after
            # the handshake as well.
            ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        return ctx


@dataclass(frozen=True)
class DownloadResult:
    """A completed, hash-checked download."""

    length: int
    sha256: bytes
    requests: int
    """HTTP requests made (1 + resumes)."""
    resumed_at: tuple[int, ...]
    """Offsets at which an interrupted transfer was resumed with ``Range``."""


@dataclass
class _Transfer:
    """Progress of one download across its requests."""

    digest: Any
    received: int
    etag: str | None = None
    started: float = 0.0
    """``time.monotonic()`` when the download began."""
    deadline: float | None = None
    """``time.monotonic()`` by which the whole download must be done."""
    min_rate: float = 0.0
    grace: float = 10.0
    first: int = 0
    """Bytes held before the download began (not counted in its rate)."""

    def check(self, what: str) -> float | None:
        """Seconds left before the deadline (:class:`DownloadTooSlow` past it, or when the
        average rate since the start stays below ``min_rate`` after ``grace`` seconds)."""
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            raise DownloadTooSlow(
                f"download of {what} passed its deadline of {self.deadline - self.started:.0f} s "
                f"at {self.received} bytes"
            )
        elapsed = now - self.started
        if self.min_rate and elapsed > self.grace:
            rate = (self.received - self.first) / elapsed
            if rate < self.min_rate:
                raise DownloadTooSlow(
                    f"download of {what} too slow: {rate:.0f} B/s, below the minimum "
                    f"{self.min_rate:.0f} B/s"
                )
        return None if self.deadline is None else self.deadline - now


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)\Z")
_NETWORK_ERRORS = (OSError, http.client.HTTPException)


def _parse_url(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise UsageError(
            f"refusing {parts.scheme or 'scheme-less'} URL {url!r}: the fleet is reached over "
            "https only"
        )
    if not parts.hostname:
        raise UsageError(f"URL {url!r} has no host")
    if parts.username or parts.password:
        raise UsageError("credentials in the URL are not allowed")
    try:
        port = parts.port or 443
    except ValueError:
        raise UsageError(f"URL {url!r} has an invalid port") from None
    return parts.hostname, port, parts.path.rstrip("/")


class FleetClient:
    """One keep-alive HTTPS connection to a fleet server (not thread-safe: one per device).

    ``identity``: the device's client certificate and key handle (mutual TLS); the fleet's
    device API refuses requests without one.
    """

    def __init__(
        self,
        base_url: str,
        trust: TlsTrust,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        token: str | None = None,
        chunk_size: int = 1 << 14,
        identity: ClientKey | None = None,
    ) -> None:
        self._host, self._port, self._prefix = _parse_url(base_url)
        if token is not None and not all(" " <= c <= "~" for c in token):
            raise UsageError("the token must be printable ASCII (it goes in an HTTP header)")
        self._context = trust.context()
        if identity is not None:
            identity.load_into(self._context)  # mutual TLS: the device's certificate
        self._pin = trust.pin_sha256
        self._timeout = timeout
        self._token = token
        self._chunk = chunk_size
        self._conn: http.client.HTTPSConnection | None = None

    def __repr__(self) -> str:
        return f"<FleetClient https://{self._host}:{self._port}{self._prefix}>"

    def __enter__(self) -> FleetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- plumbing ---------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPSConnection:
        if self._conn is not None:
            return self._conn
        conn = http.client.HTTPSConnection(
            self._host, self._port, context=self._context, timeout=self._timeout
        )
        try:
            conn.connect()
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            raise VerificationError(
                f"server certificate not trusted: {exc.verify_message or exc.reason}",
                source=f"{self._host}:{self._port}",
            ) from None
        except ssl.SSLError as exc:
            conn.close()
            raise TransportError(f"TLS handshake failed: {exc.reason}") from None
        except OSError as exc:
            conn.close()
            raise TransportError(
                f"cannot connect to {self._host}:{self._port}: {exc.strerror or exc}"
            ) from None
        if conn.sock is not None:
            # Requests go out in one write, but TLS may split them: do not wait on Nagle.
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._pin is not None:
            sock = conn.sock
            der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
            if der is None or not hmac.compare_digest(hashlib.sha256(der).digest(), self._pin):
                conn.close()
                raise VerificationError(
                    "server certificate is not the pinned certificate",
                    source=f"{self._host}:{self._port}",
                )
        self._conn = conn
        return conn

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"User-Agent": "espsec-ota/1", "Accept": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        if extra:
            headers.update(extra)
        return headers

    def _send(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str] | None
    ) -> http.client.HTTPResponse:
        """Send one request, retrying once on a stale keep-alive connection."""
        for attempt in (0, 1):
            conn = self._connect()
            try:
                conn.request(method, self._prefix + path, body=body, headers=self._headers(headers))
                return conn.getresponse()
            except _NETWORK_ERRORS as exc:
                self.close()
                if attempt or isinstance(exc, socket.timeout):
                    raise TransportError(f"{method} {path} failed: {exc}") from None
        raise AssertionError("unreachable")

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        max_size: int = MAX_JSON_RESPONSE,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request; returns (status, lower-cased headers, body). 3xx is an error."""
        resp = self._send(method, path, body, headers)
        try:
            length = resp.getheader("Content-Length")
            if length is not None and (not length.isdigit() or int(length) > max_size):
                raise TransportError(f"response to {path} too large ({length} bytes)")
            data = resp.read(max_size + 1)
            if len(data) > max_size:
                raise TransportError(f"response to {path} larger than {max_size} bytes")
        except _NETWORK_ERRORS as exc:
            self.close()
            raise TransportError(f"{method} {path} failed while reading: {exc}") from None
        finally:
            if resp.will_close:
                self.close()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        if 300 <= resp.status < 400:
            raise TransportError(
                f"{path}: server redirected ({resp.status}); redirects not followed"
            )
        return resp.status, hdrs, data

    def json_request(
        self, method: str, path: str, payload: object | None = None, *, ok: tuple[int, ...] = (200,)
    ) -> Any:
        """Send JSON (if any), expect a JSON answer with a status in ``ok``."""
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"} if body is not None else None
        status, _, data = self.request(method, path, body=body, headers=headers)
        return decode_json(status, data, path, ok)

    # -- device API -------------------------------------------------------------------

    def check_in(self, request: CheckIn) -> bytes:
        """Send a check-in; return the manifest envelope bytes (verify them next)."""
        status, _, data = self.request(
            "POST",
            CHECK_IN_PATH,
            body=request.to_bytes(),
            headers={"Content-Type": "application/json"},
            max_size=MAX_MANIFEST_SIZE,
        )
        if status != 200:
            raise HttpError(status, _error_text(data))
        return data

    def report(self, report: OutcomeReport) -> None:
        """Report the outcome of an update attempt."""
        self.json_request("POST", REPORT_PATH, report.to_json())

    def download(
        self,
        path: str,
        sink: Callable[[bytes], object],
        *,
        length: int,
        sha256: bytes,
        start: int = 0,
        hasher: Any = None,
        max_resumes: int = 5,
        deadline: float | None = None,
        min_rate: float = 0.0,
        grace: float = 10.0,
    ) -> DownloadResult:
        """Stream ``path`` into ``sink`` chunk by chunk; resume with ``Range`` when cut.

        ``length`` and ``sha256`` come from the verified manifest: no byte beyond
        ``length`` is accepted and the whole transfer must hash to ``sha256``; until this
        returns, what ``sink`` received is unverified. To continue a transfer the caller
        already holds ``start`` bytes of, pass ``start`` and a ``hashlib.sha256()`` object
        fed with those bytes as ``hasher``.

        ``deadline``: seconds the whole download may take, resumes included; ``min_rate``:
        bytes per second it must average once ``grace`` seconds have passed. Past either,
        :class:`DownloadTooSlow` (a server or link that trickles bytes cannot hold the
        device forever). A transfer that completes but does not hash to ``sha256`` is
        :class:`HashMismatch`.
        """
        if not path.startswith("/") or path.startswith("//"):
            raise UsageError(f"download path must be a path on the server, got {path!r}")
        if start and hasher is None:
            raise UsageError("resuming from an offset needs the hash of the bytes already held")
        if not 0 <= start <= length:
            raise UsageError(f"start {start} outside 0..{length}")
        began = time.monotonic()
        state = _Transfer(
            hasher if hasher is not None else hashlib.sha256(),
            start,
            started=began,
            deadline=None if deadline is None else began + deadline,
            min_rate=min_rate,
            grace=grace,
            first=start,
        )
        requests = 0
        resumed: list[int] = []
        while state.received < length:
            if requests > max_resumes:
                raise TransportError(
                    f"download of {path} interrupted {requests} times; gave up at "
                    f"{state.received}/{length} bytes"
                )
            if requests:
                resumed.append(state.received)
            requests += 1
            state.check(path)
            try:
                self._fetch_from(path, sink, state, length)
            except HttpError as exc:
                if exc.status < 500 or requests > max_resumes:
                    raise
            except DownloadTooSlow:
                self.close()
                raise
            except TransportError:
                if requests > max_resumes:
                    raise
        if self._conn is not None and self._conn.sock is not None:
            self._conn.sock.settimeout(self._timeout)  # as it was before the deadline
        digest = state.digest.digest()
        if not hmac.compare_digest(digest, sha256):
            raise HashMismatch(
                f"downloaded {path} does not match the manifest's SHA-256 (corrupted or tampered "
                "in transit or on the server)"
            )
        return DownloadResult(length, digest, requests, tuple(resumed))

    def _fetch_from(
        self, path: str, sink: Callable[[bytes], object], state: _Transfer, length: int
    ) -> None:
        """One GET from ``state.received`` on; advances ``state`` as bytes arrive."""
        offset = state.received
        headers = {"Accept": "application/octet-stream"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if state.etag:
                headers["If-Range"] = state.etag
        resp = self._send("GET", path, None, headers)
        skip = 0
        if resp.status == 206:
            match = _CONTENT_RANGE.match(resp.getheader("Content-Range") or "")
            if not match or int(match[1]) != offset or int(match[3]) != length:
                self.close()
                raise VerificationError(
                    f"server answered range {resp.getheader('Content-Range')!r} for "
                    f"bytes={offset}- of a {length}-byte file"
                )
        elif resp.status == 200:
            skip = offset  # server ignored Range: drop what we already have
        else:
            try:
                body = resp.read(4096)
            except _NETWORK_ERRORS:
                body = b""
            self.close()
            if 300 <= resp.status < 400:
                raise VerificationError(f"{path}: server redirected ({resp.status}); not followed")
            raise HttpError(resp.status, _error_text(body))
        declared = resp.getheader("Content-Length")
        total = int(declared) + offset - skip if declared and declared.isdigit() else None
        if total is not None and total > length:
            self.close()
            raise VerificationError(f"{path} is larger than the manifest says ({total} > {length})")
        state.etag = resp.getheader("ETag") or state.etag
        try:
            while state.received < length:
                left = state.check(path)
                if left is not None and self._conn is not None and self._conn.sock is not None:
                    self._conn.sock.settimeout(max(0.001, min(self._timeout, left)))
                # read1: at most one read from the socket, so the deadline and the rate are
                # checked between any two arrivals, however slowly the bytes trickle in
                chunk = resp.read1(min(self._chunk, length - state.received + skip))
                if not chunk:
                    break
                if skip:
                    dropped = min(skip, len(chunk))
                    chunk = chunk[dropped:]
                    skip -= dropped
                    if not chunk:
                        continue
                state.digest.update(chunk)
                sink(chunk)
                state.received += len(chunk)
        except _NETWORK_ERRORS as exc:
            self.close()
            state.check(path)  # a timeout at the deadline is the deadline
            raise TransportError(
                f"download of {path} cut at {state.received} bytes: {exc}"
            ) from None
        if state.received < length:
            self.close()
            raise TransportError(
                f"download of {path} ended early at {state.received}/{length} bytes"
            )
        if resp.will_close:
            self.close()
            return
        # The body must end exactly here; keep the connection for the next request.
        try:
            extra = resp.read(1)
        except _NETWORK_ERRORS:
            extra = b""
            self.close()
        if extra:
            self.close()
            raise VerificationError(f"{path} is larger than the manifest says ({length})")


def _error_text(data: bytes) -> str:
    """The server's error message, without control characters (it reaches a terminal)."""
    try:
        obj = json.loads(data)
        if isinstance(obj, dict) and isinstance(obj.get("error"), str):
            return printable(obj["error"])[:500]
    except ValueError:
        pass
    return printable(data[:200].decode("utf-8", "replace")) or "no details"


def decode_json(status: int, data: bytes, path: str, ok: tuple[int, ...]) -> Any:
    if status not in ok:
        if status in (401, 403):
            raise HttpError(status, f"{path}: not authorised ({_error_text(data)})")
        raise HttpError(status, _error_text(data))
    try:
        return json.loads(data)
    except ValueError:
        raise TransportError(f"{path}: server answered with invalid JSON") from None
