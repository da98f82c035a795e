"""Pre-encrypted images: round trips, header layout, and every way a bad image is refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from espsec import ota
from espsec.errors import FormatError, KeyFormatError, UsageError, VerificationError
from espsec.ota.encrypted_image import (
    HEADER_SIZE,
    MAGIC,
    EncryptedImageDecryptor,
    EncryptedImageHeader,
    Scheme,
)

HMAC_KEY = bytes(range(32))
PLAIN = bytes(range(256)) * 40 + b"tail"


@pytest.fixture(scope="module")
def rsa_key(sb_keys: dict[str, rsa.RSAPrivateKey]) -> rsa.RSAPrivateKey:
    key = sb_keys["rsa3072-b"]
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@pytest.fixture(scope="module")
def device_key() -> ec.EllipticCurvePrivateKey:
    return ota.device_private_key(HMAC_KEY)


@pytest.fixture(params=["rsa", "ecies"])
def keypair(
    request: pytest.FixtureRequest,
    rsa_key: rsa.RSAPrivateKey,
    device_key: ec.EllipticCurvePrivateKey,
) -> ota.DecryptionKey:
    return rsa_key if request.param == "rsa" else device_key


def test_round_trip(keypair: ota.DecryptionKey) -> None:
    blob = ota.encrypt_image(PLAIN, keypair.public_key())
    assert len(blob) == HEADER_SIZE + len(PLAIN)
    assert ota.decrypt_image(blob, keypair) == PLAIN


def test_header_layout_follows_esp_encrypted_img(keypair: ota.DecryptionKey) -> None:
    blob = ota.encrypt_image(PLAIN, keypair.public_key())
    assert blob[:4] == bytes.fromhex("cfb68807") == MAGIC.to_bytes(4, "little")
    assert int.from_bytes(blob[404:408], "little") == len(PLAIN)
    assert blob[424:512] == bytes(88)
    header = EncryptedImageHeader.parse(blob)
    assert header.to_bytes() == blob[:HEADER_SIZE]
    if isinstance(keypair, ec.EllipticCurvePrivateKey):
        assert blob[4 + 96 : 388] == bytes(288)  # ECIES: point, salt, then zeros
        assert header.likely_scheme is Scheme.ECIES_P256
    else:
        assert header.likely_scheme is Scheme.RSA3072


@pytest.mark.parametrize("chunk", [1, 7, 511, 512, 513, 4096])
def test_streaming_decrypt_with_any_chunking(
    device_key: ec.EllipticCurvePrivateKey, chunk: int
) -> None:
    blob = ota.encrypt_image(PLAIN, device_key.public_key())
    dec = EncryptedImageDecryptor(device_key)
    out = b"".join(dec.feed(blob[i : i + chunk]) for i in range(0, len(blob), chunk))
    result = dec.finish()
    assert out == PLAIN and dec.verified
    assert result.length == len(PLAIN)


def test_image_with_wrong_tag_is_refused_and_nothing_is_final_before_the_tag(
    keypair: ota.DecryptionKey,
) -> None:
    blob = bytearray(ota.encrypt_image(PLAIN, keypair.public_key()))
    blob[408] ^= 1  # GCM tag
    dec = EncryptedImageDecryptor(keypair)
    provisional = dec.feed(bytes(blob))
    assert provisional == PLAIN  # streamed out, as the device writes the inactive slot...
    assert not dec.verified  # ...but not accepted
    with pytest.raises(VerificationError, match="GCM tag"):
        dec.finish()
    assert not dec.verified
    with pytest.raises(VerificationError):
        dec.feed(b"more")  # poisoned
    with pytest.raises(VerificationError):
        ota.decrypt_image(bytes(blob), keypair)  # the whole-image API returns nothing


def test_tampered_ciphertext_is_refused(keypair: ota.DecryptionKey) -> None:
    blob = bytearray(ota.encrypt_image(PLAIN, keypair.public_key()))
    blob[HEADER_SIZE + 100] ^= 0x80
    with pytest.raises(VerificationError):
        ota.decrypt_image(bytes(blob), keypair)


def test_tampered_iv_is_refused(device_key: ec.EllipticCurvePrivateKey) -> None:
    blob = bytearray(ota.encrypt_image(PLAIN, device_key.public_key()))
    blob[390] ^= 1
    with pytest.raises(VerificationError):
        ota.decrypt_image(bytes(blob), device_key)


def test_truncated_image_is_refused(keypair: ota.DecryptionKey) -> None:
    blob = ota.encrypt_image(PLAIN, keypair.public_key())
    with pytest.raises(FormatError, match="truncated"):
        ota.decrypt_image(blob[:-1], keypair)
    with pytest.raises(FormatError, match="header truncated"):
        ota.decrypt_image(blob[:300], keypair)


def test_trailing_data_is_refused(device_key: ec.EllipticCurvePrivateKey) -> None:
    blob = ota.encrypt_image(PLAIN, device_key.public_key())
    with pytest.raises(FormatError, match="after the end"):
        ota.decrypt_image(blob + b"\0", device_key)


def test_bin_size_enlarged_is_refused(device_key: ec.EllipticCurvePrivateKey) -> None:
    blob = bytearray(ota.encrypt_image(PLAIN, device_key.public_key()))
    blob[404:408] = (len(PLAIN) + 16).to_bytes(4, "little")
    with pytest.raises(FormatError, match="truncated"):
        ota.decrypt_image(bytes(blob), device_key)


def test_bad_magic_is_refused(device_key: ec.EllipticCurvePrivateKey) -> None:
    blob = bytearray(ota.encrypt_image(PLAIN, device_key.public_key()))
    blob[0] ^= 0xFF
    with pytest.raises(FormatError, match="magic"):
        ota.decrypt_image(bytes(blob), device_key)


def test_image_for_another_rsa_key_is_refused(
    rsa_key: rsa.RSAPrivateKey, sb_keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    blob = ota.encrypt_image(PLAIN, rsa_key.public_key())
    with pytest.raises(VerificationError):
        ota.decrypt_image(blob, sb_keys["rsa3072-c"])


def test_image_for_another_device_is_refused(device_key: ec.EllipticCurvePrivateKey) -> None:
    blob = ota.encrypt_image(PLAIN, device_key.public_key())
    other = ota.device_private_key(bytes(32))
    with pytest.raises(VerificationError, match="GCM tag"):
        ota.decrypt_image(blob, other)


def test_ecies_invalid_server_point_is_a_format_error(
    device_key: ec.EllipticCurvePrivateKey,
) -> None:
    blob = bytearray(ota.encrypt_image(PLAIN, device_key.public_key()))
    blob[4:68] = bytes(64)
    with pytest.raises(FormatError, match="P-256 point"):
        ota.decrypt_image(bytes(blob), device_key)


def test_finish_twice_and_finish_before_header_are_errors(
    device_key: ec.EllipticCurvePrivateKey,
) -> None:
    dec = EncryptedImageDecryptor(device_key)
    with pytest.raises(FormatError):
        dec.finish()
    blob = ota.encrypt_image(b"x" * 16, device_key.public_key())
    dec = EncryptedImageDecryptor(device_key)
    dec.feed(blob)
    dec.finish()
    with pytest.raises(UsageError):
        dec.finish()


def test_empty_image_round_trips(device_key: ec.EllipticCurvePrivateKey) -> None:
    blob = ota.encrypt_image(b"", device_key.public_key())
    assert ota.decrypt_image(blob, device_key) == b""


def test_only_rsa3072_and_p256_keys_are_accepted() -> None:
    with pytest.raises(KeyFormatError, match="RSA-3072"):
        ota.encrypt_image(PLAIN, rsa.generate_private_key(65537, 1024).public_key())
    with pytest.raises(KeyFormatError, match="P-256"):
        ota.encrypt_image(PLAIN, ec.generate_private_key(ec.SECP384R1()).public_key())


def test_hmac_key_must_be_32_bytes() -> None:
    with pytest.raises(KeyFormatError, match="32 bytes"):
        ota.device_private_key(b"short")


def test_decryptor_repr_hides_the_key(device_key: ec.EllipticCurvePrivateKey) -> None:
    text = repr(EncryptedImageDecryptor(device_key))
    assert "ecies-p256" in text and str(device_key.private_numbers().private_value) not in text


def test_recipient_id_is_the_same_for_private_and_public_halves(
    device_key: ec.EllipticCurvePrivateKey,
) -> None:
    assert ota.recipient_id(device_key) == ota.recipient_id(device_key.public_key())
    assert len(bytes.fromhex(ota.recipient_id(device_key))) == 32


def test_key_loading_from_pem(
    rsa_key: rsa.RSAPrivateKey, device_key: ec.EllipticCurvePrivateKey
) -> None:
    pub = ota.public_key_pem(device_key)
    assert ota.recipient_id(ota.load_recipient_key(pub)) == ota.recipient_id(device_key)
    with pytest.raises(KeyFormatError, match="private key"):
        ota.load_decryption_key(pub)
    with pytest.raises(KeyFormatError):
        ota.load_recipient_key(b"not a key")


# -- upstream images: idf-extra-components esp_encrypted_img (see tests/vectors/README.md) --

UPSTREAM = Path(__file__).parent.parent / "vectors/idf-extra-components/esp_encrypted_img"
ESPRESSIF_LINES = (b"Espressif" * 8 + b"\n") * 160
# test_apps/main/test_mocks.c, dummy_pbkdf2_output: the test app's mocked
# esp_encrypted_img_pbkdf2_hmac_sha256 returns it as the device's P-256 scalar.
TEST_APP_DEVICE_SCALAR = bytes.fromhex(
    "831793660de4913366ae1e379b2ceb4317c88700cc0791d98e5a2a2d5c71af66"
)


@pytest.fixture(scope="module")
def upstream_rsa_key() -> ota.DecryptionKey:
    return ota.load_decryption_key(
        (UPSTREAM / "test_apps/main/certs/test_rsa_private_key.pem").read_bytes()
    )


def test_upstream_rsa_image_decrypts_to_its_espressif_lines(
    upstream_rsa_key: ota.DecryptionKey,
) -> None:
    blob = (UPSTREAM / "test_apps/main/image.bin").read_bytes()
    assert EncryptedImageHeader.parse(blob).likely_scheme is Scheme.RSA3072
    plain = ota.decrypt_image(blob, upstream_rsa_key)
    assert len(plain) == 11680
    assert plain == ESPRESSIF_LINES


def test_upstream_rsa_image_streams_one_byte_at_a_time(
    upstream_rsa_key: ota.DecryptionKey,
) -> None:
    blob = (UPSTREAM / "test_apps/main/image.bin").read_bytes()
    dec = EncryptedImageDecryptor(upstream_rsa_key)
    out = b"".join(dec.feed(blob[i : i + 1]) for i in range(len(blob)))
    result = dec.finish()
    assert out == ESPRESSIF_LINES
    assert result.sha256 == hashlib.sha256(ESPRESSIF_LINES).digest()


def test_upstream_rsa_image_with_one_flipped_ciphertext_bit_is_refused(
    upstream_rsa_key: ota.DecryptionKey,
) -> None:
    blob = bytearray((UPSTREAM / "test_apps/main/image.bin").read_bytes())
    blob[-1] ^= 0x01
    with pytest.raises(VerificationError):
        ota.decrypt_image(bytes(blob), upstream_rsa_key)


def test_upstream_ecies_image_decrypts_with_the_test_apps_device_key() -> None:
    blob = (UPSTREAM / "test_apps/main/image_ecc.bin").read_bytes()
    assert EncryptedImageHeader.parse(blob).likely_scheme is Scheme.ECIES_P256
    key = ec.derive_private_key(int.from_bytes(TEST_APP_DEVICE_SCALAR, "big"), ec.SECP256R1())
    assert ota.decrypt_image(blob, key) == b"test file\n"


def test_device_key_from_the_examples_hmac_key_is_the_examples_public_key() -> None:
    ecc_key = UPSTREAM / "examples/pre_encrypted_ota/ecc_key"
    ours = ota.device_public_key((ecc_key / "device_hmac_key.bin").read_bytes())
    theirs = ota.load_recipient_key((ecc_key / "public.pem").read_bytes())
    assert isinstance(theirs, ec.EllipticCurvePublicKey)
    assert ours.public_numbers() == theirs.public_numbers()


def test_device_key_through_the_hmac_peripheral_is_the_host_derivation() -> None:
    """The chip chains PBKDF2 through ``esp_hmac_calculate`` with the eFuse key (which
    stays read-protected); the host derives the same key from the key's bytes."""
    from espsec import efuse
    from espsec.identity.hmac import HmacPeripheral
    from espsec.ota.encrypted_image import derive_device_key

    efuses = efuse.new("esp32s3")
    efuse.burn_key(efuses, "BLOCK_KEY2", HMAC_KEY, "HMAC_UP")
    assert efuses.is_read_protected(efuses.layout.block("BLOCK_KEY2"))
    peripheral = HmacPeripheral(efuses)
    on_chip = derive_device_key(lambda message: peripheral.calculate(2, message))
    assert on_chip.private_numbers() == ota.device_private_key(HMAC_KEY).private_numbers()
