"""Errors of protocomm sessions, Wi-Fi provisioning and ESP Local Control."""

from __future__ import annotations

from espsec.errors import EspsecError
from espsec.provisioning.proto import constants_pb2


def status_name(code: int) -> str:
    """The name of a protocomm ``Status`` code (``constants.proto``), e.g. ``CryptoError``."""
    try:
        return constants_pb2.Status.Name(code)
    except ValueError:
        return f"Status({code})"


class ProtocommError(EspsecError):
    """A protocomm request the peer refused, or a reply that does not follow the protocol.

    ``status`` is the protocomm ``Status`` code (``constants.proto``) that says why.
    """

    def __init__(self, message: str, *, status: int, source: str | None = None) -> None:
        super().__init__(message, source=source)
        self.status = status

    @property
    def status_name(self) -> str:
        return status_name(self.status)


class SessionError(ProtocommError):
    """The secure session could not be established (wrong PoP or password, bad handshake,
    a device that downgrades security, a device locked out after failed attempts)."""


class TransportError(EspsecError):
    """The transport failed (connection refused, closed, HTTP error without a status)."""
