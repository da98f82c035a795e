"""ESP Local Control: read and set device properties over a protocomm session.

As ESP-IDF ``components/esp_local_ctrl`` (``src/esp_local_ctrl_handler.c``,
``proto/esp_local_ctrl.proto``): endpoints ``esp_local_ctrl/version`` (plaintext JSON),
``esp_local_ctrl/session`` (the security handshake) and ``esp_local_ctrl/control``
(``LocalCtrlMessage``: get the property count, get values by index, set values by
index). Properties have a name, a type, flags and a value. The types and the read-only
flag are those of ESP-IDF's example (``examples/protocols/esp_local_ctrl``:
``PROP_TYPE_TIMESTAMP`` 0, ``INT32`` 1, ``BOOLEAN`` 2, ``STRING`` 3,
``PROP_FLAG_READONLY`` bit 0); ``FLAG_PERSISTENT`` (bit 1) is espsec's: such a property
is kept in NVS and survives a restart. Values travel as the device stores them
(little-endian integers, one byte for a boolean, UTF-8 text).

A set request is all or nothing: every index must exist, no property may be read-only
and every value must fit its type, or nothing changes and the reply says
``InvalidArgument``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any, Protocol

from google.protobuf.message import DecodeError

from espsec.errors import FormatError, UsageError
from espsec.provisioning.errors import ProtocommError, status_name
from espsec.provisioning.proto import esp_local_ctrl_pb2 as pb
from espsec.provisioning.protocomm.client import ServiceClient
from espsec.provisioning.protocomm.core import Protocomm, SessionLog, SessionPolicy
from espsec.provisioning.protocomm.security import (
    INVALID_ARGUMENT,
    INVALID_PROTO,
    SUCCESS,
    DeviceSecurity,
)

VERSION_ENDPOINT = "esp_local_ctrl/version"
SESSION_ENDPOINT = "esp_local_ctrl/session"
CONTROL_ENDPOINT = "esp_local_ctrl/control"
LOCAL_CTRL_VERSION = "v1.0"
FLAG_READONLY = 1 << 0
FLAG_PERSISTENT = 1 << 1
MAX_PERSISTENT_NAME = 15
"""NVS keys are at most 15 characters."""


class PropType(IntEnum):
    TIMESTAMP = 0
    INT32 = 1
    BOOLEAN = 2
    STRING = 3


_TYPE_NAMES = {"timestamp": PropType.TIMESTAMP, "int32": PropType.INT32, "bool": PropType.BOOLEAN,
               "boolean": PropType.BOOLEAN, "string": PropType.STRING}  # fmt: skip
_FLAG_NAMES = {"readonly": FLAG_READONLY, "persistent": FLAG_PERSISTENT}
_FIXED = {PropType.TIMESTAMP: "<q", PropType.INT32: "<i", PropType.BOOLEAN: "<?"}


def encode_value(ptype: int, value: object) -> bytes:
    """The bytes of ``value`` for a property of type ``ptype``; ``ValueError`` if it
    does not fit."""
    if ptype == PropType.STRING:
        return str(value).encode()
    fmt = _FIXED.get(PropType(ptype))
    if fmt is None:  # pragma: no cover - every PropType is covered
        raise ValueError(f"unknown property type {ptype}")
    if ptype == PropType.BOOLEAN:
        if isinstance(value, str):
            text = value.strip().lower()
            if text not in ("true", "false", "1", "0", "on", "off"):
                raise ValueError(f"not a boolean: {value!r}")
            value = text in ("true", "1", "on")
        return struct.pack(fmt, bool(value))
    try:
        return struct.pack(fmt, int(value))  # type: ignore[call-overload]
    except (ValueError, TypeError, struct.error):
        raise ValueError(f"not a {PropType(ptype).name.lower()}: {value!r}") from None


def decode_value(ptype: int, data: bytes) -> object:
    """The value of a property of type ``ptype`` from its bytes (raw bytes if unknown)."""
    if ptype == PropType.STRING:
        return data.decode("utf-8", "replace")
    try:
        fmt = _FIXED[PropType(ptype)]
        return struct.unpack(fmt, data)[0]
    except (ValueError, KeyError, struct.error):
        return data.hex()


def _value_fits(ptype: int, data: bytes) -> bool:
    if ptype == PropType.STRING:
        try:
            data.decode()
        except UnicodeDecodeError:
            return False
        return True
    fmt = _FIXED.get(PropType(ptype)) if ptype in PropType._value2member_map_ else None
    return fmt is not None and len(data) == struct.calcsize(fmt)


@dataclass(frozen=True)
class Property:
    name: str
    type: PropType
    flags: int
    value: bytes

    @property
    def readonly(self) -> bool:
        return bool(self.flags & FLAG_READONLY)

    @property
    def persistent(self) -> bool:
        return bool(self.flags & FLAG_PERSISTENT)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "type": self.type.name.lower(),
            "flags": [n for n, bit in _FLAG_NAMES.items() if self.flags & bit],
            "value": decode_value(self.type, self.value),
        }


def parse_properties(data: bytes, *, source: str | None = None) -> list[Property]:
    """The property table: ``[{"name", "type": int32|timestamp|bool|string, "flags":
    ["readonly", "persistent"], "value"}]``."""
    try:
        rows = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise FormatError("not valid JSON", source=source) from None
    if isinstance(rows, dict):
        rows = rows.get("properties")
    if not isinstance(rows, list):
        raise FormatError("not a property table", expected="a list", source=source)
    out: list[Property] = []
    for i, row in enumerate(rows):
        where = f"properties[{i}]"
        if not isinstance(row, dict) or not isinstance(row.get("name"), str) or not row["name"]:
            raise FormatError("a property needs a name", field=where, source=source)
        ptype = _TYPE_NAMES.get(str(row.get("type", "")).lower())
        if ptype is None:
            raise FormatError(
                "bad type", field=f"{where}.type", expected=" | ".join(_TYPE_NAMES),
                found=row.get("type"), source=source,
            )  # fmt: skip
        flags = 0
        for flag in row.get("flags", []):
            if flag not in _FLAG_NAMES:
                raise FormatError(
                    "bad flag", field=f"{where}.flags", expected="readonly | persistent",
                    found=flag, source=source,
                )  # fmt: skip
            flags |= _FLAG_NAMES[flag]
        name = row["name"]
        if flags & FLAG_PERSISTENT and len(name) > MAX_PERSISTENT_NAME:
            raise FormatError(
                "a persistent property's name is its NVS key", field=f"{where}.name",
                expected="at most 15 characters", found=name, source=source,
            )  # fmt: skip
        try:
            value = encode_value(ptype, row.get("value", "" if ptype == PropType.STRING else 0))
        except ValueError as exc:
            raise FormatError(str(exc), field=f"{where}.value", source=source) from None
        if any(p.name == name for p in out):
            raise FormatError(
                "duplicate property", field=f"{where}.name", found=name, source=source
            )
        out.append(Property(name, ptype, flags, value))
    return out


class PropertyStore(Protocol):
    """Where persistent property values live (NVS on the twin)."""

    def load(self, name: str) -> bytes | None: ...

    def save(self, name: str, value: bytes) -> None: ...


class LocalCtrlService:
    """The device's property table and its ``esp_local_ctrl/control`` handler."""

    def __init__(self, properties: Sequence[Property], store: PropertyStore | None = None) -> None:
        self.store = store
        self.properties = list(properties)
        for i, prop in enumerate(self.properties):
            if prop.persistent and store is not None:
                saved = store.load(prop.name)
                if saved is not None and _value_fits(prop.type, saved):
                    self.properties[i] = replace(prop, value=saved)

    def __repr__(self) -> str:
        return f"<LocalCtrlService {len(self.properties)} properties>"

    def handler(self, session_id: int, data: bytes) -> bytes:
        request = pb.LocalCtrlMessage()
        try:
            request.ParseFromString(data)
        except DecodeError:
            raise ProtocommError("not a LocalCtrlMessage", status=INVALID_PROTO) from None
        reply = pb.LocalCtrlMessage()
        kind = request.msg
        if kind == pb.TypeCmdGetPropertyCount:
            reply.msg = pb.TypeRespGetPropertyCount
            reply.resp_get_prop_count.status = SUCCESS
            reply.resp_get_prop_count.count = len(self.properties)
        elif kind == pb.TypeCmdGetPropertyValues:
            reply.msg = pb.TypeRespGetPropertyValues
            out = reply.resp_get_prop_vals
            indices = list(request.cmd_get_prop_vals.indices)
            if not indices or any(i >= len(self.properties) for i in indices):
                out.status = INVALID_ARGUMENT
            else:
                out.status = SUCCESS
                for i in indices:
                    prop = self.properties[i]
                    out.props.add(
                        status=SUCCESS, name=prop.name, type=prop.type, flags=prop.flags,
                        value=prop.value,
                    )  # fmt: skip
        elif kind == pb.TypeCmdSetPropertyValues:
            reply.msg = pb.TypeRespSetPropertyValues
            reply.resp_set_prop_vals.status = self._set(request.cmd_set_prop_vals.props)  # type: ignore[assignment]
        else:
            raise ProtocommError(f"unknown LocalCtrlMessage type {kind}", status=INVALID_PROTO)
        return reply.SerializeToString()

    def _set(self, values: Sequence[pb.PropertyValue]) -> int:
        if not values:
            return INVALID_ARGUMENT
        for item in values:
            if item.index >= len(self.properties):
                return INVALID_ARGUMENT
            prop = self.properties[item.index]
            if prop.readonly or not _value_fits(prop.type, item.value):
                return INVALID_ARGUMENT
        for item in values:
            prop = replace(self.properties[item.index], value=item.value)
            self.properties[item.index] = prop
            if prop.persistent and self.store is not None:
                self.store.save(prop.name, prop.value)
        return SUCCESS


def version_info(security: DeviceSecurity) -> str:
    info = {
        "ver": LOCAL_CTRL_VERSION,
        "sec_ver": security.version,
        "sec_patch_ver": security.patch_version,
        "cap": [],
    }
    return json.dumps({"local_ctrl": info}, separators=(",", ":"))


def local_ctrl_protocomm(
    service: LocalCtrlService,
    security: DeviceSecurity,
    *,
    policy: SessionPolicy | None = None,
    log: SessionLog | None = None,
) -> Protocomm:
    """``esp_local_ctrl_start``'s protocomm instance."""
    pc = Protocomm(
        security,
        session_endpoint=SESSION_ENDPOINT,
        version_endpoint=VERSION_ENDPOINT,
        version_info=version_info(security),
        policy=policy,
        log=log,
    )
    pc.add_endpoint(CONTROL_ENDPOINT, service.handler)
    return pc


class LocalCtrlClient(ServiceClient):
    """The client side (ESP-IDF ``tools/esp_local_ctrl.py``): list, get and set."""

    service = "local_ctrl"
    version_endpoint = VERSION_ENDPOINT
    session_endpoint = SESSION_ENDPOINT

    def _call(self, request: pb.LocalCtrlMessage) -> pb.LocalCtrlMessage:
        reply = pb.LocalCtrlMessage()
        try:
            reply.ParseFromString(self.session.call(CONTROL_ENDPOINT, request.SerializeToString()))
        except DecodeError:
            raise ProtocommError(
                "the device's reply is not protobuf", status=INVALID_PROTO
            ) from None
        return reply

    def properties(self) -> list[Property]:
        count_req = pb.LocalCtrlMessage(msg=pb.TypeCmdGetPropertyCount)
        count_req.cmd_get_prop_count.SetInParent()
        count_reply = self._call(count_req).resp_get_prop_count
        _check(count_reply.status, "the property count")
        if count_reply.count == 0:
            return []
        values = pb.LocalCtrlMessage(msg=pb.TypeCmdGetPropertyValues)
        values.cmd_get_prop_vals.indices.extend(range(count_reply.count))
        reply = self._call(values).resp_get_prop_vals
        _check(reply.status, "the property values")
        out = []
        for p in reply.props:
            ptype = PropType(p.type) if p.type in PropType._value2member_map_ else p.type
            out.append(Property(p.name, ptype, p.flags, p.value))  # type: ignore[arg-type]
        return out

    def get(self, name: str) -> Property:
        for prop in self.properties():
            if prop.name == name:
                return prop
        raise UsageError(f"the device has no property {name!r}")

    def set(self, name: str, value: Any) -> Property:
        """Set property ``name`` to ``value`` (text is converted to the property's type)."""
        props = self.properties()
        index = next((i for i, p in enumerate(props) if p.name == name), None)
        if index is None:
            raise UsageError(f"the device has no property {name!r}")
        prop = props[index]
        if prop.readonly:
            raise UsageError(f"property {name!r} is read-only")
        try:
            data = encode_value(prop.type, value)
        except ValueError as exc:
            raise UsageError(f"property {name!r}: {exc}") from None
        request = pb.LocalCtrlMessage(msg=pb.TypeCmdSetPropertyValues)
        request.cmd_set_prop_vals.props.add(index=index, value=data)
        _check(self._call(request).resp_set_prop_vals.status, f"setting {name!r}")
        return replace(prop, value=data)


def _check(status: int, what: str) -> None:
    if status != SUCCESS:
        raise ProtocommError(f"the device refused {what}: {status_name(status)}", status=status)
