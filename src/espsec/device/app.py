"""The running app: its startup eFuse checks, and the ``esp_ota_*`` calls it can make.

* :func:`app_startup`: ``components/efuse/src/esp_efuse_startup.c: init_efuse_secure``
  (anti-rollback recheck, ``esp_flash_encryption_init_checks``,
  ``esp_secure_boot_init_checks``, the ROM download-mode burns).
* :class:`AppRuntime`: what an app (an OTA client) can do on the device, as
  ``components/app_update/esp_ota_ops.c`` does it: write the passive slot through the
  flash-encryption engine, verify it, switch otadata, mark the running app valid or
  invalid, revoke a Secure Boot key, reboot. The decisions are
  :mod:`espsec.device.boot_select`'s; the writes are counted, so a fault plan can cut
  power anywhere in an update.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from espsec.device.boot_select import (
    EMPTY_SLOT,
    AppKind,
    AppPartition,
    AppPartitionErase,
    AppSlot,
    EspErr,
    OtaContext,
    OtaOpResult,
    OtaPolicy,
    check_rollback_is_possible,
    mark_app_invalid_rollback,
    mark_app_valid,
    ota,
    ota_begin,
    set_boot_partition,
)
from espsec.device.bootloader import carry_out, read_otadata, state_name
from espsec.device.first_boot import DIGEST_PURPOSES, load_bootloader_image
from espsec.device.flash import PartitionFlash
from espsec.device.hardware import Hardware, StageLog
from espsec.device.image_check import (
    LoadedImage,
    SignaturePolicy,
    Trust,
    efuse_trust,
    load_image,
    own_key_digests,
    own_trust,
)
from espsec.device.partitions import BootloaderState
from espsec.device.report import ImageCheck, Stage, StageReport
from espsec.efuse import BurnRefused, Transaction, security_state
from espsec.efuse.security import read_secure_version
from espsec.errors import UsageError
from espsec.flash import SECTOR_SIZE
from espsec.image.otadata import OTADATA_SIZE, OtaData, OtaImgState
from espsec.sdkconfig import BootloaderConfig, FlashEncryptionMode, RomDownloadMode

if TYPE_CHECKING:
    from espsec.device.report import BootReport


@dataclass(frozen=True)
class AppAbort:
    """Why the app aborted at startup, and the ESP-IDF function that made it."""

    reason: str
    step: str


def app_startup(hw: Hardware, config: BootloaderConfig, app: LoadedImage) -> AppAbort | None:
    """``init_efuse_secure``: the checks and eFuse fixes at app start; the abort, if any."""
    log = hw.log
    efuses = hw.efuses
    state = security_state(efuses)
    if config.bootloader_app_anti_rollback:
        # esp_efuse_check_secure_version (esp_efuse_startup.c, init_efuse_secure)
        version = app.check.secure_version
        floor = read_secure_version(efuses, config.bootloader_app_sec_ver_size_efuse_field)
        if version is None or version < floor:
            return AppAbort(
                f"incorrect secure version of app ({version} < eFuse {floor})",
                "esp_efuse_check_secure_version",
            )
        log.note(f"secure_version {version} >= eFuse secure version {floor}")
    if config.secure_flash_enc_enabled:
        if config.secure_flash_check_enc_en_in_app and not state.flash_encryption_enabled:
            return AppAbort(
                "flash encryption eFuse bit was not enabled in bootloader but "
                "CONFIG_SECURE_FLASH_ENC_ENABLED is on",
                "esp_flash_encryption_init_checks",
            )
        release = config.secure_flash_encryption_mode is FlashEncryptionMode.RELEASE
        cnt = efuses.field("SPI_BOOT_CRYPT_CNT")
        full = (1 << cnt.length) - 1
        if (
            release
            and config.secure_boot
            and state.secure_boot_enabled
            and state.flash_encryption_enabled
            and efuses.is_writeable(cnt)
            and state.flash_crypt_cnt != full
        ):
            log.note(
                "release mode with Secure Boot needs SPI_BOOT_CRYPT_CNT write-protected: fixing"
            )
            hw.burn(
                Transaction().write_protect("SPI_BOOT_CRYPT_CNT"),
                "esp_flash_write_protect_crypt_cnt",
            )
        mode = security_state(efuses).flash_encryption_mode
        if mode == "development" and release:
            log.note("flash encryption error: app is set for RELEASE, but eFuses are DEVELOPMENT")
        else:
            log.note(f"flash encryption mode is {mode.upper()}")
    if config.secure_boot_v2_enabled:
        if state.secure_boot_enabled:
            _secure_boot_v2_check(hw, config)
        else:
            log.note("mismatch in secure boot settings: the app config is enabled but eFuse not")
    mode_dl = config.secure_uart_rom_dl_mode
    if mode_dl is RomDownloadMode.DISABLED and not efuses.get_int("DIS_DOWNLOAD_MODE"):
        hw.burn(Transaction().burn("DIS_DOWNLOAD_MODE", 1), "esp_efuse_disable_rom_download_mode")
        log.note("ROM download mode permanently disabled")
    if (
        mode_dl is RomDownloadMode.SECURE
        and not efuses.get_int("DIS_DOWNLOAD_MODE")
        and not efuses.get_int("ENABLE_SECURITY_DOWNLOAD")
    ):
        hw.burn(
            Transaction().burn("ENABLE_SECURITY_DOWNLOAD", 1),
            "esp_efuse_enable_rom_secure_download_mode",
        )
        log.note("Secure Download mode enabled")
    return None


def _secure_boot_v2_check(hw: Hardware, config: BootloaderConfig) -> None:
    """``secure_boot.c: secure_boot_v2_check``: lock digest slots, revoke unused ones."""
    efuses = hw.efuses
    layout = efuses.layout
    state = security_state(efuses)
    tx = Transaction()
    for slot in state.digest_slots:
        if slot.block is None:
            if not slot.revoked and not config.secure_boot_allow_unused_digest_slots:
                tx.burn(f"SECURE_BOOT_KEY_REVOKE{slot.index}", 1)
                hw.log.note(f"unused SECURE_BOOT_DIGEST{slot.index} should be revoked: fixing")
            continue
        block = layout.block(slot.block)
        if not slot.revoked and not efuses.is_write_protected(block):
            tx.write_protect(block.name)
            hw.log.note(f"{block.name} should not be writeable: fixing")
        pf = layout.field(block.purpose_field or "")
        if efuses.is_writeable(pf):
            tx.write_protect(pf.name)
            hw.log.note(
                f"{pf.name} ({DIGEST_PURPOSES[slot.index]}) should be write-protected: fixing"
            )
    if tx.operations:
        hw.burn(tx, "esp_secure_boot_init_checks")


class AppRuntime:
    """The running app's view of the device and its ``esp_ota_*`` calls.

    Bound to one boot: after :meth:`reboot` use the new runtime of the device. Calls
    return :class:`~espsec.device.boot_select.OtaOpResult` (``error`` is the
    ``esp_err_t``, ``None`` for ``ESP_OK``); a fault plan armed on the device can raise
    :class:`~espsec.flash.PowerCut` from any call that writes.
    """

    def __init__(
        self,
        hw: Hardware,
        config: BootloaderConfig,
        state: BootloaderState,
        running: AppPartition,
        reboot: Callable[[], BootReport],
    ) -> None:
        self.hw = hw
        self.config = config
        self.state = state
        self.running = running
        self._reboot = reboot
        self.policy = OtaPolicy.from_config(config)
        self._log = StageLog(Stage.APP)

    def activity(self) -> StageReport:
        """What the app's calls did so far: notes, eFuse burns, flash writes."""
        return self._log.report()

    def _begin(self) -> Hardware:
        self.hw.log = self._log
        return self.hw

    def __repr__(self) -> str:
        return f"AppRuntime(running={self.running})"

    # -- partitions ------------------------------------------------------------------

    def partition(self, part: AppPartition | str) -> PartitionFlash:
        """A partition (an app partition, or any by label) as ``esp_partition_*`` sees it."""
        found = self.state.app(part) if isinstance(part, AppPartition) else self.state.find(part)
        if found is None:
            raise UsageError(f"no partition {part} in the partition table")
        return PartitionFlash(self.hw.flash, found)

    def otadata(self) -> OtaData:
        """The otadata as the app reads it (decrypted under flash encryption)."""
        raw = read_otadata(self.hw, self.state)
        if raw is None or len(raw) != OTADATA_SIZE:
            return OtaData.initial()
        return OtaData.parse(raw)

    def state_of(self, part: AppPartition) -> str | None:
        """``esp_ota_get_state_partition`` (``None``: ``ESP_ERR_NOT_FOUND``)."""
        if part.kind is not AppKind.OTA:
            return None
        found = self.otadata().state_of_slot(part.slot, self.state.app_count)
        return None if found is None else state_name(found)

    def next_update_partition(self) -> AppPartition | None:
        """``esp_ota_get_next_update_partition``: the OTA slot after the running one."""
        count = self.state.app_count
        if count == 0:
            return None
        start = self.running.slot + 1 if self.running.kind is AppKind.OTA else 0
        for i in range(count):
            candidate = ota((start + i) % count)
            if candidate != self.running and self.state.app(candidate) is not None:
                return candidate
        return None

    def verify(self, part: AppPartition) -> ImageCheck:
        """``esp_image_verify(ESP_IMAGE_VERIFY)`` from the app (``esp_ota_end``)."""
        return self._load(part).check

    def _load(self, part: AppPartition) -> LoadedImage:
        found = self.state.app(part)
        if found is None:
            raise UsageError(f"no partition {part} in the partition table")
        signature = None
        if self.config.secure_signed_on_update:
            signature = SignaturePolicy.of(self._update_trust(), self.config.secure_boot_scheme)
        return load_image(
            self.hw.flash,
            what=part.name,
            offset=found.offset,
            limit=found.size,
            decrypt=self.hw.flash.encryption_enabled,
            chip=self.hw.chip,
            chip_rev=self.hw.chip_rev,
            kind="app",
            verify_hash=signature is None,
            signature=signature,
        )

    def _update_trust(self) -> Trust:
        """``secure_boot_signatures_app.c: get_secure_boot_key_digests``: the eFuse digests
        with Secure Boot on; without it (``SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT``) the
        key digests of the running app's own signature blocks
        (``esp_secure_boot_get_signature_blocks_for_running_app``)."""
        if security_state(self.hw.efuses).secure_boot_enabled:
            return efuse_trust(self.hw.efuses)
        running = self.state.app(self.running)
        digests: tuple[bytes, ...] = ()
        if running is not None:
            plain = load_image(
                self.hw.flash,
                what=self.running.name,
                offset=running.offset,
                limit=running.size,
                decrypt=self.hw.flash.encryption_enabled,
                chip=self.hw.chip,
                chip_rev=self.hw.chip_rev,
                kind="app",
                verify_hash=False,
                signature=SignaturePolicy.of(own_trust(), self.config.secure_boot_scheme),
            )
            if plain.signed is not None:
                digests, _ = own_key_digests(plain.signed)
        # no signature on the running app: nothing is trusted (ESP_ERR_IMAGE_INVALID)
        return Trust(
            tuple(digests) or (None,),
            frozenset(),
            False,
            "the running app's signature blocks (no Secure Boot)",
        )

    def _slot(self, part: AppPartition) -> AppSlot:
        if self.state.app(part) is None:
            return EMPTY_SLOT
        loaded = self._load(part)
        return AppSlot(loaded.ok, loaded.check.secure_version)

    def _context(self) -> OtaContext:
        """What ``esp_ota_ops.c`` reads now: the table's apps, config, eFuse secure version."""
        return OtaContext(
            ota_app_count=self.state.app_count,
            has_factory=self.state.factory is not None,
            has_test=self.state.test is not None,
            apps=self._slot,
            policy=self.policy,
            efuse_secure_version=read_secure_version(
                self.hw.efuses, self.policy.secure_version_field_bits
            ),
        )

    def _run(self, result: OtaOpResult, why: str) -> OtaOpResult:
        self.hw.log.note(why)
        carry_out(self.hw, self.state, result.actions, bits=self.policy.secure_version_field_bits)
        return result

    # -- esp_ota_* -------------------------------------------------------------------

    def ota_begin(self, part: AppPartition, image_size: int | None = None) -> OtaOpResult:
        """``esp_ota_begin``: checks, then erase the target (all of it, or ``image_size``)."""
        self._begin()
        result = ota_begin(self.otadata(), part, self._context(), running=self.running)
        if not result.ok:
            return result
        target = self.state.app(part)
        if image_size is not None and target is not None:
            length = min(target.size, -(-image_size // SECTOR_SIZE) * SECTOR_SIZE)
            region = PartitionFlash(self.hw.flash, target)
            rest = tuple(a for a in result.actions if not isinstance(a, AppPartitionErase))
            with self.hw.flash_update(
                f"esp_ota_begin: erase {part} (0x{length:x} bytes)",
                target.offset,
                length,
                encrypted=False,
                operations=length // SECTOR_SIZE,
            ):
                region.erase_range(0, length)
            return self._run(OtaOpResult(None, rest, result.reasons), f"esp_ota_begin({part})")
        return self._run(result, f"esp_ota_begin({part})")

    def ota_write(self, part: AppPartition, offset: int, data: bytes) -> None:
        """``esp_ota_write_with_offset``: program ``data`` (16-byte blocks under encryption)."""
        self._begin()
        region = self.partition(part)
        padded = data + b"\xff" * (-len(data) % 16)
        region.write(offset, padded)

    def ota_end(self, part: AppPartition) -> OtaOpResult:
        """``esp_ota_end``: verify the written image (``ESP_ERR_OTA_VALIDATE_FAILED``)."""
        check = self.verify(part)
        if not check.ok:
            return OtaOpResult(EspErr.ESP_ERR_OTA_VALIDATE_FAILED, reasons=(check.reason,))
        return OtaOpResult(None, reasons=(f"{part} verified",))

    def write_image(
        self, part: AppPartition, image: bytes, *, chunk_size: int = SECTOR_SIZE
    ) -> OtaOpResult:
        """``esp_ota_begin`` + ``esp_ota_write`` in ``chunk_size`` pieces + ``esp_ota_end``."""
        begun = self.ota_begin(part, len(image))
        if not begun.ok:
            return begun
        for at in range(0, len(image), chunk_size):
            self.ota_write(part, at, image[at : at + chunk_size])
        return self.ota_end(part)

    def set_boot_partition(self, part: AppPartition) -> OtaOpResult:
        """``esp_ota_set_boot_partition``: validate, anti-rollback, then write otadata."""
        self._begin()
        result = set_boot_partition(self.otadata(), part, self._context())
        return self._run(result, f"esp_ota_set_boot_partition({part})")

    def install(self, image: bytes, part: AppPartition | None = None) -> OtaOpResult:
        """A whole update: write ``image`` to the passive slot and select it for boot."""
        target = part or self.next_update_partition()
        if target is None:
            return OtaOpResult(EspErr.ESP_ERR_NOT_FOUND, reasons=("no OTA partition to update",))
        written = self.write_image(target, image)
        if not written.ok:
            return written
        return self.set_boot_partition(target)

    def mark_app_valid(self) -> OtaOpResult:
        """``esp_ota_mark_app_valid_cancel_rollback`` (burns the anti-rollback eFuse)."""
        self._begin()
        desc = self._load(self.running).check.secure_version
        result = mark_app_valid(self.otadata(), self._context(), running_secure_version=desc)
        return self._run(result, "esp_ota_mark_app_valid_cancel_rollback")

    def mark_app_invalid_rollback(self) -> OtaOpResult:
        """``esp_ota_mark_app_invalid_rollback`` (call :meth:`reboot` after it)."""
        self._begin()
        result = mark_app_invalid_rollback(self.otadata(), self._context())
        return self._run(result, "esp_ota_mark_app_invalid_rollback")

    def rollback_is_possible(self) -> bool:
        """``esp_ota_check_rollback_is_possible``."""
        return check_rollback_is_possible(self.otadata(), self._context())

    def revoke_secure_boot_public_key(self, slot: int) -> OtaOpResult:
        """``esp_ota_revoke_secure_boot_public_key``: burn ``SECURE_BOOT_KEY_REVOKE<slot>``.

        Refused unless Secure Boot is on, the running app is VALID (with rollback), and
        the running app and the bootloader both verify with another key.
        """
        self._begin()
        efuses = self.hw.efuses
        state = security_state(efuses)
        if not state.secure_boot_enabled:
            return OtaOpResult(EspErr.ESP_FAIL, reasons=("secure boot v2 has not been enabled",))
        if not 0 <= slot < len(state.digest_slots):
            return OtaOpResult(EspErr.ESP_ERR_INVALID_ARG, reasons=(f"no key digest slot {slot}",))
        if self.policy.rollback and self.state_of(self.running) != OtaImgState.VALID.name:
            return OtaOpResult(
                EspErr.ESP_FAIL,
                reasons=("the running application is not marked as a valid image",),
            )
        if state.digest_slots[slot].revoked or state.digest_slots[slot].block is None:
            return OtaOpResult(None, reasons=(f"public key digest {slot} is already revoked",))
        trust = efuse_trust(efuses)
        others = SignaturePolicy.of(
            Trust(trust.digests, trust.revoked | {slot}, True, trust.source),
            self.config.secure_boot_scheme,
        )
        running = self.state.app(self.running)
        assert running is not None
        for what, offset, limit, kind in (
            ("application", running.offset, running.size, "app"),
            (
                "bootloader",
                self.hw.chip.bootloader_offset,
                self.config.partition_table_offset - self.hw.chip.bootloader_offset,
                "bootloader",
            ),
        ):
            checked = load_image(
                self.hw.flash,
                what=what,
                offset=offset,
                limit=limit,
                decrypt=self.hw.flash.encryption_enabled,
                chip=self.hw.chip,
                chip_rev=None,
                kind="app" if kind == "app" else "bootloader",
                verify_hash=False,
                signature=others,
            )
            if not checked.ok:
                return OtaOpResult(
                    EspErr.ESP_FAIL,
                    reasons=(
                        f"{what} cannot be verified with any key other than the one being revoked",
                    ),
                )
        try:
            self.hw.burn(
                Transaction().burn(f"SECURE_BOOT_KEY_REVOKE{slot}", 1),
                "esp_ota_revoke_secure_boot_public_key",
            )
        except BurnRefused as exc:
            return OtaOpResult(EspErr.ESP_FAIL, reasons=(exc.message,))
        return OtaOpResult(None, reasons=(f"SECURE_BOOT_KEY_REVOKE{slot} burned",))

    def bootloader(self) -> ImageCheck:
        """The bootloader image as the app can check it."""
        return load_bootloader_image(self.hw, self.config).check

    def reboot(self) -> BootReport:
        """``esp_restart``: a software reset; the device boots again."""
        return self._reboot()
