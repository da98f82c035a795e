"""What an audit looks at: one subject per input, by kind (:class:`Inputs`).

Plain data, built by the readers of :mod:`espsec.audit.inputs` from files, folders and
ports, or directly by a caller (the fleet builds a :class:`DeviceSubject` from a device's
reported posture): nothing here reads a file or imports the virtual device.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from espsec import efuse
from espsec.audit.advisories import IdfVersion
from espsec.image.descriptors import DESC_OFFSET, AppDesc
from espsec.ota.release import ReleaseStatement
from espsec.provisioning.wifi_prov import WifiPolicy
from espsec.sdkconfig import BootloaderConfig

if TYPE_CHECKING:
    from espsec.device.status import AppInfo


@dataclass(frozen=True)
class ConfigSubject:
    """A build configuration, and the lines of the file that set each option."""

    source: str
    config: BootloaderConfig
    lines: Mapping[str, int] = field(default_factory=dict)
    """Option name → line of the ``sdkconfig`` that assigned it (absent: a default)."""

    def line(self, option: str) -> int | None:
        return self.lines.get(option)


@dataclass(frozen=True)
class VersionSubject:
    """An ESP-IDF version some input was built with."""

    source: str
    text: str
    version: IdfVersion | None
    chip: str | None
    where: str
    """``esp_app_desc_t.idf_ver``, ``project_description.json git_revision``, …"""
    offset: int | None = None
    config: BootloaderConfig | None = None
    """The configuration the same build used, to decide an advisory's ``requires``."""


@dataclass(frozen=True)
class ImageSubject:
    source: str
    chip: str | None
    desc: AppDesc
    desc_offset: int = DESC_OFFSET


@dataclass(frozen=True)
class BundleSubject:
    source: str
    statement: ReleaseStatement


@dataclass(frozen=True)
class NvsState:
    """What the flash of a device shows of one NVS partition, read as an attacker would
    read it (the raw flash, no keys)."""

    partition: str
    offset: int
    plaintext: bool
    """The entries read without keys (``False``: encrypted, or not NVS)."""
    wifi_credentials: bool
    """Namespace ``nvs.net80211`` holds keys: credentials readable from flash."""


@dataclass(frozen=True)
class DeviceSubject:
    """One chip: its eFuses, and where known what its flash and build hold."""

    source: str
    kind: str
    """``virtual device``, ``eFuse file``, ``espefuse summary`` or ``chip on PORT``."""
    efuses: efuse.Efuses
    config: BootloaderConfig | None = None
    apps: tuple[AppInfo, ...] = ()
    nvs: tuple[NvsState, ...] = ()
    key_fingerprints: Mapping[str, str] = field(default_factory=dict)
    """Key block → fingerprint of a secret key whose value is known (virtual devices, or
    a readable block): compared across devices, never shown in full."""

    @property
    def chip(self) -> str:
        return self.efuses.chip


@dataclass(frozen=True)
class PolicySubject:
    source: str
    policy: WifiPolicy


@dataclass(frozen=True)
class ManifestRecord:
    source: str
    line: int
    serial: str
    public_keys: Mapping[str, str]
    certificate_sha256: str | None


@dataclass
class Inputs:
    """Everything given to one audit, sorted by kind."""

    configs: list[ConfigSubject] = field(default_factory=list)
    devices: list[DeviceSubject] = field(default_factory=list)
    images: list[ImageSubject] = field(default_factory=list)
    bundles: list[BundleSubject] = field(default_factory=list)
    versions: list[VersionSubject] = field(default_factory=list)
    policies: list[PolicySubject] = field(default_factory=list)
    manifests: list[ManifestRecord] = field(default_factory=list)
    described: list[str] = field(default_factory=list)

    def merge(self, other: Inputs) -> None:
        self.configs += other.configs
        self.devices += other.devices
        self.images += other.images
        self.bundles += other.bundles
        self.versions += other.versions
        self.policies += other.policies
        self.manifests += other.manifests
        self.described += other.described
