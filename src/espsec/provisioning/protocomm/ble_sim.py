"""A BLE GATT transport modelled in-process, as ESP-IDF ``protocomm_ble.c`` lays it out.

* One primary service; each endpoint is a characteristic whose 128-bit UUID is the
  service UUID with its 16-bit part (bytes 12-13 of the little-endian UUID, characters
  4-8 of the text form) replaced by the endpoint's 16-bit id.
* Each characteristic carries a Characteristic User Description descriptor (``0x2901``)
  holding the endpoint name; clients map names to characteristics through it.
* A value longer than one ATT packet is written with Prepare Write requests of
  ``MTU - 5`` bytes and an Execute Write, and read back with Read Blob requests of
  ``MTU - 1`` bytes; the device runs the endpoint when the write executes.
* A GATT connection is a protocomm session: connecting opens it, disconnecting closes it.

:class:`GattServer` is the device side; :class:`BleSimTransport` is a client (esp_prov's
``transport_ble``) speaking through a :class:`GattConnection`, so a real BLE transport can
replace this one without touching the protocomm or provisioning code above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

from espsec.provisioning.errors import ProtocommError, TransportError
from espsec.provisioning.protocomm.core import Protocomm
from espsec.provisioning.protocomm.security import INVALID_ARGUMENT

USER_DESCRIPTION_UUID = 0x2901
"""Characteristic User Description descriptor."""
DEFAULT_MTU = 23
"""The ATT MTU before an MTU exchange."""
MAX_MTU = 517
PREPARE_BUF_MAX = 4096
"""Bytes a long write may queue before it executes (the device refuses more)."""
FALLBACK_SERVICE_UUID = "021a9004-0382-4aea-bff4-6b3f1c5adfb4"
"""The service UUID esp_prov falls back to."""
PROV_ENDPOINT_IDS = {
    "prov-ctrl": 0xFF4F,
    "prov-scan": 0xFF50,
    "prov-session": 0xFF51,
    "prov-config": 0xFF52,
    "proto-ver": 0xFF53,
}
"""16-bit ids ESP-IDF's Wi-Fi provisioning manager (``scheme_ble.c``) gives its endpoints;
custom endpoints get the next free ids from 0xFF54."""
LOCAL_CTRL_ENDPOINT_IDS = {
    "esp_local_ctrl/version": 0x0001,
    "esp_local_ctrl/session": 0x0002,
    "esp_local_ctrl/control": 0x0003,
}
"""16-bit ids of ESP Local Control's endpoints over BLE."""

ATT_INVALID_OFFSET = 0x07
ATT_PREPARE_QUEUE_FULL = 0x09
ATT_ATTRIBUTE_NOT_FOUND = 0x0A
ATT_INVALID_ATTRIBUTE_VALUE_LENGTH = 0x0D
ATT_UNLIKELY_ERROR = 0x0E


class AttError(TransportError):
    """An ATT error response (``code`` from the Bluetooth Core spec, Vol 3 Part F 3.4.1.1)."""

    def __init__(self, message: str, code: int, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def characteristic_uuid(service_uuid: str, endpoint_id: int) -> str:
    """The characteristic UUID of endpoint ``endpoint_id`` under ``service_uuid``."""
    text = service_uuid.lower()
    if len(text) != 36 or not 0 <= endpoint_id <= 0xFFFF:
        raise ValueError(f"not a 128-bit UUID: {service_uuid!r}")
    return f"{text[:4]}{endpoint_id:04x}{text[8:]}"


@dataclass(frozen=True)
class Characteristic:
    uuid: str
    name: str


@dataclass
class _LinkState:
    session_id: int
    mtu: int
    prepared: dict[str, bytearray] = field(default_factory=dict)
    values: dict[str, bytes] = field(default_factory=dict)


class GattServer:
    """The device's GATT service for a protocomm instance (``protocomm_ble_start``)."""

    def __init__(
        self,
        protocomm: Protocomm,
        *,
        service_uuid: str = FALLBACK_SERVICE_UUID,
        endpoint_ids: dict[str, int] | None = None,
        device_name: str = "PROV_espsec",
    ) -> None:
        ids = dict(PROV_ENDPOINT_IDS if endpoint_ids is None else endpoint_ids)
        next_id = max(ids.values(), default=0xFF53) + 1
        for name in protocomm.endpoints:
            if name not in ids:
                ids[name] = next_id
                next_id += 1
        self.protocomm = protocomm
        self.service_uuid = service_uuid.lower()
        self.device_name = device_name
        self.characteristics = tuple(
            Characteristic(characteristic_uuid(service_uuid, ids[name]), name)
            for name in protocomm.endpoints
        )
        self._by_uuid = {c.uuid: c for c in self.characteristics}
        self._links: dict[int, _LinkState] = {}
        self._ids = count(1)

    def __repr__(self) -> str:
        return f"<GattServer {self.service_uuid} {len(self.characteristics)} characteristics>"

    def connect(self, mtu: int = DEFAULT_MTU) -> GattConnection:
        """A central connects (and exchanges ``mtu``): a new protocomm session."""
        mtu = max(DEFAULT_MTU, min(mtu, MAX_MTU))
        conn_id = next(self._ids)
        self._links[conn_id] = _LinkState(conn_id, mtu)
        self.protocomm.open_session(conn_id)
        return GattConnection(self, conn_id, mtu)

    def _link(self, conn_id: int) -> _LinkState:
        link = self._links.get(conn_id)
        if link is None:
            raise AttError("not connected", ATT_UNLIKELY_ERROR)
        return link

    def _char(self, uuid: str) -> Characteristic:
        found = self._by_uuid.get(uuid.lower())
        if found is None:
            raise AttError(f"no characteristic {uuid}", ATT_ATTRIBUTE_NOT_FOUND)
        return found

    def disconnect(self, conn_id: int) -> None:
        if self._links.pop(conn_id, None) is not None:
            self.protocomm.close_session(conn_id)

    def read_descriptor(self, conn_id: int, uuid: str, descriptor: int) -> bytes:
        self._link(conn_id)
        char = self._char(uuid)
        if descriptor != USER_DESCRIPTION_UUID:
            raise AttError(f"no descriptor 0x{descriptor:04x}", ATT_ATTRIBUTE_NOT_FOUND)
        return char.name.encode()

    def write(self, conn_id: int, uuid: str, value: bytes) -> None:
        """A Write Request (at most ``MTU - 3`` bytes): runs the endpoint."""
        link = self._link(conn_id)
        char = self._char(uuid)
        if len(value) > link.mtu - 3:
            raise AttError("value longer than one packet", ATT_INVALID_ATTRIBUTE_VALUE_LENGTH)
        self._run(link, char, value)

    def prepare_write(self, conn_id: int, uuid: str, offset: int, part: bytes) -> None:
        link = self._link(conn_id)
        char = self._char(uuid)
        if len(part) > link.mtu - 5:
            raise AttError("prepared part longer than MTU - 5", ATT_INVALID_ATTRIBUTE_VALUE_LENGTH)
        buf = link.prepared.setdefault(char.uuid, bytearray())
        if offset != len(buf):
            raise AttError(f"prepare write at offset {offset}", ATT_INVALID_OFFSET)
        if offset + len(part) > PREPARE_BUF_MAX:
            link.prepared.pop(char.uuid, None)
            raise AttError("prepare queue full", ATT_PREPARE_QUEUE_FULL)
        buf += part

    def execute_write(self, conn_id: int, uuid: str, *, commit: bool = True) -> None:
        link = self._link(conn_id)
        char = self._char(uuid)
        value = bytes(link.prepared.pop(char.uuid, b""))
        if commit:
            self._run(link, char, value)

    def read_blob(self, conn_id: int, uuid: str, offset: int) -> bytes:
        """A Read (offset 0) or Read Blob request: ``MTU - 1`` bytes of the last reply."""
        link = self._link(conn_id)
        char = self._char(uuid)
        value = link.values.get(char.uuid, b"")
        if offset > len(value):
            raise AttError(f"read at offset {offset} past {len(value)}", ATT_INVALID_OFFSET)
        return value[offset : offset + link.mtu - 1]

    def _run(self, link: _LinkState, char: Characteristic, value: bytes) -> None:
        try:
            link.values[char.uuid] = self.protocomm.handle(char.name, link.session_id, value)
        except ProtocommError as exc:
            link.values.pop(char.uuid, None)
            raise AttError(exc.message, ATT_UNLIKELY_ERROR, exc.status) from None


class GattConnection:
    """One central's link to a :class:`GattServer` (the ATT operations a client uses)."""

    def __init__(self, server: GattServer, conn_id: int, mtu: int) -> None:
        self.server = server
        self.conn_id = conn_id
        self.mtu = mtu
        self.packets = 0
        """ATT requests sent so far (each prepare, execute, read, write)."""

    def __repr__(self) -> str:
        return f"<GattConnection {self.conn_id} mtu={self.mtu}>"

    def discover(self) -> dict[str, str]:
        """Endpoint name -> characteristic UUID, read from the 0x2901 descriptors."""
        names = {}
        for char in self.server.characteristics:
            self.packets += 1
            name = self.server.read_descriptor(self.conn_id, char.uuid, USER_DESCRIPTION_UUID)
            names[name.decode()] = char.uuid
        return names

    def write_value(self, uuid: str, value: bytes) -> None:
        if len(value) <= self.mtu - 3:
            self.packets += 1
            self.server.write(self.conn_id, uuid, value)
            return
        step = self.mtu - 5
        for offset in range(0, len(value), step):
            self.packets += 1
            self.server.prepare_write(self.conn_id, uuid, offset, value[offset : offset + step])
        self.packets += 1
        self.server.execute_write(self.conn_id, uuid)

    def read_value(self, uuid: str) -> bytes:
        out = bytearray()
        while True:
            self.packets += 1
            part = self.server.read_blob(self.conn_id, uuid, len(out))
            out += part
            if len(part) < self.mtu - 1:
                return bytes(out)

    def disconnect(self) -> None:
        self.server.disconnect(self.conn_id)


class BleSimTransport:
    """A client transport over a simulated GATT link (esp_prov ``transport_ble``)."""

    def __init__(self, server: GattServer, *, mtu: int = DEFAULT_MTU) -> None:
        self.link = server.connect(mtu)
        self.lookup = self.link.discover()

    def __repr__(self) -> str:
        return f"<BleSimTransport {self.link!r}>"

    def send(self, endpoint: str, data: bytes) -> bytes:
        uuid = self.lookup.get(endpoint)
        if uuid is None:
            raise ProtocommError(
                f"the device has no endpoint {endpoint!r}", status=INVALID_ARGUMENT
            )
        try:
            self.link.write_value(uuid, data)
            return self.link.read_value(uuid)
        except AttError as exc:
            if exc.status is not None:
                raise ProtocommError(f"{endpoint}: {exc}", status=exc.status) from None
            raise

    def close(self) -> None:
        self.link.disconnect()
