"""The NVS API a device application uses: ``nvs_flash_init``, ``nvs_open`` and handles.

Like ESP-IDF, every ``set``/``erase`` reaches flash before it returns; ``commit`` is
there for API fidelity and writes nothing.
"""

from __future__ import annotations

from enum import Enum

from espsec.errors import UsageError
from espsec.flash import FlashRegion, NorFlash
from espsec.nvs.entry import NvsEntry
from espsec.nvs.layout import MAX_KEY_LENGTH, ItemType, pack_primitive
from espsec.nvs.nvs_keys import NvsKeys
from espsec.nvs.runtime import errors
from espsec.nvs.runtime.errors import NvsError
from espsec.nvs.runtime.page import HashKey
from espsec.nvs.runtime.partition import NvsPartition
from espsec.nvs.runtime.storage import Found, NvsStats, Storage
from espsec.nvs.value import Value, ValueType, check_value, string_from_payload, string_payload


class OpenMode(Enum):
    """``nvs_open_mode_t``."""

    READONLY = "readonly"
    READWRITE = "readwrite"


def _name(name: str, what: str) -> bytes:
    raw = name.encode("utf-8", "surrogateescape")
    if not raw or b"\0" in raw:
        raise NvsError(errors.INVALID_NAME, f"{what} name {name!r} is empty or holds a NUL")
    if len(raw) > MAX_KEY_LENGTH:
        raise NvsError(errors.KEY_TOO_LONG, f"{what} {name!r} is longer than 15 bytes")
    return raw


class NvsStore:
    """An initialized NVS partition (what ``nvs_flash_init_partition`` sets up).

    ``keys`` make it an encrypted partition. ``read_only`` works on a private copy of
    the flash, so nothing is ever written to ``flash``, and needs no free page.
    """

    def __init__(self, storage: Storage, *, read_only: bool) -> None:
        self._storage = storage
        self.read_only = read_only

    @classmethod
    def init(
        cls, flash: FlashRegion, *, keys: NvsKeys | None = None, read_only: bool = False
    ) -> NvsStore:
        """Load (and, after a power cut, repair) the NVS partition on ``flash``."""
        if read_only:
            flash = NorFlash(flash.read(0, flash.size))
        storage = Storage(NvsPartition(flash, keys))
        storage.init(read_only=read_only)
        return cls(storage, read_only=read_only)

    def open(self, namespace: str, mode: OpenMode = OpenMode.READWRITE) -> NvsHandle:
        """``nvs_open``: a handle on ``namespace``, created if opened read-write."""
        _name(namespace, "namespace")
        if self.read_only and mode is OpenMode.READWRITE:
            raise NvsError(errors.READ_ONLY, "the partition was initialized read-only")
        index = self._storage.namespace_index(namespace, create=mode is OpenMode.READWRITE)
        return NvsHandle(self._storage, namespace, index, read_only=mode is OpenMode.READONLY)

    @property
    def namespaces(self) -> dict[str, int]:
        """Namespace names and their indices."""
        return dict(self._storage.namespaces)

    def entries(self, namespace: str | None = None) -> list[NvsEntry]:
        """Every key-value pair (of one namespace), in storage order.

        A value whose data turns out corrupt is left out (and, as on a device, erased).
        """
        names = {index: name for name, index in self._storage.namespaces.items()}
        ns = None
        if namespace is not None:
            if namespace not in self._storage.namespaces:
                return []
            ns = self._storage.namespaces[namespace]
        out = []
        where = self._storage.locate_all()
        for found in list(self._storage.values(ns)):
            try:
                vtype, value = _value_of(self._storage, found, where)
            except NvsError as exc:
                if exc.code != errors.NOT_FOUND:
                    raise
                continue
            name = names.get(found.item.ns_index, f"#{found.item.ns_index}")
            out.append(NvsEntry(name, found.item.key, vtype, value))
        return out

    def stats(self) -> NvsStats:
        """``nvs_get_stats``."""
        return self._storage.stats()


def _value_of(
    storage: Storage, found: Found, where: dict[HashKey, Found] | None = None
) -> tuple[ValueType, Value]:
    vtype = ValueType.of_item(found.item.datatype)
    if vtype is ValueType.BLOB:
        return vtype, storage.read_blob(found, where)
    if vtype is ValueType.STRING:
        return vtype, string_from_payload(storage.read_payload(found))
    return vtype, Storage.primitive(found.item)


class NvsHandle:
    """An open namespace (``nvs_handle_t``)."""

    def __init__(self, storage: Storage, namespace: str, ns_index: int, *, read_only: bool):
        self._storage = storage
        self.namespace = namespace
        self._ns = ns_index
        self.read_only = read_only
        self._open = True

    def __repr__(self) -> str:
        return f"NvsHandle(namespace={self.namespace!r}, read_only={self.read_only})"

    def _check(self, *, write: bool) -> None:
        if not self._open:
            raise NvsError(errors.INVALID_HANDLE, "handle is closed")
        if write and self.read_only:
            raise NvsError(errors.READ_ONLY, f"namespace {self.namespace!r} opened read-only")

    # -- generic ------------------------------------------------------------------------

    def set(self, key: str, vtype: ValueType, value: Value) -> None:
        """Store ``value`` as ``vtype`` under ``key`` (``nvs_set_*``)."""
        self._check(write=True)
        raw_key = _name(key, "key")
        try:
            check_value(vtype, value)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{key!r}: {exc}") from None
        if vtype is ValueType.STRING:
            assert isinstance(value, str)
            payload = string_payload(value)
            self._storage.write_item(self._ns, ItemType.SZ, raw_key, payload)
        elif vtype is ValueType.BLOB:
            self._storage.write_item(self._ns, ItemType.BLOB, raw_key, bytes(value))  # type: ignore[arg-type]
        else:
            assert isinstance(value, int | float)
            data = pack_primitive(vtype.item_type, value)
            self._storage.write_item(self._ns, vtype.item_type, raw_key, data)

    def get(self, key: str, vtype: ValueType) -> Value:
        """The value stored under ``key`` as ``vtype`` (``nvs_get_*``)."""
        self._check(write=False)
        found = self._storage.find(self._ns, _name(key, "key"))
        if found is None:
            raise NvsError(errors.NOT_FOUND, f"key {key!r} not found")
        stored = ValueType.of_item(found.item.datatype)
        if stored is not vtype:
            raise NvsError(errors.NOT_FOUND, f"key {key!r} not found as {vtype} (it is {stored})")
        return _value_of(self._storage, found)[1]

    def find_key(self, key: str) -> ValueType | None:
        """The type stored under ``key``, or None (``nvs_find_key``)."""
        self._check(write=False)
        found = self._storage.find(self._ns, _name(key, "key"))
        return None if found is None else ValueType.of_item(found.item.datatype)

    def erase_key(self, key: str) -> None:
        """``nvs_erase_key``."""
        self._check(write=True)
        self._storage.erase_item(self._ns, _name(key, "key"))

    def erase_all(self) -> None:
        """``nvs_erase_all``: every key of this namespace."""
        self._check(write=True)
        self._storage.erase_namespace(self._ns)

    def commit(self) -> None:
        """``nvs_commit``: every change is already on flash."""
        self._check(write=True)

    def close(self) -> None:
        """``nvs_close``."""
        self._open = False

    def __enter__(self) -> NvsHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- typed --------------------------------------------------------------------------

    def set_u8(self, key: str, value: int) -> None:
        self.set(key, ValueType.U8, value)

    def set_i8(self, key: str, value: int) -> None:
        self.set(key, ValueType.I8, value)

    def set_u16(self, key: str, value: int) -> None:
        self.set(key, ValueType.U16, value)

    def set_i16(self, key: str, value: int) -> None:
        self.set(key, ValueType.I16, value)

    def set_u32(self, key: str, value: int) -> None:
        self.set(key, ValueType.U32, value)

    def set_i32(self, key: str, value: int) -> None:
        self.set(key, ValueType.I32, value)

    def set_u64(self, key: str, value: int) -> None:
        self.set(key, ValueType.U64, value)

    def set_i64(self, key: str, value: int) -> None:
        self.set(key, ValueType.I64, value)

    def set_str(self, key: str, value: str) -> None:
        self.set(key, ValueType.STRING, value)

    def set_blob(self, key: str, value: bytes) -> None:
        self.set(key, ValueType.BLOB, value)

    def _get_int(self, key: str, vtype: ValueType) -> int:
        value = self.get(key, vtype)
        assert isinstance(value, int)
        return value

    def get_u8(self, key: str) -> int:
        return self._get_int(key, ValueType.U8)

    def get_i8(self, key: str) -> int:
        return self._get_int(key, ValueType.I8)

    def get_u16(self, key: str) -> int:
        return self._get_int(key, ValueType.U16)

    def get_i16(self, key: str) -> int:
        return self._get_int(key, ValueType.I16)

    def get_u32(self, key: str) -> int:
        return self._get_int(key, ValueType.U32)

    def get_i32(self, key: str) -> int:
        return self._get_int(key, ValueType.I32)

    def get_u64(self, key: str) -> int:
        return self._get_int(key, ValueType.U64)

    def get_i64(self, key: str) -> int:
        return self._get_int(key, ValueType.I64)

    def get_str(self, key: str) -> str:
        value = self.get(key, ValueType.STRING)
        assert isinstance(value, str)
        return value

    def get_blob(self, key: str) -> bytes:
        value = self.get(key, ValueType.BLOB)
        assert isinstance(value, bytes)
        return value
