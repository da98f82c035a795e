"""DS data against esp-secure-cert-tool 2.6.1's configure_ds (the PyPI oracle)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from esp_secure_cert import configure_ds

from espsec.identity import ds

pytestmark = pytest.mark.compat

HMAC_KEY = bytes(range(100, 132))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("dskeys")
    out = {}
    for bits in (2048, 3072):
        key = rsa.generate_private_key(65537, bits)
        path = folder / f"rsa{bits}.pem"
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        out[bits] = path
    return out


@pytest.mark.parametrize("chip", ["esp32s3", "esp32p4", "esp32c3"])
@pytest.mark.parametrize("bits", [2048, 3072])
def test_ds_data_byte_identical_to_configure_ds_for_the_same_iv(
    keys: dict[int, Path], monkeypatch: pytest.MonkeyPatch, chip: str, bits: int
) -> None:
    iv = os.urandom(16)
    monkeypatch.setattr(configure_ds.os, "urandom", lambda n: iv[:n])
    c, their_iv, key_size = configure_ds.calculate_rsa_ds_params(
        str(keys[bits]), None, HMAC_KEY, chip
    )
    key = serialization.load_pem_private_key(keys[bits].read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    ours = ds.encrypt(key, HMAC_KEY, iv=iv, chip=chip)
    assert their_iv == iv and key_size == bits
    assert ours.c == c
