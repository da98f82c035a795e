"""What every protocomm security scheme provides, on the device and on the client.

The device side mirrors ESP-IDF's ``protocomm_security_t``
(``components/protocomm/include/security/protocomm_security.h``): one session at a time
(a new transport session closes the old one), a handler for the session endpoint, and
``encrypt`` / ``decrypt`` for every other endpoint. The client side runs the handshake
over a ``send`` function and then encrypts requests and decrypts replies.

Refusals carry a protocomm ``Status`` (``constants.proto``). Where ESP-IDF's device only
fails the request, espsec's device answers the session endpoint with the scheme's
response message and that ``Status`` (clients built on esp_prov still see a failed
handshake), and raises :class:`~espsec.provisioning.errors.ProtocommError` for the
other endpoints, which the transport turns into an error reply.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

from google.protobuf.message import DecodeError

from espsec.provisioning.errors import ProtocommError, SessionError, status_name
from espsec.provisioning.proto import constants_pb2, session_pb2

Status = constants_pb2.Status
SUCCESS = constants_pb2.Success
INVALID_SEC_SCHEME = constants_pb2.InvalidSecScheme
INVALID_PROTO = constants_pb2.InvalidProto
TOO_MANY_SESSIONS = constants_pb2.TooManySessions
INVALID_ARGUMENT = constants_pb2.InvalidArgument
INTERNAL_ERROR = constants_pb2.InternalError
CRYPTO_ERROR = constants_pb2.CryptoError
INVALID_SESSION = constants_pb2.InvalidSession

NO_SESSION = -1


class Outcome(Enum):
    """What one message on the session endpoint did to the session."""

    PROGRESS = "progress"
    """A handshake step succeeded; more follow."""
    ESTABLISHED = "established"
    """The secure session is up."""
    FAILED = "failed"
    """The step was refused (the reply carries the Status)."""


@dataclass(frozen=True)
class SessionReply:
    """The device's answer on the session endpoint, and what it did."""

    data: bytes
    outcome: Outcome
    status: int = SUCCESS
    reason: str = ""

    @property
    def status_name(self) -> str:
        return status_name(self.status)


def parse_session_data(data: bytes) -> session_pb2.SessionData | None:
    """``SessionData`` from ``data``, or ``None`` if it is not one."""
    message = session_pb2.SessionData()
    try:
        message.ParseFromString(data)
    except DecodeError:
        return None
    return message


class DeviceSecurity(abc.ABC):
    """One protocomm security scheme on the device (``protocomm_security_t``)."""

    version: int
    patch_version: int = 0

    def __init__(self) -> None:
        self.session_id = NO_SESSION

    def new_session(self, session_id: int) -> None:
        """``new_transport_session``: only one session at a time, the old one closes."""
        if self.session_id != NO_SESSION:
            self.close_session(self.session_id)
        self.session_id = session_id

    def close_session(self, session_id: int) -> None:
        """``close_transport_session``: forget the session and its keys."""
        if session_id == self.session_id:
            self._reset()
            self.session_id = NO_SESSION

    @abc.abstractmethod
    def _reset(self) -> None:
        """Drop the current session's state and keys."""

    @abc.abstractmethod
    def established(self, session_id: int) -> bool:
        """Whether ``session_id`` has finished the handshake."""

    @abc.abstractmethod
    def session_request(self, session_id: int, data: bytes) -> SessionReply:
        """Handle one message on the session endpoint (``security_req_handler``)."""

    @abc.abstractmethod
    def refusal(self, status: int) -> bytes:
        """The scheme's first response message carrying ``status`` and nothing else."""

    def encrypt(self, session_id: int, data: bytes) -> bytes:
        return data

    def decrypt(self, session_id: int, data: bytes) -> bytes:
        return data

    def _check_session(self, session_id: int) -> None:
        if session_id != self.session_id or not self.established(session_id):
            raise ProtocommError(
                "no secure session established for this request", status=INVALID_SESSION
            )


P = TypeVar("P")


class HandshakeSecurity(DeviceSecurity, Generic[P]):
    """A scheme with the two-step handshake of security 1 and 2 (``Command0`` →
    ``Response0``, ``Command1`` → ``Response1``, then the session is up): the dispatch
    and the refusals they share. ``P`` is the scheme's payload message."""

    proto: str
    """The ``SessionData`` field holding the scheme's messages (``sec1``, ``sec2``)."""
    command0: int
    command1: int
    response0: int
    _state: int
    """0: no handshake yet; 1: ``Response0`` sent; 2: established."""

    @staticmethod
    @abc.abstractmethod
    def _response(msg: int, status: int, **fields: bytes) -> bytes:
        """The scheme's response message ``msg`` with ``status`` and ``fields``."""

    @abc.abstractmethod
    def _command0(self, payload: P) -> SessionReply: ...

    @abc.abstractmethod
    def _command1(self, payload: P) -> SessionReply: ...

    def established(self, session_id: int) -> bool:
        return session_id == self.session_id and self._state == 2

    def refusal(self, status: int) -> bytes:
        return self._response(self.response0, status)

    def _fail(self, msg: int, status: int, reason: str) -> SessionReply:
        self._reset()
        return SessionReply(self._response(msg, status), Outcome.FAILED, status, reason)

    def session_request(self, session_id: int, data: bytes) -> SessionReply:
        request = parse_session_data(data)
        if request is None:
            return self._fail(self.response0, INVALID_PROTO, "not a SessionData")
        if request.sec_ver != self.version or request.WhichOneof("proto") != self.proto:
            return self._fail(
                self.response0, INVALID_SEC_SCHEME, f"client asked for security {request.sec_ver}"
            )
        payload: Any = getattr(request, self.proto)
        if payload.msg == self.command0:
            return self._command0(payload)
        if payload.msg == self.command1:
            return self._command1(payload)
        return self._fail(self.response0, INVALID_ARGUMENT, "unknown message type")


Send = Callable[[bytes], bytes]
"""Sends one message to the session endpoint and returns the device's reply."""


class ClientSecurity(abc.ABC):
    """One protocomm security scheme on the client (esp_prov ``security/*.py``)."""

    version: int

    @abc.abstractmethod
    def handshake(self, send: Send) -> None:
        """Run the session handshake; :class:`SessionError` if the device refuses it or
        does not prove itself."""

    def encrypt(self, data: bytes) -> bytes:
        return data

    def decrypt(self, data: bytes) -> bytes:
        return data

    def _reply(self, data: bytes) -> session_pb2.SessionData:
        reply = parse_session_data(data)
        if reply is None:
            raise SessionError(
                "the device's session reply is not a protocomm SessionData message",
                status=INVALID_PROTO,
            )
        if reply.sec_ver != self.version:
            raise SessionError(
                f"the device answered with security {reply.sec_ver}, expected {self.version}",
                status=INVALID_SEC_SCHEME,
            )
        return reply


def check_status(status: int, step: str) -> None:
    """Raise :class:`SessionError` unless ``status`` is ``Success``."""
    if status != SUCCESS:
        raise SessionError(
            f"the device refused {step} with status {status_name(status)}", status=status
        )
