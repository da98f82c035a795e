"""The DS peripheral: ESP-IDF's DS test cases, signing on the device, and its refusals."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from espsec import efuse
from espsec.cli.main import main
from espsec.errors import FormatError, KeyFormatError
from espsec.identity import ds
from espsec.identity.hmac import HmacPeripheral, ds_aes_key

from .c_vectors import CRYPTO_DRIVERS, ds_cases

HMAC_KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


@pytest.mark.parametrize("bits", [3072, 4096])
def test_encrypts_esp_idf_ds_test_cases_byte_for_byte(bits: int) -> None:
    keys, _, cases = ds_cases(CRYPTO_DRIVERS / f"digital_signature_test_cases_{bits}.h")
    assert len(cases) == 6
    for case in cases:
        params = ds.DsParams(case.y, case.m, case.rb, case.m_prime, case.length)
        data = ds.encrypt_params(params, keys[case.hmac_key_idx], iv=case.iv, max_bits=bits)
        assert data.c == case.expected_c
        assert len(data.to_bytes()) == 4 + 16 + ds.c_len(bits)


@pytest.mark.slow
@pytest.mark.parametrize("bits", [3072, 4096])
def test_device_signs_esp_idf_messages_to_expected_results(bits: int) -> None:
    keys, messages, cases = ds_cases(CRYPTO_DRIVERS / f"digital_signature_test_cases_{bits}.h")
    chip = efuse.new("esp32s3")
    for block, key in enumerate(keys):
        efuse.burn_key(chip, f"BLOCK_KEY{block}", key, "HMAC_DOWN_DIGITAL_SIGNATURE")
    peripheral = ds.DsPeripheral(HmacPeripheral(chip), bits)
    for case in cases[:3]:
        params = ds.DsParams(case.y, case.m, case.rb, case.m_prime, case.length)
        data = ds.encrypt_params(params, keys[case.hmac_key_idx], iv=case.iv, max_bits=bits)
        size = params.bits // 8
        for message, expected in zip(messages[:3], case.expected_results, strict=False):
            signed = peripheral.sign(message[:size], data, case.hmac_key_idx)
            assert int.from_bytes(signed, "little") == expected


def _device(purpose: str = "HMAC_DOWN_DIGITAL_SIGNATURE") -> ds.DsPeripheral:
    chip = efuse.new("esp32s3")
    efuse.burn_key(chip, "BLOCK_KEY1", HMAC_KEY, purpose)
    efuse.burn_key(chip, "BLOCK_KEY2", OTHER_KEY, "HMAC_DOWN_DIGITAL_SIGNATURE")
    return ds.DsPeripheral.of(HmacPeripheral(chip))


def test_pkcs1v15_signature_verifies_with_the_public_key(rsa2048: rsa.RSAPrivateKey) -> None:
    data = ds.encrypt(rsa2048, HMAC_KEY)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"check-in")
    signature = _device().sign_pkcs1v15(digest.finalize(), data, 1, hashes.SHA256())
    rsa2048.public_key().verify(signature, b"check-in", padding.PKCS1v15(), hashes.SHA256())


def test_rsa4096_key_fits_s3_and_p4_but_not_c3(rsa4096: rsa.RSAPrivateKey) -> None:
    for chip in ("esp32s3", "esp32p4"):
        data = ds.encrypt(rsa4096, HMAC_KEY, chip=chip)
        assert data.bits == 4096 and len(data.c) == 1584
    with pytest.raises(KeyFormatError, match="larger than the ESP32-C3 DS"):
        ds.encrypt(rsa4096, HMAC_KEY, chip="esp32c3")


def test_blob_for_another_hmac_key_gives_invalid_digest_and_no_signature(
    rsa2048: rsa.RSAPrivateKey,
) -> None:
    data = ds.encrypt(rsa2048, OTHER_KEY)
    with pytest.raises(ds.DsError, match="ESP_ERR_HW_CRYPTO_DS_INVALID_DIGEST") as err:
        _device().sign(bytes(256), data, 1)
    assert err.value.esp_err == ds.DS_INVALID_DIGEST


def test_wrong_purpose_key_block_is_hmac_fail() -> None:
    data = ds.DsData(63, bytes(16), bytes(ds.c_len(4096)))
    with pytest.raises(ds.DsError, match="ESP_ERR_HW_CRYPTO_DS_HMAC_FAIL"):
        _device("HMAC_UP").sign(bytes(256), data, 1)


def test_bad_padding_gives_invalid_padding(rsa2048: rsa.RSAPrivateKey) -> None:
    params = ds.DsParams.from_private_key(rsa2048)
    iv = bytes(range(16))
    plain = params.plaintext(iv, 4096)[:-8] + b"\x07" * 8
    enc = Cipher(algorithms.AES(ds_aes_key(HMAC_KEY)), modes.CBC(iv)).encryptor()
    data = ds.DsData(params.length, iv, enc.update(plain) + enc.finalize())
    with pytest.raises(ds.DsError, match="ESP_ERR_HW_CRYPTO_DS_INVALID_PADDING"):
        _device().sign(bytes(256), data, 1)


def test_corrupt_ciphertext_gives_invalid_digest(rsa2048: rsa.RSAPrivateKey) -> None:
    raw = bytearray(ds.encrypt(rsa2048, HMAC_KEY).to_bytes())
    raw[100] ^= 1
    with pytest.raises(ds.DsError, match="INVALID_DIGEST"):
        _device().sign(bytes(256), ds.DsData.parse(bytes(raw)), 1)


def test_unknown_read_protected_key_gives_invalid_key() -> None:
    chip = efuse.new("esp32s3")
    efuse.burn_key(chip, "BLOCK_KEY1", HMAC_KEY, "HMAC_DOWN_DIGITAL_SIGNATURE")
    stranger = efuse.Efuses.from_file_bytes("esp32s3", chip.to_file_bytes())  # no sidecar
    data = ds.DsData(63, bytes(16), bytes(ds.c_len(4096)))
    with pytest.raises(ds.DsError, match="ESP_ERR_HW_CRYPTO_DS_INVALID_KEY"):
        ds.DsPeripheral.of(HmacPeripheral(stranger)).sign(bytes(256), data, 1)


def test_parse_rejects_wrong_size_and_rsa_length() -> None:
    with pytest.raises(FormatError, match="esp_ds_data_t"):
        ds.DsData.parse(bytes(100))
    with pytest.raises(FormatError, match="rsa_length"):
        ds.DsData.parse(struct.pack("<I", 50) + bytes(16 + ds.c_len(4096)))


def test_cli_encrypt_with_fixed_iv_and_check(tmp_path: Path, rsa2048: rsa.RSAPrivateKey) -> None:
    key = tmp_path / "rsa.pem"
    key.write_bytes(
        rsa2048.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    hmac_file = tmp_path / "hmac.bin"
    hmac_file.write_bytes(HMAC_KEY)
    out = tmp_path / "ds.bin"
    iv = "00112233445566778899aabbccddeeff"
    runner = CliRunner()
    args = ["ds", "encrypt", "--hmac-key", str(hmac_file), "-k", str(key), "--iv", iv]
    res = runner.invoke(main, [*args, "-o", str(out)])
    assert res.exit_code == 0, res.output
    expected = ds.encrypt(rsa2048, HMAC_KEY, iv=bytes.fromhex(iv)).to_bytes()
    assert out.read_bytes() == expected
    res = runner.invoke(main, ["ds", "check", "--hmac-key", str(hmac_file), str(out)])
    assert res.exit_code == 0, res.output
    other = tmp_path / "other.bin"
    other.write_bytes(OTHER_KEY)
    res = runner.invoke(main, ["ds", "check", "--json", "--hmac-key", str(other), str(out)])
    assert res.exit_code == 1 and "INVALID_DIGEST" in res.output


def test_cli_refuses_short_hmac_key_and_writes_nothing(
    tmp_path: Path, rsa2048: rsa.RSAPrivateKey
) -> None:
    key = tmp_path / "rsa.pem"
    key.write_bytes(
        rsa2048.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    hmac_file = tmp_path / "hmac.bin"
    hmac_file.write_bytes(bytes(16))
    out = tmp_path / "ds.bin"
    res = CliRunner().invoke(
        main, ["ds", "encrypt", "--hmac-key", str(hmac_file), "-k", str(key), "-o", str(out)]
    )
    assert res.exit_code == 1 and not out.exists()
    assert len(res.output.strip().splitlines()) == 1 and "hmac.bin" in res.output
