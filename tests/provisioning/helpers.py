"""Protocomm instances for tests: a provisioning device served in-process."""

from __future__ import annotations

from espsec.provisioning.protocomm import (
    Protocomm,
    Security0Device,
    Security1Device,
    Security2Device,
    SessionPolicy,
)
from espsec.provisioning.wifi_prov import (
    MemoryCredentialStore,
    RadioEnvironment,
    WifiPolicy,
    WifiProvisioning,
    provisioning_protocomm,
)

USERNAME = b"wifiprov"
PASSWORD = b"abcd1234"
POP = b"abcd1234pop"
APS = {
    "access_points": [
        {"ssid": "home", "bssid": "aa:bb:cc:00:00:01", "channel": 6, "rssi": -40,
         "auth": "wpa2", "passphrase": "secret123"},
        {"ssid": "cafe", "bssid": "aa:bb:cc:00:00:02", "channel": 1, "rssi": -70,
         "auth": "open"},
        {"ssid": "lab", "bssid": "aa:bb:cc:00:00:03", "channel": 11, "rssi": -55,
         "auth": "wpa3-sae", "pmf": "required", "passphrase": "labpass99"},
        {"ssid": "old", "bssid": "aa:bb:cc:00:00:04", "channel": 3, "rssi": -60,
         "auth": "wep", "passphrase": "abcde"},
        {"ssid": "mixed", "bssid": "aa:bb:cc:00:00:05", "channel": 9, "rssi": -50,
         "auth": "wpa2", "pmf": "disabled", "passphrase": "mixedpass"},
        {"ssid": "mixed", "bssid": "aa:bb:cc:00:00:06", "channel": 9, "rssi": -65,
         "auth": "wpa2-wpa3", "pmf": "capable", "passphrase": "mixedpass"},
    ]
}  # fmt: skip


def device_security(sec_ver: int, creds: tuple[bytes, bytes], patch: int = 1):
    if sec_ver == 0:
        return Security0Device()
    if sec_ver == 1:
        return Security1Device(POP)
    return Security2Device(*creds, patch_version=patch)


def prov_device(
    sec_ver: int,
    creds: tuple[bytes, bytes],
    *,
    patch: int = 1,
    policy: WifiPolicy | None = None,
    max_failed: int | None = None,
) -> tuple[Protocomm, WifiProvisioning]:
    import json

    service = WifiProvisioning(
        RadioEnvironment.parse(json.dumps(APS).encode()),
        policy or WifiPolicy(),
        MemoryCredentialStore(),
    )
    pc = provisioning_protocomm(
        service,
        device_security(sec_ver, creds, patch),
        policy=SessionPolicy(max_failed),
    )
    return pc, service


def client_kwargs(sec_ver: int) -> dict[str, object]:
    if sec_ver == 1:
        return {"pop": POP}
    if sec_ver == 2:
        return {"username": USERNAME, "password": PASSWORD}
    return {}
