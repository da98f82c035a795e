"""Independent protocomm clients against the twin's provisioning and local control servers.

Oracles, installed from PyPI as test dependencies:

* ``esp-rainmaker-cli`` ships esp_prov's ``security0/1/2.py``, ``srp6a.py``, its HTTP
  transport, the Wi-Fi provisioning request helpers and the generated ``*_pb2`` modules
  of ESP-IDF's ``.proto`` files (``rmaker_tools/common``, ``rmaker_tools/rmaker_prov``);
* ``esp-protocomm`` ships an independent security 1 client and Wi-Fi provisioning flow.

Each drives the same server ``espsec device provision-serve`` runs (a booted device with
encrypted NVS behind :class:`ProtocommHttpServer`).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import sys
from pathlib import Path

import pytest

from espsec.chips import get_chip
from espsec.device import VirtualDevice
from espsec.device.local_ctrl import open_local_ctrl, server_identity, server_ssl_context
from espsec.device.provisioning import (
    DeviceRuntimeService,
    NvsCredentialStore,
    SecurityOptions,
    open_provisioning,
)
from espsec.image import build_app_image, build_bootloader_image
from espsec.image.partition_table import PartitionTable
from espsec.provisioning.protocomm import ProtocommHttpServer, srp
from espsec.provisioning.wifi_prov import WifiPolicy
from espsec.sdkconfig import BootloaderConfig

pytestmark = pytest.mark.compat

import rmaker_tools  # noqa: E402

sys.path.insert(0, str(Path(rmaker_tools.__file__).parent / "rmaker_prov"))
from rmaker_tools.common.prov import wifi_prov as esp_wifi_prov  # noqa: E402
from rmaker_tools.common.prov import wifi_scan as esp_wifi_scan  # noqa: E402
from rmaker_tools.common.security import security0, security1, security2, srp6a  # noqa: E402
from rmaker_tools.common.transport.transport_http import Transport_HTTP  # noqa: E402

USERNAME, PASSWORD, POP = "wifiprov", "abcd1234", "compat-pop"
APS = [
    {"ssid": "home", "bssid": "aa:bb:cc:00:00:01", "channel": 6, "rssi": -40, "auth": "wpa2",
     "passphrase": "secret123"},
    {"ssid": "cafe", "bssid": "aa:bb:cc:00:00:02", "channel": 1, "rssi": -70, "auth": "open"},
]  # fmt: skip
TABLE = PartitionTable.from_csv(
    """nvs,      data, nvs,      0x9000,  0x4000,
otadata,  data, ota,      0xd000,  0x2000,
factory,  app,  factory,  0x10000, 0x30000,
nvs_keys, data, nvs_keys, 0x40000, 0x1000, encrypted
"""
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chip = get_chip("esp32s3")
    folder = tmp_path_factory.mktemp("compat-prov") / "dev"
    dev = VirtualDevice.new(
        "esp32s3", 1 << 20, config=BootloaderConfig.from_options(secure_flash_enc_enabled=True)
    )
    dev.write_files(
        [
            (chip.bootloader_offset, build_bootloader_image(chip), "bootloader"),
            (0x8000, TABLE.to_bytes(), "partition table"),
            (0x10000, build_app_image(chip, version="1.0.0", code_size=512), "app"),
        ]
    )
    assert dev.boot().ok
    dev.save(folder)
    (folder / "wifi_aps.json").write_text(json.dumps(APS))
    return folder


def _serve(template: Path, tmp_path: Path, security: SecurityOptions):
    folder = tmp_path / "dev"
    shutil.copytree(template, folder)
    runtime = DeviceRuntimeService(folder)
    prov = open_provisioning(runtime, security, WifiPolicy())
    return runtime, prov, ProtocommHttpServer(prov.protocomm).start()


def _options(sec_ver: int, patch: int = 1) -> SecurityOptions:
    return SecurityOptions(
        sec_ver,
        pop=POP.encode(),
        username=USERNAME.encode(),
        password=PASSWORD.encode(),
        sec_patch_ver=patch,
    )


def _esp_prov_security(sec_ver: int, patch: int, *, pop: str = POP, password: str = PASSWORD):
    if sec_ver == 0:
        return security0.Security0(False)
    if sec_ver == 1:
        return security1.Security1(pop, False)
    return security2.Security2(patch, USERNAME, password, False)


def _esp_prov_handshake(transport, make_security):
    """esp_prov's establish_session loop. A real ESP-IDF device refuses an SRP public key
    A shorter than 384 bytes, and esp_prov sends A's minimal bytes (1 handshake in 256
    fails against real firmware too): such an A is never sent, a new client is made."""
    while True:
        sec = make_security()
        request = sec.security_session(None)
        if (
            not isinstance(sec, security2.Security2)
            or len(srp6a.long_to_bytes(sec.srp6a_ctx.A)) == 384
        ):
            break
    response = None
    while request is not None:
        response = transport.send_data("prov-session", request)
        request = sec.security_session(response)
    return sec


@pytest.mark.parametrize(("sec_ver", "patch"), [(0, 1), (1, 1), (2, 1), (2, 0)])
def test_esp_prov_provisions_wifi_into_encrypted_nvs(template, tmp_path, sec_ver, patch):
    runtime, _, server = _serve(template, tmp_path, _options(sec_ver, patch))
    try:
        transport = Transport_HTTP(server.address)
        version = json.loads(transport.send_data("proto-ver", "---"))
        assert version["prov"]["sec_ver"] == sec_ver
        assert version["prov"]["sec_patch_ver"] == (patch if sec_ver == 2 else 0)
        sec = _esp_prov_handshake(transport, lambda: _esp_prov_security(sec_ver, patch))

        reply = transport.send_data("prov-scan", esp_wifi_scan.scan_start_request(sec))
        esp_wifi_scan.scan_start_response(sec, reply)
        reply = transport.send_data("prov-scan", esp_wifi_scan.scan_status_request(sec))
        assert esp_wifi_scan.scan_status_response(sec, reply)["count"] == 2
        reply = transport.send_data("prov-scan", esp_wifi_scan.scan_result_request(sec, 0, 2))
        found = esp_wifi_scan.scan_result_response(sec, reply)
        assert [ap["ssid"] for ap in found] == ["home", "cafe"]

        req = esp_wifi_prov.config_set_config_request(sec, "home", "secret123")
        assert (
            esp_wifi_prov.config_set_config_response(sec, transport.send_data("prov-config", req))
            == 0
        )
        req = esp_wifi_prov.config_apply_config_request(sec)
        assert (
            esp_wifi_prov.config_apply_config_response(sec, transport.send_data("prov-config", req))
            == 0
        )
        req = esp_wifi_prov.config_get_status_request(sec)
        state = esp_wifi_prov.config_get_status_response(
            sec, transport.send_data("prov-config", req)
        )
        assert state == "connected"
        reply = transport.send_data(
            "custom-data", sec.encrypt_data(b"from esp_prov").decode("latin-1")
        )
        assert sec.decrypt_data(reply.encode("latin-1")) == b"SUCCESS"
    finally:
        server.stop()
        runtime.close()
    stored = NvsCredentialStore(DeviceRuntimeService(runtime.folder).nvs, lambda: None).load()
    assert stored is not None and stored.ssid == b"home" and stored.passphrase == b"secret123"
    assert b"secret123" not in (runtime.folder / "flash.bin").read_bytes()


def test_esp_prov_with_wrong_pop_fails_and_device_logs_crypto_error(template, tmp_path):
    runtime, prov, server = _serve(template, tmp_path, _options(1))
    try:
        transport = Transport_HTTP(server.address)
        with pytest.raises(RuntimeError):
            _esp_prov_handshake(transport, lambda: _esp_prov_security(1, 1, pop="wrong"))
    finally:
        server.stop()
        runtime.close()
    assert prov.protocomm.log.events[-1].status == "CryptoError"
    assert prov.service.store.load() is None


def test_esp_prov_with_wrong_password_fails(template, tmp_path):
    runtime, prov, server = _serve(template, tmp_path, _options(2))
    try:
        transport = Transport_HTTP(server.address)
        with pytest.raises(RuntimeError):
            _esp_prov_handshake(transport, lambda: _esp_prov_security(2, 1, password="wrong"))
    finally:
        server.stop()
        runtime.close()
    assert prov.protocomm.log.events[-1].status == "CryptoError"


def test_esp_prov_verifier_is_ours():
    salt, verifier = srp6a.generate_salt_and_verifier(USERNAME, PASSWORD, len_s=16)
    assert srp.verifier(USERNAME.encode(), PASSWORD.encode(), salt) == verifier


class _AsyncHttp:
    """esp-protocomm's transport interface (``async send(endpoint, data)``) over HTTP."""

    def __init__(self, address: str) -> None:
        from espsec.provisioning.protocomm import HttpTransport

        self._http = HttpTransport(address)

    async def send(self, endpoint: str, data: bytes) -> bytes:
        return self._http.send(endpoint, data)


def test_esp_protocomm_security1_provisions_wifi(template, tmp_path):
    import esp_protocomm

    runtime, prov, server = _serve(template, tmp_path, _options(1))

    async def run():
        transport = _AsyncHttp(server.address)
        sec = await esp_protocomm.establish_session(transport, esp_protocomm.Security1(POP))
        return await esp_protocomm.provision_wifi(
            transport, sec, "home", "secret123", timeout=5, poll_interval=0.01
        )

    try:
        status = asyncio.run(run())
    finally:
        server.stop()
        runtime.close()
    assert status.state == esp_protocomm.WifiState.CONNECTED
    assert prov.service.store.load().ssid == b"home"


def test_esp_protocomm_with_wrong_pop_fails(template, tmp_path):
    import esp_protocomm

    runtime, prov, server = _serve(template, tmp_path, _options(1))
    try:
        with pytest.raises(esp_protocomm.SecurityError):
            asyncio.run(
                esp_protocomm.establish_session(
                    _AsyncHttp(server.address), esp_protocomm.Security1("wrong")
                )
            )
    finally:
        server.stop()
        runtime.close()
    assert "established" not in [e.event for e in prov.protocomm.log.events]


def test_esp_prov_lists_local_control_properties_over_https(template, tmp_path):
    sys.path.insert(0, str(Path(rmaker_tools.__file__).parent / "rmaker_local_ctrl"))
    try:
        import esp_local_ctrl_pb2 as lc  # ESP-IDF's esp_local_ctrl.proto, generated
    finally:
        sys.path.pop(0)
    folder = tmp_path / "dev"
    shutil.copytree(template, folder)
    runtime = DeviceRuntimeService(folder)
    service, pc = open_local_ctrl(runtime, _options(2))
    cert_pem, key_pem = server_identity(folder)
    server = ProtocommHttpServer(pc, ssl_context=server_ssl_context(cert_pem, key_pem)).start()
    try:
        context = ssl.create_default_context(cadata=cert_pem.decode())
        transport = Transport_HTTP(server.address, context)
        info = json.loads(transport.send_data("esp_local_ctrl/version", "---"))
        assert info["local_ctrl"]["sec_ver"] == 2
        sec = None
        while True:
            sec = security2.Security2(1, USERNAME, PASSWORD, False)
            request = sec.security_session(None)
            if len(srp6a.long_to_bytes(sec.srp6a_ctx.A)) == 384:
                break
        while request is not None:
            request = sec.security_session(transport.send_data("esp_local_ctrl/session", request))
        msg = lc.LocalCtrlMessage(msg=lc.TypeCmdGetPropertyValues)
        msg.cmd_get_prop_vals.indices.extend(range(len(service.properties)))
        data = sec.encrypt_data(msg.SerializeToString()).decode("latin-1")
        reply = lc.LocalCtrlMessage()
        reply.ParseFromString(
            sec.decrypt_data(transport.send_data("esp_local_ctrl/control", data).encode("latin-1"))
        )
    finally:
        server.stop()
        runtime.close()
    assert [p.name for p in reply.resp_get_prop_vals.props] == [p.name for p in service.properties]
