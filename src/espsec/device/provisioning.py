"""Wi-Fi provisioning on the virtual device: the app's provisioning manager, its NVS and
its radio.

:class:`DeviceRuntimeService` boots the device (an app must run), opens the app's NVS
(``nvs_flash_init``, encrypted when the build says so) and saves the device folder after
every change. :func:`open_provisioning` builds the provisioning manager on it:

* station credentials go where ESP-IDF's Wi-Fi driver keeps them with
  ``WIFI_STORAGE_FLASH``: NVS namespace ``nvs.net80211``, keys ``sta.ssid`` (a 36-byte
  blob: little-endian ``uint32`` length, then 32 bytes), ``sta.pswd`` (65 bytes,
  NUL-padded), ``sta.bssid`` / ``bssid.set`` and ``sta.chan`` (the layout a provisioned
  device's NVS shows; ``libnet80211`` itself is closed source);
* the radio is the AP table ``DIR/wifi_aps.json``
  (:class:`~espsec.provisioning.wifi_prov.RadioEnvironment`);
* custom data goes to namespace ``espsec_prov``;
* every session event is appended to ``DIR/provisioning.log`` (JSON lines).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from espsec._io import read_bytes
from espsec.device.nvs import NvsInitError, open_app_nvs
from espsec.device.virtual_device import VirtualDevice
from espsec.errors import EspsecError, UsageError
from espsec.nvs import NvsStore, ValueType
from espsec.provisioning.protocomm import (
    DeviceSecurity,
    Protocomm,
    Security0Device,
    Security1Device,
    Security2Device,
    SessionEvent,
    SessionLog,
    SessionPolicy,
    srp,
)
from espsec.provisioning.wifi_prov import (
    RadioEnvironment,
    StationConfig,
    WifiPolicy,
    WifiProvisioning,
    provisioning_protocomm,
)

WIFI_NVS_NAMESPACE = "nvs.net80211"
PROV_NVS_NAMESPACE = "espsec_prov"
AP_TABLE_FILE = "wifi_aps.json"
SESSION_LOG_FILE = "provisioning.log"
_SSID_BLOB = 36
_PSWD_BLOB = 65


class ProvisioningError(EspsecError):
    """The device cannot run its provisioning service (no app, unreadable NVS, ...)."""


def load_radio_environment(folder: Path) -> RadioEnvironment:
    """The AP table in ``folder/wifi_aps.json`` (no file: no APs in range)."""
    path = folder / AP_TABLE_FILE
    if not path.exists():
        return RadioEnvironment()
    return RadioEnvironment.parse(read_bytes(path, what="AP table"), source=str(path))


class NvsCredentialStore:
    """Station credentials in NVS namespace ``nvs.net80211`` (see the module doc)."""

    def __init__(self, store: NvsStore, on_write: Callable[[], None]) -> None:
        self._store = store
        self._on_write = on_write

    def __repr__(self) -> str:
        return f"<NvsCredentialStore {WIFI_NVS_NAMESPACE}>"

    def save(self, config: StationConfig) -> None:
        with self._store.open(WIFI_NVS_NAMESPACE) as h:
            ssid = struct.pack("<I", len(config.ssid)) + config.ssid.ljust(32, b"\x00")
            h.set_blob("sta.ssid", ssid)
            h.set_blob("sta.pswd", config.passphrase.ljust(_PSWD_BLOB, b"\x00"))
            h.set_blob("sta.bssid", config.bssid or b"\x00" * 6)
            h.set_u8("bssid.set", 1 if config.bssid else 0)
            h.set_u8("sta.chan", config.channel)
            h.commit()
        self._on_write()

    def load(self) -> StationConfig | None:
        with self._store.open(WIFI_NVS_NAMESPACE) as h:
            if h.find_key("sta.ssid") is None:
                return None
            raw = h.get_blob("sta.ssid")
            pswd = h.get_blob("sta.pswd")
            bssid = h.get_blob("sta.bssid")
            bssid_set = int(h.get("bssid.set", ValueType.U8))
            channel = int(h.get("sta.chan", ValueType.U8))
        if len(raw) != _SSID_BLOB:
            return None
        (length,) = struct.unpack_from("<I", raw)
        return StationConfig(
            raw[4 : 4 + min(length, 32)],
            pswd.rstrip(b"\x00"),
            bssid if bssid_set else b"",
            channel,
        )

    def erase(self) -> None:
        with self._store.open(WIFI_NVS_NAMESPACE) as h:
            h.erase_all()
            h.commit()
        self._on_write()


class DeviceRuntimeService:
    """A device folder booted to its app, with the app's NVS open, saved on every change.

    Use as a context manager; :meth:`saved` persists the folder (called by the
    services after each change)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.device = VirtualDevice.open(self.folder)
        report = self.device.boot()
        runtime = self.device.running
        if not report.ok or runtime is None:
            raise ProvisioningError(
                f"no app runs on the device ({report.outcome.value}: {report.refusal or 'no app'})",
                source=str(self.folder),
            )
        self.runtime = runtime
        try:
            self.nvs = open_app_nvs(runtime)
        except NvsInitError as exc:
            raise ProvisioningError(exc.message, source=str(self.folder)) from None

    def __repr__(self) -> str:
        return f"<DeviceRuntimeService {self.folder}>"

    def saved(self) -> None:
        self.device.save()

    def session_log(self) -> SessionLog:
        """A session log appending to ``DIR/provisioning.log``."""
        path = self.folder / SESSION_LOG_FILE

        def sink(event: SessionEvent) -> None:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(event.to_json(), sort_keys=True) + "\n")

        return SessionLog(sink=sink)

    def close(self) -> None:
        self.saved()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True, repr=False)
class SecurityOptions:
    """How the device's protocomm session is secured (the firmware's build choice)."""

    sec_ver: int = 2
    pop: bytes | None = None
    username: bytes | None = None
    password: bytes | None = None
    sec_patch_ver: int = 1
    max_failed_sessions: int | None = None

    def __repr__(self) -> str:
        return f"<SecurityOptions sec_ver={self.sec_ver} sec_patch_ver={self.sec_patch_ver}>"

    def device_security(self) -> DeviceSecurity:
        """The device side of the scheme; for security 2 a fresh salt and the verifier."""
        if self.sec_ver == 0:
            return Security0Device()
        if self.sec_ver == 1:
            return Security1Device(self.pop)
        if self.sec_ver == 2:
            if not self.username or not self.password:
                raise UsageError("security 2 needs a username and a password")
            salt = srp.new_salt()
            verifier = srp.verifier(self.username, self.password, salt)
            return Security2Device(salt, verifier, patch_version=self.sec_patch_ver)
        raise UsageError(f"security version must be 0, 1 or 2, got {self.sec_ver}")

    @property
    def session_policy(self) -> SessionPolicy:
        return SessionPolicy(self.max_failed_sessions)


@dataclass
class DeviceProvisioning:
    """The provisioning manager running on a device: its service and protocomm."""

    runtime: DeviceRuntimeService
    service: WifiProvisioning
    protocomm: Protocomm

    def report(self) -> dict[str, object]:
        doc = self.service.report()
        doc["sessions"] = [e.to_json() for e in self.protocomm.log.events]
        doc["locked_out"] = self.protocomm.locked_out
        return doc


def open_provisioning(
    runtime: DeviceRuntimeService,
    security: SecurityOptions,
    policy: WifiPolicy,
    *,
    env: RadioEnvironment | None = None,
) -> DeviceProvisioning:
    """The provisioning manager on a booted device (``wifi_prov_mgr_start_provisioning``).

    A device that already holds credentials connects with them first, as the app does
    at boot, so a client can ask it to re-provision."""
    store = NvsCredentialStore(runtime.nvs, runtime.saved)

    def changed(service: WifiProvisioning) -> None:
        if service.custom_data:
            with runtime.nvs.open(PROV_NVS_NAMESPACE) as h:
                h.set_blob("custom_data", service.custom_data[-1])
                h.commit()
        runtime.saved()

    service = WifiProvisioning(
        env if env is not None else load_radio_environment(runtime.folder),
        policy,
        store,
        on_change=changed,
    )
    service.connect_stored()
    pc = provisioning_protocomm(
        service,
        security.device_security(),
        policy=security.session_policy,
        log=runtime.session_log(),
    )
    return DeviceProvisioning(runtime, service, pc)
