"""Protocomm security 0: no security, plaintext (ESP-IDF ``src/security/security0.c``)."""

from __future__ import annotations

from espsec.provisioning.proto import sec0_pb2, session_pb2
from espsec.provisioning.protocomm.security import (
    INVALID_ARGUMENT,
    INVALID_PROTO,
    INVALID_SEC_SCHEME,
    SUCCESS,
    ClientSecurity,
    DeviceSecurity,
    Outcome,
    Send,
    SessionReply,
    check_status,
    parse_session_data,
)


def _response(status: int) -> bytes:
    reply = session_pb2.SessionData(sec_ver=session_pb2.SecScheme0)
    reply.sec0.msg = sec0_pb2.S0_Session_Response
    reply.sec0.sr.status = status  # type: ignore[assignment]
    return reply.SerializeToString()


def _fail(status: int, reason: str) -> SessionReply:
    return SessionReply(_response(status), Outcome.FAILED, status, reason)


class Security0Device(DeviceSecurity):
    """The device side: any session is "established" once the transport opens it."""

    version = 0

    def _reset(self) -> None:
        pass

    def established(self, session_id: int) -> bool:
        return True

    def refusal(self, status: int) -> bytes:
        return _response(status)

    def session_request(self, session_id: int, data: bytes) -> SessionReply:
        request = parse_session_data(data)
        if request is None:
            return _fail(INVALID_PROTO, "not a SessionData")
        if request.sec_ver != self.version or request.WhichOneof("proto") != "sec0":
            return _fail(INVALID_SEC_SCHEME, f"client asked for security {request.sec_ver}")
        if request.sec0.msg != sec0_pb2.S0_Session_Command:
            return _fail(INVALID_ARGUMENT, "not a session command")
        return SessionReply(_response(SUCCESS), Outcome.ESTABLISHED)


class Security0Client(ClientSecurity):
    """The client side (esp_prov ``security0.py``)."""

    version = 0

    def handshake(self, send: Send) -> None:
        request = session_pb2.SessionData(sec_ver=session_pb2.SecScheme0)
        request.sec0.msg = sec0_pb2.S0_Session_Command
        request.sec0.sc.SetInParent()
        reply = self._reply(send(request.SerializeToString()))
        if reply.WhichOneof("proto") == "sec0":
            check_status(reply.sec0.sr.status, "the security 0 session")
