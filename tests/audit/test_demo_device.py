"""The production device of ``demo/run.sh``, made with the demo's commands, passes the audit
with no high finding; the same device after a development-mode first boot does not."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from espsec.cli.main import main

PARTITIONS = """# Name,   Type, SubType, Offset,   Size
nvs,      data, nvs,     0x9000,   0x4000
otadata,  data, ota,     0xd000,   0x2000
phy_init, data, phy,     0xf000,   0x1000
ota_0,    app,  ota_0,   0x10000,  0xf0000
ota_1,    app,  ota_1,   0x100000, 0xf0000
nvs_keys, data, nvs_keys, 0x1f0000, 0x1000, encrypted
esp_secure_cert, 0x3F, , 0x1f1000, 0x2000, encrypted
"""
SDKCONFIG = """CONFIG_IDF_TARGET="esp32s3"
CONFIG_SECURE_BOOT=y
CONFIG_SECURE_FLASH_ENC_ENABLED=y
CONFIG_SECURE_FLASH_ENCRYPTION_MODE_RELEASE=y
CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y
CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK=y
"""
"""The demo's partition table and sdkconfig, as ``demo/run.sh`` writes them."""


def espsec(*args: object, env: dict[str, str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def device_ca(folder: Path) -> tuple[Path, Path]:
    """A device CA as ``espsec fleet init`` makes one (an EC P-256 root)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "demo device CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    ca, ca_key = folder / "device-ca.pem", folder / "device-ca-key.pem"
    ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ca_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca, ca_key


def demo_device(out: Path, env: dict[str, str], *, mode: str) -> Path:
    def ok(*args: object) -> str:
        code, stdout, stderr = espsec(*args, env=env)
        assert code == 0, (args, stderr)
        return stdout

    for i in (0, 1):
        ok("secure-boot", "generate-key", "--scheme", "rsa3072", "-o", out / f"signing-key-{i}.pem")
    keys = ["-k", out / "signing-key-0.pem", "-k", out / "signing-key-1.pem"]
    ok("image", "build-app", "--chip", "esp32s3", "--version", "1.0.0", "--secure-version", "1",
       "-o", out / "app.bin")  # fmt: skip
    ok("secure-boot", "sign", *keys, "-o", out / "app-signed.bin", out / "app.bin")
    dev = out / "device"
    ok("device", "create", "--chip", "esp32s3", "--flash-size", "4MB", dev)
    ok("image", "build-bootloader", "--chip", "esp32s3", "-o", out / "bootloader.bin")
    ok("secure-boot", "sign", *keys, "-o", out / "bootloader-signed.bin", out / "bootloader.bin")
    (out / "partitions.csv").write_text(PARTITIONS)
    (out / "sdkconfig").write_text(SDKCONFIG.replace("MODE_RELEASE", f"MODE_{mode}"))
    ok("device", "flash", dev, "--sdkconfig", out / "sdkconfig",
       "--write", "0x0", out / "bootloader-signed.bin",
       "--partition-table", out / "partitions.csv",
       "--write", "0x10000", out / "app-signed.bin")  # fmt: skip
    hmac_key = out / "hmac-key.bin"
    hmac_key.write_bytes(os.urandom(32))
    ok("efuse", "burn-key", "--device", dev, "BLOCK_KEY5", hmac_key, "HMAC_UP")
    hmac_key.unlink()
    ca, ca_key = device_ca(out)
    ok("device", "provision-identity", dev, "--device-id", "demo-s3-0001",
       "--ca", ca, "--ca-key", ca_key)  # fmt: skip
    ok("device", "boot", dev)
    return dev


@pytest.mark.slow
def test_demo_production_device_has_no_high_finding(tmp_path):
    env = {"ESPSEC_DATA_DIR": str(tmp_path / "data")}
    dev = demo_device(tmp_path, env, mode="RELEASE")
    code, out, err = espsec("audit", "--json", "--fail-on", "high", dev, env=env)
    report = json.loads(out)
    assert code == 0, err
    assert report["counts"]["high"] == 0 and report["counts"]["critical"] == 0
    assert report["inputs"][0].endswith("(ESP32-S3, production (locked))")
    assert not [f for f in report["findings"] if f["rule"].startswith("EF")]


@pytest.mark.slow
def test_demo_device_after_a_development_first_boot_fails(tmp_path):
    env = {"ESPSEC_DATA_DIR": str(tmp_path / "data")}
    dev = demo_device(tmp_path, env, mode="DEVELOPMENT")
    code, out, _ = espsec("audit", "--json", "--fail-on", "high", dev, env=env)
    report = json.loads(out)
    assert code == 1
    assert {"FE002", "EF004", "EF010"} <= {f["rule"] for f in report["findings"]}
    code, out, _ = espsec("audit", "--profile", "development", "--fail-on", "high", dev, env=env)
    assert code == 0, out
