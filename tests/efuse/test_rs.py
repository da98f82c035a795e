"""RS(44,32): our encoder equals ``reedsolo.RSCodec(12)`` (what espefuse burns), and the
decoder corrects up to 6 bad bytes and flags more, as the eFuse controller does."""

from __future__ import annotations

import pytest
import reedsolo
from hypothesis import given, settings
from hypothesis import strategies as st

from espsec.efuse import rs

_RSC = reedsolo.RSCodec(12)


@given(st.binary(min_size=32, max_size=32))
@settings(max_examples=60, deadline=None)
def test_check_value_equals_reedsolo(data):
    assert rs.encode(data) == bytes(_RSC.encode(data))


def test_known_check_value_of_an_empty_block_is_zero():
    assert rs.check_value(bytes(32)) == bytes(12)


@given(
    st.binary(min_size=32, max_size=32),
    st.lists(st.integers(0, 43), min_size=0, max_size=6, unique=True),
    st.data(),
)
@settings(max_examples=80, deadline=None)
def test_up_to_six_bad_bytes_are_corrected_and_counted(data, positions, draw):
    codeword = bytearray(rs.encode(data))
    for p in positions:
        codeword[p] ^= draw.draw(st.integers(1, 255))
    out = rs.decode(bytes(codeword))
    assert (out.data, out.errors, out.failed) == (data, len(positions), False)


@given(
    st.binary(min_size=32, max_size=32),
    st.lists(st.integers(0, 43), min_size=7, max_size=20, unique=True),
    st.data(),
)
@settings(max_examples=60, deadline=None)
def test_more_than_six_bad_bytes_agree_with_reedsolo(data, positions, draw):
    codeword = bytearray(rs.encode(data))
    for p in positions:
        codeword[p] ^= draw.draw(st.integers(1, 255))
    out = rs.decode(bytes(codeword))
    try:
        expected = bytes(_RSC.decode(bytes(codeword))[0])
    except reedsolo.ReedSolomonError:
        assert out.failed
    else:  # decoded to a different codeword, as the hardware would
        assert not out.failed and out.data == expected


def test_wrong_lengths_are_rejected():
    with pytest.raises(ValueError):
        rs.check_value(bytes(31))
    with pytest.raises(ValueError):
        rs.decode(bytes(43))
