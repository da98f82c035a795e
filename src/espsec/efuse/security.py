"""The security state eFuses encode, decoded the way the ROM and ESP-IDF read it.

* Secure Boot: ``SECURE_BOOT_EN``, the ``SECURE_BOOT_DIGESTn`` key blocks and
  ``SECURE_BOOT_KEY_REVOKEn``.
* Flash encryption: on when ``SPI_BOOT_CRYPT_CNT`` has an odd number of bits set;
  release mode (ESP-IDF ``esp_get_flash_encryption_mode``) when the counter is locked
  (write-protected or all bits set) and the chip's download-mode encryption and cache
  access are disabled.
* Download mode: disabled (``DIS_DOWNLOAD_MODE``), secure (``ENABLE_SECURITY_DOWNLOAD``)
  or normal.
* JTAG: hard-disabled (``DIS_PAD_JTAG``), soft-disabled (odd ``SOFT_DIS_JTAG``; an
  ``HMAC_DOWN_JTAG`` / ``HMAC_DOWN_ALL`` key can re-enable it) or enabled.
* ``secure_version``: the number of bits set in ``SECURE_VERSION`` (ESP-IDF
  ``esp_efuse_read_secure_version`` reads it as a thermometer code).
* ``GET_SECURITY_INFO``: the 20-byte record the ROM's serial loader returns.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import asdict, dataclass
from typing import Any, Literal

from espsec.efuse.model import Efuses
from espsec.errors import FormatError

DownloadMode = Literal["normal", "secure", "disabled"]
FlashEncryptionMode = Literal["disabled", "development", "release"]
JtagMode = Literal["enabled", "soft-disabled", "hard-disabled"]

#: ``GET_SECURITY_INFO`` flag bits (esptool ``loader.py``, "taken from the ROM code").
SECURITY_INFO_FLAGS = {
    0: "SECURE_BOOT_EN",
    1: "SECURE_BOOT_AGGRESSIVE_REVOKE",
    2: "SECURE_DOWNLOAD_ENABLE",
    3: "SECURE_BOOT_KEY_REVOKE0",
    4: "SECURE_BOOT_KEY_REVOKE1",
    5: "SECURE_BOOT_KEY_REVOKE2",
    6: "SOFT_DIS_JTAG",
    7: "HARD_DIS_JTAG",
    8: "DIS_USB",
    9: "DIS_DOWNLOAD_DCACHE",
    10: "DIS_DOWNLOAD_ICACHE",
}

_INFO = struct.Struct("<IB7BII")
SECURITY_INFO_SIZE = _INFO.size


def secure_version_bits(version: int, width: int = 16) -> int:
    """The ``SECURE_VERSION`` value for anti-rollback version ``version``.

    ESP-IDF writes the field as a thermometer code: version 3 is ``0b111``.
    """
    if not 0 <= version <= width:
        raise ValueError(f"secure_version must be 0..{width}, got {version}")
    return (1 << version) - 1


def read_secure_version(efuses: Efuses, size: int) -> int:
    """``esp_efuse_read_secure_version``: the anti-rollback version software compares.

    ESP-IDF ``components/efuse/src/esp_efuse_fields.c`` counts the bits set in the low
    ``min(CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD, width of SECURE_VERSION)``
    bits only; bits above them (burned by hand or by a build with a wider field) do not
    count.
    """
    f = efuses.field("SECURE_VERSION")
    width = min(size, f.length)
    return (efuses.get_int(f) & ((1 << width) - 1)).bit_count()


def jtag_token(hmac_key: bytes) -> bytes:
    """The token that soft-re-enables JTAG: HMAC-SHA256(key, 32 zero bytes).

    ``hmac_key`` is the 32-byte key of an ``HMAC_DOWN_JTAG`` (or ``HMAC_DOWN_ALL``)
    block, as its key file holds it.
    """
    return hmac.new(hmac_key, bytes(32), hashlib.sha256).digest()


@dataclass(frozen=True)
class KeyBlockState:
    """One key block: its purpose and protection."""

    block: str
    purpose: str
    empty: bool
    read_protected: bool
    write_protected: bool
    purpose_write_protected: bool


@dataclass(frozen=True)
class DigestSlot:
    """Secure Boot key digest slot ``index`` (``SECURE_BOOT_DIGEST<index>``)."""

    index: int
    block: str | None
    """The key block holding the digest, if any."""
    digest: str | None
    """The digest (public; hex), when the block is readable."""
    revoked: bool

    @property
    def valid(self) -> bool:
        """Usable by the ROM: present, non-zero and not revoked."""
        present = self.block is not None and bool(self.digest and int(self.digest, 16))
        return present and not self.revoked


@dataclass(frozen=True)
class JtagState:
    mode: JtagMode
    usb_jtag_disabled: bool
    hmac_reenable_blocks: tuple[str, ...]
    """Key blocks whose HMAC key can soft-re-enable JTAG (``HMAC_DOWN_JTAG``/``_ALL``)."""


@dataclass(frozen=True)
class SecurityState:
    """What the eFuses say about every security feature of the chip."""

    chip: str
    secure_boot_enabled: bool
    aggressive_revoke: bool
    digest_slots: tuple[DigestSlot, ...]
    flash_encryption_enabled: bool
    flash_crypt_cnt: int
    flash_encryption_mode: FlashEncryptionMode
    flash_encryption_key: str | None
    """``XTS_AES_128_KEY``, ``XTS_AES_256_KEY`` or ``None`` (no complete key)."""
    download_mode: DownloadMode
    jtag: JtagState
    secure_version: int
    key_blocks: tuple[KeyBlockState, ...]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for slot, obj in zip(d["digest_slots"], self.digest_slots, strict=True):
            slot["valid"] = obj.valid
        return d


def _flag(efuses: Efuses, name: str) -> bool:
    return efuses.layout.has_field(name) and bool(efuses.get_int(name))


def security_state(efuses: Efuses) -> SecurityState:
    """Decode the security state of ``efuses``."""
    layout = efuses.layout
    key_blocks: list[KeyBlockState] = []
    purposes: dict[str, list[str]] = {}
    for block in layout.key_blocks:
        name = layout.purpose_name(efuses.key_purpose(block))
        purposes.setdefault(name, []).append(block.name)
        key_blocks.append(
            KeyBlockState(
                block=block.name,
                purpose=name,
                empty=efuses.is_empty(block),
                read_protected=efuses.is_read_protected(block),
                write_protected=efuses.is_write_protected(block),
                purpose_write_protected=not efuses.key_purpose_writeable(block),
            )
        )
    slots = []
    for i in range(layout.chip.key_digest_slots):
        holders = purposes.get(f"SECURE_BOOT_DIGEST{i}", [])
        holder = holders[0] if holders else None
        digest = None
        if holder is not None and not efuses.is_read_protected(holder):
            digest = efuses.read_block(holder).hex()
        revoked = _flag(efuses, f"SECURE_BOOT_KEY_REVOKE{i}")
        slots.append(DigestSlot(i, holder, digest, revoked))

    cnt_field = layout.field("SPI_BOOT_CRYPT_CNT")
    cnt = efuses.get_int(cnt_field)
    fe_on = cnt.bit_count() % 2 == 1
    mode: FlashEncryptionMode = "disabled"
    if fe_on:
        mode = "development"
        locked = not efuses.is_writeable(cnt_field) or cnt == (1 << cnt_field.length) - 1
        if locked and all(_flag(efuses, n) for n in layout.facts.release_mode_fields):
            mode = "release"
    if "XTS_AES_128_KEY" in purposes:
        fe_key: str | None = "XTS_AES_128_KEY"
    elif "XTS_AES_256_KEY_1" in purposes and "XTS_AES_256_KEY_2" in purposes:
        fe_key = "XTS_AES_256_KEY"
    else:
        fe_key = None

    download: DownloadMode = "normal"
    if _flag(efuses, "DIS_DOWNLOAD_MODE"):
        download = "disabled"
    elif _flag(efuses, "ENABLE_SECURITY_DOWNLOAD"):
        download = "secure"

    jtag_mode: JtagMode = "enabled"
    if _flag(efuses, "DIS_PAD_JTAG"):
        jtag_mode = "hard-disabled"
    elif efuses.get_int("SOFT_DIS_JTAG").bit_count() % 2:
        jtag_mode = "soft-disabled"
    hmac_blocks = tuple(purposes.get("HMAC_DOWN_JTAG", []) + purposes.get("HMAC_DOWN_ALL", []))
    jtag = JtagState(jtag_mode, _flag(efuses, "DIS_USB_JTAG"), hmac_blocks)

    return SecurityState(
        chip=layout.name,
        secure_boot_enabled=_flag(efuses, "SECURE_BOOT_EN"),
        aggressive_revoke=_flag(efuses, "SECURE_BOOT_AGGRESSIVE_REVOKE"),
        digest_slots=tuple(slots),
        flash_encryption_enabled=fe_on,
        flash_crypt_cnt=cnt,
        flash_encryption_mode=mode,
        flash_encryption_key=fe_key,
        download_mode=download,
        jtag=jtag,
        secure_version=efuses.get_int("SECURE_VERSION").bit_count(),
        key_blocks=tuple(key_blocks),
    )


@dataclass(frozen=True)
class SecurityInfo:
    """The ROM's ``GET_SECURITY_INFO`` (0x14) response: ``<I B 7B I I>``, 20 bytes."""

    flags: int
    flash_crypt_cnt: int
    key_purposes: tuple[int, ...]
    chip_id: int
    api_version: int

    @classmethod
    def parse(cls, data: bytes) -> SecurityInfo:
        if len(data) != SECURITY_INFO_SIZE:
            raise FormatError(
                "GET_SECURITY_INFO response has the wrong size",
                expected=SECURITY_INFO_SIZE,
                found=len(data),
            )
        flags, cnt, *rest = _INFO.unpack(data)
        return cls(flags, cnt, tuple(rest[:7]), rest[7], rest[8])

    def to_bytes(self) -> bytes:
        return _INFO.pack(
            self.flags, self.flash_crypt_cnt, *self.key_purposes, self.chip_id, self.api_version
        )

    @property
    def flag_names(self) -> tuple[str, ...]:
        return tuple(n for bit, n in SECURITY_INFO_FLAGS.items() if self.flags >> bit & 1)

    @property
    def secure_download(self) -> bool:
        return bool(self.flags & 1 << 2)

    @property
    def flash_encryption_enabled(self) -> bool:
        return self.flash_crypt_cnt.bit_count() % 2 == 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "flags": self.flags,
            "flag_names": list(self.flag_names),
            "flash_crypt_cnt": self.flash_crypt_cnt,
            "key_purposes": list(self.key_purposes),
            "chip_id": self.chip_id,
            "api_version": self.api_version,
            "flash_encryption_enabled": self.flash_encryption_enabled,
        }


def security_info(efuses: Efuses, *, api_version: int = 0) -> SecurityInfo:
    """The record the ROM returns for ``GET_SECURITY_INFO`` on this chip.

    ``api_version`` is a property of the ROM, not of the eFuses (0 on the ROMs esptool
    reports). ``key_purposes[6]`` is the ROM's ``ETS_EFUSE_KEY_PURPOSE_MAX``: there is no
    seventh key block.
    """
    layout = efuses.layout
    names = {
        0: "SECURE_BOOT_EN",
        1: "SECURE_BOOT_AGGRESSIVE_REVOKE",
        2: "ENABLE_SECURITY_DOWNLOAD",
        3: "SECURE_BOOT_KEY_REVOKE0",
        4: "SECURE_BOOT_KEY_REVOKE1",
        5: "SECURE_BOOT_KEY_REVOKE2",
        7: "DIS_PAD_JTAG",
        **layout.facts.info_flag_fields,
    }
    flags = 0
    for bit, name in names.items():
        if _flag(efuses, name):
            flags |= 1 << bit
    if efuses.get_int("SOFT_DIS_JTAG").bit_count() % 2:
        flags |= 1 << 6
    purposes = [efuses.key_purpose(b) for b in layout.key_blocks]
    purposes += [layout.facts.key6_purpose] * (7 - len(purposes))
    return SecurityInfo(
        flags=flags,
        flash_crypt_cnt=efuses.get_int("SPI_BOOT_CRYPT_CNT"),
        key_purposes=tuple(purposes),
        chip_id=layout.chip.image_chip_id,
        api_version=api_version,
    )
