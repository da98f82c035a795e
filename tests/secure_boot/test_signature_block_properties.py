"""Property tests: random or mutated signature sectors give a value or a FormatError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from espsec import secure_boot
from espsec.errors import EspsecError, FormatError
from espsec.secure_boot import BLOCK_SIZE, SECTOR_SIZE, SignatureBlock
from espsec.secure_boot.signature_block import CRC_OFFSET


@pytest.fixture(scope="module")
def signed_multi(p4_app, sb_keys):
    return secure_boot.sign(p4_app, [sb_keys["ecdsa256"], sb_keys["ecdsa256-b"]])


@given(data=st.binary(min_size=0, max_size=BLOCK_SIZE + 8))
def test_random_block_bytes_parse_or_format_error(data):
    with contextlib.suppress(FormatError):
        SignatureBlock.parse(data)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    flips=st.lists(
        st.tuples(st.integers(0, 2 * SECTOR_SIZE - 1), st.integers(1, 255)), min_size=1, max_size=4
    ),
    cut=st.integers(0, 64),
)
def test_mutated_signed_images_never_crash_verify_or_info(signed_multi, sb_keys, flips, cut):
    data = bytearray(signed_multi)
    for pos, mask in flips:
        data[len(data) - 1 - pos] ^= mask
    blob = bytes(data[: len(data) - cut])
    try:
        report = secure_boot.verify(blob, keys=[sb_keys["ecdsa256"]])
        secure_boot.info(blob)
    except EspsecError:
        return
    # Only a flip that missed every verified byte may still verify: the signed content
    # and the verified block up to its CRC must be untouched.
    if report.ok:
        assert report.verified is not None
        start = len(signed_multi) - SECTOR_SIZE + report.verified.index * BLOCK_SIZE
        changed = [i for i, (a, b) in enumerate(zip(signed_multi, blob, strict=False)) if a != b]
        assert len(blob) == len(signed_multi)
        assert all(
            len(signed_multi) - SECTOR_SIZE <= i and not start <= i < start + CRC_OFFSET + 4
            for i in changed
        )


def test_block_roundtrip(signed_multi):
    raw = signed_multi[-SECTOR_SIZE:][:BLOCK_SIZE]
    assert SignatureBlock.parse(raw).to_bytes() == raw
