"""The protocomm instance: endpoints, the session endpoint, the version endpoint.

As ESP-IDF ``components/protocomm/src/common/protocomm.c``: the version endpoint answers
in plaintext, the session endpoint runs the security scheme's handshake, and every other
endpoint decrypts the request, calls its handler and encrypts the reply with the
session's keys. Transports (``httpd``, ``ble_sim``, ``console``) map their connections
to session ids and call :meth:`Protocomm.handle`.

Beyond ESP-IDF, and off by default to match it: :class:`SessionPolicy` can lock the
session endpoint after N failed handshakes (until the device restarts), and every
session event is recorded in a :class:`SessionLog`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from espsec.provisioning.errors import ProtocommError, status_name
from espsec.provisioning.protocomm.security import (
    INVALID_ARGUMENT,
    INVALID_SESSION,
    TOO_MANY_SESSIONS,
    DeviceSecurity,
    Outcome,
)

Handler = Callable[[int, bytes], bytes]
"""An endpoint handler: ``(session_id, request plaintext) -> reply plaintext``; it raises
:class:`ProtocommError` for a request it refuses."""


class UnknownEndpoint(ProtocommError):
    """A request to an endpoint the device does not have."""


@dataclass(frozen=True)
class SessionEvent:
    """One entry of the device's session log."""

    at: float
    session_id: int
    event: str
    """``new``, ``closed``, ``established``, ``failed``, ``locked-out``, ``refused``."""
    status: str = "Success"
    detail: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "at": round(self.at, 3),
            "session": self.session_id,
            "event": self.event,
            "status": self.status,
            "detail": self.detail,
        }


@dataclass
class SessionLog:
    """The session events of one protocomm instance; ``sink`` also receives each one."""

    events: list[SessionEvent] = field(default_factory=list)
    sink: Callable[[SessionEvent], None] | None = None
    clock: Callable[[], float] = time.time

    def record(
        self, session_id: int, event: str, status: int | None = None, detail: str = ""
    ) -> None:
        entry = SessionEvent(
            self.clock(),
            session_id,
            event,
            "Success" if status is None else status_name(status),
            detail,
        )
        self.events.append(entry)
        if self.sink is not None:
            self.sink(entry)


@dataclass(frozen=True)
class SessionPolicy:
    """Session limits beyond ESP-IDF. ``max_failed_sessions``: after this many failed
    handshakes (counted since the last successful one), refuse every new handshake with
    ``TooManySessions`` until the device restarts; ``None`` (ESP-IDF's behaviour): never."""

    max_failed_sessions: int | None = None

    def __post_init__(self) -> None:
        if self.max_failed_sessions is not None and self.max_failed_sessions < 1:
            raise ValueError("max_failed_sessions must be at least 1")


class Protocomm:
    """One protocomm instance with its security scheme and endpoints.

    Thread-safe: every request runs under :attr:`lock` (a device serves one at a time).
    """

    def __init__(
        self,
        security: DeviceSecurity,
        *,
        session_endpoint: str,
        version_endpoint: str,
        version_info: str,
        policy: SessionPolicy | None = None,
        log: SessionLog | None = None,
    ) -> None:
        self.security = security
        self.session_endpoint = session_endpoint
        self.version_endpoint = version_endpoint
        self.version_info = version_info
        self.policy = policy or SessionPolicy()
        self.log = log or SessionLog()
        self.lock = threading.RLock()
        self.failed_sessions = 0
        self._handlers: dict[str, Handler] = {}

    def __repr__(self) -> str:
        return f"<Protocomm security {self.security.version} {sorted(self.endpoints)}>"

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Every endpoint name, version and session endpoints first."""
        return (self.version_endpoint, self.session_endpoint, *self._handlers)

    @property
    def locked_out(self) -> bool:
        limit = self.policy.max_failed_sessions
        return limit is not None and self.failed_sessions >= limit

    def add_endpoint(self, name: str, handler: Handler) -> None:
        """``protocomm_add_endpoint``: a request endpoint whose traffic is encrypted."""
        if name in self.endpoints:
            raise ValueError(f"endpoint {name!r} already exists")
        self._handlers[name] = handler

    def open_session(self, session_id: int) -> None:
        """A transport opened a new session (closing the previous one)."""
        with self.lock:
            old = self.security.session_id
            if old >= 0 and old != session_id:
                self.log.record(old, "closed", detail="a new session replaced it")
            self.security.new_session(session_id)
            self.log.record(session_id, "new")

    def close_session(self, session_id: int) -> None:
        with self.lock:
            if self.security.session_id == session_id:
                self.security.close_session(session_id)
                self.log.record(session_id, "closed")

    def handle(self, endpoint: str, session_id: int, data: bytes) -> bytes:
        """``protocomm_req_handle``: the reply to ``data`` sent to ``endpoint``."""
        with self.lock:
            if endpoint == self.version_endpoint:
                return self.version_info.encode()
            if endpoint == self.session_endpoint:
                return self._session(session_id, data)
            handler = self._handlers.get(endpoint)
            if handler is None:
                raise UnknownEndpoint(f"no endpoint {endpoint!r}", status=INVALID_ARGUMENT)
            if session_id != self.security.session_id:
                self.log.record(session_id, "refused", INVALID_SESSION, f"{endpoint}: no session")
                raise ProtocommError("no session established", status=INVALID_SESSION)
            try:
                plain = self.security.decrypt(session_id, data)
            except ProtocommError as exc:
                self.log.record(session_id, "refused", exc.status, f"{endpoint}: {exc.message}")
                raise
            reply = handler(session_id, plain)
            return self.security.encrypt(session_id, reply)

    def _session(self, session_id: int, data: bytes) -> bytes:
        if self.locked_out:
            self.log.record(
                session_id,
                "locked-out",
                TOO_MANY_SESSIONS,
                f"{self.failed_sessions} failed handshakes",
            )
            return self.security.refusal(TOO_MANY_SESSIONS)
        if session_id != self.security.session_id:
            self.open_session(session_id)
        reply = self.security.session_request(session_id, data)
        if reply.outcome is Outcome.FAILED:
            self.failed_sessions += 1
            self.log.record(session_id, "failed", reply.status, reply.reason)
        elif reply.outcome is Outcome.ESTABLISHED:
            self.failed_sessions = 0
            self.log.record(session_id, "established")
        return reply.data
