"""The otadata partition: two ``esp_ota_select_entry_t`` copies that choose the OTA app.

The format only: ESP-IDF ``components/bootloader_support/include/esp_flash_partitions.h``
(the struct and ``esp_ota_img_states_t``) and
``components/bootloader_support/src/bootloader_common_loader.c`` (CRC, validity, which
copy is active), plus :class:`OtadataWrite`, the erase-then-program shape of every update.

Any 32 bytes are an entry: a wrong CRC or an unknown state makes an entry *invalid*, as in
ESP-IDF, not malformed. Only a wrong length is a :class:`~espsec.errors.FormatError`.
ESP-IDF's rules for *what* to write (``esp_ota_set_boot_partition``,
``esp_ota_mark_app_valid_cancel_rollback``, the bootloader's state changes) live in
:mod:`espsec.device.boot_select`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Self

from espsec.errors import FormatError, UsageError
from espsec.image._fields import check_size, check_uint, require_length

OTADATA_SIZE = 0x2000
"""Size of the otadata partition (``gen_esp32part.py`` requires exactly this)."""
SECTOR_SIZE = 0x1000
"""``SPI_FLASH_SEC_SIZE``: copy *i* sits at ``i * SECTOR_SIZE`` and is erased alone."""
ENTRY_SIZE = 32
"""``sizeof(esp_ota_select_entry_t)``."""
SEQ_LABEL_SIZE = 20
UINT32_MAX = 0xFFFFFFFF
"""An ``ota_seq`` of ``UINT32_MAX`` (erased flash) marks an entry invalid."""
MAX_OTA_SLOTS = 16
"""``MAX_OTA_SLOTS``: app subtypes ``ota_0`` … ``ota_15``."""

_ENTRY = struct.Struct("<I20sII")


class OtaImgState(IntEnum):
    """``esp_ota_img_states_t``: where an OTA app is in the rollback state machine."""

    NEW = 0
    """Written by ``esp_ota_set_boot_partition`` with rollback on; first boot not yet seen."""
    PENDING_VERIFY = 1
    """Booted once; the app must confirm itself before the next reset."""
    VALID = 2
    """Confirmed by the app (``esp_ota_mark_app_valid_cancel_rollback``)."""
    INVALID = 3
    """Rejected by the app (``esp_ota_mark_app_invalid_rollback``); never booted again."""
    ABORTED = 4
    """Reset while PENDING_VERIFY: the bootloader gave up on it; never booted again."""
    UNDEFINED = 0xFFFFFFFF
    """Written when rollback is disabled (and what erased flash reads as)."""


def ota_select_crc(ota_seq: int) -> int:
    """``bootloader_common_ota_select_crc``: CRC-32 of the 4 LE bytes of ``ota_seq`` only.

    ``esp_rom_crc32_le(UINT32_MAX, &ota_seq, 4)``, i.e. ``zlib.crc32(data, 0xFFFFFFFF)``
    (``otatool.py`` computes it the same way with ``binascii.crc32``).
    """
    return zlib.crc32(struct.pack("<I", ota_seq), UINT32_MAX)


def _state(raw: int) -> int:
    try:
        return OtaImgState(raw)
    except ValueError:
        return raw


@dataclass(frozen=True)
class OtaSelectEntry:
    """One ``esp_ota_select_entry_t`` (32 bytes), exactly as stored.

    ``ota_state`` holds an :class:`OtaImgState` when the value is one, else the raw number
    (flash can hold anything there). Use :meth:`make` to build an entry with its CRC.
    """

    ota_seq: int
    seq_label: bytes
    ota_state: int
    crc: int

    def __post_init__(self) -> None:
        check_uint(self.ota_seq, 32, field="ota_seq")
        check_size(self.seq_label, SEQ_LABEL_SIZE, field="seq_label")
        check_uint(self.ota_state, 32, field="ota_state")
        check_uint(self.crc, 32, field="crc")

    @classmethod
    def make(
        cls,
        ota_seq: int,
        ota_state: int = OtaImgState.UNDEFINED,
        *,
        seq_label: bytes = b"\xff" * SEQ_LABEL_SIZE,
    ) -> Self:
        """An entry with a correct CRC (``seq_label`` unused by ESP-IDF: left 0xFF)."""
        check_uint(ota_seq, 32, field="ota_seq")
        return cls(ota_seq, seq_label, _state(ota_state), ota_select_crc(ota_seq))

    @classmethod
    def parse(cls, data: bytes, *, offset: int = 0) -> Self:
        """Parse exactly 32 bytes; ``offset`` is where they sit (for errors)."""
        require_length(data, ENTRY_SIZE, offset=offset, field="esp_ota_select_entry_t")
        ota_seq, seq_label, ota_state, crc = _ENTRY.unpack(data)
        return cls(ota_seq, seq_label, _state(ota_state), crc)

    def to_bytes(self) -> bytes:
        """The 32 entry bytes."""
        return _ENTRY.pack(self.ota_seq, self.seq_label, self.ota_state, self.crc)

    @property
    def state(self) -> OtaImgState | None:
        """``ota_state`` as a known state, or ``None`` for a value ESP-IDF does not define."""
        return self.ota_state if isinstance(self.ota_state, OtaImgState) else None

    @property
    def state_name(self) -> str:
        """``NEW``, ``VALID``, … or the raw value in hex."""
        state = self.state
        return state.name if state is not None else f"0x{self.ota_state:08x}"

    @property
    def crc_ok(self) -> bool:
        """``crc`` matches :func:`ota_select_crc` of ``ota_seq``."""
        return self.crc == ota_select_crc(self.ota_seq)

    @property
    def is_erased(self) -> bool:
        """All 32 bytes are 0xFF (an erased, never programmed copy)."""
        return self.to_bytes() == b"\xff" * ENTRY_SIZE

    @property
    def is_invalid(self) -> bool:
        """``bootloader_common_ota_select_invalid``: unset seq, or INVALID / ABORTED state.

        The CRC is *not* looked at (so a corrupted entry is neither invalid nor valid).
        """
        return self.ota_seq == UINT32_MAX or self.ota_state in (
            OtaImgState.INVALID,
            OtaImgState.ABORTED,
        )

    @property
    def is_valid(self) -> bool:
        """``bootloader_common_ota_select_valid``: not :attr:`is_invalid` and the CRC matches.

        NEW, PENDING_VERIFY, VALID, UNDEFINED and unknown states can all be valid.
        """
        return not self.is_invalid and self.crc_ok

    @property
    def is_initial(self) -> bool:
        """Seq ``UINT32_MAX`` or a wrong CRC: the bootloader's "initial state" test.

        ``bootloader_utility_get_selected_boot_partition`` writes a fresh entry on first
        boot when both copies are like this (and ``erase_last_boot_app_partition`` in
        ``esp_ota_ops.c`` leaves such a copy alone).
        """
        return self.ota_seq == UINT32_MAX or not self.crc_ok

    def slot(self, ota_app_count: int) -> int:
        """The OTA slot this entry selects: ``(ota_seq - 1) % ota_app_count`` in uint32."""
        if ota_app_count <= 0:
            raise UsageError("an OTA slot needs at least one OTA app partition")
        return ((self.ota_seq - 1) & UINT32_MAX) % ota_app_count

    def with_state(self, ota_state: int) -> Self:
        """This entry with another state and *the same* seq, label and CRC.

        What the bootloader's ``write_otadata`` stores after changing ``ota_state`` in the
        copy it read (PENDING_VERIFY to ABORTED, NEW to PENDING_VERIFY): it does not
        recompute the CRC, which covers only ``ota_seq`` anyway.
        """
        return type(self)(self.ota_seq, self.seq_label, _state(ota_state), self.crc)

    def rewritten(self, ota_seq: int, ota_state: int) -> Self:
        """``rewrite_ota_seq`` in ``esp_ota_ops.c``: new seq and state, CRC recomputed.

        The label bytes are kept as they were read from the copy being replaced.
        """
        check_uint(ota_seq, 32, field="ota_seq")
        return type(self)(ota_seq, self.seq_label, _state(ota_state), ota_select_crc(ota_seq))

    def describe(self) -> str:
        """``seq 2, NEW`` (for logs and boot reasons)."""
        seq = "unset" if self.ota_seq == UINT32_MAX else str(self.ota_seq)
        crc = "" if self.crc_ok else ", bad CRC"
        return f"seq {seq}, {self.state_name}{crc}"


ERASED_ENTRY = OtaSelectEntry(
    UINT32_MAX, b"\xff" * SEQ_LABEL_SIZE, OtaImgState.UNDEFINED, UINT32_MAX
)
"""What an erased copy reads as (plaintext flash)."""


@dataclass(frozen=True)
class OtadataWrite:
    """One otadata update: erase the 4 KiB sector of ``copy``, then program ``entry``.

    ESP-IDF always erases the whole sector before writing the 32 bytes (``write_otadata``
    in the bootloader, ``rewrite_ota_seq`` in the app), so power lost between the two
    steps leaves that copy erased. ``entry`` is ``None`` for an erase alone
    (``esp_ota_invalidate_inactive_ota_data_slot``, setting the factory app to boot).
    """

    copy: int
    entry: OtaSelectEntry | None

    def __post_init__(self) -> None:
        if self.copy not in (0, 1):
            raise ValueError(f"otadata copy must be 0 or 1, got {self.copy}")

    @property
    def offset(self) -> int:
        """Offset of the sector (and of the entry) inside the otadata partition."""
        return self.copy * SECTOR_SIZE

    @property
    def data(self) -> bytes:
        """The bytes programmed at :attr:`offset` after the erase (empty for an erase alone)."""
        return b"" if self.entry is None else self.entry.to_bytes()

    def describe(self) -> str:
        """``otadata[1] <- seq 2, NEW`` or ``otadata[1] erased``."""
        if self.entry is None:
            return f"otadata[{self.copy}] erased"
        return f"otadata[{self.copy}] <- {self.entry.describe()}"


@dataclass(frozen=True)
class OtaData:
    """The otadata partition: the entries at offsets 0x0 and 0x1000.

    The rest of each sector is ignored, as the bootloader and ``esp_ota_ops.c`` ignore it
    (under flash encryption it decrypts to noise); :meth:`to_bytes` writes it as 0xFF.
    """

    entries: tuple[OtaSelectEntry, OtaSelectEntry] = (ERASED_ENTRY, ERASED_ENTRY)

    def __post_init__(self) -> None:
        if len(self.entries) != 2:
            raise ValueError(f"otadata has exactly 2 entries, got {len(self.entries)}")

    @classmethod
    def parse(cls, data: bytes, *, offset: int = 0) -> Self:
        """Parse a whole otadata partition (exactly :data:`OTADATA_SIZE` bytes).

        The bootloader accepts a larger partition and reads the same two places; pass
        ``data[:OTADATA_SIZE]`` for one.
        """
        if len(data) != OTADATA_SIZE:
            raise FormatError(
                "otadata partition has the wrong size",
                offset=offset,
                field="otadata",
                expected=f"{OTADATA_SIZE} bytes",
                found=f"{len(data)} bytes",
            )
        first = OtaSelectEntry.parse(data[:ENTRY_SIZE], offset=offset)
        second = OtaSelectEntry.parse(
            data[SECTOR_SIZE : SECTOR_SIZE + ENTRY_SIZE], offset=offset + SECTOR_SIZE
        )
        return cls((first, second))

    def to_bytes(self) -> bytes:
        """The 0x2000-byte partition: each entry at the start of its sector, 0xFF after."""
        pad = b"\xff" * (SECTOR_SIZE - ENTRY_SIZE)
        return b"".join(e.to_bytes() + pad for e in self.entries)

    @classmethod
    def initial(cls) -> Self:
        """``ota_data_initial.bin``: both copies erased (the build's default otadata)."""
        return cls()

    def __getitem__(self, copy: int) -> OtaSelectEntry:
        return self.entries[copy]

    @property
    def valid(self) -> tuple[bool, bool]:
        """:attr:`OtaSelectEntry.is_valid` of each copy."""
        return (self.entries[0].is_valid, self.entries[1].is_valid)

    def active_index(self) -> int | None:
        """``bootloader_common_get_active_otadata``: the valid copy with the larger seq.

        On equal seqs copy 0 wins; ``None`` when neither copy is valid.
        """
        return select_otadata(self.entries, self.valid, maximum=True)

    def with_entry(self, copy: int, entry: OtaSelectEntry) -> Self:
        """This otadata with ``copy`` replaced by ``entry``."""
        entries = list(self.entries)
        entries[copy] = entry
        return type(self)((entries[0], entries[1]))

    def after(self, write: OtadataWrite, *, programmed: bool = True) -> Self:
        """The otadata after ``write``; ``programmed=False``: power lost after the erase.

        The erased copy reads as all 0xFF here, as on plaintext flash. With flash
        encryption on, otadata is encrypted and an erased sector decrypts to noise: a
        device model should read its (decrypted) flash back instead.
        """
        if write.entry is None or not programmed:
            return self.with_entry(write.copy, ERASED_ENTRY)
        return self.with_entry(write.copy, write.entry)

    def state_of_slot(self, slot: int, ota_app_count: int) -> int | None:
        """``esp_ota_get_state_partition``: the state of the first copy naming ``slot``.

        A copy counts when ``(ota_seq - 1) % ota_app_count == slot`` and its CRC matches
        (its seq and state are not checked); ``None`` is ``ESP_ERR_NOT_FOUND``.
        """
        if ota_app_count <= 0:
            return None
        for entry in self.entries:
            if entry.slot(ota_app_count) == slot and entry.crc_ok:
                return entry.ota_state
        return None


def select_otadata(
    entries: tuple[OtaSelectEntry, OtaSelectEntry],
    usable: tuple[bool, bool],
    *,
    maximum: bool = True,
) -> int | None:
    """``bootloader_common_select_otadata``: of the ``usable`` copies, the larger seq.

    With both usable, the copy whose seq equals the max (``maximum``) or min wins, copy 0
    on a tie; with one, that one; with none, ``None``.
    """
    if usable[0] and usable[1]:
        pick = max if maximum else min
        return 0 if pick(entries[0].ota_seq, entries[1].ota_seq) == entries[0].ota_seq else 1
    if usable[0]:
        return 0
    if usable[1]:
        return 1
    return None
