"""One key-value pair of a namespace, as read from a partition or an NVS store."""

from __future__ import annotations

from dataclasses import dataclass, field

from espsec.nvs.value import Value, ValueType


@dataclass(frozen=True)
class NvsEntry:
    """One key-value pair of a namespace, as read from a partition."""

    namespace: str
    key: str
    type: ValueType
    value: Value = field(repr=False)
    """Often a secret (Wi-Fi password, device key): kept out of the repr."""

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict; blob values as hex."""
        value: object = self.value.hex() if isinstance(self.value, bytes) else self.value
        return {
            "namespace": self.namespace,
            "key": self.key,
            "type": str(self.type),
            "value": value,
        }
