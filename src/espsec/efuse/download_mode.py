"""What the ROM's download mode allows, read from the eFuses as the ROM reads them.

Source: ESP-IDF security guide ("UART Download Mode"), the eFuse descriptions of
``esp_efuse_table.csv`` and esptool's serial-protocol documentation:

* ``DIS_DOWNLOAD_MODE``: no download mode on any interface (the chip never answers SYNC);
* ``DIS_USB_SERIAL_JTAG_DOWNLOAD_MODE`` (and ``DIS_USB_SERIAL_JTAG``): none over
  USB-Serial-JTAG; ``DIS_USB_OTG_DOWNLOAD_MODE`` (and ESP32-S3 ``DIS_USB_OTG``): none over
  USB-OTG;
* ``DIS_FORCE_DOWNLOAD``: software (an app setting the force-download bit before a
  reset) cannot send the chip to download mode; the GPIO0 strap still can;
* ``ENABLE_SECURITY_DOWNLOAD``: Secure Download Mode, only the commands of
  :data:`~espsec.device.download.protocol.SECURE_DOWNLOAD_COMMANDS`;
* ``DIS_DOWNLOAD_MANUAL_ENCRYPT``: the flash-encryption engine will not encrypt host data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from espsec.efuse.model import Efuses


class Interface(StrEnum):
    """The port the host reaches the ROM's download mode through."""

    UART = "uart"
    USB_SERIAL_JTAG = "usb-serial-jtag"
    USB_OTG = "usb-otg"


_INTERFACE_FUSES = {
    Interface.UART: (),
    Interface.USB_SERIAL_JTAG: ("DIS_USB_SERIAL_JTAG_DOWNLOAD_MODE", "DIS_USB_SERIAL_JTAG"),
    Interface.USB_OTG: ("DIS_USB_OTG_DOWNLOAD_MODE", "DIS_USB_OTG"),
}


def _set(efuses: Efuses, name: str) -> bool:
    return efuses.layout.has_field(name) and bool(efuses.get_int(name))


@dataclass(frozen=True)
class DownloadPolicy:
    """Download mode on one interface: whether the ROM answers, and how much it allows."""

    interface: Interface
    available: bool
    secure: bool
    """Secure Download Mode (``ENABLE_SECURITY_DOWNLOAD``)."""
    manual_encrypt: bool
    """The ROM encrypts host writes on request (``DIS_DOWNLOAD_MANUAL_ENCRYPT`` clear)."""
    force_download: bool
    """Software can force download mode at the next reset (``DIS_FORCE_DOWNLOAD`` clear)."""
    reason: str
    """Why download mode is off, or which mode it is in, in the eFuses' words."""

    @property
    def mode(self) -> str:
        if not self.available:
            return "disabled"
        return "secure" if self.secure else "normal"

    def to_json(self) -> dict[str, object]:
        return {
            "interface": self.interface.value,
            "mode": self.mode,
            "manual_encrypt": self.manual_encrypt,
            "force_download": self.force_download,
            "reason": self.reason,
        }


def download_policy(efuses: Efuses, interface: Interface = Interface.UART) -> DownloadPolicy:
    """What the ROM's download mode allows on ``interface`` with these eFuses."""
    manual = not _set(efuses, "DIS_DOWNLOAD_MANUAL_ENCRYPT")
    force = not _set(efuses, "DIS_FORCE_DOWNLOAD")
    blocked = [n for n in ("DIS_DOWNLOAD_MODE", *_INTERFACE_FUSES[interface]) if _set(efuses, n)]
    if blocked:
        return DownloadPolicy(
            interface, False, False, manual, force, f"{blocked[0]} is burned: no download mode"
        )
    secure = _set(efuses, "ENABLE_SECURITY_DOWNLOAD")
    reason = (
        "ENABLE_SECURITY_DOWNLOAD is burned: Secure Download Mode"
        if secure
        else "download mode is fully open"
    )
    return DownloadPolicy(interface, True, secure, manual, force, reason)


def download_policies(efuses: Efuses) -> tuple[DownloadPolicy, ...]:
    """The policy on every interface (for ``device status``)."""
    return tuple(download_policy(efuses, i) for i in Interface)
