"""NVS encryption: the nvs_keys partition, HMAC-derived keys, XTS per entry."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from espsec.errors import FormatError, KeyFormatError
from espsec.nvs import (
    DataRow,
    NamespaceRow,
    NvsKeys,
    ValueType,
    decrypt_partition,
    encrypt_partition,
    generate_partition,
    read_partition,
)
from espsec.nvs.nvs_keys import HMAC_EKEY_SEED, HMAC_TKEY_SEED

ROWS = [
    NamespaceRow("wifi"),
    DataRow("ssid", ValueType.STRING, "lab"),
    DataRow("apinfo", ValueType.BLOB, b"\xff" * 140),  # payload entries that are all 0xFF
    DataRow("n", ValueType.U32, 7),
]


def test_keys_partition_round_trips_and_is_4096_bytes():
    keys = NvsKeys.generate()
    image = keys.to_bytes()
    assert len(image) == 4096 and image[68:] == b"\xff" * (4096 - 68)
    assert NvsKeys.parse(image) == keys
    assert NvsKeys.parse(image[:68]) == keys


def test_corrupt_keys_partition_names_the_crc_offset():
    image = bytearray(NvsKeys.generate().to_bytes())
    image[3] ^= 0x10
    with pytest.raises(FormatError, match="offset 0x40 crc32: nvs_keys CRC mismatch"):
        NvsKeys.parse(bytes(image))


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"\xff" * 4096, "erased"), (b"\x00" * 10, "wrong size"), (b"\x00" * 5000, "wrong size")],
)
def test_not_a_keys_partition(data, message):
    with pytest.raises(FormatError, match=message):
        NvsKeys.parse(data)


def test_keys_never_show_in_repr():
    keys = NvsKeys(bytes(range(32)), bytes(range(32, 64)))
    assert "0001" not in repr(keys) and "\\x01" not in repr(keys)
    assert repr(keys) == "NvsKeys()"


def test_hmac_scheme_derives_keys_from_the_seeds():
    hmac_key = bytes(range(1, 33))  # sample_hmac_key.bin in ESP-IDF's test data
    keys = NvsKeys.from_hmac_key(hmac_key)
    assert bytes.fromhex("5a5abeae") * 8 == HMAC_EKEY_SEED
    assert bytes.fromhex("a5a5dece") * 8 == HMAC_TKEY_SEED
    assert keys.eky == hmac.new(hmac_key, HMAC_EKEY_SEED, hashlib.sha256).digest()
    assert keys.tky == hmac.new(hmac_key, HMAC_TKEY_SEED, hashlib.sha256).digest()
    with pytest.raises(KeyFormatError, match="32 bytes"):
        NvsKeys.from_hmac_key(bytes(16))


def test_encrypt_and_decrypt_partition_are_inverse_and_match_the_generator():
    keys = NvsKeys.generate()
    plain = generate_partition(ROWS, 0x3000)
    cipher = generate_partition(ROWS, 0x3000, keys=keys)
    assert encrypt_partition(plain, keys) == cipher
    assert decrypt_partition(cipher, keys) == plain


def test_each_entry_is_tweaked_by_its_own_offset():
    keys = NvsKeys.generate()
    rows = [NamespaceRow("n")] + [DataRow(f"k{i}", ValueType.BLOB, b"\xff" * 32) for i in range(3)]
    cipher = generate_partition(rows, 0x3000, keys=keys)
    payload_entries = [cipher[0x40 + 32 * i : 0x60 + 32 * i] for i in (2, 5, 8)]
    assert len(set(payload_entries)) == 3


def test_wrong_or_missing_keys_are_reported_not_misread():
    keys = NvsKeys.generate()
    cipher = generate_partition(ROWS, 0x3000, keys=keys)
    with pytest.raises(FormatError, match=r"offset 0x40: entries do not decrypt.*wrong NVS keys"):
        read_partition(cipher, keys=NvsKeys.generate())
    with pytest.raises(FormatError, match="is the partition encrypted"):
        read_partition(cipher)
    assert [e.value for e in read_partition(cipher, keys=keys).entries] == [
        "lab",
        b"\xff" * 140,
        7,
    ]


def test_in_place_page_encryption_matches_one_call_over_every_entry_across_chunks():
    import numpy as np

    from espsec.nvs.encryption import PAGES_PER_CALL, encrypt_entries, encrypt_pages_in_place
    from espsec.nvs.layout import ENTRY_COUNT, FIRST_ENTRY_OFFSET, PAGE_SIZE

    keys = NvsKeys.generate()
    count = PAGES_PER_CALL + 3  # a second, partial chunk
    plain = np.frombuffer(hashlib.shake_256(b"pages").digest(count * PAGE_SIZE), dtype=np.uint8)
    image = bytearray(plain.tobytes())
    encrypt_pages_in_place(keys, image)
    pages = np.frombuffer(image, dtype=np.uint8).reshape(count, PAGE_SIZE)
    offsets = (
        np.arange(count, dtype=np.int64)[:, None] * PAGE_SIZE
        + FIRST_ENTRY_OFFSET
        + np.arange(ENTRY_COUNT, dtype=np.int64)[None, :] * 32
    ).reshape(-1)
    area = plain.reshape(count, PAGE_SIZE)[:, FIRST_ENTRY_OFFSET:]
    expected = encrypt_entries(keys, area.tobytes(), offsets)
    assert pages[:, FIRST_ENTRY_OFFSET:].tobytes() == expected
    assert (
        pages[:, :FIRST_ENTRY_OFFSET] == plain.reshape(count, PAGE_SIZE)[:, :FIRST_ENTRY_OFFSET]
    ).all()
