"""The XTS core against NIST's XTS-AES known-answer vectors (CAVS 11.0, XTSGenAES*.rsp).

The vectors ship in the PyPI package ``cryptography-vectors`` (pyca/cryptography's copy of
NIST's XTSTestVectors.zip, under ``ciphers/AES/XTS``). Only data units that are whole
16-byte blocks apply: XTS units in flash and NVS encryption never need ciphertext stealing.
"""

from __future__ import annotations

import os
from pathlib import Path

import cryptography_vectors
import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from espsec.flash_encryption.xts import XtsEngine, tweaks_from_le32, xts_decrypt, xts_encrypt

XTS_DIR = Path(cryptography_vectors.__file__).parent / "ciphers" / "AES" / "XTS"
FILES = [
    "tweak-128hexstr/XTSGenAES128.rsp",
    "tweak-128hexstr/XTSGenAES256.rsp",
    "tweak-dataunitseqno/XTSGenAES128.rsp",
    "tweak-dataunitseqno/XTSGenAES256.rsp",
]


def _load(name: str) -> list[dict[str, str]]:
    vectors: list[dict[str, str]] = []
    current: dict[str, str] = {}
    section = ""
    for raw in (XTS_DIR / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        field, _, value = line.partition("=")
        field, value = field.strip(), value.strip()
        if field == "COUNT":
            current = {"section": section}
            vectors.append(current)
        current[field] = value
    return vectors


def _tweak(vector: dict[str, str]) -> bytes:
    if "i" in vector:
        return bytes.fromhex(vector["i"])
    # XTSVS: the data unit sequence number as a 128-bit little-endian integer.
    return int(vector["DataUnitSeqNumber"]).to_bytes(16, "little")


@pytest.mark.parametrize("name", FILES)
def test_matches_nist_xts_vectors(name: str) -> None:
    checked = 0
    for vector in _load(name):
        if int(vector["DataUnitLen"]) % 128:
            continue  # ciphertext stealing: outside what the flash/NVS XTS units need
        key = bytes.fromhex(vector["Key"])
        pt = bytes.fromhex(vector["PT"])
        ct = bytes.fromhex(vector["CT"])
        tweaks = np.frombuffer(_tweak(vector), dtype=np.uint8).reshape(1, 16)
        if vector["section"] == "ENCRYPT":
            assert xts_encrypt(key, pt, tweaks, len(pt)) == ct, vector["COUNT"]
        else:
            assert xts_decrypt(key, ct, tweaks, len(ct)) == pt, vector["COUNT"]
        checked += 1
    assert checked >= 500


@pytest.mark.parametrize("key_len", [32, 64])
@pytest.mark.parametrize("unit_size", [16, 32, 128, 4096])
def test_batch_matches_one_openssl_call_per_unit(key_len: int, unit_size: int) -> None:
    rng = np.random.default_rng(key_len * 10_000 + unit_size)
    key = rng.bytes(key_len)
    n = 37
    data = rng.bytes(n * unit_size)
    tweaks = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    expected = b"".join(
        Cipher(algorithms.AES(key), modes.XTS(tweaks[i].tobytes()))
        .encryptor()
        .update(data[i * unit_size : (i + 1) * unit_size])
        for i in range(n)
    )
    ct = xts_encrypt(key, data, tweaks, unit_size)
    assert ct == expected
    assert xts_decrypt(key, ct, tweaks, unit_size) == data


def test_tweaks_from_le32_is_offset_then_zero_bytes() -> None:
    tweaks = tweaks_from_le32(np.array([0, 0x20, 0x12345680, 0xFFFFFFFF]))
    assert tweaks.dtype == np.uint8
    assert tweaks.shape == (4, 16)
    assert tweaks[2].tobytes() == bytes.fromhex("80563412") + bytes(12)
    assert tweaks[3].tobytes() == b"\xff" * 4 + bytes(12)


def test_nvs_style_entries_match_openssl() -> None:
    # NVS encryption: XTS-AES-256 over 32-byte entries, tweak = LE32(entry offset).
    key = os.urandom(64)
    offsets = np.arange(0, 32 * 126, 32) + 0x40
    data = os.urandom(32 * len(offsets))
    expected = b"".join(
        Cipher(algorithms.AES(key), modes.XTS(int(off).to_bytes(4, "little") + bytes(12)))
        .encryptor()
        .update(data[i * 32 : (i + 1) * 32])
        for i, off in enumerate(offsets)
    )
    assert xts_encrypt(key, data, tweaks_from_le32(offsets), 32) == expected


def test_empty_input_gives_empty_output() -> None:
    assert xts_encrypt(bytes(32), b"", np.zeros((0, 16), np.uint8), 128) == b""


@pytest.mark.parametrize(
    ("key", "data", "tweaks", "unit"),
    [
        (bytes(48), bytes(32), np.zeros((1, 16), np.uint8), 32),
        (bytes(32), bytes(33), np.zeros((1, 16), np.uint8), 32),
        (bytes(32), bytes(64), np.zeros((1, 16), np.uint8), 32),
        (bytes(32), bytes(24), np.zeros((1, 16), np.uint8), 24),
        (bytes(32), bytes(32), np.zeros((1, 16), np.uint16), 32),
    ],
)
def test_rejects_bad_shapes(key: bytes, data: bytes, tweaks: np.ndarray, unit: int) -> None:
    from espsec.errors import UsageError

    with pytest.raises(UsageError):
        xts_encrypt(key, data, tweaks, unit)


def test_many_units_match_openssl_one_call_per_unit() -> None:
    # 4096 units: every batch path, and masks with all kinds of 64-bit patterns
    rng = np.random.default_rng(7)
    key = rng.bytes(64)
    n, unit = 4096, 128
    data = rng.bytes(n * unit)
    tweaks = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    expected = b"".join(
        Cipher(algorithms.AES(key), modes.XTS(tweaks[i].tobytes()))
        .encryptor()
        .update(data[i * unit : (i + 1) * unit])
        for i in range(n)
    )
    assert xts_encrypt(key, data, tweaks, unit) == expected


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(
    ("unit", "stride", "first"), [(32, 32, 0x40), (128, 128, 0x10000), (64, 4, 7)]
)
def test_sequential_tweaks_equal_explicit_tweaks(
    reverse: bool, unit: int, stride: int, first: int
) -> None:
    key = os.urandom(32)
    n = 3000
    data = np.frombuffer(os.urandom(n * unit), dtype=np.uint8)
    explicit = np.empty_like(data)
    sequential = np.empty_like(data)
    engine = XtsEngine(key, unit, reverse_units=reverse, batch_bytes=unit * 700)
    engine.process(data, tweaks_from_le32(first + stride * np.arange(n)), explicit)
    engine.process_sequential(data, sequential, first, stride=stride)
    assert np.array_equal(explicit, sequential)
    back = np.empty_like(data)
    engine.process_sequential(sequential, back, first, stride=stride, decrypt=True)
    assert np.array_equal(back, data)


def test_threads_split_work_without_changing_the_result() -> None:
    key = os.urandom(64)
    data = np.frombuffer(os.urandom((5 << 20) // 2), dtype=np.uint8)  # 2.5 MiB
    one = np.empty_like(data)
    two = np.empty_like(data)
    XtsEngine(key, 128, reverse_units=True, threads=1).process_sequential(data, one, 0x10000)
    XtsEngine(key, 128, reverse_units=True, threads=2).process_sequential(data, two, 0x10000)
    assert np.array_equal(one, two)


def test_sequential_tweaks_must_fit_32_bits() -> None:
    from espsec.errors import UsageError

    engine = XtsEngine(bytes(32), 128)
    out = np.empty(256, dtype=np.uint8)
    with pytest.raises(UsageError, match="32 bits"):
        engine.process_sequential(bytes(256), out, 0xFFFFFFFF)


def test_engine_repr_hides_the_key() -> None:
    engine = XtsEngine(bytes.fromhex("cd" * 64), 32)
    assert "cd" not in repr(engine) and "AES-256-XTS" in repr(engine)
