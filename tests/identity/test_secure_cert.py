"""esp_secure_cert partitions: the tool's golden image, every TLV kind, legacy formats, attacks."""

from __future__ import annotations

import hashlib
import hmac
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from espsec.cli.main import main
from espsec.errors import FormatError, UsageError
from espsec.identity import ds
from espsec.identity import secure_cert as sc
from espsec.identity.hmac import ds_aes_key

from .c_vectors import VECTORS

MGR = VECTORS / "esp_secure_cert_mgr"
INPUT = MGR / "tools/tests/input_data"
QEMU = MGR / "test_apps/qemu_test"
HMAC_UP = bytes(range(32, 64))


def _mac(message: bytes) -> bytes:
    return hmac.new(HMAC_UP, message, hashlib.sha256).digest()


def _read(name: str) -> bytes:
    return (INPUT / name).read_bytes()


def test_reproduces_the_tools_golden_partition_byte_for_byte() -> None:
    golden = _read("esp_secure_cert.bin")
    assert len(golden) == 5280
    expected = sc.build(
        ca_certs=[_read("cacert.pem"), _read("cacert.pem")],
        device_cert=_read("client.crt"),
        private_key=_read("client.key"),
        user_data=[
            (1, b"Device Model: ESP32-S3-DevKit-C"),
            (2, bytes.fromhex("DEADBEEFCAFEBABE1234567890ABCDEF")),
        ],
    )
    assert expected.to_bytes() == golden
    parsed = sc.SecureCertPartition.parse(golden)
    assert parsed == expected
    assert [t.type for t in parsed.entries] == [0, 0, 1, 2, 51, 52, 9]


def test_espressif_ds_partition_opens_with_its_qemu_efuse_hmac_key() -> None:
    folder = MGR / "examples/esp_secure_cert_app/tests"
    found = sc.read_any((folder / "esp_secure_cert.bin").read_bytes())
    assert found.key_source == "ds" and found.ds is not None and found.device_cert is not None
    hmac_key = (folder / "qemu_efuse.bin").read_bytes()[112:144]
    params = ds.decrypt(found.ds.data, ds_aes_key(hmac_key))
    cert = sc.load_stored_certificate(found.device_cert)
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert params.m == public.public_numbers().n and params.bits == 2048


@pytest.mark.parametrize(
    ("image", "fmt"),
    [
        ("cust_flash/cust_flash.bin", "cust_flash"),
        ("cust_flash_legacy/cust_flash_legacy.bin", "cust_flash_legacy"),
        ("nvs/nvs.bin", "nvs"),
        ("nvs_legacy/nvs_legacy.bin", "nvs"),
    ],
)
def test_reads_legacy_formats(image: str, fmt: str) -> None:
    found = sc.read_any((QEMU / image).read_bytes())
    assert found.format == fmt and found.key_source == "plaintext"
    assert found.device_cert is not None and len(found.ca_certs) == 1
    dev = sc.load_stored_certificate(found.device_cert)
    assert sc.load_stored_certificate(found.ca_certs[0]).subject
    assert found.private_key is not None
    key = sc.load_stored_private_key(found.private_key)
    assert key.public_key().public_numbers() == dev.public_key().public_numbers()  # type: ignore[union-attr]


def test_cust_flash_reads_its_input_certificates() -> None:
    found = sc.read_any((QEMU / "cust_flash/cust_flash.bin").read_bytes())
    assert found.device_cert is not None
    expected = (QEMU / "cust_flash/input_data/device_cert.pem").read_bytes()
    assert sc.load_stored_certificate(found.device_cert) == sc.load_stored_certificate(expected)


def test_rejects_crc_mismatch_from_espressifs_corrupt_partition() -> None:
    data = (QEMU / "secure_verification_corrupt/secure_verification_corrupt.bin").read_bytes()
    with pytest.raises(FormatError, match="CRC mismatch in ESP_SECURE_CERT_CA_CERT_TLV"):
        sc.SecureCertPartition.parse(data)


def test_rejects_truncated_tlv_from_espressifs_corrupt_update() -> None:
    path = MGR / "examples/esp_secure_cert_ota_example/tests/esp_secure_cert_after_corrupt.bin"
    with pytest.raises(FormatError, match="truncated TLV"):
        sc.read_any(path.read_bytes())


def test_rejects_partition_whose_integrity_tlv_does_not_match() -> None:
    good = sc.build(device_cert=_read("client.crt")).to_bytes()
    first = sc.Tlv(sc.TlvType.DEV_CERT, 0, sc.encode_certificate(_read("cacert.pem")))
    forged = (
        first.to_bytes() + good[len(sc.SecureCertPartition.parse(good).entries[0].to_bytes()) :]
    )
    with pytest.raises(FormatError, match="integrity TLV does not match"):
        sc.SecureCertPartition.parse(forged)


def test_rejects_damaged_header_after_valid_tlvs() -> None:
    data = sc.build(device_cert=_read("client.crt"), integrity=False).to_bytes() + b"\x11" * 8
    with pytest.raises(FormatError, match="data after the last TLV"):
        sc.SecureCertPartition.parse(data)


def test_erased_tail_is_accepted() -> None:
    part = sc.build(device_cert=_read("client.crt"))
    assert sc.SecureCertPartition.parse(part.to_bytes() + b"\xff" * 100) == part


@given(st.binary(max_size=200))
def test_parser_gives_partition_or_format_error(data: bytes) -> None:
    for image in (sc.Tlv(51, 0, data).to_bytes() + data[:7], data):
        try:
            found = sc.read_any(image)
        except FormatError:
            continue
        assert isinstance(found, sc.SecureCertContents)


def test_every_tlv_type_round_trips() -> None:
    entries = tuple(sc.Tlv(int(t), 3, bytes([int(t)]) * (int(t) % 37), 0) for t in sc.TlvType)
    part = sc.SecureCertPartition(entries)
    assert sc.SecureCertPartition.parse(part.to_bytes(), check_integrity=False) == part
    for tlv in part.entries:
        assert tlv.to_bytes()[:4] == struct.pack("<I", sc.MAGIC)
        assert len(tlv.to_bytes()) % 16 == 0


def test_ds_partition_has_ds_data_and_context_first(rsa2048: rsa.RSAPrivateKey) -> None:
    data = ds.encrypt(rsa2048, bytes(32), chip="esp32s3")
    part = sc.build(device_cert=_read("client.crt"), ds=sc.DsKey(data, 3))
    assert [t.type for t in part.entries] == [3, 4, 1, 9]
    found = sc.contents(part)
    assert found.ds == sc.DsKey(data, 3) and found.private_key is None
    assert sc.DsContext.parse(part.entries[1].data) == sc.DsContext(3, 2048)


def test_ecdsa_peripheral_partition_never_stores_the_key() -> None:
    part = sc.build(device_cert=_read("client.crt"), ecdsa_key_id=2)
    key_tlv = part.find(sc.TlvType.PRIV_KEY)
    assert key_tlv is not None and key_tlv.data == b"" and key_tlv.ecdsa_peripheral
    assert sc.SecCfg.parse(part.entries[0].data).priv_key_efuse_block == 6
    assert sc.contents(part).ecdsa_key_id == 2


def test_hmac_encrypted_key_opens_only_with_the_hmac_up_key() -> None:
    part = sc.build(private_key=_read("client.key"), hmac_encrypt_key=_mac)
    tlv = part.find(sc.TlvType.PRIV_KEY)
    assert tlv is not None and tlv.hmac_encrypted and b"PRIVATE" not in tlv.data
    plain = sc.hmac_decrypt(tlv.data, _mac)
    assert plain == sc.encode_private_key(_read("client.key"))
    with pytest.raises(FormatError, match="does not decrypt"):
        sc.hmac_decrypt(tlv.data, lambda m: hmac.new(bytes(32), m, hashlib.sha256).digest())


def test_hmac_derived_ecdsa_key_is_pbkdf2_of_the_salt() -> None:
    salt = bytes(range(32))
    part = sc.build(hmac_derived_salt=salt)
    found = sc.contents(part)
    assert found.key_source == "hmac-derived" and found.hmac_derived_salt == salt
    key = sc.hmac_derived_ecdsa_key(_mac, salt)
    scalar = hashlib.pbkdf2_hmac("sha256", HMAC_UP, salt, 2048, 32)
    assert key.private_numbers().private_value == int.from_bytes(scalar, "big")


def test_refuses_two_key_sources_and_oversize_partitions(rsa2048: rsa.RSAPrivateKey) -> None:
    with pytest.raises(UsageError, match="one private key source"):
        sc.build(private_key=_read("client.key"), ecdsa_key_id=1)
    with pytest.raises(UsageError, match="holds 8192"):
        sc.build(user_data=[(1, bytes(5000)), (2, bytes(5000))])


def test_describe_never_shows_private_key_bytes() -> None:
    part = sc.build(private_key=_read("client.key"))
    text = repr([sc.describe_tlv(t) for t in part.entries])
    key = serialization.load_pem_private_key(_read("client.key"), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert "PRIVATE" not in text and format(key.private_numbers().d, "x")[:16] not in text
    assert "RSA-2048 private key in plaintext" in text


def test_cli_generate_and_dump(tmp_path: Path) -> None:
    out = tmp_path / "part.bin"
    runner = CliRunner()
    args = ["secure-cert", "generate", "--ca-cert", str(INPUT / "cacert.pem")]
    args += ["--device-cert", str(INPUT / "client.crt"), "--private-key", str(INPUT / "client.key")]
    res = runner.invoke(main, [*args, "-o", str(out)])
    assert res.exit_code == 0, res.output
    expected = sc.build(
        ca_certs=[_read("cacert.pem")],
        device_cert=_read("client.crt"),
        private_key=_read("client.key"),
    )
    assert out.read_bytes() == expected.to_bytes()
    res = runner.invoke(main, ["secure-cert", "dump", "--json", str(out)])
    assert res.exit_code == 0 and '"key_source": "plaintext"' in res.output
    assert "BEGIN" not in res.output
    res = runner.invoke(main, ["secure-cert", "dump", str(QEMU / "cust_flash/cust_flash.bin")])
    assert res.exit_code == 0 and "cust_flash format" in res.output


def test_cli_bad_inputs_are_one_line_and_write_nothing(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "part.bin"
    bad = tmp_path / "bad.pem"
    bad.write_bytes(b"not a certificate")
    res = runner.invoke(
        main, ["secure-cert", "generate", "--device-cert", str(bad), "-o", str(out)]
    )
    assert res.exit_code == 1 and not out.exists() and "bad.pem" in res.output
    assert len(res.output.strip().splitlines()) == 1
    corrupt = QEMU / "secure_verification_corrupt/secure_verification_corrupt.bin"
    res = runner.invoke(main, ["secure-cert", "dump", str(corrupt)])
    assert res.exit_code == 1 and "CRC mismatch" in res.output
    assert len(res.output.strip().splitlines()) == 1
