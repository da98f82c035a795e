"""The ROM's serial download mode, served over TCP so esptool and espefuse drive the twin.

Example::

    from espsec.device import VirtualDevice
    from espsec.device.download import DownloadServer

    with DownloadServer(VirtualDevice.open("dev")).start() as server:
        server.url  # "socket://127.0.0.1:PORT": esptool --port <url> write-flash ...

Layers: :mod:`.slip` (framing), :mod:`.protocol` (packets, opcodes, status bytes, chip
addresses), :mod:`.efuse_controller` and :mod:`.spi` (registers behind ``READ_REG`` /
``WRITE_REG``), :mod:`.chip` (flash, RAM, persistence), :mod:`.rom_loader` and
:mod:`.stub` (the two loaders), :mod:`.policy` (what the eFuses allow),
:mod:`.session` (one connection) and :mod:`.server` (TCP).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from espsec._lazy import lazy_exports

if TYPE_CHECKING:
    from espsec.device.download.chip import DownloadChip
    from espsec.device.download.server import DownloadServer
    from espsec.device.download.session import DownloadSession
    from espsec.device.download.stub import KNOWN_STUBS, KnownStub
    from espsec.efuse.download_mode import (
        DownloadPolicy,
        Interface,
        download_policies,
        download_policy,
    )

_LAZY = {
    "DownloadChip": "espsec.device.download.chip",
    "DownloadPolicy": "espsec.efuse.download_mode",
    "DownloadServer": "espsec.device.download.server",
    "DownloadSession": "espsec.device.download.session",
    "Interface": "espsec.efuse.download_mode",
    "KNOWN_STUBS": "espsec.device.download.stub",
    "KnownStub": "espsec.device.download.stub",
    "download_policies": "espsec.efuse.download_mode",
    "download_policy": "espsec.efuse.download_mode",
}
"""Where each public name lives, loaded on first use: ``espsec device serve --help``
reads the interface names without loading the server."""


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "KNOWN_STUBS",
    "DownloadChip",
    "DownloadPolicy",
    "DownloadServer",
    "DownloadSession",
    "Interface",
    "KnownStub",
    "download_policies",
    "download_policy",
]
