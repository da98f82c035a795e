"""The device's SPI flash: the NOR chip behind the XTS-AES engine keyed from eFuses.

* The chip is :class:`espsec.flash.NorFlash` (erase a 4 KiB sector to 0xFF, program
  ANDs bits in, every erase and program counted so a :class:`~espsec.flash.FaultPlan`
  can cut power between any two of them).
* The flash-encryption engine: with ``SPI_BOOT_CRYPT_CNT`` odd, reads through the cache
  (the ROM, the bootloader's ``bootloader_mmap``, an app's reads of an encrypted
  partition) are decrypted; encrypted writes (``bootloader_flash_write(..., true)``,
  ``esp_partition_write`` to an encrypted partition) are encrypted with the key the
  engine takes from eFuses: ``XTS_AES_256_KEY_1``/``_2`` or ``XTS_AES_128_KEY``.

:class:`PartitionFlash` exposes one partition through the small
:class:`espsec.flash.FlashRegion` protocol the NVS runtime uses, decrypting and
encrypting as ``esp_partition_read``/``esp_partition_write`` do.
"""

from __future__ import annotations

from dataclasses import dataclass

from espsec.efuse import Efuses, KeyUnavailableError, security_state
from espsec.flash import SECTOR_SIZE, FlashAccessError, NorFlash, WriteCounter
from espsec.flash_encryption import FlashCipher, FlashEncryptionKey
from espsec.image.partition_table import Partition

ENCRYPTED_WRITE_ALIGN = 16
"""The flash-encryption engine writes whole 16-byte blocks."""


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


class SpiFlash(NorFlash):
    """The NOR flash chip and the flash-encryption engine in front of it.

    :meth:`read` is a read through the cache (decrypted when flash encryption is on);
    :meth:`read_raw` is the chip's own :meth:`NorFlash.read`.
    """

    def __init__(
        self,
        data: bytes | bytearray,
        efuses: Efuses,
        counter: WriteCounter | None = None,
    ) -> None:
        super().__init__(data, counter)
        self.efuses = efuses
        self._cipher: tuple[bytes, FlashCipher] | None = None
        # what the engine decided for one eFuse register image (one check per boot
        # stage would otherwise decode the whole security state per flash read)
        self._engine_state: tuple[bytes, bool, FlashCipher | None] | None = None

    # -- the engine ------------------------------------------------------------------

    @property
    def encryption_enabled(self) -> bool:
        """``SPI_BOOT_CRYPT_CNT`` has an odd bit count (``esp_flash_encryption_enabled``)."""
        return self._state()[1]

    def _state(self) -> tuple[bytes, bool, FlashCipher | None]:
        """(eFuse registers, encryption enabled, cipher if made), redone after a burn."""
        regs = self.efuses.to_file_bytes()
        state = self._engine_state
        if state is None or state[0] != regs:
            enabled = security_state(self.efuses).flash_encryption_enabled
            state = self._engine_state = (regs, enabled, None)
        return state

    def engine_key(self) -> EngineKey | None:
        """Which eFuse key the engine would use (``None``: no XTS key burned)."""
        return engine_key(self.efuses)

    def cipher(self) -> FlashCipher:
        """The engine, keyed from eFuses; raises :class:`FlashAccessError` without a key."""
        state = self._state()
        if state[2] is not None:
            return state[2]
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
        self._engine_state = (state[0], state[1], self._cipher[1])
        return self._cipher[1]

    # -- reads -----------------------------------------------------------------------

    def read_raw(self, offset: int, length: int) -> bytes:
        """What is physically stored (an SPI read without the engine)."""
        return super().read(offset, length)

    def read(self, offset: int, length: int, *, decrypt: bool | None = None) -> bytes:
        """A read through the cache: decrypted when ``decrypt`` (default: FE enabled)."""
        if decrypt is None:
            decrypt = self.encryption_enabled
        if not decrypt:
            return self.read_raw(offset, length)
        start = offset & ~(ENCRYPTED_WRITE_ALIGN - 1)
        end = -(-(offset + length) // ENCRYPTED_WRITE_ALIGN) * ENCRYPTED_WRITE_ALIGN
        end = min(end, self.size)
        self._check(start, end - start)
        # decrypt straight from the chip's contents: no copy of the ciphertext first
        plain = self.cipher().decrypt(memoryview(self.data)[start:end], start)
        if offset == start and length == len(plain):
            return plain
        return plain[offset - start : offset - start + length]

    # -- writes ----------------------------------------------------------------------

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
    """One partition as the running app sees it (:class:`~espsec.flash.FlashRegion`).

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
