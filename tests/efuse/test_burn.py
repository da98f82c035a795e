"""One-time-programmable rules, as espefuse applies them, checked before any bit changes."""

from __future__ import annotations

import pytest

from espsec import efuse
from espsec.efuse import BurnRefused, Transaction
from espsec.errors import UsageError

KEY = bytes(range(32))
KEY512 = bytes(range(64))


@pytest.fixture(params=["esp32s3", "esp32p4"])
def chip(request: pytest.FixtureRequest) -> efuse.Efuses:
    return efuse.new(request.param)


def refused(e: efuse.Efuses, tx: Transaction, match: str, kind: type = BurnRefused) -> None:
    before = e.copy()
    with pytest.raises(kind, match=match):
        tx.apply(e)
    assert e == before, "a refused burn changed the chip"


def test_bits_only_go_up(chip):
    efuse.burn(chip, {"SPI_BOOT_CRYPT_CNT": 1})
    refused(
        chip,
        Transaction().burn("SPI_BOOT_CRYPT_CNT", 2),
        r"^SPI_BOOT_CRYPT_CNT is 0x1: cannot burn 0x2 \(bit 0 would need 1 -> 0 and eFuse "
        r"bits only go 0 -> 1; it would read 0x3\)$",
    )
    efuse.burn(chip, {"SPI_BOOT_CRYPT_CNT": 3})
    assert chip.get("SPI_BOOT_CRYPT_CNT") == 3


def test_value_with_fewer_bits_than_burned_is_refused_not_a_no_op(chip):
    """espefuse burns nothing and fails its read-back: the field would not hold 4."""
    efuse.burn(chip, {"SECURE_VERSION": 0b111})
    refused(
        chip,
        Transaction().burn("SECURE_VERSION", 0b100),
        r"^SECURE_VERSION is 0x7: cannot burn 0x4 \(bits 0,1 would need 1 -> 0 .*; "
        r"it would stay 0x7\)$",
    )
    assert chip.get("SECURE_VERSION") == 0b111


def test_the_value_already_there_is_a_no_op_that_says_so(chip):
    efuse.burn(chip, {"SECURE_VERSION": 0b111})
    staged = efuse.burn(chip, {"SECURE_VERSION": 0b111})
    assert staged.empty
    assert staged.notes == ("SECURE_VERSION already has this value (0x7); nothing to burn",)


def test_counter_zero_is_a_no_op_only_while_no_bit_is_burned(chip):
    for name in ("SPI_BOOT_CRYPT_CNT", "SECURE_VERSION"):
        assert efuse.burn(chip, {name: 0}).empty
        efuse.burn(chip, {name: 1})
        refused(chip, Transaction().burn(name, 0), f"^{name} is 0x1: cannot burn 0x0")


def test_a_refused_pair_refuses_the_whole_burn(chip):
    """espefuse burns the other pairs, then fails its read-back; espsec burns nothing."""
    efuse.burn(chip, {"SECURE_VERSION": 0b11})
    refused(chip, Transaction().burn("DIS_PAD_JTAG", 1).burn("SECURE_VERSION", 1), "0x3")
    assert not chip.get("DIS_PAD_JTAG")


def test_key_material_is_never_shown_in_a_refusal(chip):
    efuse.burn(chip, {"BLOCK_KEY1": KEY})
    with pytest.raises(BurnRefused) as exc:
        Transaction().burn("BLOCK_KEY1", KEY[::-1]).stage(chip)
    assert exc.value.message == (
        "BLOCK_KEY1 already holds other data: cannot burn the value asked for "
        "(eFuse bits only go 0 -> 1)"
    )
    with pytest.raises(BurnRefused) as exc:
        Transaction().burn_key("BLOCK_KEY1", bytes(32), "HMAC_UP").stage(chip)
    assert KEY.hex()[:8] not in exc.value.message


def test_the_factory_mac_cannot_be_burned(chip):
    refused(chip, Transaction().burn("MAC", bytes(6)), "burn CUSTOM_MAC instead", UsageError)


def test_counter_fields_burn_the_next_bit_without_a_value(chip):
    efuse.burn(chip, {"SPI_BOOT_CRYPT_CNT": None})
    efuse.burn(chip, {"SPI_BOOT_CRYPT_CNT": None})
    assert chip.get("SPI_BOOT_CRYPT_CNT") == 0b11
    efuse.burn(chip, {"SECURE_BOOT_EN": None})
    assert chip.get("SECURE_BOOT_EN") == 1


@pytest.mark.parametrize(
    "name,value,match",
    [
        ("NOT_A_FIELD", 1, "unknown eFuse field 'NOT_A_FIELD'"),
        ("SECURE_VERSION", 1 << 16, "SECURE_VERSION: value 0x10000 does not fit in 16 bits"),
        ("SECURE_BOOT_EN", 2, "SECURE_BOOT_EN is a bool"),
        ("SOFT_DIS_JTAG", 0, "value 0 burns nothing"),
        ("WR_DIS", 0, "value 0 burns nothing"),
        ("CUSTOM_MAC", b"\x01\x02", "CUSTOM_MAC takes 6 bytes, found 2"),
        ("SECURE_VERSION", b"\x01\x02", "not bytes"),
    ],
)
def test_bad_values_name_the_field(chip, name, value, match):
    refused(chip, Transaction().burn(name, value), match, UsageError)


def test_reserved_fields_are_refused():
    e = efuse.new("esp32s3")
    refused(e, Transaction().burn("RESERVED_0_162", 1), "reserved", UsageError)


def test_write_protected_field_refuses_burns(chip):
    efuse.write_protect(chip, ["DIS_DOWNLOAD_MODE"])  # WR_DIS bit 18 locks SECURE_VERSION too
    refused(
        chip,
        Transaction().burn("SECURE_VERSION", 1),
        r"^SECURE_VERSION is write-protected \(WR_DIS bit 18\): cannot burn 0x1 \(it is 0x0\)$",
    )
    assert not chip.is_writeable("ENABLE_SECURITY_DOWNLOAD")
    assert efuse.burn(chip, {"SECURE_VERSION": 0}).empty  # asks for what is there


def test_wr_dis_and_rd_dis_values_are_whole_values_too(chip):
    """espefuse burns the new bits of a WR_DIS value lacking old ones, then fails its
    read-back; espsec refuses first."""
    efuse.burn(chip, {"WR_DIS": 1 << 4})
    refused(chip, Transaction().burn("WR_DIS", 1 << 5), r"^WR_DIS is 0x10: cannot burn 0x20")
    efuse.burn(chip, {"WR_DIS": 0b110000})
    assert chip.get("WR_DIS") == 0b110000


def test_rd_dis_cannot_change_once_write_protected(chip):
    efuse.write_protect(chip, ["RD_DIS"])
    refused(chip, Transaction().read_protect("BLOCK_SYS_DATA2"), r"RD_DIS is write-protected")


def test_rs_block_is_burned_once():
    e = efuse.new("esp32s3")
    mac = bytes.fromhex("aabbccddeeff")
    efuse.burn(e, {"CUSTOM_MAC": mac})
    efuse.burn(e, {"CUSTOM_MAC": mac})  # same value: nothing to do
    refused(
        e,
        Transaction().burn("BLOCK_USR_DATA", b"\x01" + bytes(23)),
        "BLOCK_USR_DATA is already programmed: an RS-coded block can be burned only once",
    )


def test_one_transaction_may_fill_an_rs_block_through_several_fields():
    e = efuse.new("esp32s3")
    efuse.burn(e, {"CUSTOM_MAC": bytes(5) + b"\x02", "BLOCK_USR_DATA": b"\x01" * 24})
    assert e.get("BLOCK_USR_DATA") == b"\x01" * 24


def test_burn_key_reverses_xts_keys_and_protects_per_purpose(chip):
    efuse.burn_key(chip, "BLOCK_KEY0", KEY, "XTS_AES_128_KEY")
    efuse.burn_key(chip, "BLOCK_KEY1", KEY, "HMAC_UP")
    efuse.burn_key(chip, "BLOCK_KEY2", KEY, "SECURE_BOOT_DIGEST0")
    assert chip.hardware_block(4) == KEY[::-1]
    assert chip.hardware_block(5) == KEY  # HMAC keys are not reversed
    assert chip.read_block(6) == KEY  # digests stay readable
    assert chip.is_read_protected(4) and chip.is_read_protected(5)
    assert not chip.is_read_protected(6)
    for n in range(3):
        assert chip.is_write_protected(4 + n)
        assert not chip.is_writeable(f"KEY_PURPOSE_{n}")
    assert [chip.key_purpose(4 + n) for n in range(3)] == [4, 8, 9]


def test_no_write_protect_still_locks_the_purpose_as_espefuse_does(chip):
    efuse.burn_key(chip, "BLOCK_KEY0", KEY, "HMAC_UP", write_protect=False, read_protect=False)
    assert not chip.is_write_protected(4) and not chip.is_read_protected(4)
    assert not chip.is_writeable("KEY_PURPOSE_0")


def test_512_bit_xts_key_is_split_over_two_blocks(chip):
    staged = efuse.burn_key(chip, "BLOCK_KEY2", KEY512, "XTS_AES_256_KEY")
    assert "second half goes to BLOCK_KEY3" in staged.notes[0]
    assert chip.hardware_block(6) == KEY512[:32][::-1]
    assert chip.hardware_block(7) == KEY512[32:][::-1]
    assert (chip.key_purpose(6), chip.key_purpose(7)) == (2, 3)
    assert efuse.security_state(chip).flash_encryption_key == "XTS_AES_256_KEY"


def test_512_bit_key_second_half_skips_blocks_the_burn_names(chip):
    tx = Transaction().burn_key("BLOCK_KEY0", KEY512, "XTS_AES_256_KEY")
    staged = tx.burn_key("BLOCK_KEY1", KEY, "HMAC_UP").apply(chip)
    assert "second half goes to BLOCK_KEY2" in staged.notes[0]
    assert [chip.key_purpose(n) for n in (4, 5, 6)] == [2, 8, 3]


def test_one_512_bit_xts_key_per_burn(chip):
    tx = Transaction().burn_key("BLOCK_KEY0", KEY512, "XTS_AES_256_KEY")
    tx.burn_key("BLOCK_KEY2", KEY512[::-1], "XTS_AES_256_KEY")
    refused(chip, tx, "XTS_AES_256_KEY is given twice in one burn", UsageError)


def test_512_bit_xts_key_takes_its_second_block_before_a_p384_key():
    """espefuse splits XTS-AES keys first, whatever the order of the burn."""
    e = efuse.new("esp32p4", 300)
    tx = Transaction().burn_key("BLOCK_KEY5", KEY[:16] + KEY, "ECDSA_KEY_P384")
    tx.burn_key("BLOCK_KEY0", KEY512, "XTS_AES_256_KEY").apply(e)
    assert [e.key_purpose(n) for n in range(4, 10)] == [2, 3, 17, 0, 0, 18]


def test_only_a_p192_key_is_padded():
    e = efuse.new("esp32p4", 300)
    refused(
        e,
        Transaction().burn_key("BLOCK_KEY0", KEY[:16], "ECDSA_KEY_P384_L"),
        "must be 32 bytes",
        UsageError,
    )


def test_a_key_purpose_needs_a_value_even_its_one_bit_high_part():
    e = efuse.new("esp32p4", 300)
    refused(e, Transaction().burn("KEY_PURPOSE_0_H"), "a value is required", UsageError)


def test_512_bit_key_needs_two_free_blocks(chip):
    for n in range(1, 6):
        efuse.burn_key(chip, f"BLOCK_KEY{n}", KEY, "HMAC_UP")
    refused(chip, Transaction().burn_key("BLOCK_KEY0", KEY512, "XTS_AES_256_KEY"), "two free")


def test_esp32s3_block9_cannot_hold_an_xts_key():
    e = efuse.new("esp32s3")
    refused(
        e,
        Transaction().burn_key("BLOCK_KEY5", KEY, "XTS_AES_128_KEY"),
        "BLOCK_KEY5 cannot hold an XTS-AES key on ESP32-S3",
        UsageError,
    )
    # espefuse puts the second half in the next free block; BLOCK_KEY5 is refused there too
    refused(
        e,
        Transaction().burn_key("BLOCK_KEY4", KEY512, "XTS_AES_256_KEY"),
        "second half would go to BLOCK_KEY5",
        UsageError,
    )
    efuse.burn_key(e, "BLOCK_KEY4", KEY512[:32], "XTS_AES_256_KEY_1")
    efuse.burn_key(e, "BLOCK_KEY0", KEY512[32:], "XTS_AES_256_KEY_2")
    assert efuse.security_state(e).flash_encryption_key == "XTS_AES_256_KEY"
    # on ESP32-P4 it is fine
    p4 = efuse.new("esp32p4")
    efuse.burn_key(p4, "BLOCK_KEY5", KEY, "XTS_AES_128_KEY")


@pytest.mark.parametrize(
    "block,key,purpose,match",
    [
        ("BLOCK_KEY0", KEY[:16], "XTS_AES_128_KEY", "must be 32 bytes .256 bits., found 16"),
        ("BLOCK_KEY0", KEY, "XTS_AES_256_KEY", "needs a 64-byte"),
        ("BLOCK_KEY0", KEY, "NOPE", "unknown key purpose 'NOPE'"),
        ("BLOCK3", KEY, "HMAC_UP", "BLOCK_USR_DATA is not a key block"),
        ("BLOCK_KEY9", KEY, "HMAC_UP", "unknown eFuse block"),
    ],
)
def test_bad_key_requests_are_usage_errors(chip, block, key, purpose, match):
    refused(chip, Transaction().burn_key(block, key, purpose), match, UsageError)


def test_p4_ecdsa_p384_does_not_fit_four_bit_purposes():
    e = efuse.new("esp32p4")
    refused(
        e,
        Transaction().burn_key("BLOCK_KEY0", KEY[:24], "ECDSA_KEY_P192"),
        r"ECDSA_KEY_P192 \(16\) does not fit KEY_PURPOSE_0 \(4 bits\)",
        UsageError,
    )
    efuse.burn_key(e, "BLOCK_KEY0", KEY, "ECDSA_KEY")
    assert e.hardware_block(4) == KEY[::-1] and e.is_read_protected(4)


def test_burn_into_a_used_block_is_refused(chip):
    efuse.burn_key(chip, "BLOCK_KEY0", KEY, "HMAC_UP", write_protect=False, read_protect=False)
    refused(
        chip,
        Transaction().burn_key("BLOCK_KEY0", KEY[::-1], "HMAC_UP", write_protect=False),
        r"BLOCK_KEY0 already holds data \(purpose HMAC_UP\)",
    )
    again = efuse.burn_key(chip, "BLOCK_KEY0", KEY, "HMAC_UP", read_protect=False)
    assert again.steps and not again.writes.get(4)  # the same key again: only protection
    refused(
        chip,
        Transaction().burn_key("BLOCK_KEY0", KEY, "HMAC_DOWN_ALL"),
        "KEY_PURPOSE_0 is write-protected as HMAC_UP; cannot set HMAC_DOWN_ALL",
    )


def test_key_whose_bits_are_all_set_already_is_refused(chip):
    """espefuse skips the bits it finds set and reports success: the block keeps its key."""
    efuse.burn_key(chip, "BLOCK_KEY1", b"\xff" * 32, "HMAC_UP", read_protect=False)
    refused(
        chip,
        Transaction().burn_key("BLOCK_KEY1", KEY, "HMAC_UP", read_protect=False),
        r"^BLOCK_KEY1 already holds data \(purpose HMAC_UP\) other than this key",
    )


def test_burn_into_read_or_write_protected_block_is_refused(chip):
    efuse.burn_key(chip, "BLOCK_KEY0", KEY, "HMAC_UP")
    refused(chip, Transaction().burn_key("BLOCK_KEY0", KEY, "HMAC_UP"), "read-protected")
    refused(chip, Transaction().burn_key("BLOCK_KEY0", bytes(32), "HMAC_UP"), "read-protected")
    efuse.write_protect(chip, ["BLOCK_KEY1"])
    refused(chip, Transaction().burn_key("BLOCK_KEY1", KEY, "HMAC_UP"), "write-protected")


def test_digest_must_use_a_digest_purpose(chip):
    refused(
        chip,
        Transaction().burn_key_digest("BLOCK_KEY0", KEY, "HMAC_UP"),
        "not a Secure Boot digest purpose",
        UsageError,
    )
    refused(
        chip,
        Transaction().burn_key_digest("BLOCK_KEY0", KEY[:20], "SECURE_BOOT_DIGEST0"),
        "32 bytes, found 20",
        UsageError,
    )


def test_digest_and_user_blocks_must_stay_readable(chip):
    efuse.burn_key_digest(chip, "BLOCK_KEY0", KEY, "SECURE_BOOT_DIGEST0")
    refused(chip, Transaction().read_protect("BLOCK_KEY0"), "SECURE_BOOT_DIGEST0 key and must")
    refused(chip, Transaction().read_protect("BLOCK_KEY1"), "USER key and must stay readable")
    refused(chip, Transaction().write_protect("WR_DIS"), "cannot be write-protected", UsageError)
    refused(chip, Transaction().read_protect("BLOCK0"), "cannot be read-protected", UsageError)


def test_a_refused_operation_leaves_the_whole_transaction_unapplied(chip):
    tx = (
        Transaction()
        .burn_key("BLOCK_KEY0", KEY, "XTS_AES_128_KEY")
        .burn("SPI_BOOT_CRYPT_CNT", 1)
        .burn("SECURE_VERSION", 1 << 20)
    )
    refused(chip, tx, "does not fit", UsageError)


def test_postponed_fields_are_burned_last(chip):
    staged = (
        Transaction()
        .burn_key("BLOCK_KEY0", KEY, "XTS_AES_128_KEY")
        .burn("SPI_BOOT_CRYPT_CNT", 1)
        .burn("DIS_PAD_JTAG", 1)
        .stage(chip)
    )
    assert [(s.block, s.postponed) for s in staged.steps] == [(4, False), (0, False), (0, True)]
    layout = chip.layout
    last = staged.steps[-1].bits
    for name in ("WR_DIS", "RD_DIS", "SPI_BOOT_CRYPT_CNT"):
        assert last & layout.field(name).mask
    assert not last & layout.field("DIS_PAD_JTAG").mask
    assert not last & layout.field("KEY_PURPOSE_0").mask
    assert "bits" not in repr(staged) and "0x" not in repr(staged.steps)


def test_protections_in_a_batch_do_not_block_the_batch(chip):
    """WR_DIS is postponed: locking a field in the same burn as writing it works."""
    Transaction().burn("SECURE_VERSION", 1).write_protect("SECURE_VERSION").apply(chip)
    assert chip.get("SECURE_VERSION") == 1 and not chip.is_writeable("SECURE_VERSION")


def test_operation_reprs_hide_key_material():
    op = efuse.BurnKey("BLOCK_KEY0", KEY, "XTS_AES_128_KEY")
    assert KEY.hex() not in repr(op) and "key=" not in repr(op)
    assert op.describe() == "burn-key BLOCK_KEY0 <32-byte key> XTS_AES_128_KEY"


def test_key_purpose_fields_take_only_defined_purposes():
    s3 = efuse.new("esp32s3")
    refused(s3, Transaction().burn("KEY_PURPOSE_0", 15), "15 is not a key purpose", UsageError)
    refused(s3, Transaction().burn("KEY_PURPOSE_5", 4), "KEY_PURPOSE_5 cannot be XTS", UsageError)
    efuse.burn(
        s3, {"KEY_PURPOSE_1": efuse.parse_field_value(s3.layout, "KEY_PURPOSE_1", "HMAC_UP")}
    )
    assert s3.key_purpose(5) == 8
    p4 = efuse.new("esp32p4")  # espefuse names unknown P4 purposes CUSTOM_<n>
    efuse.burn(p4, {"KEY_PURPOSE_0": 15})
    assert efuse.summary(p4)["KEY_PURPOSE_0"]["value"] == "CUSTOM_15"


def test_a_staged_burn_commits_only_onto_the_state_it_was_checked_against(chip):
    staged = Transaction().burn("SECURE_VERSION", 1).stage(chip)
    efuse.burn(chip, {"SECURE_VERSION": 3})
    with pytest.raises(UsageError, match="changed since this burn was staged"):
        staged.commit(chip)
