"""Protocomm: ESP-IDF's secure session layer (security 0, 1, 2) and its transports.

Device side: a :class:`Protocomm` with a :class:`DeviceSecurity` scheme and endpoint
handlers, served by :class:`ProtocommHttpServer`, a simulated BLE :class:`GattServer`
or a :class:`ConsoleServer`. Client side: a transport (:class:`HttpTransport`,
:class:`BleSimTransport`, :class:`ConsoleTransport`) and a :class:`ClientSession`.
"""

from espsec.provisioning.protocomm.ble_sim import BleSimTransport, GattServer
from espsec.provisioning.protocomm.client import (
    ClientSession,
    Transport,
    VersionInfo,
    client_security,
    read_version,
)
from espsec.provisioning.protocomm.console import ConsoleServer, ConsoleTransport
from espsec.provisioning.protocomm.core import (
    Protocomm,
    SessionEvent,
    SessionLog,
    SessionPolicy,
)
from espsec.provisioning.protocomm.httpd import HttpTransport, ProtocommHttpServer
from espsec.provisioning.protocomm.security import ClientSecurity, DeviceSecurity
from espsec.provisioning.protocomm.security0 import Security0Client, Security0Device
from espsec.provisioning.protocomm.security1 import Security1Client, Security1Device
from espsec.provisioning.protocomm.security2 import Security2Client, Security2Device

__all__ = [
    "BleSimTransport",
    "ClientSecurity",
    "ClientSession",
    "ConsoleServer",
    "ConsoleTransport",
    "DeviceSecurity",
    "GattServer",
    "HttpTransport",
    "Protocomm",
    "ProtocommHttpServer",
    "Security0Client",
    "Security0Device",
    "Security1Client",
    "Security1Device",
    "Security2Client",
    "Security2Device",
    "SessionEvent",
    "SessionLog",
    "SessionPolicy",
    "Transport",
    "VersionInfo",
    "client_security",
    "read_version",
]
