"""The second stage: ESP-IDF's bootloader choosing, checking and loading the app.

``bootloader_start.c`` / ``bootloader_utility.c``: ``bootloader_init`` (the bootloader
checks its own chip validity and takes the flash size from its header),
``bootloader_utility_load_partition_table`` (with ``esp_partition_table_verify`` and its
MD5 check), ``bootloader_utility_get_selected_boot_partition`` and
``bootloader_utility_load_boot_image`` (otadata, rollback, anti-rollback: decided by
:mod:`espsec.device.boot_select`, carried out here on flash and eFuses in ESP-IDF's
order), and ``try_load_partition`` (image checks: chip id and revisions, checksum, hash
or Secure Boot signature, by :mod:`espsec.device.image_check`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from espsec.device.boot_select import (
    EMPTY_SLOT,
    Action,
    AppKind,
    AppPartition,
    AppPartitionErase,
    AppSlot,
    OtaContext,
    OtaPolicy,
    SecureVersionBurn,
    select_boot_partition,
)
from espsec.device.first_boot import (
    app_signature_policy,
    signed_on_boot,
)
from espsec.device.hardware import Hardware
from espsec.device.image_check import LoadedImage, load_image, read_app_desc
from espsec.device.partitions import BootloaderState, PartitionTableInvalid, partition_table_verify
from espsec.efuse import Transaction
from espsec.efuse.security import read_secure_version
from espsec.errors import EspsecError
from espsec.flash import SECTOR_SIZE, FlashAccessError
from espsec.image import check_chip
from espsec.image.otadata import OTADATA_SIZE, OtaData, OtadataWrite, OtaImgState
from espsec.image.partition_table import MAX_TABLE_LENGTH, Partition
from espsec.sdkconfig import BootloaderConfig


@dataclass(frozen=True)
class BootloaderResult:
    """The app the bootloader chose and loaded, or why there is none."""

    state: BootloaderState | None
    boot: AppPartition | None
    partition: Partition | None
    app: LoadedImage | None
    ota_state: str | None
    refusal: str | None
    step: str | None = None
    """The ESP-IDF function behind the refusal."""


def _refuse(
    hw: Hardware, reason: str, step: str, state: BootloaderState | None = None
) -> BootloaderResult:
    hw.log.fail(reason)
    return BootloaderResult(state, None, None, None, None, reason, step)


def read_partition_table(
    hw: Hardware, config: BootloaderConfig, chip_size: int | None = None
) -> BootloaderState:
    """The partition table read through the cache and verified (raises on failure)."""
    raw = hw.flash.read(config.partition_table_offset, MAX_TABLE_LENGTH)
    partitions = partition_table_verify(raw, chip_size or hw.flash.size)
    return BootloaderState.from_partitions(partitions)


def check_app(
    hw: Hardware, config: BootloaderConfig, part: AppPartition, p: Partition
) -> LoadedImage:
    """``try_load_partition``'s image checks for one app partition (no anti-rollback)."""
    return load_image(
        hw.flash,
        what=part.name,
        offset=p.offset,
        limit=p.size,
        decrypt=hw.flash.encryption_enabled,
        chip=hw.chip,
        chip_rev=hw.chip_rev,
        kind="app",
        verify_hash=not signed_on_boot(config),
        signature=app_signature_policy(hw, config),
    )


def carry_out(
    hw: Hardware, state: BootloaderState, actions: Sequence[Action], *, bits: int = 16
) -> None:
    """Make :mod:`boot_select`'s otadata writes, eFuse burns and erases, in order.

    An otadata write erases the copy's sector and programs the 32-byte entry, encrypted
    when flash encryption is on (``write_otadata``, ``rewrite_ota_seq``). A secure
    version burn sets only the new bits of the thermometer (``esp_efuse_update_secure_
    version``; ``bits`` is ``CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD``).
    """
    encrypted = hw.flash.encryption_enabled
    for action in actions:
        if isinstance(action, OtadataWrite):
            info = state.ota_info
            if info is None:  # pragma: no cover - boot_select writes only with otadata
                continue
            at = info.offset + action.offset
            if action.entry is None:
                with hw.flash_update(
                    action.describe(), at, SECTOR_SIZE, encrypted=False, operations=1
                ):
                    hw.flash.erase_sector(at, what=f"{action.describe()}: erase")
            else:
                hw.write_region(action.describe(), at, action.data, encrypted=encrypted)
        elif isinstance(action, SecureVersionBurn):
            current = hw.efuses.get_int("SECURE_VERSION")
            new = current | ((1 << min(action.new, bits)) - 1)
            hw.burn(Transaction().burn("SECURE_VERSION", new), action.describe())
        elif isinstance(action, AppPartitionErase):
            target = state.app(action.partition)
            if target is None:
                continue
            with hw.flash_update(
                action.describe(),
                target.offset,
                target.size,
                encrypted=False,
                operations=target.size // SECTOR_SIZE,
            ):
                hw.flash.erase_range(target.offset, target.size, what=action.describe())


def state_name(value: int) -> str:
    """``VALID``, ``PENDING_VERIFY`` … or the raw value in hex."""
    try:
        return OtaImgState(value).name
    except ValueError:
        return f"0x{value:08x}"


def read_otadata(hw: Hardware, state: BootloaderState) -> bytes | None:
    """The otadata partition as the bootloader maps it (``None``: the table has none)."""
    info = state.ota_info
    if info is None:
        return None
    return hw.flash.read(info.offset, min(info.size, OTADATA_SIZE))


StartApp = Callable[[AppPartition, LoadedImage], str | None]
"""``load_image`` for the chosen app: the first-boot steps (Secure Boot v2, flash
encryption). Returns why it returned without starting the app, or ``None``."""


def bootloader_stage(
    hw: Hardware,
    config: BootloaderConfig,
    bootloader: LoadedImage,
    start_app: StartApp | None = None,
) -> BootloaderResult:
    """From the bootloader's start to the app it loads.

    ``start_app`` runs ``load_image``'s first-boot steps for the app chosen; when it
    fails, the bootloader goes on to the next partition, as ESP-IDF does.
    """
    log = hw.log
    image = bootloader.image
    chip_size = hw.flash.size
    if image is not None:
        try:
            check_chip(image, hw.chip, chip_rev_full=hw.chip_rev, kind="bootloader")
        except EspsecError as exc:
            return _refuse(hw, f"bootloader: {exc.message}", "bootloader_init: check_chip_validity")
        if image.header.flash_size is not None:
            chip_size = image.header.flash_size
        log.note(f"flash size from the bootloader header: {chip_size >> 20} MB")
    table_at = config.partition_table_offset
    try:
        state = read_partition_table(hw, config, chip_size)
    except (PartitionTableInvalid, FlashAccessError) as exc:
        return _refuse(
            hw,
            f"bootloader: failed to verify partition table at 0x{table_at:x}: {exc}",
            "bootloader_utility_load_partition_table",
        )
    log.note(
        f"partition table at 0x{table_at:x}: "
        + ", ".join(f"{p.name} 0x{p.offset:x}" for p in state.partitions)
    )

    # esp_efuse_read_secure_version: only the low BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD bits
    efuse_version = read_secure_version(hw.efuses, config.bootloader_app_sec_ver_size_efuse_field)
    loaded: dict[AppPartition, LoadedImage] = {}
    slots: dict[AppPartition, AppSlot] = {}
    failed: dict[AppPartition, str] = {}

    def lookup(part: AppPartition) -> AppSlot:
        if part not in slots:
            p = state.app(part)
            if p is None:
                slots[part] = EMPTY_SLOT
            else:
                checked = check_app(hw, config, part, p)
                loaded[part] = checked
                desc = read_app_desc(hw.flash, p.offset, decrypt=hw.flash.encryption_enabled)
                slots[part] = AppSlot(
                    loadable=checked.ok, secure_version=desc.secure_version if desc else None
                )
        slot = slots[part]
        return replace(slot, starts=False) if part in failed else slot

    otadata = read_otadata(hw, state)
    policy = OtaPolicy.from_config(config)
    ctx = OtaContext(
        ota_app_count=state.app_count,
        has_factory=state.factory is not None,
        has_test=state.test is not None,
        apps=lookup,
        policy=policy,
        efuse_secure_version=efuse_version,
    )
    # bootloader_utility_load_boot_image tries partitions in turn; load_image may return
    # for one (a first-boot step failed) after set_actual_ota_seq wrote otadata and burned
    # the secure version for it, and the loop goes on. Selection is a pure function of the
    # otadata and eFuse secure version read at the start, so it is replayed with the
    # failed partitions marked: its actions up to the failure are the ones already made.
    done = noted = 0
    shown: set[AppPartition] = set()
    while True:
        decision = select_boot_partition(otadata, ctx)
        for part in dict.fromkeys(decision.tried):
            if part in loaded and part not in shown:  # try_load_partition verified these
                log.image(loaded[part].check)
                shown.add(part)
        for reason in decision.reasons[noted:]:
            log.note(reason)
        # a replay's reasons repeat these, but for the last ("booting <part>")
        noted = len(decision.reasons) - (decision.boot is not None)
        carry_out(hw, state, decision.actions[done:], bits=policy.secure_version_field_bits)
        done = len(decision.actions)
        if decision.boot is None or start_app is None:
            break
        app = loaded[decision.boot]
        failure = start_app(decision.boot, app)
        if failure is None:
            break
        failed[decision.boot] = failure
    if decision.boot is None:
        tried = [
            f"{part}: {loaded[part].check.reason}"
            for part in dict.fromkeys(decision.tried)
            if part in loaded and not loaded[part].ok
        ]
        tried += [f"{part}: {why}" for part, why in failed.items()]
        reason = "bootloader: no bootable app partition"
        return _refuse(
            hw,
            reason + (f" ({'; '.join(tried)})" if tried else ""),
            "bootloader_utility_load_boot_image",
            state,
        )
    part = decision.boot
    app = loaded[part]
    ota_state = None
    if part.kind is AppKind.OTA and state.ota_info is not None:
        raw = read_otadata(hw, state)
        if raw is not None and len(raw) == OTADATA_SIZE:
            found = OtaData.parse(raw).state_of_slot(part.slot, state.app_count)
            if found is not None:
                ota_state = state_name(found)
    log.note(f"loaded app from partition {part} at 0x{app.check.offset:x}")
    return BootloaderResult(state, part, state.app(part), app, ota_state, None)
