"""The ECDSA peripheral against ESP-IDF's ECDSA test vectors, and its refusals."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from espsec import efuse
from espsec.errors import UnsupportedError
from espsec.identity.ecdsa import EcdsaCurve, EcdsaError, EcdsaPeripheral

from .c_vectors import VECTORS, array, ints

ECDSA = VECTORS / "esp-idf/components/esp_hal_security/test_apps/crypto/main/ecdsa"
PARAMS = (ECDSA / "ecdsa_params.h").read_text()
SHA = bytes(ints(array(PARAMS, "sha")))


def _key(bits: int) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(
        (ECDSA / f"ecdsa{bits}_priv_key.pem").read_bytes(), None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _le(name: str) -> int:
    return int.from_bytes(bytes(ints(array(PARAMS, name))), "little")


def _p4_with(bits: int, block: str = "BLOCK_KEY1", purpose: str = "ECDSA_KEY") -> efuse.Efuses:
    chip = efuse.new("esp32p4")
    scalar = _key(bits).private_numbers().private_value.to_bytes(bits // 8, "big")
    efuse.burn_key(chip, block, scalar, purpose)
    return chip


@pytest.mark.parametrize(("bits", "curve"), [(256, EcdsaCurve.P256), (192, EcdsaCurve.P192)])
def test_exported_public_key_matches_esp_idf_vectors(bits: int, curve: EcdsaCurve) -> None:
    chip = _p4_with(bits)
    assert chip.read_block("BLOCK_KEY1") == bytes(32)  # read-protected: software sees zeros
    public = EcdsaPeripheral.of(chip).export_public_key(1, curve).public_numbers()
    assert (public.x, public.y) == (_le(f"ecdsa{bits}_pub_x"), _le(f"ecdsa{bits}_pub_y"))


@pytest.mark.parametrize(("bits", "curve"), [(256, EcdsaCurve.P256), (192, EcdsaCurve.P192)])
def test_esp_idf_signature_and_ours_verify_with_the_exported_key(
    bits: int, curve: EcdsaCurve
) -> None:
    peripheral = EcdsaPeripheral.of(_p4_with(bits))
    public = peripheral.export_public_key(1, curve)
    digest = SHA[: bits // 8] + bytes(32 - bits // 8) if bits == 192 else SHA[:32]
    upstream = encode_dss_signature(_le(f"ecdsa{bits}_r"), _le(f"ecdsa{bits}_s"))
    public.verify(upstream, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    ours = peripheral.sign(1, curve, SHA[: bits // 8])
    assert ours.hardware_k
    public.verify(ours.der(), digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def test_esp_idf_p384_vector_is_consistent_with_its_key() -> None:
    public = _key(384).public_key().public_numbers()
    assert (public.x, public.y) == (_le("ecdsa384_pub_x"), _le("ecdsa384_pub_y"))


def test_p384_refused_on_4_bit_key_purpose_layout() -> None:
    peripheral = EcdsaPeripheral.of(efuse.new("esp32p4"))
    assert not peripheral.supports(EcdsaCurve.P384)
    with pytest.raises(UnsupportedError, match="ECDSA_KEY_P384_H/L"):
        peripheral.export_public_key((1, 2), EcdsaCurve.P384)


def test_deterministic_k_unless_hardware_k_is_forced() -> None:
    chip = _p4_with(256)
    peripheral = EcdsaPeripheral.of(chip)
    a = peripheral.sign(1, EcdsaCurve.P256, SHA[:32], deterministic=True)
    b = peripheral.sign(1, EcdsaCurve.P256, SHA[:32], deterministic=True)
    assert a == b and not a.hardware_k
    field = next(
        n for n in ("ECDSA_FORCE_USE_HARDWARE_K", "ECDSA_ENABLE_SOFT_K") if chip.layout.has_field(n)
    )
    efuse.burn(chip, {field: 1})
    assert peripheral.force_hardware_k
    c = peripheral.sign(1, EcdsaCurve.P256, SHA[:32], deterministic=True)
    d = peripheral.sign(1, EcdsaCurve.P256, SHA[:32], deterministic=True)
    assert c.hardware_k and c != d


def test_refuses_key_block_of_another_purpose() -> None:
    chip = _p4_with(256, purpose="HMAC_UP")
    with pytest.raises(EcdsaError, match="key purpose HMAC_UP; expected ECDSA_KEY"):
        EcdsaPeripheral.of(chip).sign(1, EcdsaCurve.P256, SHA[:32])


def test_refuses_empty_key_block() -> None:
    with pytest.raises(EcdsaError, match="key purpose USER"):
        EcdsaPeripheral.of(efuse.new("esp32p4")).export_public_key(0, EcdsaCurve.P256)


def test_esp32s3_has_no_ecdsa_peripheral() -> None:
    with pytest.raises(UnsupportedError, match="ESP32-S3 has no ECDSA peripheral"):
        EcdsaPeripheral.of(efuse.new("esp32s3"))


def test_p384_key_over_two_blocks_matches_esp_idf_vectors_on_p4_v3() -> None:
    """ESP32-P4 v3.0+: ``burn-key BLOCK_KEY3 key.pem ECDSA_KEY_P384`` puts the high half in
    BLOCK_KEY3 (ECDSA_KEY_P384_H) and the low half in the next free block (_L)."""
    chip = efuse.new("esp32p4", 301)
    scalar = _key(384).private_numbers().private_value.to_bytes(48, "big")
    efuse.burn_key(chip, "BLOCK_KEY3", scalar, "ECDSA_KEY_P384")
    peripheral = EcdsaPeripheral.of(chip)
    assert peripheral.supports(EcdsaCurve.P384)
    assert peripheral.p384_key_id(3) == (3, 4)
    public = peripheral.export_public_key((3, 4), EcdsaCurve.P384)
    numbers = public.public_numbers()
    assert (numbers.x, numbers.y) == (_le("ecdsa384_pub_x"), _le("ecdsa384_pub_y"))
    upstream = encode_dss_signature(_le("ecdsa384_r"), _le("ecdsa384_s"))
    public.verify(upstream, SHA, ec.ECDSA(Prehashed(hashes.SHA384())))
    ours = peripheral.sign((3, 4), EcdsaCurve.P384, SHA)
    public.verify(ours.der(), SHA, ec.ECDSA(Prehashed(hashes.SHA384())))
    with pytest.raises(EcdsaError, match="key purpose ECDSA_KEY_P384_L; expected ECDSA_KEY_P384_H"):
        peripheral.export_public_key((4, 3), EcdsaCurve.P384)  # halves swapped


def test_p192_has_its_own_purpose_where_purposes_have_5_bits() -> None:
    assert EcdsaPeripheral.of(efuse.new("esp32p4")).purposes_for(EcdsaCurve.P192) == (
        "ECDSA_KEY",
        "ECDSA_KEY_P256",
    )
    chip = _p4_with(192)  # v0.0: ECDSA_KEY serves P-192
    v3 = efuse.new("esp32p4", 301)
    scalar = _key(192).private_numbers().private_value.to_bytes(24, "big")
    efuse.burn_key(v3, "BLOCK_KEY1", scalar, "ECDSA_KEY_P192")
    for efuses in (chip, v3):
        public = EcdsaPeripheral.of(efuses).export_public_key(1, EcdsaCurve.P192)
        numbers = public.public_numbers()
        assert (numbers.x, numbers.y) == (_le("ecdsa192_pub_x"), _le("ecdsa192_pub_y"))
    # On v3 a P-192 key needs ECDSA_KEY_P192: an ECDSA_KEY (P-256) block is not one.
    with pytest.raises(EcdsaError, match="expected ECDSA_KEY_P192"):
        EcdsaPeripheral.of(_v3_with_p256()).export_public_key(1, EcdsaCurve.P192)


def _v3_with_p256() -> efuse.Efuses:
    chip = efuse.new("esp32p4", 301)
    scalar = _key(256).private_numbers().private_value.to_bytes(32, "big")
    efuse.burn_key(chip, "BLOCK_KEY1", scalar, "ECDSA_KEY")
    return chip
