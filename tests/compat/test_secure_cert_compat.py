"""esp_secure_cert partitions against esp-secure-cert-tool 2.6.1 (PyPI), both directions."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from espsec.identity import ds
from espsec.identity import secure_cert as sc

pytestmark = pytest.mark.compat

TOOL = Path(sys.executable).parent / "configure_esp_secure_cert.py"
HMAC_KEY = bytes(range(200, 232))


def _tool(cwd: Path, *args: object) -> Path:
    proc = subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if proc.returncode != 0:
        pytest.fail(f"configure_esp_secure_cert.py failed:\n{proc.stdout[-2000:]}\n{proc.stderr}")
    return cwd / "esp_secure_cert_data" / "esp_secure_cert.bin"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import datetime

    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    folder = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    keys = {
        "rsa": rsa.generate_private_key(65537, 2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
    }

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def make(subject: str, public: object, issuer_key: object, ca: bool) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name("compat CA"))
            .public_key(public)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]
        )

    out = {}
    (folder / "ca.pem").write_bytes(
        make("compat CA", ca_key.public_key(), ca_key, True).public_bytes(
            serialization.Encoding.PEM
        )
    )
    out["ca"] = folder / "ca.pem"
    for kind, key in keys.items():
        cert = make(f"device-{kind}", key.public_key(), ca_key, False)
        (folder / f"{kind}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{kind}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        out[f"{kind}_cert"], out[f"{kind}_key"] = folder / f"{kind}.crt", folder / f"{kind}.key"
    (folder / "ca.der").write_bytes(
        x509.load_pem_x509_certificate(out["ca"].read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
    )
    out["ca_der"] = folder / "ca.der"
    (folder / "hmac.bin").write_bytes(HMAC_KEY)
    out["hmac"] = folder / "hmac.bin"
    return out


@pytest.mark.parametrize("ca", ["ca", "ca_der"])
def test_plaintext_partition_byte_identical_to_the_tool(
    tmp_path: Path, pki: dict[str, Path], ca: str
) -> None:
    theirs = _tool(
        tmp_path,
        "--private-key", pki["rsa_key"], "--device-cert", pki["rsa_cert"],
        "--ca-cert", pki[ca], "--target_chip", "esp32s3", "--skip_flash",
    )  # fmt: skip
    ours = sc.build(
        ca_certs=[pki[ca].read_bytes()],
        device_cert=pki["rsa_cert"].read_bytes(),
        private_key=pki["rsa_key"].read_bytes(),
    )
    assert ours.to_bytes() == theirs.read_bytes()


@pytest.mark.parametrize("chip", ["esp32s3", "esp32c3"])
def test_ds_partition_byte_identical_with_keep_ds_data_on_host(
    tmp_path: Path, pki: dict[str, Path], chip: str
) -> None:
    theirs = _tool(
        tmp_path,
        "--private-key", pki["rsa_key"], "--device-cert", pki["rsa_cert"],
        "--ca-cert", pki["ca"], "--target_chip", chip, "--skip_flash",
        "--configure_ds", "--priv_key_algo", "RSA", "2048", "--efuse_key_id", "3",
        "--efuse_key_file", pki["hmac"], "--keep_ds_data_on_host",
    )  # fmt: skip
    parsed = sc.read_any(theirs.read_bytes())
    assert parsed.ds is not None and parsed.ds.efuse_key_id == 3
    key = serialization.load_pem_private_key(pki["rsa_key"].read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    data = ds.encrypt(key, HMAC_KEY, iv=parsed.ds.data.iv, chip=chip)
    ours = sc.build(
        ca_certs=[pki["ca"].read_bytes()],
        device_cert=pki["rsa_cert"].read_bytes(),
        ds=sc.DsKey(data, 3),
    )
    assert ours.to_bytes() == theirs.read_bytes()


def test_ecdsa_peripheral_partitions_parse_both_ways(tmp_path: Path, pki: dict[str, Path]) -> None:
    theirs = _tool(
        tmp_path,
        "--private-key", pki["ec_key"], "--device-cert", pki["ec_cert"],
        "--target_chip", "esp32p4", "--skip_flash",
        "--configure_ds", "--priv_key_algo", "ECDSA", "256", "--efuse_key_id", "2",
    )  # fmt: skip
    found = sc.read_any(theirs.read_bytes())
    assert found.ecdsa_key_id == 2 and found.key_source == "ecdsa-peripheral"
    ours = sc.build(device_cert=pki["ec_cert"].read_bytes(), ecdsa_key_id=2)
    # espsec leaves the key out of the partition; the tool stores it in plaintext as well.
    their_tlvs = sc.SecureCertPartition.parse(theirs.read_bytes()).entries
    our_tlvs = ours.entries
    assert [(t.type, t.flags) for t in their_tlvs] == [(t.type, t.flags) for t in our_tlvs]
    assert our_tlvs[:2] == their_tlvs[:2]
    _their_parse(tmp_path / "parse", ours.to_bytes())


def _their_parse(folder: Path, image: bytes) -> list[dict[str, str]]:
    folder.mkdir(exist_ok=True)
    (folder / "part.bin").write_bytes(image)
    subprocess.run(
        [sys.executable, str(TOOL), "--parse_bin", "part.bin"],
        cwd=folder, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    with (folder / "esp_secure_cert_parsed_data" / "esp_secure_cert_parsed.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_the_tool_parses_our_partitions(tmp_path: Path, pki: dict[str, Path]) -> None:
    key = serialization.load_pem_private_key(pki["rsa_key"].read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    part = sc.build(
        ca_certs=[pki["ca"].read_bytes()],
        device_cert=pki["rsa_cert"].read_bytes(),
        ds=sc.DsKey(ds.encrypt(key, HMAC_KEY), 1),
        user_data=[(3, b"model X")],
    )
    rows = _their_parse(tmp_path, part.to_bytes())
    kinds = [r["tlv_type"] for r in rows]
    assert kinds[:4] == [
        "ESP_SECURE_CERT_DS_DATA_TLV",
        "ESP_SECURE_CERT_DS_CONTEXT_TLV",
        "ESP_SECURE_CERT_CA_CERT_TLV",
        "ESP_SECURE_CERT_DEV_CERT_TLV",
    ]
    ctx = next(r for r in rows if r["tlv_type"] == "ESP_SECURE_CERT_DS_CONTEXT_TLV")
    assert ctx["efuse_id"] == "1" and ctx["key_size"] == "2048"
    user = next(r for r in rows if r["tlv_type"] == "ESP_SECURE_CERT_USER_DATA_3_TLV")
    assert user["data_value"] == "model X"
    dev = tmp_path / "esp_secure_cert_parsed_data" / rows[3]["data_value"]
    assert x509.load_pem_x509_certificate(dev.read_bytes()) == x509.load_pem_x509_certificate(
        pki["rsa_cert"].read_bytes()
    )
