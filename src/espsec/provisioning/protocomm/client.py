"""The client side of a protocomm session over any transport (esp_prov's flow).

:func:`read_version` reads the version endpoint (``proto-ver`` for Wi-Fi provisioning,
``esp_local_ctrl/version`` for Local Control); :func:`client_security` picks the scheme
the caller asked for and refuses a device that offers less (a different ``sec_ver``, or
security 2 with a ``sec_patch_ver`` below the one required); :class:`ClientSession` runs
the handshake and then encrypts every request and decrypts every reply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self

from espsec.errors import UsageError
from espsec.provisioning.errors import SessionError
from espsec.provisioning.protocomm.security import (
    INVALID_SEC_SCHEME,
    INVALID_SESSION,
    ClientSecurity,
)
from espsec.provisioning.protocomm.security0 import Security0Client
from espsec.provisioning.protocomm.security1 import Security1Client
from espsec.provisioning.protocomm.security2 import CURRENT_PATCH_VERSION, Security2Client


class Transport(Protocol):
    """What a client needs of a transport: send to an endpoint, get the reply."""

    def send(self, endpoint: str, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class VersionInfo:
    """What the version endpoint says (``{"prov": {"ver", "sec_ver", "sec_patch_ver", "cap"}}``)."""

    raw: str
    ver: str = ""
    sec_ver: int | None = None
    sec_patch_ver: int = 0
    capabilities: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, key: str) -> VersionInfo:
        """Parse a version reply; a plain string (old firmware) is only a version."""
        try:
            doc = json.loads(text)
        except ValueError:
            return cls(raw=text, ver=text)
        info = doc.get(key) if isinstance(doc, dict) else None
        if not isinstance(info, dict):
            return cls(raw=text, extra=doc if isinstance(doc, dict) else {})
        sec_ver = info.get("sec_ver")
        patch = info.get("sec_patch_ver", 0)
        cap = info.get("cap", [])
        return cls(
            raw=text,
            ver=str(info.get("ver", "")),
            sec_ver=sec_ver if isinstance(sec_ver, int) else None,
            sec_patch_ver=patch if isinstance(patch, int) else 0,
            capabilities=tuple(str(c) for c in cap) if isinstance(cap, list) else (),
            extra={k: v for k, v in doc.items() if k != key},
        )

    def to_json(self) -> dict[str, object]:
        return {
            "ver": self.ver,
            "sec_ver": self.sec_ver,
            "sec_patch_ver": self.sec_patch_ver,
            "cap": list(self.capabilities),
        }


def read_version(transport: Transport, endpoint: str, key: str) -> VersionInfo:
    """Ask the version endpoint (esp_prov sends ``---`` to read it)."""
    reply = transport.send(endpoint, b"---")
    return VersionInfo.parse(reply.decode("utf-8", "replace"), key)


def client_security(
    sec_ver: int,
    info: VersionInfo,
    *,
    pop: bytes | None = None,
    username: bytes | None = None,
    password: bytes | None = None,
    min_patch_version: int = CURRENT_PATCH_VERSION,
) -> ClientSecurity:
    """The client side of scheme ``sec_ver``, refusing a device that offers another one
    or (security 2) a ``sec_patch_ver`` below ``min_patch_version``."""
    if info.sec_ver is not None and info.sec_ver != sec_ver:
        raise SessionError(
            f"the device offers security {info.sec_ver}, not the security {sec_ver} asked for",
            status=INVALID_SEC_SCHEME,
        )
    if sec_ver == 0:
        return Security0Client()
    if sec_ver == 1:
        return Security1Client(pop)
    if sec_ver == 2:
        if not username or password is None:
            raise UsageError("security 2 needs a username and a password")
        return Security2Client(
            username,
            password,
            patch_version=info.sec_patch_ver,
            min_patch_version=min_patch_version,
        )
    raise UsageError(f"security version must be 0, 1 or 2, got {sec_ver}")


class ClientSession:
    """A secure session with a device: handshake on ``session_endpoint``, then encrypted
    requests to the other endpoints."""

    def __init__(
        self, transport: Transport, security: ClientSecurity, *, session_endpoint: str
    ) -> None:
        self.transport = transport
        self.security = security
        self.session_endpoint = session_endpoint
        self.established = False

    def __repr__(self) -> str:
        return f"<ClientSession security {self.security.version}>"

    def establish(self) -> ClientSession:
        self.security.handshake(lambda data: self.transport.send(self.session_endpoint, data))
        self.established = True
        return self

    def call(self, endpoint: str, data: bytes) -> bytes:
        """Send ``data`` to ``endpoint`` encrypted; the decrypted reply."""
        if not self.established:
            raise SessionError("establish the session first", status=INVALID_SESSION)
        return self.security.decrypt(self.transport.send(endpoint, self.security.encrypt(data)))


class ServiceClient:
    """The client of a service over protocomm (Wi-Fi provisioning, ESP Local Control):
    :meth:`connect` reads the service's version endpoint, picks the scheme and runs the
    handshake; subclasses add the service's calls over :attr:`session`."""

    service: ClassVar[str]
    """The version endpoint's JSON key (``prov``, ``local_ctrl``)."""
    version_endpoint: ClassVar[str]
    session_endpoint: ClassVar[str]

    def __init__(self, session: ClientSession, version: VersionInfo) -> None:
        self.session = session
        self.version = version

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.session!r}>"

    @classmethod
    def connect(
        cls,
        transport: Transport,
        sec_ver: int,
        *,
        pop: bytes | None = None,
        username: bytes | None = None,
        password: bytes | None = None,
        min_patch_version: int = CURRENT_PATCH_VERSION,
    ) -> Self:
        """Read the version, pick the scheme (refusing a downgrade), run the handshake."""
        info = read_version(transport, cls.version_endpoint, cls.service)
        security = client_security(
            sec_ver,
            info,
            pop=pop,
            username=username,
            password=password,
            min_patch_version=min_patch_version,
        )
        session = ClientSession(transport, security, session_endpoint=cls.session_endpoint)
        return cls(session.establish(), info)
