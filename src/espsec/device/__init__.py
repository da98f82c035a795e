"""The virtual device: ROM, bootloader, flash and runtime services composed from the features.

Example::

    from espsec.device import VirtualDevice, FaultPlan

    dev = VirtualDevice.create("dev", "esp32s3", 4 << 20, config=config)
    dev.write_files([(0x0, bootloader, "bootloader.bin"), (0x8000, table, "pt"),
                     (0x10000, app, "app.bin")])
    report = dev.boot()  # first boot: Secure Boot, flash encryption, reset, app
    report.outcome, report.app, report.burned
    dev.running.install(new_app)  # an OTA update, as esp_ota_* does it
    dev.boot(fault_plan=FaultPlan(3))  # cut power after the 3rd flash/eFuse write

    provision_ota(dev.running, OtaProvisioning(...))  # fleet server, trust anchors, key
    run_ota(dev, self_test=True)  # one esp_https_ota cycle against the fleet: OtaReport
"""

from typing import TYPE_CHECKING

from espsec._lazy import lazy_exports
from espsec.flash import FaultPlan, PowerCut, WriteKind

if TYPE_CHECKING:
    from espsec.device.app import AppRuntime
    from espsec.device.jtag import JtagError, JtagStatus
    from espsec.device.ota_client import (
        DownloadStats,
        OtaEvent,
        OtaOutcome,
        OtaReport,
        OtaStep,
        SelfTest,
        run_ota,
    )
    from espsec.device.ota_state import (
        DecryptionScheme,
        OtaIdentity,
        OtaProvisioning,
        OtaStateError,
        provision_ota,
    )
    from espsec.device.report import (
        BootPass,
        BootReport,
        Check,
        EfuseBurn,
        FlashWrite,
        ImageCheck,
        Outcome,
        PowerCutInfo,
        RunningApp,
        Stage,
        StageReport,
    )
    from espsec.device.status import AppInfo, DeviceStatus, device_status
    from espsec.device.virtual_device import (
        DEVICE_FILE,
        EFUSE_FILE,
        FLASH_FILE,
        FlashedFile,
        VirtualDevice,
        WriteMode,
        config_from_build_dir,
    )

_LAZY = {
    "AppInfo": "espsec.device.status",
    "AppRuntime": "espsec.device.app",
    "BootPass": "espsec.device.report",
    "BootReport": "espsec.device.report",
    "Check": "espsec.device.report",
    "DEVICE_FILE": "espsec.device.virtual_device",
    "DecryptionScheme": "espsec.device.ota_state",
    "DeviceStatus": "espsec.device.status",
    "DownloadStats": "espsec.device.ota_client",
    "EFUSE_FILE": "espsec.device.virtual_device",
    "EfuseBurn": "espsec.device.report",
    "FLASH_FILE": "espsec.device.virtual_device",
    "FlashWrite": "espsec.device.report",
    "FlashedFile": "espsec.device.virtual_device",
    "ImageCheck": "espsec.device.report",
    "JtagError": "espsec.device.jtag",
    "JtagStatus": "espsec.device.jtag",
    "OtaEvent": "espsec.device.ota_client",
    "OtaIdentity": "espsec.device.ota_state",
    "OtaOutcome": "espsec.device.ota_client",
    "OtaProvisioning": "espsec.device.ota_state",
    "OtaReport": "espsec.device.ota_client",
    "OtaStateError": "espsec.device.ota_state",
    "OtaStep": "espsec.device.ota_client",
    "Outcome": "espsec.device.report",
    "PowerCutInfo": "espsec.device.report",
    "RunningApp": "espsec.device.report",
    "SelfTest": "espsec.device.ota_client",
    "Stage": "espsec.device.report",
    "StageReport": "espsec.device.report",
    "VirtualDevice": "espsec.device.virtual_device",
    "WriteMode": "espsec.device.virtual_device",
    "config_from_build_dir": "espsec.device.virtual_device",
    "device_status": "espsec.device.status",
    "provision_ota": "espsec.device.ota_state",
    "run_ota": "espsec.device.ota_client",
}
"""Where each public name lives: loaded on first use, so a command that boots a device
does not import the OTA client, the status report or their TLS and HTTP stacks."""


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "DEVICE_FILE",
    "EFUSE_FILE",
    "FLASH_FILE",
    "AppInfo",
    "AppRuntime",
    "BootPass",
    "BootReport",
    "Check",
    "DecryptionScheme",
    "DeviceStatus",
    "DownloadStats",
    "EfuseBurn",
    "FaultPlan",
    "FlashWrite",
    "FlashedFile",
    "ImageCheck",
    "JtagError",
    "JtagStatus",
    "OtaEvent",
    "OtaIdentity",
    "OtaOutcome",
    "OtaProvisioning",
    "OtaReport",
    "OtaStateError",
    "OtaStep",
    "Outcome",
    "PowerCut",
    "PowerCutInfo",
    "RunningApp",
    "SelfTest",
    "Stage",
    "StageReport",
    "VirtualDevice",
    "WriteKind",
    "WriteMode",
    "config_from_build_dir",
    "device_status",
    "provision_ota",
    "run_ota",
]
