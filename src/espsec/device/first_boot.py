"""The first boot: the bootloader turns on Secure Boot v2 and flash encryption.

What ESP-IDF's bootloader does in ``bootloader_utility.c: load_image`` when it is built
with these features and finds them off in eFuses:

1. ``secure_boot_v2/secure_boot.c: esp_secure_boot_v2_permanently_enable``: verify the
   bootloader; burn the public-key digests of its signature blocks into free key blocks
   (``SECURE_BOOT_DIGESTn``) unless digests are already there; check that the app is
   signed by one of them; revoke the unused digest slots; then
   ``<chip>/secure_boot_secure_features.c: esp_secure_boot_enable_secure_features``
   (``DIS_DIRECT_BOOT``, ROM download mode, JTAG, aggressive revocation,
   ``SECURE_BOOT_SHA384_EN`` for an ECDSA-P384 build on ESP32-P4 v3.0+,
   ``SECURE_BOOT_EN``, ``WR_DIS_RD_DIS``). One eFuse batch.
2. ``flash_encryption/flash_encrypt.c``: ``esp_flash_encrypt_init`` (generate the XTS-AES
   key, or use one already burned and protected; ``esp_flash_encryption_enable_secure_
   features``, with ``XTS_DPA_PSEUDO_LEVEL`` on an ESP32-P4 build for v3.0+; one batch),
   ``esp_flash_encrypt_contents`` (bootloader, partition table, then every partition
   that must be encrypted, each in place sector by sector: read, erase, write through
   the engine), then ``esp_flash_encrypt_enable`` (burn ``SPI_BOOT_CRYPT_CNT``: one more
   bit in development mode, all bits in release mode), and the bootloader resets.

Everything the real chip does not make power-loss safe is not made so here: a cut after
the in-place encryption started and before ``SPI_BOOT_CRYPT_CNT`` is burned leaves
ciphertext that the ROM reads as plaintext (the ``load_image`` comment in ESP-IDF).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from espsec.chips import revision_name
from espsec.device.hardware import Hardware
from espsec.device.image_check import (
    LoadedImage,
    SignaturePolicy,
    Trust,
    efuse_trust,
    load_image,
    own_key_digests,
    own_trust,
)
from espsec.device.partitions import PartitionTableInvalid, partition_table_verify
from espsec.efuse import BlockDef, Efuses, Transaction, security_state
from espsec.errors import EspsecError
from espsec.flash import SECTOR_SIZE
from espsec.image.partition_table import (
    APP,
    BOOTLOADER,
    DATA,
    DATA_NVS_KEYS,
    DATA_OTA,
    DATA_TEE_OTA,
    MAX_TABLE_LENGTH,
    PARTITION_TABLE,
    Partition,
)
from espsec.sdkconfig import (
    BootloaderConfig,
    FlashEncryptionKeySize,
    FlashEncryptionMode,
    RomDownloadMode,
)

DIGEST_PURPOSES = ("SECURE_BOOT_DIGEST0", "SECURE_BOOT_DIGEST1", "SECURE_BOOT_DIGEST2")


class FirstBootError(EspsecError):
    """A first-boot step failed: ``load_image`` returns and the bootloader tries the next
    app partition. ``step`` names the ESP-IDF function that failed."""

    def __init__(self, message: str, *, step: str | None = None) -> None:
        super().__init__(message)
        self.step = step


def signed_on_boot(config: BootloaderConfig) -> bool:
    """``CONFIG_SECURE_SIGNED_ON_BOOT``: the bootloader checks app signatures."""
    return config.secure_signed_on_boot


def app_trust(efuses: Efuses) -> Trust:
    """``esp_secure_boot_verify_sbv2_signature_block``'s trusted digests.

    The eFuse digests when any non-revoked one is burned; otherwise, while Secure Boot is
    off, the image's own blocks (first boot); with Secure Boot on and no usable digest,
    nothing verifies.
    """
    trust = efuse_trust(efuses)
    if trust.usable or security_state(efuses).secure_boot_enabled:
        return trust
    return own_trust()


def app_signature_policy(hw: Hardware, config: BootloaderConfig) -> SignaturePolicy | None:
    """How the bootloader checks app signatures (``None``: it does not)."""
    if not signed_on_boot(config):
        return None
    return SignaturePolicy.of(app_trust(hw.efuses), config.secure_boot_scheme)


def load_bootloader_image(
    hw: Hardware, config: BootloaderConfig, *, decrypt: bool | None = None
) -> LoadedImage:
    """``esp_image_verify_bootloader_data``: the bootloader checked as an image."""
    offset = hw.chip.bootloader_offset
    if decrypt is None:
        decrypt = hw.flash.encryption_enabled
    return load_image(
        hw.flash,
        what="bootloader",
        offset=offset,
        limit=config.partition_table_offset - offset,
        decrypt=decrypt,
        chip=hw.chip,
        chip_rev=hw.chip_rev,
        kind="bootloader",
        verify_hash=False,
        signature=app_signature_policy(hw, config) if config.secure_boot_v2_enabled else None,
    )


# -- key blocks (components/efuse/.../esp_efuse_api_key.c) -----------------------------


def _purpose_blocks(efuses: Efuses, purpose: str) -> list[BlockDef]:
    """``esp_efuse_find_purpose`` (every block with it, first first)."""
    layout = efuses.layout
    wanted = layout.purpose(purpose).id
    return [b for b in layout.key_blocks if efuses.key_purpose(b) == wanted]


def key_block_unused(efuses: Efuses, block: BlockDef) -> bool:
    """``esp_efuse_key_block_unused``: purpose USER, nothing protected, all bits zero."""
    layout = efuses.layout
    pf = layout.field(block.purpose_field or "")
    return (
        efuses.key_purpose(block) == 0
        and efuses.is_writeable(pf)
        and not efuses.is_read_protected(block)
        and not efuses.is_write_protected(block)
        and efuses.is_empty(block)
    )


def _unused_blocks(efuses: Efuses) -> list[BlockDef]:
    return [b for b in efuses.layout.key_blocks if key_block_unused(efuses, b)]


def _write_keys(
    efuses: Efuses, tx: Transaction, keys: list[tuple[str, bytes]], *, digest: bool
) -> list[str]:
    """``esp_efuse_write_keys``: each key into the next unused block; the block names."""
    free = _unused_blocks(efuses)
    if len(keys) > len(free):
        raise FirstBootError(
            f"not enough unused eFuse key blocks (need {len(keys)}, {len(free)} left)"
        )
    used = []
    quirk = efuses.layout.facts.xts_forbidden_blocks
    for (purpose, key), block in zip(keys, free, strict=False):
        if purpose.startswith("XTS_AES") and block.index in quirk:
            raise FirstBootError(
                f"{block.name} cannot hold an XTS-AES key (SOC_EFUSE_BLOCK9_KEY_PURPOSE_QUIRK)"
            )
        if digest:
            tx.burn_key_digest(block.name, key, purpose)
        else:
            tx.burn_key(block.name, key, purpose)
        used.append(block.name)
    return used


# -- Secure Boot v2 ----------------------------------------------------------------------


@dataclass(frozen=True)
class SecureBootPlan:
    """The eFuse batch ``esp_secure_boot_v2_permanently_enable`` burns, and its notes."""

    transaction: Transaction
    notes: tuple[str, ...]


def secure_boot_plan(hw: Hardware, config: BootloaderConfig, app: LoadedImage) -> SecureBootPlan:
    """``check_and_generate_secure_boot_keys`` + ``esp_secure_boot_enable_secure_features``.

    Reads only; raises :class:`FirstBootError` where ESP-IDF returns an error (then
    nothing is burned and the bootloader does not start this app).
    """
    efuses = hw.efuses
    notes: list[str] = []
    tx = Transaction()
    bootloader = load_bootloader_image(hw, config)
    if not bootloader.ok or bootloader.signed is None:
        raise FirstBootError(f"bootloader image appears invalid: {bootloader.check.reason}")
    slots = [_purpose_blocks(efuses, p) for p in DIGEST_PURPOSES]
    state = security_state(efuses)
    revoked = {s.index for s in state.digest_slots if s.revoked}
    boot_digests: list[bytes] = []
    if not any(slots):
        digests, problem = own_key_digests(bootloader.signed)
        if problem:
            raise FirstBootError(f"bootloader signature block is invalid: {problem}")
        if not digests:
            raise FirstBootError("no valid bootloader signature blocks found")
        blocks = _write_keys(
            efuses,
            tx,
            [(DIGEST_PURPOSES[i], d) for i, d in enumerate(digests)],
            digest=True,
        )
        notes.append(
            f"{len(digests)} bootloader signature block(s): digests burned into "
            + ", ".join(f"{b} (SECURE_BOOT_DIGEST{i})" for i, b in enumerate(blocks))
        )
        boot_digests = list(digests)
    else:
        for i, found in enumerate(slots):
            if not found or i in revoked:
                continue
            block = found[0]
            if efuses.is_read_protected(block):
                raise FirstBootError(f"key digest ({block.name}) read protected, aborting")
            if efuses.is_empty(block):
                raise FirstBootError(f"{block.name} eFuse block is empty, aborting")
            tx.write_protect(block.name)
            boot_digests.append(efuses.read_block(block))
        if not boot_digests:
            raise FirstBootError("no valid pre-loaded public key digest in eFuse")
        notes.append(f"using {len(boot_digests)} pre-loaded public key digest(s) in eFuse")
    if app.signed is None:
        raise FirstBootError("no valid application signature blocks found")
    app_digests, problem = own_key_digests(app.signed)
    if problem:
        raise FirstBootError(f"application signature block is invalid: {problem}")
    if not app_digests:
        raise FirstBootError("no valid application signature blocks found")
    # ESP-IDF indexes the bootloader digests by position here (slots 0..n-1).
    match = any(i not in revoked and d in app_digests for i, d in enumerate(boot_digests))
    if not match:
        raise FirstBootError("no application key digest matches the bootloader key digest")
    notes.append("the app is signed with a bootloader key")
    for i in range(len(boot_digests), len(DIGEST_PURPOSES)):
        if config.secure_boot_allow_unused_digest_slots:
            notes.append(f"unused key digest slot {i} left un-revoked (ALLOW_UNUSED_DIGEST_SLOTS)")
        else:
            tx.burn(f"SECURE_BOOT_KEY_REVOKE{i}", 1)
            notes.append(f"revoking empty key digest slot {i}")
    notes += _secure_boot_secure_features(efuses, config, tx)
    return SecureBootPlan(tx, tuple(notes))


def _secure_boot_secure_features(
    efuses: Efuses, config: BootloaderConfig, tx: Transaction
) -> list[str]:
    """``esp_secure_boot_enable_secure_features`` (ESP32-S3 and ESP32-P4 alike)."""
    notes = []
    tx.burn("DIS_DIRECT_BOOT", 1)
    notes += _rom_download_mode(efuses, config, tx)
    if config.secure_boot_allow_jtag:
        notes.append("not disabling JTAG - SECURITY COMPROMISED (SECURE_BOOT_ALLOW_JTAG)")
    else:
        soft = efuses.field("SOFT_DIS_JTAG")
        tx.burn("DIS_USB_JTAG", 1).burn("DIS_PAD_JTAG", 1).burn(
            "SOFT_DIS_JTAG", (1 << soft.length) - 1
        )
        notes.append("disabling hardware & software JTAG")
    if config.secure_boot_enable_aggressive_key_revoke:
        tx.burn("SECURE_BOOT_AGGRESSIVE_REVOKE", 1)
    notes += _secure_boot_scheme_efuse(efuses, config, tx)
    tx.burn("SECURE_BOOT_EN", 1)
    if config.secure_boot_v2_allow_efuse_rd_dis:
        notes.append("allowing read disabling of additional eFuses - SECURITY COMPROMISED")
    elif not config.secure_flash_enc_enabled or security_state(efuses).flash_encryption_enabled:
        tx.write_protect("RD_DIS")
        notes.append("preventing read disabling of additional eFuses (WR_DIS_RD_DIS)")
    return notes


def _secure_boot_scheme_efuse(
    efuses: Efuses, config: BootloaderConfig, tx: Transaction
) -> list[str]:
    """``CONFIG_SECURE_BOOT_ECDSA_KEY_LEN_384_BITS``: burn ``SECURE_BOOT_SHA384_EN`` so
    the ROM verifies ECDSA-P384 (the chip's gated scheme) from the next boot on."""
    chip = efuses.layout.chip
    gate = chip.gate(config.secure_boot_scheme)
    if gate is None:
        return []
    revision = efuses.revision
    if revision < gate.since or not efuses.layout.has_field(gate.efuse):
        # ESP-IDF offers the scheme only for builds of v3.0+ (Kconfig: depends on
        # !ESP32P4_SELECTS_REV_LESS_V3), whose bootloader refuses an older chip.
        raise FirstBootError(
            f"{gate.scheme} Secure Boot needs {chip.display_name} {revision_name(gate.since)} "
            f"or later ({gate.efuse}); this chip is {revision_name(revision)}",
            step="esp_secure_boot_enable_secure_features",
        )
    tx.burn(gate.efuse, 1)
    return [f"enabling {gate.scheme} verification in the ROM ({gate.efuse})"]


def _rom_download_mode(efuses: Efuses, config: BootloaderConfig, tx: Transaction) -> list[str]:
    mode = config.secure_uart_rom_dl_mode
    if mode is RomDownloadMode.SECURE:
        # esp_efuse_enable_rom_secure_download_mode (components/efuse/<chip>/
        # esp_efuse_fields.c): with DIS_DOWNLOAD_MODE burned there is no download mode to
        # make secure; it burns nothing and returns ESP_OK.
        if efuses.get_int("DIS_DOWNLOAD_MODE"):
            return ["ROM download mode is already disabled: Security download mode not needed"]
        tx.burn("ENABLE_SECURITY_DOWNLOAD", 1)
        return ["enabling Security download mode (ENABLE_SECURITY_DOWNLOAD)"]
    if mode is RomDownloadMode.DISABLED:
        tx.burn("DIS_DOWNLOAD_MODE", 1)
        return ["disabling ROM download mode (DIS_DOWNLOAD_MODE)"]
    return ["UART ROM download mode kept enabled - SECURITY COMPROMISED"]


def secure_boot_v2_permanently_enable(
    hw: Hardware, config: BootloaderConfig, app: LoadedImage
) -> None:
    """Enable Secure Boot v2 (if it is off): one eFuse batch; raises :class:`FirstBootError`."""
    log = hw.log
    if security_state(hw.efuses).secure_boot_enabled:
        log.note("secure boot v2 is already enabled, continuing")
        return
    if config.secure_boot_require_already_enabled:
        raise FirstBootError(
            "secure boot is not enabled, and SECURE_BOOT_REQUIRE_ALREADY_ENABLED is set",
            step="esp_secure_boot_v2_permanently_enable (SECURE_BOOT_REQUIRE_ALREADY_ENABLED)",
        )
    log.note("enabling secure boot v2")
    plan = secure_boot_plan(hw, config, app)
    for note in plan.notes:
        log.note(note)
    hw.burn(plan.transaction, "esp_secure_boot_v2_permanently_enable")
    log.note("secure boot permanently enabled (SECURE_BOOT_EN)")


# -- flash encryption ---------------------------------------------------------------------


def _key_purposes(config: BootloaderConfig) -> tuple[str, ...]:
    size = config.secure_flash_encryption_keysize
    if size is FlashEncryptionKeySize.AES256:
        return ("XTS_AES_256_KEY_1", "XTS_AES_256_KEY_2")
    if size is FlashEncryptionKeySize.AES128_DERIVED:
        raise FirstBootError("XTS_AES_128_KEY_DERIVED_FROM_128_EFUSE_BITS is ESP32-C2 only")
    return ("XTS_AES_128_KEY",)


def _check_and_generate_encryption_keys(
    hw: Hardware, config: BootloaderConfig, tx: Transaction
) -> list[str]:
    """``check_and_generate_encryption_keys``."""
    efuses = hw.efuses
    purposes = _key_purposes(config)
    if len(purposes) == 2 and _purpose_blocks(efuses, "XTS_AES_128_KEY"):
        raise FirstBootError(
            "XTS_AES_128_KEY is already in use, XTS_AES_256_KEY_1/2 can not be used"
        )
    found = []
    for purpose in purposes:
        blocks = _purpose_blocks(efuses, purpose)
        found.append(blocks[0] if blocks and not key_block_unused(efuses, blocks[0]) else None)
    if len(found) == 2 and (found[0] is None) != (found[1] is None):
        raise FirstBootError("invalid efuse key blocks: both AES-256 key blocks must be set")
    if all(b is not None for b in found):
        for block in found:
            assert block is not None
            pf = efuses.layout.field(block.purpose_field or "")
            if (
                not efuses.is_write_protected(block)
                or not efuses.is_read_protected(block)
                or efuses.is_writeable(pf)
            ):
                raise FirstBootError(
                    f"invalid key state in {block.name}: the key and its purpose must be read- "
                    "and write-protected"
                )
        return [f"using pre-loaded flash encryption key in {', '.join(b.name for b in found if b)}"]
    keys = [(p, secrets.token_bytes(32)) for p in purposes]
    names = _write_keys(efuses, tx, keys, digest=False)
    return [f"generating new flash encryption key: {', '.join(names)} ({'/'.join(purposes)})"]


def _flash_encryption_secure_features(
    hw: Hardware, config: BootloaderConfig, tx: Transaction
) -> list[str]:
    """``esp_flash_encryption_enable_secure_features`` for the chip."""
    notes = []
    if config.secure_flash_uart_bootloader_allow_enc:
        notes.append("not disabling UART bootloader encryption")
    else:
        tx.burn("DIS_DOWNLOAD_MANUAL_ENCRYPT", 1)
        notes.append("disabling UART bootloader encryption (DIS_DOWNLOAD_MANUAL_ENCRYPT)")
    if config.secure_flash_uart_bootloader_allow_cache:
        notes.append("not disabling UART bootloader cache - SECURITY COMPROMISED")
    else:
        for name in hw.chip.uart_download_cache_fields:
            tx.burn(name, 1)
        notes.append("disabling UART bootloader cache")
    if config.secure_boot_allow_jtag:
        notes.append("not disabling JTAG - SECURITY COMPROMISED")
    else:
        tx.burn("DIS_PAD_JTAG", 1).burn("DIS_USB_JTAG", 1)
        notes.append("disabling JTAG (DIS_PAD_JTAG, DIS_USB_JTAG)")
    tx.burn("DIS_DIRECT_BOOT", 1)
    notes += _pseudo_rounds(hw, config, tx)
    if config.secure_boot_v2_enabled and not config.secure_boot_v2_allow_efuse_rd_dis:
        tx.write_protect("RD_DIS")
        notes.append("preventing read disabling of additional eFuses (WR_DIS_RD_DIS)")
    if (
        config.secure_flash_has_write_protection_cache
        and not config.secure_flash_skip_write_protection_cache
    ):
        tx.write_protect("DIS_ICACHE")
        notes.append("write-protecting DIS_ICACHE (WR_DIS bit 2)")
    return notes


def _pseudo_rounds(hw: Hardware, config: BootloaderConfig, tx: Transaction) -> list[str]:
    """``CONFIG_SECURE_FLASH_PSEUDO_ROUND_FUNC``: burn ``XTS_DPA_PSEUDO_LEVEL`` with the
    configured strength when ``spi_flash_encrypt_ll_is_pseudo_rounds_function_supported``
    (ESP32-P4: the build's minimum chip revision, ``CHIP_SUPPORT_MIN_REV``, is v3.0+)."""
    since = hw.chip.xts_pseudo_round_since
    if not config.secure_flash_pseudo_round_func or since is None:
        return []
    bootloader = load_bootloader_image(hw, config, decrypt=False)
    build_min = bootloader.image.header.min_chip_rev_full if bootloader.image else 0
    if build_min < since or not hw.efuses.layout.has_field("XTS_DPA_PSEUDO_LEVEL"):
        return [
            "XTS-AES pseudo rounds not enabled: the build supports chips before "
            f"{revision_name(since)} (minimum revision {revision_name(build_min)})"
        ]
    level = config.secure_flash_pseudo_round_func_strength
    tx.burn("XTS_DPA_PSEUDO_LEVEL", level)
    return [f"enabling the XTS-AES pseudo rounds function (XTS_DPA_PSEUDO_LEVEL = {level})"]


def encrypt_region(hw: Hardware, what: str, offset: int, length: int) -> None:
    """``esp_flash_encrypt_region``: each sector read, erased, written through the engine."""
    sectors = -(-length // SECTOR_SIZE)
    flash = hw.flash
    with hw.flash_update(
        f"encrypt {what} in place",
        offset,
        sectors * SECTOR_SIZE,
        encrypted=True,
        operations=2 * sectors,
    ):
        for n in range(sectors):
            at = offset + n * SECTOR_SIZE
            plain = flash.read_raw(at, SECTOR_SIZE)
            flash.erase_sector(at, what=f"encrypt {what}: erase sector 0x{at:x}")
            flash.write_encrypted(at, plain, what=f"encrypt {what}: write sector 0x{at:x}")


def _partition_length(hw: Hardware, config: BootloaderConfig, p: Partition) -> int | None:
    """``encrypt_partition``: how much of ``p`` to encrypt (``None``: leave it)."""
    if p.type in (APP, BOOTLOADER):
        loaded = load_image(
            hw.flash,
            what=p.name,
            offset=p.offset,
            limit=p.size,
            decrypt=False,
            chip=hw.chip,
            chip_rev=hw.chip_rev,
            kind="app" if p.type == APP else "bootloader",
            verify_hash=not signed_on_boot(config),
            signature=app_signature_policy(hw, config),
        )
        if not loaded.ok:
            hw.log.note(f"{p.name}: no valid plaintext image ({loaded.check.reason}): left as is")
            return None
        only_image = config.secure_flash_encrypt_only_image_len_in_app_part
        if p.type == APP and only_image and loaded.check.length is not None:
            if config.secure_signed_on_update_no_secure_boot and loaded.image is not None:
                # encrypt_partition: "If secure update without secure boot, also encrypt the
                # signature block" (size += esp_secure_boot_sig_block_size())
                return min(p.size, loaded.image.image_length + SECTOR_SIZE)
            return loaded.check.length
        return p.size
    if p.type == PARTITION_TABLE:
        try:
            found = partition_table_verify(
                hw.flash.read_raw(p.offset, MAX_TABLE_LENGTH), hw.flash.size
            )
        except PartitionTableInvalid:
            return None
        return p.size if found else None
    if p.type == DATA and p.subtype in (DATA_OTA, DATA_TEE_OTA, DATA_NVS_KEYS):
        return p.size
    return p.size if p.encrypted else None


def flash_encrypt_contents(hw: Hardware, config: BootloaderConfig) -> None:
    """``esp_flash_encrypt_contents``: bootloader, partition table, then each partition."""
    log = hw.log
    bootloader = load_bootloader_image(hw, config, decrypt=False)
    if not bootloader.ok or bootloader.check.length is None:
        raise FirstBootError(f"no valid bootloader was found ({bootloader.check.reason})")
    offset = hw.chip.bootloader_offset
    length = bootloader.check.length
    if config.secure_boot_v2_enabled and length > config.partition_table_offset - offset:
        raise FirstBootError(
            "bootloader is too large to fit the Secure Boot v2 signature sector and the "
            f"partition table (offset 0x{config.partition_table_offset:x})"
        )
    header_size = bootloader.image.header.flash_size if bootloader.image else None
    chip_size = header_size or hw.flash.size  # g_rom_flashchip.chip_size
    encrypt_region(hw, "bootloader", offset, length)
    table_at = config.partition_table_offset
    try:
        partitions = partition_table_verify(
            hw.flash.read_raw(table_at, MAX_TABLE_LENGTH), chip_size
        )
    except PartitionTableInvalid as exc:
        raise FirstBootError(
            f"failed to read partition table data - not plaintext? ({exc})"
        ) from None
    encrypt_region(hw, "partition table", table_at, SECTOR_SIZE)
    log.note("bootloader and partition table encrypted")
    for p in partitions:
        primary = p.subtype == 0 and p.type in (BOOTLOADER, PARTITION_TABLE)
        if primary:
            continue
        size = _partition_length(hw, config, p)
        if size is None:
            continue
        encrypt_region(hw, f"partition {p.name!r}", p.offset, size)
        log.note(f"partition {p.name!r} at 0x{p.offset:x} encrypted (0x{size:x} bytes)")


def flash_encryption_enable(hw: Hardware, config: BootloaderConfig) -> bool:
    """Turn flash encryption on if it is off; ``True`` when it was just turned on.

    Raises :class:`FirstBootError` where ESP-IDF fails (the chip then resets and tries
    again).
    """
    log = hw.log
    efuses = hw.efuses
    state = security_state(efuses)
    cnt = efuses.field("SPI_BOOT_CRYPT_CNT")
    if state.flash_encryption_enabled:
        left = (
            0
            if not efuses.is_writeable(cnt)
            else (cnt.length - bin(state.flash_crypt_cnt).count("1")) // 2
        )
        log.note(f"flash encryption is enabled ({left} plaintext flashes left)")
        return False
    if config.secure_flash_require_already_enabled:
        raise FirstBootError(
            "flash encryption is not enabled, and SECURE_FLASH_REQUIRE_ALREADY_ENABLED is set",
            step="load_image (SECURE_FLASH_REQUIRE_ALREADY_ENABLED)",
        )
    if not efuses.is_writeable(cnt):
        raise FirstBootError(
            f"flash encryption cannot be enabled (SPI_BOOT_CRYPT_CNT ({state.flash_crypt_cnt}) "
            "is write protected)",
            step="esp_flash_encrypt_is_write_protected",
        )
    # esp_flash_encrypt_init
    if state.flash_crypt_cnt != 0:
        log.note("flash encryption initialized once already (SPI_BOOT_CRYPT_CNT != 0)")
    else:
        tx = Transaction()
        try:
            notes = _check_and_generate_encryption_keys(hw, config, tx)
        except FirstBootError as exc:
            exc.step = exc.step or "check_and_generate_encryption_keys"
            raise
        for note in notes:
            log.note(note)
        for note in _flash_encryption_secure_features(hw, config, tx):
            log.note(note)
        hw.burn(tx, "esp_flash_encrypt_init")
    try:
        flash_encrypt_contents(hw, config)
    except FirstBootError as exc:
        exc.step = exc.step or "esp_flash_encrypt_contents"
        raise
    # esp_flash_encrypt_enable
    have = bin(efuses.get_int(cnt)).count("1")
    if config.secure_flash_encryption_mode is FlashEncryptionMode.RELEASE:
        new = (1 << cnt.length) - 1
        log.note("setting SPI_BOOT_CRYPT_CNT for permanent encryption (release mode)")
    else:
        current = efuses.get_int(cnt)
        free = ~current & ((1 << cnt.length) - 1)
        new = current | (free & -free)
        log.note(f"SPI_BOOT_CRYPT_CNT {have} -> {have + 1} bits (development mode)")
    hw.burn(Transaction().burn("SPI_BOOT_CRYPT_CNT", new), "esp_flash_encrypt_enable")
    log.note("flash encryption completed")
    return True
