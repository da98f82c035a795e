"""A small factory batch on disk: CA, partition table, firmware, NVS template, spec."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization

from espsec import secure_boot
from espsec.chips import get_chip
from espsec.identity.tls import generate_device_ca
from espsec.image import build_app_image, build_bootloader_image

TABLE_CSV = """\
nvs,             data, nvs,      0x9000,  0x6000,
phy_init,        data, phy,      0xf000,  0x1000,
esp_secure_cert, 0x3F, ,         0x10000, 0x2000,
factory,         app,  factory,  0x20000, 0x30000,
"""

NVS_CSV = """\
key,type,encoding,value
factory,namespace,,
serial,data,string,{serial}
mac,data,string,{mac}
device_id,data,string,{device_id}
batch,data,string,{batch}
"""


def write_batch(
    folder: Path,
    *,
    chip: str = "esp32s3",
    count: int = 3,
    ca_uri: str | None = None,
    ca_files: tuple[Path, Path] | None = None,
    extra: str = "",
    keys: str = "",
    profile: str = "development",
    ds_rsa_bits: int = 2048,
) -> Path:
    """Write a batch spec and its inputs into ``folder``; return the spec's path."""
    folder.mkdir(parents=True, exist_ok=True)
    if ca_files is None:
        cert, key = generate_device_ca("factory test CA")
        (folder / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / "ca.key.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    (folder / "partitions.csv").write_text(TABLE_CSV)
    (folder / "nvs.csv").write_text(NVS_CSV)
    target = get_chip(chip)
    # Built for the major revision of the chips the line gets (the newest: ESP32-P4 v3).
    rev = target.latest_revision // 100 * 100
    (folder / "bootloader.bin").write_bytes(build_bootloader_image(target, min_chip_rev_full=rev))
    (folder / "app.bin").write_bytes(
        build_app_image(target, version="1.0.0", code_size=512, min_chip_rev_full=rev)
    )
    sb = secure_boot.load_private_key(secure_boot.generate_private_key("ecdsa256"))
    (folder / "sb.pub.pem").write_bytes(secure_boot.public_key_pem(sb))
    ca_line = f'uri = "{ca_uri}"' if ca_uri else 'key = "ca.key.pem"'
    cert_name = "ca.pem"
    spec = f"""
[batch]
name = "test-batch"
chip = "{chip}"
count = {count}
serial_format = "SN{{n:05d}}"
profile = "{profile}"
output = "out"

[keys]
flash_encryption = "host"
hmac = "host"
identity = "host"
ds_rsa_bits = {ds_rsa_bits}
{keys}

[secure_boot]
digests = ["sb.pub.pem"]

[nvs]
template = "nvs.csv"
partition = "nvs"

[secure_cert]
ca_chain = ["ca.pem"]

[ca]
certificate = "{cert_name}"
{ca_line}

[firmware]
partition_table = "partitions.csv"
bootloader = "bootloader.bin"
app = "app.bin"
flash_size = "1MB"
{extra}
"""
    path = folder / "batch.toml"
    path.write_text(spec)
    return path


def write_app_sdkconfig(folder: Path, chip: str, *, hmac_key_id: int = 1) -> str:
    """An app sdkconfig whose ``nvs_flash_init`` reads the factory NVS (keys derived from
    the ``HMAC_UP`` key the factory burns in key block ``hmac_key_id``); returns the
    ``[firmware]`` line naming it."""
    (folder / "sdkconfig").write_text(
        f'CONFIG_IDF_TARGET="{chip}"\n'
        "CONFIG_NVS_ENCRYPTION=y\n"
        "CONFIG_NVS_SEC_KEY_PROTECT_USING_HMAC=y\n"
        f"CONFIG_NVS_SEC_HMAC_EFUSE_KEY_ID={hmac_key_id}\n"
    )
    return 'sdkconfig = "sdkconfig"'
