"""NVS encryption keys: the ``nvs_keys`` partition and the HMAC-derived scheme.

``nvs_keys`` partition (``nvs_flash_read_security_cfg``): ``eky[32] ‖ tky[32] ‖
crcA(eky ‖ tky)`` then 0xFF to 4096 bytes. It must itself be protected by flash
encryption on the device.

HMAC scheme (``nvs_sec_provider.c``): with ``K`` the eFuse key of purpose ``HMAC_UP``,
``eky = HMAC-SHA256(K, 8 copies of 5A5ABEAE)`` and
``tky = HMAC-SHA256(K, 8 copies of A5A5DECE)``; the keys never leave the chip, so no
``nvs_keys`` partition is needed.
"""

from __future__ import annotations

import hmac
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import sha256

from espsec.errors import FormatError, KeyFormatError
from espsec.nvs.layout import crc_a

KEY_SIZE = 32
NVS_KEYS_PARTITION_SIZE = 4096
HMAC_KEY_SIZE = 32
HMAC_EKEY_SEED = bytes.fromhex("5a5abeae") * 8
HMAC_TKEY_SEED = bytes.fromhex("a5a5dece") * 8
_CRC_OFFSET = 2 * KEY_SIZE


@dataclass(frozen=True)
class NvsKeys:
    """The XTS-AES-256 key pair NVS entries are encrypted with (never shown in reprs)."""

    eky: bytes = field(repr=False)
    """Data encryption key."""
    tky: bytes = field(repr=False)
    """Tweak encryption key."""

    def __post_init__(self) -> None:
        if len(self.eky) != KEY_SIZE or len(self.tky) != KEY_SIZE:
            raise KeyFormatError("NVS encryption and tweak keys must be 32 bytes each")

    @property
    def xts_key(self) -> bytes:
        """The 64-byte XTS-AES-256 key ``eky ‖ tky``."""
        return self.eky + self.tky

    @classmethod
    def generate(cls) -> NvsKeys:
        """Fresh random keys from the OS CSPRNG."""
        return cls(secrets.token_bytes(KEY_SIZE), secrets.token_bytes(KEY_SIZE))

    @classmethod
    def from_hmac_key(cls, hmac_key: bytes) -> NvsKeys:
        """The keys a chip derives from its ``HMAC_UP`` eFuse key (host side: the key is known)."""
        if len(hmac_key) != HMAC_KEY_SIZE:
            raise KeyFormatError(
                f"HMAC key must be {HMAC_KEY_SIZE} bytes (one eFuse key block), "
                f"found {len(hmac_key)} bytes"
            )
        return cls.from_hmac(lambda message: hmac.new(hmac_key, message, sha256).digest())

    @classmethod
    def from_hmac(cls, mac: Callable[[bytes], bytes]) -> NvsKeys:
        """The keys from an HMAC oracle, as ``nvs_sec_provider`` asks the HMAC peripheral
        (``esp_hmac_calculate`` in upstream mode) for the MAC of each seed."""
        return cls(mac(HMAC_EKEY_SEED), mac(HMAC_TKEY_SEED))

    @classmethod
    def parse(cls, data: bytes) -> NvsKeys:
        """Read an ``nvs_keys`` partition image (4096 bytes, or at least its first 68)."""
        if not _CRC_OFFSET + 4 <= len(data) <= NVS_KEYS_PARTITION_SIZE:
            raise FormatError(
                "not an nvs_keys partition: wrong size",
                offset=0,
                expected=f"{NVS_KEYS_PARTITION_SIZE} bytes",
                found=f"{len(data)} bytes",
            )
        keys = bytes(data[:_CRC_OFFSET])
        if keys == b"\xff" * _CRC_OFFSET:
            raise FormatError("nvs_keys partition is erased (no keys)", offset=0)
        (stored,) = struct.unpack_from("<I", data, _CRC_OFFSET)
        expected = crc_a(keys)
        if stored != expected:
            raise FormatError(
                "nvs_keys CRC mismatch: corrupt, or still flash-encrypted",
                offset=_CRC_OFFSET,
                field="crc32",
                expected=expected,
                found=stored,
            )
        return cls(keys[:KEY_SIZE], keys[KEY_SIZE:])

    def to_bytes(self) -> bytes:
        """The 4096-byte ``nvs_keys`` partition image."""
        body = self.xts_key + struct.pack("<I", crc_a(self.xts_key))
        return body + b"\xff" * (NVS_KEYS_PARTITION_SIZE - len(body))


def generate_hmac_key() -> bytes:
    """A random 32-byte key for an ``HMAC_UP`` eFuse key block."""
    return secrets.token_bytes(HMAC_KEY_SIZE)
