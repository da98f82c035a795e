"""The device's security posture: what its eFuses enforce and what its flash holds.

Read-only: nothing is burned or written. eFuse facts come from
:func:`espsec.efuse.security_state` (the ROM's and ESP-IDF's reading of them); flash is
read through the cache as the device reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from espsec.device.bootloader import check_app, read_otadata, read_partition_table, state_name
from espsec.device.first_boot import load_bootloader_image
from espsec.device.hardware import Hardware
from espsec.device.jtag import JtagStatus
from espsec.device.partitions import PartitionTableInvalid
from espsec.efuse import SecurityState, chip_revision, security_state
from espsec.efuse.download_mode import DownloadPolicy, download_policies
from espsec.errors import EspsecError
from espsec.image.otadata import OTADATA_SIZE, OtaData
from espsec.sdkconfig.memprot import MemoryProtection, memory_protection

if TYPE_CHECKING:
    from espsec.device.virtual_device import VirtualDevice

_HEADER_PROBE = 32
"""Bytes of an app partition read raw to tell an erased one (all 0xFF) from an image."""


@dataclass(frozen=True)
class AppInfo:
    """One app partition as the bootloader would find it."""

    partition: str
    offset: int
    ok: bool
    reason: str
    version: str | None
    secure_version: int | None
    efuse_slot: int | None
    ota_state: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "partition": self.partition,
            "offset": f"0x{self.offset:x}",
            "bootable": self.ok,
            "reason": self.reason or None,
            "version": self.version,
            "secure_version": self.secure_version,
            "efuse_slot": self.efuse_slot,
            "ota_state": self.ota_state,
        }


@dataclass(frozen=True)
class DeviceStatus:
    """Security posture and flash contents of a virtual device."""

    chip: str
    chip_revision: int
    flash_size: int
    posture: str
    """``blank``, ``development``, ``production (locked)`` or ``partially locked``."""
    findings: tuple[str, ...]
    """What keeps it from being locked down (empty when locked)."""
    security: SecurityState
    jtag: JtagStatus
    bootloader: str
    """The bootloader as the device reads it (version or why it would not boot)."""
    partitions: tuple[tuple[str, int, int, bool], ...]
    """Name, offset, size and encrypted-on-flash of each partition (empty if unreadable)."""
    apps: tuple[AppInfo, ...]
    config: tuple[str, ...]
    """The bootloader's security build options that are on."""
    download: tuple[DownloadPolicy, ...] = ()
    """ROM download mode on each interface (UART, USB-Serial-JTAG, USB-OTG), from the
    eFuses (``DIS_DOWNLOAD_MODE``, ``ENABLE_SECURITY_DOWNLOAD``, ``DIS_FORCE_DOWNLOAD``,
    ``DIS_USB_SERIAL_JTAG_DOWNLOAD_MODE``, ``DIS_USB_OTG_DOWNLOAD_MODE``)."""
    memory_protection: MemoryProtection | None = None
    """What the app's build sets up: PMS (ESP32-S3) or PMP/APM (ESP32-P4), from
    ``CONFIG_ESP_SYSTEM_MEMPROT`` (``None``: unknown)."""

    @property
    def locked(self) -> bool:
        return self.posture.startswith("production")

    def to_json(self) -> dict[str, Any]:
        return {
            "chip": self.chip,
            "chip_revision": f"v{self.chip_revision // 100}.{self.chip_revision % 100}",
            "flash_size": self.flash_size,
            "posture": self.posture,
            "findings": list(self.findings),
            "security": self.security.to_dict(),
            "jtag": self.jtag.to_json(),
            "bootloader": self.bootloader,
            "partitions": [
                {"name": n, "offset": f"0x{o:x}", "size": s, "encrypted": e}
                for n, o, s, e in self.partitions
            ],
            "apps": [a.to_json() for a in self.apps],
            "bootloader_config": list(self.config),
            "download_mode": [p.to_json() for p in self.download],
            "memory_protection": (
                None if self.memory_protection is None else self.memory_protection.to_json()
            ),
        }


def _findings(state: SecurityState, jtag: JtagStatus) -> list[str]:
    out = []
    if not state.secure_boot_enabled:
        out.append("Secure Boot is off (SECURE_BOOT_EN = 0)")
    else:
        open_slots = [s.index for s in state.digest_slots if s.block is None and not s.revoked]
        if open_slots:
            out.append(f"unused key digest slot(s) {open_slots} not revoked")
    if not state.flash_encryption_enabled:
        out.append("flash encryption is off")
    elif state.flash_encryption_mode != "release":
        out.append("flash encryption is in development mode")
    if state.download_mode == "normal":
        out.append("ROM download mode is fully open")
    if jtag.efuse_mode == "enabled":
        out.append("JTAG is enabled")
    return out


def _posture(state: SecurityState, findings: list[str]) -> str:
    if not findings:
        return "production (locked)"
    if not state.secure_boot_enabled and not state.flash_encryption_enabled:
        return "blank" if state.flash_crypt_cnt == 0 else "open"
    if state.flash_encryption_mode == "development":
        return "development"
    return "partially locked"


def device_status(device: VirtualDevice) -> DeviceStatus:
    """The posture of ``device`` (eFuses and flash), without changing it."""
    hw = Hardware(device.efuses, device.flash)
    config = device.config
    state = security_state(device.efuses)
    jtag = device.jtag()
    findings = _findings(state, jtag)
    try:
        boot = load_bootloader_image(hw, config)
        if boot.ok:
            desc = boot.desc
            version = getattr(desc, "version", None)
            bootloader = f"ok (version {version})" if version is not None else "ok"
        else:
            bootloader = boot.check.reason
    except EspsecError as exc:
        bootloader = exc.message
    partitions: tuple[tuple[str, int, int, bool], ...] = ()
    apps: list[AppInfo] = []
    try:
        table = read_partition_table(hw, config)
    except (PartitionTableInvalid, EspsecError):
        table = None
    if table is not None:
        partitions = tuple(
            (p.name, p.offset, p.size, p.encrypted_on_flash) for p in table.partitions
        )
        otadata = None
        raw = read_otadata(hw, table)
        if raw is not None and len(raw) == OTADATA_SIZE:
            otadata = OtaData.parse(raw)
        for p in table.partitions:
            part = table.app_partition(p)
            if part is None:
                continue
            ota_state = None
            if otadata is not None and part.kind.value == "ota" and table.app_count:
                found = otadata.state_of_slot(part.slot, table.app_count)
                ota_state = None if found is None else state_name(found)
            if hw.flash.read_raw(p.offset, _HEADER_PROBE) == b"\xff" * _HEADER_PROBE:
                # Erased: through the XTS engine it would read as noise, not as "empty".
                apps.append(
                    AppInfo(
                        part.name, p.offset, False, "empty (erased)", None, None, None, ota_state
                    )
                )
                continue
            checked = check_app(hw, config, part, p)
            apps.append(
                AppInfo(
                    part.name,
                    p.offset,
                    checked.ok,
                    checked.check.reason,
                    checked.check.version,
                    checked.check.secure_version,
                    checked.check.efuse_slot,
                    ota_state,
                )
            )
    options = config.options()
    shown = tuple(
        f"CONFIG_{name}={value if not isinstance(value, bool) else 'y'}"
        for name, value in options.items()
        if value and name.startswith(("SECURE_", "BOOTLOADER_APP_"))
    )
    return DeviceStatus(
        chip=device.efuses.chip,
        chip_revision=chip_revision(device.efuses),
        flash_size=device.flash.size,
        posture=_posture(state, findings),
        findings=tuple(findings),
        security=state,
        jtag=jtag,
        bootloader=bootloader,
        partitions=partitions,
        apps=tuple(apps),
        config=shown,
        download=download_policies(device.efuses),
        memory_protection=memory_protection(config),
    )
