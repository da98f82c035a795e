"""The first boot follows the Kconfig selects that decide what gets locked.

ESP-IDF components/bootloader/Kconfig.projbuild: development mode selects
SECURE_FLASH_UART_BOOTLOADER_ALLOW_ENC, which (like ALLOW_CACHE and SECURE_BOOT_ALLOW_JTAG)
selects SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE, so that
<chip>/flash_encryption_secure_features.c leaves WR_DIS bit 2 (DIS_ICACHE and the eFuses
sharing it, DIS_DOWNLOAD_MANUAL_ENCRYPT and the JTAG bits among them) writable for a later
switch to release mode.
"""

from __future__ import annotations

from espsec.sdkconfig import BootloaderConfig

from .kit import FACTORY_TABLE, FE_DEV, app, bootloader, device

RELEASE = BootloaderConfig.from_options(
    secure_flash_enc_enabled=True, secure_flash_encryption_mode="release"
)


def test_development_mode_leaves_the_cache_eFuses_writable_for_release_mode_later():
    dev = device(FE_DEV, boot=bootloader(), apps={0x10000: app()}, table=FACTORY_TABLE)
    assert dev.boot().ok
    assert dev.efuses.is_writeable("DIS_ICACHE")
    assert dev.efuses.is_writeable("DIS_DOWNLOAD_MANUAL_ENCRYPT")
    assert dev.efuses.get_int("DIS_DOWNLOAD_ICACHE") == 1  # no ALLOW_CACHE: still burned


def test_release_mode_write_protects_the_cache_eFuses():
    dev = device(RELEASE, boot=bootloader(), apps={0x10000: app()}, table=FACTORY_TABLE)
    assert dev.boot().ok
    assert not dev.efuses.is_writeable("DIS_ICACHE")
    assert dev.efuses.get_int("DIS_DOWNLOAD_MANUAL_ENCRYPT") == 1


def test_development_mode_with_uart_cache_left_on_burns_no_download_cache_eFuse():
    config = BootloaderConfig.from_options(
        secure_flash_enc_enabled=True, secure_flash_uart_bootloader_allow_cache=True
    )
    dev = device(config, boot=bootloader(), apps={0x10000: app()}, table=FACTORY_TABLE)
    assert dev.boot().ok
    assert dev.efuses.get_int("DIS_DOWNLOAD_ICACHE") == 0
    assert dev.efuses.get_int("DIS_DOWNLOAD_DCACHE") == 0
