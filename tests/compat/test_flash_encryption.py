"""Oracle: our flash cipher is byte-identical to ``espsecure {en,de}crypt-flash-data --aes-xts``.

espsecure (esptool 5.6.0, installed from PyPI) is called in-process through its Python
API with in-memory files: the same code path its CLI runs, without process start-up.
"""

from __future__ import annotations

import io

import espsecure
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from espsec.flash_encryption import FlashCipher


def espsecure_xts(key: bytes, data: bytes, address: int, *, decrypt: bool) -> bytes:
    out = io.BytesIO()
    fn = espsecure.decrypt_flash_data if decrypt else espsecure.encrypt_flash_data
    fn(io.BytesIO(key), out, address, 0xF, True, io.BytesIO(data))
    return out.getvalue()


def _distinct_halves(key: bytes) -> bool:
    # OpenSSL (under espsecure) rejects XTS keys whose two halves are equal.
    half = len(key) // 2
    return key[:half] != key[half:]


keys = st.sampled_from([16, 32, 64]).flatmap(
    lambda n: st.binary(min_size=n, max_size=n).filter(_distinct_halves)
)
# addresses anywhere in a 16 MiB flash, on 16-byte boundaries, so runs start inside units
addresses = st.integers(0, (16 << 20) // 16).map(lambda a: a * 16)
blocks = st.integers(1, 40).flatmap(lambda n: st.binary(min_size=16 * n, max_size=16 * n))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=keys, address=addresses, data=blocks)
def test_encrypt_matches_espsecure(key: bytes, address: int, data: bytes) -> None:
    ours = FlashCipher(key).encrypt(data, address)
    assert ours == espsecure_xts(key, data, address, decrypt=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=keys, address=addresses, data=blocks)
def test_decrypt_matches_espsecure(key: bytes, address: int, data: bytes) -> None:
    ours = FlashCipher(key).decrypt(data, address)
    assert ours == espsecure_xts(key, data, address, decrypt=True)


@pytest.mark.parametrize("key_len", [32, 64])
@pytest.mark.parametrize(
    ("address", "length"), [(0x10000, 0x3000), (0x1230, 0x1010), (0x8070, 0x90)]
)
def test_multi_batch_and_partial_units_match_espsecure(
    key_len: int, address: int, length: int
) -> None:
    # small batches force several batches per call plus a head and a tail unit
    key = bytes(range(1, key_len + 1))
    data = bytes((i * 7 + 3) & 0xFF for i in range(length))
    cipher = FlashCipher(key, batch_bytes=1024, threads=2)
    expected = espsecure_xts(key, data, address, decrypt=False)
    assert cipher.encrypt(data, address) == expected
    assert cipher.decrypt(expected, address) == data


@pytest.mark.parametrize("key_len", [32, 64])
def test_whole_flash_regions_match_espsecure(key_len: int) -> None:
    # each encrypted region is what espsecure produces for that file at that address
    # (FF-padded to 16 bytes, as esptool pads encrypted writes)
    from espsec.flash_encryption import FlashEncryptionKey
    from espsec.flash_encryption.whole_flash import FlashWrite, encrypt_flash
    from espsec.image.partition_table import PartitionTable

    table = PartitionTable.from_csv(
        "nvs, data, nvs, 0x9000, 0x4000\n"
        "otadata, data, ota, 0xd000, 0x2000\n"
        "factory, app, factory, 0x10000, 0x20000\n"
    )
    key = FlashEncryptionKey(bytes(range(7, 7 + key_len)))
    writes = [
        FlashWrite(0x0, bytes(range(256)) * 20 + b"\x01\x02\x03\x04", "bootloader.bin"),
        FlashWrite(0xD000, b"\xff" * 0x2000, "ota_data_initial.bin"),
        FlashWrite(0x10000, bytes(range(255, -1, -1)) * 30 + b"tail1234", "app.bin"),
        FlashWrite(0x9000, b"nvs plain" * 10, "nvs.bin"),
    ]
    image = encrypt_flash(key, table, writes, flash_size=1 << 20).to_bytes()
    for w in writes[:3]:
        padded = w.data + b"\xff" * (-len(w.data) % 16)
        region = image[w.offset : w.offset + len(padded)]
        assert region == espsecure_xts(key.material, padded, w.offset, decrypt=False), w.name
    table_bytes = table.to_bytes()
    assert image[0x8000:0x8C00] == espsecure_xts(key.material, table_bytes, 0x8000, decrypt=False)
    assert image[0x9000 : 0x9000 + 90] == b"nvs plain" * 10
