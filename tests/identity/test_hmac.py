"""The HMAC peripheral against ESP-IDF's HMAC test vectors, and its purpose rules."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from espsec import efuse
from espsec.identity.hmac import HmacError, HmacMode, HmacPeripheral

from .c_vectors import CRYPTO_DRIVERS, array, ints

TEXT = (CRYPTO_DRIVERS / "hmac_test_cases.h").read_text()
KEY = bytes(ints(array(TEXT, "key_data")))


def _results(name: str) -> list[tuple[int, bytes]]:
    body = array(TEXT, name)
    rows = re.findall(r"\.msglen\s*=\s*(\d+),\s*\.result\s*=\s*\{([^}]*)\}", body)
    return [(int(n), bytes(ints(r))[:32]) for n, r in rows]


def _chip(purpose: str, block: str = "BLOCK_KEY2") -> efuse.Efuses:
    chip = efuse.new("esp32s3")
    efuse.burn_key(chip, block, KEY, purpose)
    return chip


def test_key_file_matches_the_header_key() -> None:
    assert (CRYPTO_DRIVERS / "hmac_key.bin").read_bytes() == KEY == bytes(range(1, 33))


def test_upstream_mode_reproduces_esp_idf_hmac_vectors() -> None:
    peripheral = HmacPeripheral(_chip("HMAC_UP"))
    message = re.search(r'\*message = "([^"]*)"', TEXT)
    assert message is not None
    text = message.group(1).encode()
    results = _results("results")
    assert len(results) == 256
    for length, expected in results:
        assert peripheral.calculate(2, text[:length]) == expected, length
    for length, expected in _results("zero_results"):
        assert peripheral.calculate(2, bytes(length)) == expected, length


def test_read_protected_key_reads_as_zeros_but_still_works_in_the_peripheral() -> None:
    chip = _chip("HMAC_UP")
    assert chip.is_read_protected("BLOCK_KEY2")
    assert chip.read_block("BLOCK_KEY2") == bytes(32)
    assert HmacPeripheral(chip).calculate(2, b"x") == hmac.new(KEY, b"x", hashlib.sha256).digest()


def test_jtag_token_from_esp_idf_vectors_re_enables_jtag() -> None:
    token = bytes(ints(array(TEXT, "token_data")))
    for purpose in ("HMAC_DOWN_JTAG", "HMAC_DOWN_ALL"):
        HmacPeripheral(_chip(purpose)).jtag_enable(2, token)
    with pytest.raises(HmacError, match="does not match"):
        HmacPeripheral(_chip("HMAC_DOWN_JTAG")).jtag_enable(2, bytes(32))


@pytest.mark.parametrize(
    ("purpose", "mode"),
    [
        ("HMAC_DOWN_DIGITAL_SIGNATURE", HmacMode.UPSTREAM),
        ("HMAC_DOWN_JTAG", HmacMode.UPSTREAM),
        ("HMAC_UP", HmacMode.DS),
        ("HMAC_DOWN_JTAG", HmacMode.DS),
        ("HMAC_UP", HmacMode.JTAG),
        ("XTS_AES_128_KEY", HmacMode.UPSTREAM),
    ],
)
def test_refuses_key_of_the_wrong_purpose(purpose: str, mode: HmacMode) -> None:
    peripheral = HmacPeripheral(_chip(purpose))
    assert not peripheral.accepts(2, mode)
    with pytest.raises(HmacError, match=f"purpose {purpose}.*ESP_FAIL"):
        if mode is HmacMode.UPSTREAM:
            peripheral.calculate(2, b"")
        elif mode is HmacMode.DS:
            peripheral.downstream_ds(2)
        else:
            peripheral.jtag_enable(2, bytes(32))


def test_downstream_all_serves_ds_and_jtag_but_never_software() -> None:
    peripheral = HmacPeripheral(_chip("HMAC_DOWN_ALL"))
    assert peripheral.accepts(2, HmacMode.DS) and peripheral.accepts(2, HmacMode.JTAG)
    with pytest.raises(HmacError):
        peripheral.calculate(2, b"")


def test_refuses_key_id_out_of_range() -> None:
    with pytest.raises(HmacError, match="ESP_ERR_INVALID_ARG"):
        HmacPeripheral(efuse.new("esp32s3")).calculate(6, b"")
