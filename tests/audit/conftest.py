"""Fixtures of the audit tests: the advisory database, configurations, virtual devices."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from espsec import secure_boot
from espsec.audit import Profile, Report, advisories, audit_inputs
from espsec.audit.subjects import ConfigSubject, Inputs
from espsec.device import VirtualDevice
from espsec.sdkconfig import BootloaderConfig, read_sdkconfig

from ..device.kit import FE_DEV, LOCKED, OTA0, app, bootloader, device, signed

DATA = Path(__file__).parent / "data"
AS_OF = dt.date(2026, 7, 23)
"""Support periods are judged on the day the database's release table was recorded."""

BASELINE: dict[str, str] = {
    "IDF_TARGET": '"esp32s3"',
    "SECURE_BOOT": "y",
    "SECURE_FLASH_ENC_ENABLED": "y",
    "SECURE_FLASH_ENCRYPTION_MODE_RELEASE": "y",
    "BOOTLOADER_APP_ROLLBACK_ENABLE": "y",
    "BOOTLOADER_APP_ANTI_ROLLBACK": "y",
    "ESP_PROTOCOMM_SUPPORT_SECURITY_VERSION_0": "n",
    "ESP_PROTOCOMM_SUPPORT_SECURITY_VERSION_1": "n",
    "ESP_WIFI_AUTH_WPA2_PSK": "y",
}
"""A hardened production configuration, as a minimal ``sdkconfig.defaults``: every
Kconfig rule passes on it."""


def sdkconfig_text(changes: Mapping[str, str | None] | None = None) -> str:
    """``BASELINE`` with ``changes`` (``None`` drops an option) as ``sdkconfig`` text."""
    values: dict[str, str | None] = {**BASELINE, **(changes or {})}
    lines = []
    for name, value in values.items():
        if value is None:
            continue
        if value == "n":
            lines.append(f"# CONFIG_{name} is not set")
        else:
            lines.append(f"CONFIG_{name}={value}")
    return "\n".join(lines) + "\n"


def config_subject(text: str, source: str = "sdkconfig") -> ConfigSubject:
    assignments = read_sdkconfig(text, source=source)
    config = BootloaderConfig.resolve(assignments)
    return ConfigSubject(source, config, {n: a.line for n, a in assignments.items() if a.line})


@pytest.fixture(scope="session")
def db() -> advisories.Database:
    return advisories.load()


@pytest.fixture
def run(db: advisories.Database) -> Callable[..., Report]:
    """Audit an :class:`Inputs` (or keyword lists of subjects) with the shipped database."""

    def audit(
        inputs: Inputs | None = None, *, profile: Profile = Profile.PRODUCTION, **subjects: list
    ) -> Report:
        found = inputs if inputs is not None else Inputs(**subjects)
        if not found.described:
            found.described.append("test input")
        return audit_inputs(found, profile=profile, database=db, as_of=AS_OF)

    return audit


def rule_ids(report: Report) -> set[str]:
    return {f.rule for f in report.findings}


@pytest.fixture(scope="session")
def keys(sb_keys: dict[str, secure_boot.PrivateKey]) -> tuple[secure_boot.PrivateKey, ...]:
    return sb_keys["rsa3072"], sb_keys["rsa3072-b"]


@pytest.fixture
def release_device(keys: tuple[secure_boot.PrivateKey, ...]) -> VirtualDevice:
    """A device after its release-mode first boot: Secure Boot V2, release-mode flash
    encryption, rollback and anti-rollback (the demo's production configuration)."""
    k0, k1 = keys
    dev = device(
        LOCKED,
        boot=signed(bootloader(), k0, k1),
        apps={OTA0: signed(app("1.0.0", 1), k0)},
    )
    dev.boot()
    return dev


@pytest.fixture
def development_device() -> VirtualDevice:
    """A device after its development-mode first boot: flash encryption only."""
    dev = device(FE_DEV, boot=bootloader(), apps={OTA0: app("1.0.0")})
    dev.boot()
    return dev
