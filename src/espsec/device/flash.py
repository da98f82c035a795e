"""The device's SPI flash: NOR semantics, the XTS-AES engine keyed from eFuses, a counter.

* NOR flash: an erase sets a 4 KiB sector to 0xFF; a program can only clear bits (the
  chip ANDs the new data into the old, as real NOR does).
* The flash-encryption engine: with ``SPI_BOOT_CRYPT_CNT`` odd, reads through the cache
  (the ROM, the bootloader's ``bootloader_mmap``, an app's reads of an encrypted
  partition) are decrypted; encrypted writes (``bootloader_flash_write(..., true)``,
  ``esp_partition_write`` to an encrypted partition) are encrypted with the key the
  engine takes from eFuses: ``XTS_AES_256_KEY_1``/``_2`` or ``XTS_AES_128_KEY``.
* Every erase and program is counted, so a :class:`~espsec.device.faults.FaultPlan` can
  cut power between any two of them.

:class:`PartitionFlash` exposes one partition through the small
:class:`espsec.nvs.flash.FlashRegion` protocol the NVS runtime uses, decrypting and
encrypting as ``esp_partition_read``/``esp_partition_write`` do.
"""

from __future__ import annotations

from dataclasses import dataclass

from espsec.device.faults import WriteCounter, WriteKind
from espsec.efuse import Efuses, KeyUnavailableError, security_state
from espsec.errors import EspsecError, UsageError
from espsec.flash_encryption import FlashCipher, FlashEncryptionKey
from espsec.image.partition_table import Partition

SECTOR_SIZE = 0x1000
"""``SPI_FLASH_SEC_SIZE``: the erase unit."""
WRITE_ALIGN = 4
"""Plain writes are whole 32-bit words."""
ENCRYPTED_WRITE_ALIGN = 16
"""The flash-encryption engine writes whole 16-byte blocks."""


class FlashAccessError(EspsecError):
    """A flash access the chip cannot make (out of range, misaligned, no key)."""


@dataclass(frozen=True)
class EngineKey:
    """Where the XTS-AES engine's key comes from (no key material here)."""

    purpose: str
    """``XTS_AES_128_KEY`` or ``XTS_AES_256_KEY``."""
    blocks: tuple[str, ...]
    """The key block(s) holding it."""


def engine_key(efuses: Efuses) -> EngineKey | None:
    """Which key block(s) the engine uses, from the key purposes alone (no key read)."""
    by_purpose: dict[str, list[str]] = {}
    for block in efuses.layout.key_blocks:
        name = efuses.layout.purpose_name(efuses.key_purpose(block))
        by_purpose.setdefault(name, []).append(block.name)
    first = by_purpose.get("XTS_AES_256_KEY_1")
    second = by_purpose.get("XTS_AES_256_KEY_2")
    if first and second:
        return EngineKey("XTS_AES_256_KEY", (first[0], second[0]))
    single = by_purpose.get("XTS_AES_128_KEY")
    return EngineKey("XTS_AES_128_KEY", (single[0],)) if single else None


def flash_encryption_key(efuses: Efuses) -> tuple[EngineKey, FlashEncryptionKey] | None:
    """The key the flash-encryption engine uses, as a key file holds it, if one is burned.

    ``espefuse burn-key`` byte-reverses XTS keys, so the key-file form is the reversed
    hardware block (``XTS_AES_256_KEY_1`` ‖ ``_2`` for AES-256). A 256-bit key in two
    blocks wins over an ``XTS_AES_128_KEY``. Raises :class:`KeyUnavailableError` when the
    key block is read-protected and its contents never reached espsec.
    """
    key = engine_key(efuses)
    if key is None:
        return None
    material = b"".join(efuses.hardware_block(block)[::-1] for block in key.blocks)
    return key, FlashEncryptionKey(material)


class SpiFlash:
    """The flash chip and the flash-encryption engine in front of it."""

    def __init__(
        self,
        data: bytes | bytearray,
        efuses: Efuses,
        counter: WriteCounter | None = None,
    ) -> None:
        if not data or len(data) % SECTOR_SIZE:
            raise UsageError(f"flash size must be a multiple of 4 KiB, got {len(data)} bytes")
        self.data = bytearray(data)
        self.efuses = efuses
        self.counter = counter if counter is not None else WriteCounter()
        self._cipher: tuple[bytes, FlashCipher] | None = None

    def __repr__(self) -> str:
        return f"SpiFlash({self.size // 1024} KiB)"

    @property
    def size(self) -> int:
        return len(self.data)

    # -- the engine ------------------------------------------------------------------

    @property
    def encryption_enabled(self) -> bool:
        """``SPI_BOOT_CRYPT_CNT`` has an odd bit count (``esp_flash_encryption_enabled``)."""
        return security_state(self.efuses).flash_encryption_enabled

    def engine_key(self) -> EngineKey | None:
        """Which eFuse key the engine would use (``None``: no XTS key burned)."""
        return engine_key(self.efuses)

    def cipher(self) -> FlashCipher:
        """The engine, keyed from eFuses; raises :class:`FlashAccessError` without a key."""
        try:
            found = flash_encryption_key(self.efuses)
        except KeyUnavailableError as exc:
            raise FlashAccessError(
                f"the flash encryption key is not known to the virtual device: {exc.message}"
            ) from None
        if found is None:
            raise FlashAccessError("no flash encryption key is burned in eFuses")
        material = found[1].material
        if self._cipher is None or self._cipher[0] != material:
            self._cipher = (material, FlashCipher(found[1]))
        return self._cipher[1]

    # -- reads -----------------------------------------------------------------------

    def _check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise FlashAccessError(
                f"flash access at 0x{offset:x} of {length} bytes is outside the "
                f"{self.size // 1024} KiB flash"
            )

    def read_raw(self, offset: int, length: int) -> bytes:
        """What is physically stored (an SPI read without the engine)."""
        self._check(offset, length)
        return bytes(self.data[offset : offset + length])

    def read(self, offset: int, length: int, *, decrypt: bool | None = None) -> bytes:
        """A read through the cache: decrypted when ``decrypt`` (default: FE enabled)."""
        if decrypt is None:
            decrypt = self.encryption_enabled
        if not decrypt:
            return self.read_raw(offset, length)
        start = offset & ~(ENCRYPTED_WRITE_ALIGN - 1)
        end = -(-(offset + length) // ENCRYPTED_WRITE_ALIGN) * ENCRYPTED_WRITE_ALIGN
        end = min(end, self.size)
        raw = self.read_raw(start, end - start)
        plain = self.cipher().decrypt(raw, start)
        return plain[offset - start : offset - start + length]

    # -- writes ----------------------------------------------------------------------

    def erase_sector(self, offset: int, *, what: str = "") -> None:
        """Erase the 4 KiB sector at ``offset`` to 0xFF (one counted write)."""
        if offset % SECTOR_SIZE:
            raise FlashAccessError(f"erase at 0x{offset:x} is not on a 4 KiB sector boundary")
        self._check(offset, SECTOR_SIZE)
        self.counter.before_write(WriteKind.FLASH, what or f"erase sector 0x{offset:x}")
        self.data[offset : offset + SECTOR_SIZE] = b"\xff" * SECTOR_SIZE

    def erase_range(self, offset: int, length: int, *, what: str = "") -> None:
        """Erase every sector of ``[offset, offset + length)`` (both 4 KiB aligned)."""
        if offset % SECTOR_SIZE or length % SECTOR_SIZE:
            raise FlashAccessError(
                f"erase of 0x{offset:x}+0x{length:x} is not in whole 4 KiB sectors"
            )
        for sector in range(offset, offset + length, SECTOR_SIZE):
            self.erase_sector(sector, what=what or f"erase sector 0x{sector:x}")

    def write(self, offset: int, data: bytes, *, what: str = "") -> None:
        """Program ``data`` as is (one counted write): bits can only go 1 -> 0."""
        if offset % WRITE_ALIGN or len(data) % WRITE_ALIGN:
            raise FlashAccessError(
                f"write at 0x{offset:x} of {len(data)} bytes is not in whole 32-bit words"
            )
        self._check(offset, len(data))
        self.counter.before_write(WriteKind.FLASH, what or f"write 0x{offset:x}+{len(data)}")
        old = int.from_bytes(self.data[offset : offset + len(data)], "little")
        new = old & int.from_bytes(data, "little")
        self.data[offset : offset + len(data)] = new.to_bytes(len(data), "little")

    def write_encrypted(self, offset: int, data: bytes, *, what: str = "") -> None:
        """Encrypt ``data`` for ``offset`` with the eFuse key, then program it.

        The engine works whenever a key is burned, before ``SPI_BOOT_CRYPT_CNT`` turns
        encryption on (that is how the first boot encrypts in place).
        """
        if offset % ENCRYPTED_WRITE_ALIGN or len(data) % ENCRYPTED_WRITE_ALIGN:
            raise FlashAccessError(
                f"encrypted write at 0x{offset:x} of {len(data)} bytes is not in whole "
                "16-byte blocks"
            )
        self._check(offset, len(data))
        self.write(offset, self.cipher().encrypt(data, offset), what=what)


class PartitionFlash:
    """One partition as the running app sees it (:class:`~espsec.nvs.flash.FlashRegion`).

    Reads and writes go through the engine when flash encryption is on and the partition
    is encrypted (its ``encrypted`` flag, or a type ESP-IDF always encrypts), as
    ``esp_partition_read``/``esp_partition_write`` do. Offsets are partition-relative.
    """

    def __init__(self, flash: SpiFlash, partition: Partition) -> None:
        self.flash = flash
        self.partition = partition

    def __repr__(self) -> str:
        return f"PartitionFlash({self.partition.name!r})"

    @property
    def size(self) -> int:
        return self.partition.size

    @property
    def encrypted(self) -> bool:
        """Accesses go through the flash-encryption engine."""
        return self.partition.encrypted_on_flash and self.flash.encryption_enabled

    def _where(self, offset: int, length: int) -> int:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise FlashAccessError(
                f"access at 0x{offset:x} of {length} bytes is outside partition "
                f"{self.partition.name!r} (0x{self.size:x} bytes)"
            )
        return self.partition.offset + offset

    def read(self, offset: int, length: int) -> bytes:
        return self.flash.read(self._where(offset, length), length, decrypt=self.encrypted)

    def write(self, offset: int, data: bytes) -> None:
        at = self._where(offset, len(data))
        what = f"{self.partition.name}: write 0x{offset:x}+{len(data)}"
        if self.encrypted:
            self.flash.write_encrypted(at, data, what=what)
        else:
            self.flash.write(at, data, what=what)

    def erase_sector(self, offset: int) -> None:
        at = self._where(offset, SECTOR_SIZE)
        self.flash.erase_sector(at, what=f"{self.partition.name}: erase sector 0x{offset:x}")

    def erase_range(self, offset: int, length: int) -> None:
        """``esp_partition_erase_range``: whole sectors."""
        self._where(offset, length)
        for sector in range(offset, offset + length, SECTOR_SIZE):
            self.erase_sector(sector)
