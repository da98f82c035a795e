"""Our eFuse tables equal the facts espefuse ships, field by field (catches drift)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from espsec.efuse import layout_for, layouts_of

# (chip, wafer revision): every table espsec models, with a revision that selects it.
TABLES = [("esp32s3", 0), ("esp32p4", 0), ("esp32p4", 300)]
CHIPS = [pytest.param(c, r, id=layout_for(c, r).table) for c, r in TABLES]


def _espefuse(chip: str, revision: int = 0) -> tuple[dict, object, object]:
    mem = importlib.import_module(f"espefuse.efuse.{chip}.mem_definition")
    fields = importlib.import_module(f"espefuse.efuse.{chip}.fields")
    table = (
        Path(mem.__file__).resolve().parents[2]
        / "efuse_defs"
        / f"{layout_for(chip, revision).table}.yaml"
    )
    return yaml.safe_load(table.read_text())["EFUSES"], mem, fields


@pytest.mark.parametrize(("chip", "revision"), CHIPS)
def test_every_field_matches_espefuse_table(chip, revision):
    upstream, _, _ = _espefuse(chip, revision)
    layout = layout_for(chip, revision)
    ours = {f.name: f for f in layout.fields}
    assert set(ours) == set(upstream)
    for name, d in upstream.items():
        f = ours[name]
        assert (f.block, f.start, f.length) == (d["blk"], d["start"], d["len"]), name
        assert (f.word, f.pos) == (d["word"], d["pos"]), name
        assert (f.wr_dis, f.rd_dis) == (d["wr_dis"], d["rd_dis"]), name
        assert f.efuse_type == d["type"], name
        assert list(f.alt_names) == (d["alt"].split() if d["alt"] else []), name
        assert f.visible == (d["show"] == "y"), name


@pytest.mark.parametrize(("chip", "revision"), CHIPS)
def test_blocks_and_error_registers_match_espefuse(chip, revision):
    upstream, mem, _ = _espefuse(chip, revision)
    layout = layout_for(chip, revision)
    regs = mem.EfuseDefineRegisters
    base = regs.DR_REG_EFUSE_BASE
    assert layout.mem_size == regs.EFUSE_MEM_SIZE == 0x200
    assert layout.repeat_error_regs == tuple(r - base for r in regs.BLOCK0_ERRORS)
    for row, block in zip(mem.EfuseDefineBlocks.BLOCKS, layout.blocks, strict=True):
        name, alias, idx, rd_addr, _, wr_dis, rd_dis, words, purpose = row
        assert (block.name, list(block.aliases), block.index) == (name, alias, idx)
        assert (block.offset, block.words) == (rd_addr - base, words)
        assert (block.wr_dis, block.rd_dis, block.purpose_field) == (wr_dis, rd_dis, purpose)
        # espefuse's EfuseKeyPurposeField: a KEY_PURPOSE_n_H field is the 5th bit.
        high = f"{purpose}_H" if purpose and f"{purpose}_H" in upstream else None
        assert block.purpose_field_high == high
        reg, mask, shift, fail_bit = regs.BLOCK_ERRORS[idx]
        if block.rs_error is None:
            assert idx == 0 and mask is None
        else:
            e = block.rs_error
            assert (e.reg + base, e.mask, e.shift, e.fail_bit) == (reg, mask, shift, fail_bit)


@pytest.mark.parametrize(("chip", "revision"), CHIPS)
def test_key_purposes_match_espefuse(chip, revision):
    _, _, fields = _espefuse(chip, revision)
    kp = fields.EfuseKeyPurposeField
    upstream = [p for p in kp.KEY_PURPOSES if p not in kp.CUSTOM_KEY_PURPOSES]
    ours = layout_for(chip, revision).purposes
    assert [(p.name, p.id) for p in ours] == [(p[0], p[1]) for p in upstream]
    for p, u in zip(ours, upstream, strict=True):
        assert p.digest == (u[2] == "DIGEST") and p.virtual == (u[2] == "VIRTUAL")
        assert p.reverse == (u[3] == "Reverse")
        assert p.read_protect == (u[4] == "need_rd_protect")


def test_espefuse_layout_facts_hold_for_esp32s3():
    """Offsets and bit positions from espefuse ``efuse_defs/esp32s3.yaml`` and
    ``efuse/esp32s3/mem_definition.py``, checked by hand."""
    s3 = layout_for("esp32s3")
    assert s3.block(0).offset == 0x2C
    assert [b.offset for b in s3.key_blocks] == [0x9C + 0x20 * n for n in range(6)]
    assert [b.wr_dis for b in s3.key_blocks] == list(range(23, 29))
    assert [b.rd_dis for b in s3.key_blocks] == list(range(6))
    spots = {
        "RD_DIS": (32, 7, 0),
        "SOFT_DIS_JTAG": (48, 3, 31),
        "DIS_PAD_JTAG": (51, 1, 2),
        "SPI_BOOT_CRYPT_CNT": (82, 3, 4),
        "KEY_PURPOSE_0": (88, 4, 8),
        "KEY_PURPOSE_5": (108, 4, 13),
        "SECURE_BOOT_EN": (116, 1, 15),
        "DIS_DOWNLOAD_MODE": (128, 1, 18),
        "ENABLE_SECURITY_DOWNLOAD": (133, 1, 18),
        "SECURE_VERSION": (142, 16, 18),
    }
    for name, (start, length, wr) in spots.items():
        f = s3.field(name)
        assert (f.start, f.length, f.wr_dis) == (start, length, wr), name


@pytest.mark.parametrize(("chip", "revision"), CHIPS)
def test_fields_tile_their_blocks_without_overlap(chip, revision):
    layout = layout_for(chip, revision)
    for block in layout.blocks:
        used = 0
        for f in layout.fields_in(block.index):
            assert f.start + f.length <= block.bits, f.name
            assert not used & f.mask, f"{f.name} overlaps another field"
            used |= f.mask
            if f.rd_dis is not None:
                assert f.rd_dis == block.rd_dis, f.name


def test_unknown_names_are_one_line_usage_errors():
    from espsec.errors import UnsupportedError, UsageError

    s3 = layout_for("esp32s3")
    with pytest.raises(UsageError, match="unknown eFuse field 'NOPE' for ESP32-S3"):
        s3.field("NOPE")
    with pytest.raises(UsageError, match="unknown key purpose 'FOO'"):
        s3.purpose("FOO")
    with pytest.raises(UsageError, match="unknown eFuse block"):
        s3.block("BLOCK11")
    assert s3.field("dis_usb").name == "DIS_USB_OTG"  # alt names, any case
    assert s3.block("KEY0") is s3.block("BLOCK4") is s3.block(4)
    with pytest.raises(UnsupportedError, match="no eFuse model for ESP32-C3"):
        layout_for("esp32c3")


def test_espefuse_picks_the_p4_table_by_wafer_revision_as_we_do():
    """espefuse ``efuse/esp32p4/fields.py``: ``esp32p4_v3.0`` when the revision is >= 300."""
    assert [layout_for("esp32p4", r).table for r in (0, 1, 100, 199, 300, 301, 399)] == [
        "esp32p4",
        "esp32p4",
        "esp32p4",
        "esp32p4",
        "esp32p4_v3.0",
        "esp32p4_v3.0",
        "esp32p4_v3.0",
    ]


def test_every_layout_of_a_chip_keeps_the_wafer_version_fields_in_place():
    """The file is read with the first layout to learn the revision, then with the one
    that revision selects: the ``WAFER_VERSION_*`` fields must agree across layouts."""
    for chip in ("esp32s3", "esp32p4"):
        first, *others = layouts_of(chip)
        wafer = [f for f in first.fields if f.name.startswith("WAFER_VERSION_")]
        assert wafer
        for layout in others:
            for f in wafer:
                g = layout.field(f.name)
                assert (g.block, g.start, g.length) == (f.block, f.start, f.length)


def test_p4_v3_key_purposes_have_five_bits_over_two_fields():
    v0, v3 = layout_for("esp32p4"), layout_for("esp32p4", 301)
    assert [v0.purpose_bits(b) for b in v0.key_blocks] == [4] * 6
    assert [v3.purpose_bits(b) for b in v3.key_blocks] == [5] * 6
    low, high = v3.purpose_parts(v3.key_blocks[2])
    assert (low[0].name, low[1], high[0].name, high[1]) == (
        "KEY_PURPOSE_2",
        0,
        "KEY_PURPOSE_2_H",
        4,
    )
    # The high bit shares the purpose's write protection (WR_DIS bit 8 + n).
    assert low[0].wr_dis == high[0].wr_dis == 10
    assert v3.purpose("ECDSA_KEY_P384_H").id == 18 and v3.has_field("SECURE_BOOT_SHA384_EN")
    assert not v0.has_field("SECURE_BOOT_SHA384_EN")
