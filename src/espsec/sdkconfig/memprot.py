"""Memory protection as a build configures it (ESP-IDF security guide, "Memory Protection").

The application's startup code sets Read/Write permissions on data memory and Read/Execute
on instruction memory and panics on a violation. What enforces it depends on the chip:

* **PMS** (the Permission Control peripheral, ``SOC_MEMPROT_SUPPORTED``: ESP32-S3,
  ESP32-C3), which the app can lock until the next reset (``ESP_SYSTEM_MEMPROT_PMS_LOCK``);
* **PMP** (the RISC-V CPU's Physical Memory Protection splitting IRAM from DRAM,
  ``SOC_CPU_IDRAM_SPLIT_USING_PMP``: ESP32-P4, ESP32-C6, ESP32-H2); those chips also have
  the **APM** (Access Permission Management) peripheral, which ESP-TEE programs;
* **TEE** (``SECURE_ENABLE_TEE``): ESP-TEE owns PMP and APM.

ESP-IDF v6.0 names the switch ``ESP_SYSTEM_MEMPROT`` with a mode choice
(``components/esp_system/Kconfig``); v5.5's ``ESP_SYSTEM_MEMPROT_FEATURE``,
``ESP_SYSTEM_PMP_IDRAM_SPLIT`` and ``ESP_SYSTEM_MEMPROT_FEATURE_VIA_TEE`` resolve to it
through ``components/esp_system/sdkconfig.rename``.
"""

from __future__ import annotations

from dataclasses import dataclass

from espsec.sdkconfig.config import BootloaderConfig

OPTION = "ESP_SYSTEM_MEMPROT"
"""The Kconfig switch (``CONFIG_ESP_SYSTEM_MEMPROT``)."""
LOCK_OPTION = "ESP_SYSTEM_MEMPROT_PMS_LOCK"

_MODES = {
    "ESP_SYSTEM_MEMPROT_PMS": "PMS",
    "ESP_SYSTEM_MEMPROT_PMP": "PMP",
    "ESP_SYSTEM_MEMPROT_TEE": "TEE",
}


@dataclass(frozen=True)
class MemoryProtection:
    """What the configuration asks of the chip's memory protection."""

    scheme: str | None
    """``PMS``, ``PMP`` or ``TEE``; ``None`` when the chip has no memory protection."""
    enabled: bool
    locked: bool | None
    """PMS settings locked until reset (``None``: not a PMS scheme, or off)."""
    apm: bool
    """The chip has the APM peripheral (ESP-TEE programs it)."""

    @property
    def supported(self) -> bool:
        return self.scheme is not None

    def describe(self) -> str:
        """One line: ``on (PMS, locked)``, ``off (PMP available)``, ``not supported``."""
        if self.scheme is None:
            return "not supported by the chip"
        what = self.scheme + (", APM present" if self.apm and self.scheme != "TEE" else "")
        if not self.enabled:
            return f"off ({what} available; CONFIG_{OPTION}=n)"
        if self.locked is not None:
            what += ", locked" if self.locked else ", not locked"
        return f"on ({what})"

    def to_json(self) -> dict[str, object]:
        return {
            "scheme": self.scheme,
            "enabled": self.enabled,
            "locked": self.locked,
            "apm": self.apm,
            "option": f"CONFIG_{OPTION}",
        }


def memory_protection(config: BootloaderConfig) -> MemoryProtection:
    """The memory protection ``config`` builds for its target."""
    caps = config.chip.soc_caps
    tee = config.raw.get("SECURE_ENABLE_TEE") is True
    enabled = config.values.get(OPTION) is True
    mode = config.choice("ESP_SYSTEM_MEMPROT_MODE")
    scheme: str | None
    if mode is not None:
        scheme = _MODES[mode]
    elif tee:
        scheme = "TEE"
    elif "SOC_CPU_IDRAM_SPLIT_USING_PMP" in caps:
        scheme = "PMP"
    elif "SOC_MEMPROT_SUPPORTED" in caps:
        scheme = "PMS"
    else:
        scheme = None
    locked = None
    if enabled and scheme == "PMS":
        locked = config.values.get(LOCK_OPTION) is True
    return MemoryProtection(scheme, enabled, locked, "SOC_APM_SUPPORTED" in caps)
