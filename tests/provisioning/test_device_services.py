"""Provisioning and Local Control on the virtual device, and their commands."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from espsec.cli.main import main
from espsec.device import VirtualDevice
from espsec.device.local_ctrl import open_local_ctrl, server_identity, server_ssl_context
from espsec.device.nvs import read_device_nvs
from espsec.device.provisioning import (
    SESSION_LOG_FILE,
    WIFI_NVS_NAMESPACE,
    DeviceRuntimeService,
    SecurityOptions,
    open_provisioning,
)
from espsec.provisioning.errors import ProtocommError
from espsec.provisioning.local_ctrl import LocalCtrlClient
from espsec.provisioning.protocomm import (
    BleSimTransport,
    GattServer,
    HttpTransport,
    ProtocommHttpServer,
    srp,
)
from espsec.provisioning.prov_client import ProvClient
from espsec.provisioning.wifi_prov import WifiPolicy

from .helpers import PASSWORD, POP, USERNAME

SEC2 = SecurityOptions(2, username=USERNAME, password=PASSWORD)


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _provision(folder: Path, ssid: bytes, passphrase: bytes) -> str:
    with DeviceRuntimeService(folder) as runtime:
        prov = open_provisioning(runtime, SEC2, WifiPolicy())
        client = ProvClient.connect(
            BleSimTransport(GattServer(prov.protocomm)), 2, username=USERNAME, password=PASSWORD
        )
        return client.provision(ssid, passphrase).state


def test_credentials_go_to_encrypted_nvs_in_the_wifi_namespace(device_dir):
    assert _provision(device_dir, b"home", b"secret123") == "connected"
    contents = read_device_nvs(VirtualDevice.open(device_dir))
    keys = {(e.namespace, e.key) for e in contents.entries}
    assert {(WIFI_NVS_NAMESPACE, "sta.ssid"), (WIFI_NVS_NAMESPACE, "sta.pswd")} <= keys
    assert b"secret123" not in (device_dir / "flash.bin").read_bytes()


def test_stored_credentials_survive_a_restart(device_dir):
    _provision(device_dir, b"home", b"secret123")
    with DeviceRuntimeService(device_dir) as runtime:
        prov = open_provisioning(runtime, SEC2, WifiPolicy())
        assert prov.service.state_name == "connected"
        result = prov.service.last
    assert result is not None and result.connected


def test_session_events_are_logged_in_the_device_folder(device_dir):
    with DeviceRuntimeService(device_dir) as runtime:
        prov = open_provisioning(runtime, SEC2, WifiPolicy())
        with pytest.raises(ProtocommError):
            ProvClient.connect(
                BleSimTransport(GattServer(prov.protocomm)), 2, username=USERNAME, password=b"x"
            )
    lines = [json.loads(x) for x in (device_dir / SESSION_LOG_FILE).read_text().splitlines()]
    assert [e["event"] for e in lines] == ["new", "failed"]
    assert lines[-1]["status"] == "CryptoError"


def test_policy_refusal_is_in_the_report(device_dir):
    with DeviceRuntimeService(device_dir) as runtime:
        prov = open_provisioning(runtime, SEC2, WifiPolicy(pmf_required=True))
        client = ProvClient.connect(
            BleSimTransport(GattServer(prov.protocomm)), 2, username=USERNAME, password=PASSWORD
        )
        assert client.provision(b"home", b"secret123").fail_reason == "NetworkNotFound"
        report = prov.report()
    (refused,) = report["last_attempt"]["refused"]
    assert refused["bssid"] == "aa:bb:cc:00:00:01" and "PMF" in refused["reason"]


def _local_ctrl(folder: Path):
    runtime = DeviceRuntimeService(folder)
    service, pc = open_local_ctrl(runtime, SecurityOptions(1, pop=POP))
    context = server_ssl_context(*server_identity(folder))
    return runtime, service, ProtocommHttpServer(pc, ssl_context=context).start()


def test_local_control_persistent_property_survives_a_restart(device_dir):
    runtime, _, server = _local_ctrl(device_dir)
    try:
        code, out, err = run(
            "local-ctrl", "set", "brightness", "80", "--service-name", server.address,
            "--sec-ver", "1", "--pop-file", _write(device_dir / "pop", POP),
            "--pin", device_dir / "local_ctrl_cert.pem", "--json",
        )  # fmt: skip
    finally:
        server.stop()
        runtime.close()
    assert code == 0, err
    assert json.loads(out)["value"] == 80
    runtime, service, server = _local_ctrl(device_dir)
    server.stop()
    runtime.close()
    assert next(p for p in service.properties if p.name == "brightness").value == (80).to_bytes(
        4, "little"
    )


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data + b"\n")
    return path


@pytest.mark.parametrize(
    ("name", "value", "code"), [("status", "x", 2), ("brightness", "bright", 2), ("nope", "1", 2)]
)
def test_local_control_refuses_read_only_bad_and_unknown_properties(device_dir, name, value, code):
    runtime, service, server = _local_ctrl(device_dir)
    before = [p.value for p in service.properties]
    try:
        result = run(
            "local-ctrl", "set", name, value, "--service-name", server.address,
            "--sec-ver", "1", "--pop-file", _write(device_dir / "pop", POP),
            "--pin", device_dir / "local_ctrl_cert.pem",
        )  # fmt: skip
    finally:
        server.stop()
        runtime.close()
    assert result[0] == code
    assert [p.value for p in service.properties] == before


def test_local_control_refuses_a_certificate_that_is_not_pinned(device_dir, tmp_path):
    from espsec.device.local_ctrl import _self_signed

    other, _ = _self_signed()
    runtime, _, server = _local_ctrl(device_dir)
    try:
        code, _, err = run(
            "local-ctrl", "list", "--service-name", server.address, "--sec-ver", "1",
            "--pop-file", _write(tmp_path / "pop", POP), "--pin", _write(tmp_path / "o.pem", other),
        )  # fmt: skip
    finally:
        server.stop()
        runtime.close()
    assert code == 1 and "not the pinned one" in err


def test_local_control_client_lists_typed_values(device_dir):
    import ssl

    runtime, _, server = _local_ctrl(device_dir)
    try:
        cert = (device_dir / "local_ctrl_cert.pem").read_text()
        transport = HttpTransport(
            server.address, ssl_context=ssl.create_default_context(cadata=cert)
        )
        props = {
            p.name: p.to_json()["value"]
            for p in LocalCtrlClient.connect(transport, 1, pop=POP).properties()
        }
    finally:
        server.stop()
        runtime.close()
    assert props == {"status": "running", "uptime_us": 0, "brightness": 50, "enabled": True}


def test_gen_sec2_cred_writes_salt_and_verifier_for_firmware(tmp_path):
    pw = _write(tmp_path / "pw", PASSWORD)
    out = tmp_path / "sec2.c"
    code, stdout, _ = run(
        "prov", "gen-sec2-cred", "--sec2-username", "wifiprov", "--sec2-password-file", pw,
        "-o", out, "--json",
    )  # fmt: skip
    assert code == 0
    doc = json.loads(stdout)
    salt, verifier = bytes.fromhex(doc["salt"]), bytes.fromhex(doc["verifier"])
    assert srp.verifier(USERNAME, PASSWORD, salt) == verifier
    assert out.read_text() == srp.c_arrays(salt, verifier)


def test_prov_over_simulated_ble_provisions_the_device_folder(device_dir, tmp_path):
    pw, pp = _write(tmp_path / "pw", PASSWORD), _write(tmp_path / "pp", b"secret123")
    code, out, err = run(
        "prov", "--transport", "ble-sim", "--device", device_dir, "--sec2-username", "wifiprov",
        "--sec2-password-file", pw, "--scan", "--ssid", "home", "--passphrase-file", pp, "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["status"]["state"] == "connected" and doc["scan"][0]["ssid"] == "home"
    code, out, _ = run(
        "prov", "--transport", "ble-sim", "--device", device_dir, "--sec2-username", "wifiprov",
        "--sec2-password-file", pw, "--reprov", "--ssid", "home", "--passphrase-file", pw,
    )  # fmt: skip
    assert code == 1 and "AuthError" in out


@pytest.mark.parametrize(
    "args",
    [
        ["--sec-ver", "2"],
        ["--sec-ver", "0", "--pop-file", __file__],
        ["--transport", "ble-sim", "--sec-ver", "0"],
        ["--passphrase-file", __file__],
    ],
)
def test_prov_usage_errors_exit_2(args):
    assert run("prov", *args)[0] == 2


@pytest.mark.parametrize("address", ["[::1", "host:99999", "no-port", "bad host:80"])
@pytest.mark.parametrize("command", [["prov"], ["local-ctrl", "list", "--pin", __file__]])
def test_a_malformed_service_name_is_a_usage_error(command, address):
    code, _, err = run(*command, "--service-name", address)
    assert code == 2 and "Invalid value for '--service-name': expected HOST:PORT" in err
    assert "Traceback" not in err


def test_local_ctrl_with_a_ca_file_that_holds_no_certificate_is_one_line(tmp_path):
    junk = _write(tmp_path / "ca.pem", b"not a certificate")
    code, _, err = run(
        "local-ctrl", "list", "--service-name", "127.0.0.1:1", "--sec-ver", "0", "--ca", junk
    )
    assert code == 1 and err == (
        f"error: {junk}: not a usable certificate file "
        "(expected an X.509 certificate in PEM, found no PEM data)\n"
    )


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_provision_serve_refuses_a_port_out_of_range(device_dir, port):
    code, _, err = run("device", "provision-serve", device_dir, "--sec-ver", "0", "--port", port)
    assert code == 2 and f"expected a TCP port 0-65535, found '{port}'" in err


def test_gen_sec2_cred_never_writes_over_its_password_file(tmp_path):
    pw = _write(tmp_path / "pw", PASSWORD)
    code, _, err = run(
        "prov", "gen-sec2-cred", "--sec2-username", "wifiprov", "--sec2-password-file", pw,
        "-o", pw,
    )  # fmt: skip
    assert code == 2 and "refusing to write over an input" in err
    assert pw.read_bytes() == PASSWORD + b"\n"


@pytest.mark.slow
def test_provision_serve_and_prov_commands_talk_over_http(device_dir, tmp_path):
    pw, pp = _write(tmp_path / "pw", PASSWORD), _write(tmp_path / "pp", b"secret123")
    espsec = Path(sys.executable).parent / "espsec"
    server = subprocess.Popen(
        [espsec, "device", "provision-serve", device_dir, "--sec2-username", "wifiprov",
         "--sec2-password-file", pw, "--port", "0", "--max-seconds", "20", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = server.stderr.readline()
        address = line.split("http://")[1].split()[0]
        code, out, err = run(
            "prov", "--service-name", address, "--sec2-username", "wifiprov",
            "--sec2-password-file", pw, "--ssid", "home", "--passphrase-file", pp, "--json",
        )  # fmt: skip
        assert code == 0, err
        assert json.loads(out)["status"]["connected"]["ssid"] == "home"
    finally:
        server.terminate()
        server.wait(timeout=10)
    time.sleep(0)


def _ca_and_leaf() -> tuple[object, bytes, bytes]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "espsec test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")]))
        .issuer_name(ca_name).public_key(leaf_key.public_key()).serial_number(2)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    return ca, leaf.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.mark.parametrize("trusted", [True, False])
def test_local_control_trusts_a_device_certificate_through_an_esp_cert_bundle(
    device_dir, tmp_path, trusted
):
    from espsec.identity.cert_bundle import CertBundle

    ca, leaf_pem, key_pem = _ca_and_leaf()
    other_ca, _, _ = _ca_and_leaf()
    bundle = tmp_path / "x509_crt_bundle"
    bundle.write_bytes(CertBundle.from_certificates([ca if trusted else other_ca]).to_bytes())
    runtime = DeviceRuntimeService(device_dir)
    _, pc = open_local_ctrl(runtime, SecurityOptions(1, pop=POP))
    server = ProtocommHttpServer(pc, ssl_context=server_ssl_context(leaf_pem, key_pem)).start()
    try:
        code, out, err = run(
            "local-ctrl", "get", "status", "--service-name", server.address, "--sec-ver", "1",
            "--pop-file", _write(tmp_path / "pop", POP), "--cert-bundle", bundle,
        )  # fmt: skip
    finally:
        server.stop()
        runtime.close()
    if trusted:
        assert code == 0 and "running" in out, err
    else:
        assert code == 1 and "signature verification failed" in err
