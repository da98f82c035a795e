"""Which app the bootloader boots, and the app-side OTA calls, as pure functions.

The second-stage bootloader's choice of app with the rollback state machine and
anti-rollback (ESP-IDF ``components/bootloader_support/src/bootloader_utility.c``:
``bootloader_utility_get_selected_boot_partition``, ``bootloader_utility_load_boot_image``,
``try_load_partition``, ``set_actual_ota_seq``, ``check_anti_rollback``,
``update_anti_rollback``; ``components/bootloader/subproject/main/bootloader_start.c``:
``selected_boot_partition``), and the app's side of it (``components/app_update/
esp_ota_ops.c``), including what each side writes to otadata (the format itself is
:mod:`espsec.image.otadata`).

Nothing here touches flash or eFuses. Inputs are the otadata and an :class:`OtaContext`
(the partition table's app partitions, what the image checks found in each
(:class:`AppSlot`), the rollback configuration and the eFuse secure version); outputs are
a decision plus the *actions* ESP-IDF takes, in its order: otadata writes (each an erase
of a 4 KiB sector then a 32-byte program, so a power-loss harness can cut between any two
steps), eFuse secure-version burns and app partition erases. The caller (the virtual
device) carries them out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Self

from espsec.errors import UsageError
from espsec.image.otadata import (
    MAX_OTA_SLOTS,
    OTADATA_SIZE,
    UINT32_MAX,
    OtaData,
    OtadataWrite,
    OtaImgState,
    OtaSelectEntry,
    select_otadata,
)
from espsec.sdkconfig import BootloaderConfig

FACTORY_INDEX = -1
"""ESP-IDF's partition index of the factory app (``bootloader_config.h``)."""
TEST_APP_INDEX = -2
"""ESP-IDF's partition index of the test app."""


class AppKind(StrEnum):
    """The app partition subtypes the bootloader boots."""

    FACTORY = "factory"
    OTA = "ota"
    TEST = "test"


@dataclass(frozen=True, repr=False)
class AppPartition:
    """One app partition: ``factory``, ``ota_N`` or ``test``."""

    kind: AppKind
    slot: int = 0
    """N of ``ota_N`` (0 for the others)."""

    def __post_init__(self) -> None:
        if self.kind is AppKind.OTA and not 0 <= self.slot < MAX_OTA_SLOTS:
            raise ValueError(f"OTA slot must be 0..{MAX_OTA_SLOTS - 1}, got {self.slot}")
        if self.kind is not AppKind.OTA and self.slot != 0:
            raise ValueError(f"{self.kind} has no slot number")

    @classmethod
    def from_name(cls, name: str) -> Self:
        """``factory``, ``test`` or ``ota_N`` (the partition table subtype names)."""
        if name in (AppKind.FACTORY, AppKind.TEST):
            return cls(AppKind(name))
        if m := re.fullmatch(r"ota_(\d{1,2})", name):
            return cls(AppKind.OTA, int(m.group(1)))
        raise UsageError(f"not an app partition subtype: {name!r} (factory, ota_N, test)")

    @property
    def name(self) -> str:
        """``factory``, ``ota_3`` or ``test``."""
        return f"ota_{self.slot}" if self.kind is AppKind.OTA else self.kind.value

    @property
    def subtype(self) -> int:
        """The partition table subtype: 0x00, 0x10 + N or 0x20."""
        return {AppKind.FACTORY: 0x00, AppKind.OTA: 0x10 + self.slot, AppKind.TEST: 0x20}[self.kind]

    @property
    def index(self) -> int:
        """ESP-IDF's partition index: :data:`FACTORY_INDEX`, :data:`TEST_APP_INDEX` or N."""
        if self.kind is AppKind.OTA:
            return self.slot
        return FACTORY_INDEX if self.kind is AppKind.FACTORY else TEST_APP_INDEX

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"AppPartition({self.name})"


FACTORY = AppPartition(AppKind.FACTORY)
TEST = AppPartition(AppKind.TEST)


def ota(slot: int) -> AppPartition:
    """The ``ota_<slot>`` app partition."""
    return AppPartition(AppKind.OTA, slot)


@dataclass(frozen=True)
class AppSlot:
    """What the image checks found in one app partition (they are done elsewhere).

    ``loadable``: the image passes ``bootloader_load_image`` / ``esp_image_verify``
    (header, checksum, hash, Secure Boot signature). ``secure_version``: from its
    ``esp_app_desc_t``; ``None`` when that cannot be read (no magic word), which anti-
    rollback treats as failing (``bootloader_common_get_partition_description``).
    """

    loadable: bool = True
    secure_version: int | None = 0
    starts: bool = True
    """``load_image`` gets as far as starting the app. ``False``: a first-boot step
    (``esp_secure_boot_v2_permanently_enable``, ``esp_flash_encrypt_init`` …) returned an
    error for this app. ``load_image`` then returns and ``bootloader_utility_load_boot_
    image`` goes on with the next partition, *after* ``set_actual_ota_seq`` has written
    otadata and burned the secure version for this one."""


EMPTY_SLOT = AppSlot(loadable=False, secure_version=None)
"""An erased partition: no image, no app description."""

AppLookup = Mapping[AppPartition, AppSlot] | Callable[[AppPartition], AppSlot]
"""For each app partition, its :class:`AppSlot` (a mapping lacks erased partitions)."""


@dataclass(frozen=True)
class OtaPolicy:
    """The configuration the OTA logic depends on."""

    rollback: bool = False
    """``CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE``."""
    anti_rollback: bool = False
    """``CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK`` (requires rollback)."""
    secure_version_field_bits: int = 16
    """``CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD``: highest burnable secure version."""

    def __post_init__(self) -> None:
        if self.anti_rollback and not self.rollback:
            raise UsageError(
                "anti-rollback (BOOTLOADER_APP_ANTI_ROLLBACK) needs rollback "
                "(BOOTLOADER_APP_ROLLBACK_ENABLE)"
            )
        if not 1 <= self.secure_version_field_bits <= 32:
            raise UsageError(
                f"secure version field must be 1..32 bits, got {self.secure_version_field_bits}"
            )

    @classmethod
    def from_config(cls, config: BootloaderConfig) -> Self:
        """The policy an app built with ``config`` and its bootloader follow."""
        return cls(
            rollback=config.bootloader_app_rollback_enable,
            anti_rollback=config.bootloader_app_anti_rollback,
            secure_version_field_bits=config.bootloader_app_sec_ver_size_efuse_field,
        )


@dataclass(frozen=True)
class OtaContext:
    """What ESP-IDF's OTA decisions read besides otadata: one device, at one moment.

    The bootloader (``bootloader_utility_get_selected_boot_partition``,
    ``bootloader_utility_load_boot_image``) and the app's ``esp_ota_ops.c``
    (``esp_ota_set_boot_partition``, ``esp_ota_mark_app_valid_cancel_rollback``,
    ``esp_ota_mark_app_invalid_rollback_and_reboot``, ``esp_ota_check_rollback_is_possible``,
    ``esp_ota_begin``) look at the same things: the partition table's app partitions
    (``bootloader_state_t``: ``app_count``, ``factory``, ``test``), what each of them holds,
    the rollback configuration and the eFuse secure version.
    """

    ota_app_count: int
    """OTA app partitions, taken as ``ota_0`` … ``ota_<n-1>`` (``bs->app_count``)."""
    has_factory: bool = False
    """The partition table has a factory app (``bs->factory``)."""
    has_test: bool = False
    """The partition table has a test app (``bs->test``)."""
    apps: AppLookup = field(default_factory=dict)
    """What each app partition holds (a mapping lacks erased partitions)."""
    policy: OtaPolicy = field(default_factory=OtaPolicy)
    """``CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE`` and ``…_ANTI_ROLLBACK``."""
    efuse_secure_version: int = 0
    """The eFuse secure version (``esp_efuse_read_secure_version``)."""

    def __post_init__(self) -> None:
        if not 0 <= self.ota_app_count <= MAX_OTA_SLOTS:
            raise UsageError(f"ota_app_count must be 0..{MAX_OTA_SLOTS}, got {self.ota_app_count}")

    def app(self, part: AppPartition) -> AppSlot:
        """What ``part`` holds (:data:`EMPTY_SLOT` when a mapping lacks it)."""
        if isinstance(self.apps, Mapping):
            return self.apps.get(part, EMPTY_SLOT)
        return self.apps(part)


@dataclass(frozen=True)
class SecureVersionBurn:
    """``esp_efuse_update_secure_version``: raise the eFuse secure version to ``new``.

    The eFuse field is a thermometer code; burning sets bits ``old`` .. ``new - 1``.
    """

    old: int
    new: int

    def describe(self) -> str:
        return f"burn eFuse secure version {self.old} -> {self.new}"


@dataclass(frozen=True)
class AppPartitionErase:
    """Erase an app partition (``esp_ota_begin``; a too-old image in ``set_boot_partition``)."""

    partition: AppPartition

    def describe(self) -> str:
        return f"erase {self.partition}"


Action = OtadataWrite | SecureVersionBurn | AppPartitionErase
"""One step ESP-IDF performs on flash or eFuses, to be carried out in order."""


class _HasActions:
    actions: tuple[Action, ...]

    @property
    def otadata_writes(self) -> tuple[OtadataWrite, ...]:
        """The otadata writes among :attr:`actions`, in order."""
        return tuple(a for a in self.actions if isinstance(a, OtadataWrite))

    @property
    def secure_version_burn(self) -> int | None:
        """The eFuse secure version burned (the last one), if any."""
        burns = [a.new for a in self.actions if isinstance(a, SecureVersionBurn)]
        return burns[-1] if burns else None


@dataclass(frozen=True)
class BootDecision(_HasActions):
    """What the bootloader did on one reset."""

    boot: AppPartition | None
    """The app that starts; ``None``: no bootable app (``bootloader_reset``)."""
    start: AppPartition | None
    """ESP-IDF's start index for ``bootloader_utility_load_boot_image`` (``FACTORY`` also
    when the table has no factory app: "try all"); ``None`` is ``INVALID_INDEX``."""
    tried: tuple[AppPartition, ...]
    """Partitions tried, in order (the last is :attr:`boot` when one boots)."""
    reasons: tuple[str, ...]
    """What happened, in ESP-IDF's terms, in order."""
    actions: tuple[Action, ...]
    """Otadata writes and eFuse burns, in the order ESP-IDF makes them."""
    efuse_secure_version: int
    """The eFuse secure version after :attr:`actions`."""


class EspErr(StrEnum):
    """The ``esp_err_t`` codes the app-side OTA calls return."""

    ESP_FAIL = "ESP_FAIL"
    ESP_ERR_INVALID_ARG = "ESP_ERR_INVALID_ARG"
    ESP_ERR_NOT_FOUND = "ESP_ERR_NOT_FOUND"
    ESP_ERR_OTA_PARTITION_CONFLICT = "ESP_ERR_OTA_PARTITION_CONFLICT"
    ESP_ERR_OTA_VALIDATE_FAILED = "ESP_ERR_OTA_VALIDATE_FAILED"
    ESP_ERR_OTA_SMALL_SEC_VER = "ESP_ERR_OTA_SMALL_SEC_VER"
    ESP_ERR_OTA_ROLLBACK_FAILED = "ESP_ERR_OTA_ROLLBACK_FAILED"
    ESP_ERR_OTA_ROLLBACK_INVALID_STATE = "ESP_ERR_OTA_ROLLBACK_INVALID_STATE"


@dataclass(frozen=True)
class OtaOpResult(_HasActions):
    """The outcome of one app-side OTA call: its error code and what it wrote.

    Actions can come with an error: ``esp_ota_set_boot_partition`` erases a too-old
    image and then fails; ``esp_ota_mark_app_valid_cancel_rollback`` writes otadata and
    then can fail to burn the eFuse.
    """

    error: EspErr | None
    """``None`` is ``ESP_OK``."""
    actions: tuple[Action, ...] = ()
    reasons: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


def apply_otadata_writes(otadata: OtaData, actions: Iterable[Action]) -> OtaData:
    """``otadata`` after every otadata write in ``actions`` completed."""
    for action in actions:
        if isinstance(action, OtadataWrite):
            otadata = otadata.after(action)
    return otadata


def _as_otadata(otadata: OtaData | tuple[OtaSelectEntry, OtaSelectEntry]) -> OtaData:
    return otadata if isinstance(otadata, OtaData) else OtaData(otadata)


def _entry_name(copy: int, entry: OtaSelectEntry, ota_app_count: int) -> str:
    if ota_app_count > 0 and entry.ota_seq != UINT32_MAX:
        return f"ota_{entry.slot(ota_app_count)} entry (otadata[{copy}], seq {entry.ota_seq})"
    return f"otadata[{copy}]"


def _why_not_valid(copy: int, entry: OtaSelectEntry) -> str:
    if entry.is_erased:
        return f"otadata[{copy}] is erased"
    if entry.ota_seq == UINT32_MAX:
        return f"otadata[{copy}] has no sequence number (0xffffffff)"
    if entry.ota_state in (OtaImgState.INVALID, OtaImgState.ABORTED):
        return f"otadata[{copy}] (seq {entry.ota_seq}) is {entry.state_name}"
    return f"otadata[{copy}] (seq {entry.ota_seq}) has a bad CRC"


class _Bootloader:
    """One run of the bootloader's app selection; collects reasons and actions."""

    def __init__(self, ctx: OtaContext) -> None:
        self.ctx = ctx
        self.count = ctx.ota_app_count
        self.app = ctx.app
        self.policy = ctx.policy
        self.efuse = ctx.efuse_secure_version  # raised by this run's burns
        self.reasons: list[str] = []
        self.actions: list[Action] = []
        self.tried: list[AppPartition] = []
        self.ota_has_initial_contents = False
        self._rollback_checked: dict[tuple[AppPartition, int], bool] = {}

    # -- helpers --------------------------------------------------------------------

    def partition(self, index: int) -> AppPartition | None:
        """``index_to_partition``: ``None`` for a partition the table lacks."""
        if index == FACTORY_INDEX:
            return FACTORY if self.ctx.has_factory else None
        if index == TEST_APP_INDEX:
            return TEST if self.ctx.has_test else None
        if 0 <= index < min(MAX_OTA_SLOTS, self.count):
            return ota(index)
        return None

    def write(self, copy: int, entry: OtaSelectEntry, why: str) -> None:
        """``write_otadata``: erase the copy's sector, then program the entry."""
        self.actions.append(OtadataWrite(copy, entry))
        self.reasons.append(why)

    def check_anti_rollback(self, part: AppPartition) -> bool:
        """``check_anti_rollback``: the app's secure_version is not below the eFuse's.

        ESP-IDF makes it when choosing the otadata entry and again when loading the
        partition; the answer is the same while the eFuse is, so it is decided (and its
        reason given) once per partition and eFuse secure version.
        """
        if not self.policy.anti_rollback:
            return True
        key = (part, self.efuse)
        if key not in self._rollback_checked:
            self._rollback_checked[key] = self._check_anti_rollback(part)
        return self._rollback_checked[key]

    def _check_anti_rollback(self, part: AppPartition) -> bool:
        version = self.app(part).secure_version
        if version is None:
            self.reasons.append(f"{part} has no readable app description: skipped")
            return False
        if version < self.efuse:
            self.reasons.append(f"{part} secure_version {version} < eFuse {self.efuse}: skipped")
            return False
        return True

    def update_anti_rollback(self, part: AppPartition, why: str) -> None:
        """``update_anti_rollback`` / ``esp_efuse_update_secure_version``."""
        version = self.app(part).secure_version
        if version is None:
            self.reasons.append(f"{part} has no readable app description: eFuse not updated")
            return
        bits = self.policy.secure_version_field_bits
        if version > bits:
            self.reasons.append(
                f"{part} secure_version {version} does not fit the {bits}-bit eFuse field: "
                "not burned"
            )
        elif self.efuse < version:
            self.actions.append(SecureVersionBurn(self.efuse, version))
            self.reasons.append(f"eFuse secure version {self.efuse} -> {version} ({why})")
            self.efuse = version

    def try_load(self, part: AppPartition | None) -> bool:
        """``check_anti_rollback(part) && try_load_partition(part)``."""
        if part is None:
            return False
        self.tried.append(part)
        if not self.check_anti_rollback(part):
            return False
        if not self.app(part).loadable:
            self.reasons.append(f"{part} is not bootable (image failed verification)")
            return False
        return True

    # -- the two bootloader steps ---------------------------------------------------

    def get_selected_boot_partition(self, otadata: OtaData | None) -> int:
        """``bootloader_utility_get_selected_boot_partition``."""
        if otadata is None:
            self.reasons.append("no otadata partition: factory app")
            return FACTORY_INDEX
        count = self.count
        entries = list(otadata.entries)
        if self.policy.rollback:
            for i, entry in enumerate(entries):
                if entry.ota_state == OtaImgState.PENDING_VERIFY:
                    entries[i] = entry.with_state(OtaImgState.ABORTED)
                    self.write(
                        i,
                        entries[i],
                        f"{_entry_name(i, entry, count)} PENDING_VERIFY -> ABORTED "
                        "(app never confirmed itself)",
                    )
        first, second = entries
        for i, entry in enumerate(entries):
            if not entry.is_valid:
                self.reasons.append(_why_not_valid(i, entry))

        if not self.policy.anti_rollback:
            if (first.is_invalid and second.is_invalid) or count == 0:
                why = "no OTA app partitions" if count == 0 else "both otadata entries invalid"
                if self.ctx.has_factory:
                    self.reasons.append(f"{why}: defaulting to factory app")
                    return FACTORY_INDEX
                self.reasons.append(f"{why} and no factory app: trying ota_0")
                if first.is_initial and second.is_initial:
                    self.ota_has_initial_contents = True
                return 0
            active = select_otadata((first, second), (first.is_valid, second.is_valid))
        else:
            self.reasons.append(f"anti-rollback on: eFuse secure version {self.efuse}")
            if first.is_initial and second.is_initial:
                self.reasons.append("otadata[0..1] in initial state")
                self.ota_has_initial_contents = True
                return FACTORY_INDEX
            active = self.active_otadata_with_check_anti_rollback((first, second))

        if active is None:
            if self.ctx.has_factory:
                self.reasons.append("ota data partition invalid, falling back to factory app")
            else:
                self.reasons.append("ota data partition invalid and no factory: trying all apps")
            return FACTORY_INDEX

        entry = entries[active]
        slot = entry.slot(count)
        self.reasons.append(f"otadata[{active}] is active ({entry.describe()}) -> ota_{slot}")
        if self.policy.rollback and entry.ota_state == OtaImgState.NEW:
            entries[active] = entry.with_state(OtaImgState.PENDING_VERIFY)
            self.write(
                active,
                entries[active],
                f"{_entry_name(active, entry, count)} NEW -> PENDING_VERIFY "
                "(first boot of the new app)",
            )
        if self.policy.anti_rollback and entries[active].ota_state == OtaImgState.VALID:
            self.update_anti_rollback(ota(slot), f"ota_{slot} is VALID")
        return slot

    def active_otadata_with_check_anti_rollback(
        self, entries: tuple[OtaSelectEntry, OtaSelectEntry]
    ) -> int | None:
        """``get_active_otadata_with_check_anti_rollback``."""
        if self.count == 0:
            # ESP-IDF computes seq % 0 here (undefined behaviour); treat as no OTA app.
            self.reasons.append("no OTA app partitions: no otadata entry can be selected")
            return None
        usable = [False, False]
        for i, entry in enumerate(entries):
            if entry.is_valid:
                usable[i] = self.check_anti_rollback(ota(entry.slot(self.count)))
        return select_otadata(entries, (usable[0], usable[1]))

    def load_boot_image(self, start: int) -> AppPartition | None:
        """``bootloader_utility_load_boot_image``: start, then down to factory, then up."""
        if start == TEST_APP_INDEX:
            if self.try_load(self.partition(TEST_APP_INDEX)) and self.load_image(TEST):
                return TEST
            self.reasons.append("no bootable test partition in the partition table")
            return None
        for index in [*range(start, FACTORY_INDEX - 1, -1), *range(start + 1, self.count)]:
            part = self.partition(index)
            if part is not None and self.try_load(part):
                self.set_actual_ota_seq(index)
                if self.load_image(part):
                    return part
        if self.try_load(self.partition(TEST_APP_INDEX)):
            self.reasons.append("falling back to test app as only bootable partition")
            if self.load_image(TEST):
                return TEST
        self.reasons.append("no bootable app partitions in the partition table")
        return None

    def load_image(self, part: AppPartition) -> bool:
        """``load_image``: ``False`` when it returns (a first-boot step failed)."""
        if self.app(part).starts:
            return True
        self.reasons.append(
            f"{part}: a first-boot step failed in load_image: trying the next partition"
        )
        return False

    def set_actual_ota_seq(self, index: int) -> None:
        """``set_actual_ota_seq``: first boot with blank otadata records what booted."""
        if index > FACTORY_INDEX and self.ota_has_initial_contents:
            entry = OtaSelectEntry.make(index + 1, OtaImgState.VALID)
            self.write(0, entry, f"otadata initial: otadata[0] <- seq {index + 1} VALID")
            if self.policy.anti_rollback:
                self.update_anti_rollback(ota(index), f"first boot of ota_{index}")


def select_boot_partition(
    otadata: OtaData | bytes | tuple[OtaSelectEntry, OtaSelectEntry] | None,
    ctx: OtaContext,
    *,
    test_app_requested: bool = False,
) -> BootDecision:
    """The bootloader's choice of app on one reset, with the writes and burns it makes.

    ``otadata``: the otadata partition (parsed, raw bytes or the two entries), ``None``
    when the partition table has none. ``test_app_requested``: the test-app GPIO is held
    (``CONFIG_BOOTLOADER_APP_TEST``).

    Follows ``bootloader_utility_get_selected_boot_partition`` (PENDING_VERIFY entries
    become ABORTED, the valid entry with the larger seq picks the slot, NEW becomes
    PENDING_VERIFY, anti-rollback skips slots whose secure_version is below the eFuse
    and burns the eFuse for a VALID one), then ``bootloader_utility_load_boot_image``
    (the chosen slot, lower slots down to factory, higher slots, then test; on a first
    boot without factory app ``set_actual_ota_seq`` writes seq = slot + 1, VALID).
    """
    run = _Bootloader(ctx)
    start: int | None
    if isinstance(otadata, bytes):
        if len(otadata) < OTADATA_SIZE:
            run.reasons.append(
                f"otadata partition is too small ({len(otadata)} bytes, minimum {OTADATA_SIZE})"
            )
            otadata_value: OtaData | None = None
            start = None
        else:
            otadata_value = OtaData.parse(otadata[:OTADATA_SIZE])
            start = run.get_selected_boot_partition(otadata_value)
    else:
        otadata_value = None if otadata is None else _as_otadata(otadata)
        start = run.get_selected_boot_partition(otadata_value)

    if start is not None and test_app_requested:
        if ctx.has_test:
            run.reasons.append("test app GPIO held: booting the test app")
            start = TEST_APP_INDEX
        else:
            run.reasons.append("test app GPIO held but no test partition in the table")
            start = None

    boot = run.load_boot_image(start) if start is not None else None
    if boot is not None:
        run.reasons.append(f"booting {boot}")
    return BootDecision(
        boot=boot,
        start=None if start is None else _index_partition(start),
        tried=tuple(run.tried),
        reasons=tuple(run.reasons),
        actions=tuple(run.actions),
        efuse_secure_version=run.efuse,
    )


def _index_partition(index: int) -> AppPartition:
    if index == FACTORY_INDEX:
        return FACTORY
    if index == TEST_APP_INDEX:
        return TEST
    return ota(index)


# --- the app side (esp_ota_ops.c) ---------------------------------------------------


def next_ota_seq(current_seq: int, slot: int, ota_app_count: int) -> int:
    """``compute_ota_seq_for_target_slot`` in ``esp_ota_ops.c``, uint32 wrap-around included.

    The first ``base + i * n`` (``base = (slot + 1) % n``, ``i = 0, 1, …``) not below
    ``current_seq``, so ``(seq - 1) % n == slot``. Near ``UINT32_MAX`` the C loop wraps;
    this follows it (the result can be ``UINT32_MAX``, an invalid entry, as in ESP-IDF).
    Where the C loop would never end, raises :class:`UsageError` instead.
    """
    return _next_seq(current_seq, slot, ota_app_count, bits=32)


def _next_seq(current: int, slot: int, count: int, *, bits: int) -> int:
    if count <= 0:
        return 0
    modulus = 1 << bits
    base = (slot + 1) % count
    if current <= base:
        return base
    first = -(-(current - base) // count)  # first i whose unwrapped candidate >= current
    if base + first * count < modulus:
        return base + first * count
    # Every candidate before `first` was below `current`; from `first` on, the uint
    # arithmetic wraps. Find the i >= first (cyclically) whose candidate lands in
    # [current, modulus): solve count * i == target - base (mod 2**bits) for each target.
    g = count & -count  # gcd(count, 2**bits): the power of two dividing count
    period = modulus // g
    inverse = pow(count // g, -1, period)
    best: tuple[int, int] | None = None
    for target in range(current, modulus):
        diff = (target - base) % modulus
        if diff % g:
            continue
        i = (diff // g) * inverse % period
        distance = (i - first) % period
        if best is None or distance < best[0]:
            best = (distance, target)
    if best is None:
        raise UsageError(
            f"no ota_seq >= {current} selects slot {slot} of {count}: "
            "ESP-IDF's compute_ota_seq_for_target_slot would never return"
        )
    return best[1]


def set_boot_partition_write(
    otadata: OtaData, slot: int, ota_app_count: int, *, rollback: bool
) -> OtadataWrite:
    """The write ``esp_rewrite_ota_data`` (``esp_ota_ops.c``) makes so OTA ``slot`` boots next.

    * active copy already selects ``slot``: rewrite that copy, same seq, new state;
    * otherwise: the *other* copy gets :func:`next_ota_seq` of the active seq;
    * no valid copy: copy 0 gets seq ``slot + 1``.

    The state is NEW with rollback (``CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE``), else
    UNDEFINED (``set_new_state_otadata``). The CRC is recomputed; the label kept
    (``rewrite_ota_seq``).
    """
    if not 0 <= slot < ota_app_count:
        raise UsageError(f"ota_{slot} does not exist ({ota_app_count} OTA app partitions)")
    state = OtaImgState.NEW if rollback else OtaImgState.UNDEFINED
    active = otadata.active_index()
    if active is None:
        copy, seq = 0, slot + 1
    elif otadata[active].slot(ota_app_count) == slot:
        copy, seq = active, otadata[active].ota_seq
    else:
        copy = 1 - active
        seq = next_ota_seq(otadata[active].ota_seq, slot, ota_app_count)
    return OtadataWrite(copy, otadata[copy].rewritten(seq, state))


def mark_app_state_write(otadata: OtaData, state: OtaImgState) -> OtadataWrite:
    """The write ``esp_ota_current_ota_is_workable`` makes: the *active* copy gets ``state``.

    VALID for ``esp_ota_mark_app_valid_cancel_rollback``, INVALID for
    ``esp_ota_mark_app_invalid_rollback``; same seq, CRC recomputed. The active copy is
    chosen from otadata, not from the running partition. Raises :class:`UsageError`
    without an active copy (ESP-IDF: ``ESP_FAIL``, "Running firmware is factory").
    """
    active = otadata.active_index()
    if active is None:
        raise UsageError("no valid otadata entry: the running firmware is the factory app")
    entry = otadata[active]
    return OtadataWrite(active, entry.rewritten(entry.ota_seq, state))


def set_boot_partition(
    otadata: OtaData,
    partition: AppPartition,
    ctx: OtaContext,
    *,
    validate: bool = True,
) -> OtaOpResult:
    """``esp_ota_set_boot_partition`` (``validate=False``: ``…_skip_validate``).

    The image must verify; the factory app is chosen by erasing all of otadata; an OTA
    app by :func:`set_boot_partition_write`. With anti-rollback an app whose
    secure_version is below the eFuse is erased and refused
    (``ESP_ERR_OTA_SMALL_SEC_VER``). As in ESP-IDF, the test app is taken for ``ota_0``
    (``OTA_SLOT(subtype)`` is ``subtype & 0x0F``).
    """
    policy = ctx.policy
    app = ctx.app(partition)
    if validate and not app.loadable:
        return OtaOpResult(EspErr.ESP_ERR_OTA_VALIDATE_FAILED, reasons=(f"{partition} invalid",))
    if partition.kind is AppKind.FACTORY:
        return OtaOpResult(
            None,
            actions=(OtadataWrite(0, None), OtadataWrite(1, None)),
            reasons=("factory app: otadata erased",),
        )
    if policy.anti_rollback:
        if app.secure_version is None:
            return OtaOpResult(
                EspErr.ESP_ERR_NOT_FOUND, reasons=(f"{partition} has no app description",)
            )
        if app.secure_version < ctx.efuse_secure_version:
            return OtaOpResult(
                EspErr.ESP_ERR_OTA_SMALL_SEC_VER,
                actions=(AppPartitionErase(partition),),
                reasons=(
                    f"{partition} secure_version {app.secure_version} < eFuse "
                    f"{ctx.efuse_secure_version}: partition erased",
                ),
            )
    slot = partition.subtype & 0x0F
    if slot >= ctx.ota_app_count:
        return OtaOpResult(
            EspErr.ESP_ERR_INVALID_ARG, reasons=(f"ota_{slot} is not in the partition table",)
        )
    write = set_boot_partition_write(otadata, slot, ctx.ota_app_count, rollback=policy.rollback)
    return OtaOpResult(None, actions=(write,), reasons=(write.describe(),))


def mark_app_valid(
    otadata: OtaData, ctx: OtaContext, *, running_secure_version: int | None = None
) -> OtaOpResult:
    """``esp_ota_mark_app_valid_cancel_rollback``.

    The *active* otadata copy becomes VALID (nothing happens if it already is). With
    anti-rollback the eFuse is then raised to the running app's secure_version
    (``esp_ota_set_anti_rollback``); that can fail after the otadata write.
    """
    policy = ctx.policy
    active = otadata.active_index()
    if active is None or ctx.ota_app_count == 0:
        return OtaOpResult(EspErr.ESP_FAIL, reasons=("running firmware is factory",))
    if otadata[active].ota_state == OtaImgState.VALID:
        return OtaOpResult(None, reasons=(f"otadata[{active}] already VALID",))
    write = mark_app_state_write(otadata, OtaImgState.VALID)
    actions: list[Action] = [write]
    reasons = [write.describe()]
    error: EspErr | None = None
    if policy.anti_rollback:
        bits = policy.secure_version_field_bits
        efuse = ctx.efuse_secure_version
        if running_secure_version is None:
            error = EspErr.ESP_ERR_NOT_FOUND
            reasons.append("running app has no app description: eFuse not updated")
        elif running_secure_version > bits:
            error = EspErr.ESP_ERR_INVALID_ARG
            reasons.append(f"secure_version {running_secure_version} exceeds {bits} bits")
        elif efuse < running_secure_version:
            burn = SecureVersionBurn(efuse, running_secure_version)
            actions.append(burn)
            reasons.append(burn.describe())
    return OtaOpResult(error, actions=tuple(actions), reasons=tuple(reasons))


def check_rollback_is_possible(otadata: OtaData, ctx: OtaContext) -> bool:
    """``esp_ota_check_rollback_is_possible``: the other otadata copy's app could boot.

    Without a valid other copy the factory app counts (not with anti-rollback); with one,
    its slot's image must verify and, with anti-rollback, not be below the eFuse.
    """
    anti_rollback = ctx.policy.anti_rollback
    if ctx.ota_app_count == 0:
        return False
    valid = otadata.valid
    active = select_otadata(otadata.entries, valid)
    if active is None:
        return False
    last = 1 - active
    if not anti_rollback and not valid[last] and ctx.has_factory and ctx.app(FACTORY).loadable:
        return True
    if valid[last]:
        candidate = ctx.app(ota(otadata[last].slot(ctx.ota_app_count)))
        if candidate.loadable:
            if not anti_rollback:
                return True
            version = candidate.secure_version
            return version is not None and version >= ctx.efuse_secure_version
    return False


def mark_app_invalid_rollback(otadata: OtaData, ctx: OtaContext) -> OtaOpResult:
    """``esp_ota_mark_app_invalid_rollback``: the active copy becomes INVALID.

    Refused (``ESP_ERR_OTA_ROLLBACK_FAILED``) unless :func:`check_rollback_is_possible`.
    The caller then reboots (``esp_ota_mark_app_invalid_rollback_and_reboot``).
    """
    active = otadata.active_index()
    if active is None or ctx.ota_app_count == 0:
        return OtaOpResult(EspErr.ESP_FAIL, reasons=("running firmware is factory",))
    if not check_rollback_is_possible(otadata, ctx):
        return OtaOpResult(
            EspErr.ESP_ERR_OTA_ROLLBACK_FAILED,
            reasons=("rollback is not possible: no suitable app in the other slot",),
        )
    write = mark_app_state_write(otadata, OtaImgState.INVALID)
    return OtaOpResult(None, actions=(write,), reasons=(write.describe(),))


def invalidate_inactive_ota_data_slot(
    otadata: OtaData, ctx: OtaContext, *, running: AppPartition
) -> OtadataWrite | None:
    """``esp_ota_invalidate_inactive_ota_data_slot``: erase the inactive copy, if any.

    Only a copy with a seq and a good CRC whose slot is not the running app is erased.
    """
    active = otadata.active_index()
    if active is None or ctx.ota_app_count == 0:
        return None
    inactive = 1 - active
    entry = otadata[inactive]
    if entry.is_initial or ota(entry.slot(ctx.ota_app_count)) == running:
        return None
    return OtadataWrite(inactive, None)


def ota_begin(
    otadata: OtaData, partition: AppPartition, ctx: OtaContext, *, running: AppPartition
) -> OtaOpResult:
    """``esp_ota_begin`` for an app partition: the checks and writes before a download.

    Refuses a non-OTA or the running partition, and (rollback) a running app still
    PENDING_VERIFY (``esp_ota_begin`` is where ESP-IDF refuses it). Then erases the target
    partition and, with rollback, the inactive otadata copy
    (:func:`invalidate_inactive_ota_data_slot`).
    """
    rollback = ctx.policy.rollback
    count = ctx.ota_app_count
    if partition.kind is not AppKind.OTA:
        return OtaOpResult(EspErr.ESP_ERR_INVALID_ARG, reasons=(f"{partition} is not OTA",))
    if partition.slot >= count:
        return OtaOpResult(EspErr.ESP_ERR_NOT_FOUND, reasons=(f"no {partition} partition",))
    if partition == running:
        return OtaOpResult(
            EspErr.ESP_ERR_OTA_PARTITION_CONFLICT, reasons=(f"{partition} is running",)
        )
    if (
        rollback
        and running.kind is AppKind.OTA
        and otadata.state_of_slot(running.slot, count) == OtaImgState.PENDING_VERIFY
    ):
        return OtaOpResult(
            EspErr.ESP_ERR_OTA_ROLLBACK_INVALID_STATE,
            reasons=("running app has not confirmed its state (PENDING_VERIFY)",),
        )
    actions: list[Action] = [AppPartitionErase(partition)]
    if rollback:
        erase = invalidate_inactive_ota_data_slot(otadata, ctx, running=running)
        if erase is not None:
            actions.append(erase)
    return OtaOpResult(None, actions=tuple(actions), reasons=tuple(a.describe() for a in actions))
