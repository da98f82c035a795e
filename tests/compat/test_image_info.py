"""Oracle: ``esptool image-info`` (esptool 5.6.0) agrees with ``espsec image info``.

On images our builders make, and on images ``esptool elf2image`` makes from small ELF
files written here (no toolchain needed). Our builder output is also compared byte for
byte with what ``elf2image`` makes of the same sections.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from espsec.chips import Chip, get_chip
from espsec.cli.image import group
from espsec.image import (
    AppDesc,
    BootloaderDesc,
    Segment,
    build_app_image,
    build_bootloader_image,
    memory_types,
    parse_image,
)

ESPTOOL = Path(sys.executable).with_name("esptool")

EM_XTENSA = 94
EM_RISCV = 243
MACHINE = {"esp32s3": EM_XTENSA, "esp32c3": EM_RISCV, "esp32p4": EM_RISCV}


# -- a minimal ELF32 writer: section headers only, which is all elf2image reads -----------


def make_elf(machine: int, entry: int, sections: list[tuple[str, int, bytes]]) -> bytes:
    """An ELF32 little-endian executable with PROGBITS sections (name, address, data)."""
    names = b"\0"
    name_offsets = []
    for name, _, _ in [*sections, (".shstrtab", 0, b"")]:
        name_offsets.append(len(names))
        names += name.encode() + b"\0"
    body = b""
    data_offsets = []
    for _, _, data in sections:
        data_offsets.append(52 + len(body))
        body += data + bytes(-len(data) % 4)
    strtab_offset = 52 + len(body)
    body += names + bytes(-len(names) % 4)
    shoff = 52 + len(body)
    shdrs = bytes(40)  # SHN_UNDEF
    for i, (_, addr, data) in enumerate(sections):
        flags = 0x2 | 0x4  # SHF_ALLOC | SHF_EXECINSTR
        shdrs += struct.pack(
            "<10I", name_offsets[i], 1, flags, addr, data_offsets[i], len(data), 0, 0, 4, 0
        )
    shdrs += struct.pack("<10I", name_offsets[-1], 3, 0, 0, strtab_offset, len(names), 0, 0, 1, 0)
    ident = b"\x7fELF" + bytes([1, 1, 1]) + bytes(9)
    header = ident + struct.pack(
        "<HHIIIIIHHHHHH",
        2,
        machine,
        1,
        entry,
        0,
        shoff,
        0,
        52,
        32,
        0,
        40,
        len(sections) + 2,
        len(sections) + 1,
    )
    return header + body + shdrs


def elf2image(tmp_path: Path, chip: str, elf: bytes, *options: str) -> bytes:
    src, out = tmp_path / f"{chip}.elf", tmp_path / f"{chip}-esptool.bin"
    src.write_bytes(elf)
    cmd = [str(ESPTOOL), "--chip", chip, "elf2image", "--flash-mode", "dio", "--flash-freq"]
    cmd += [get_chip(chip).flash_freqs[0][0], "--flash-size", "2MB", *options]
    subprocess.run([*cmd, "-o", str(out), str(src)], check=True, capture_output=True)
    return out.read_bytes()


# -- both tools' reports, reduced to the fields they share ---------------------------------


def esptool_report(path: Path) -> dict[str, Any]:
    """Parse ``esptool --chip auto image-info`` text output."""
    proc = subprocess.run(
        [str(ESPTOOL), "--chip", "auto", "image-info", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    out: dict[str, Any] = {"segments": [], "app": None, "bootloader": None}
    section = ""
    for line in proc.stdout.splitlines():
        if line.endswith("Information") or line.endswith("Footer") or line.endswith("Header"):
            section = line
        key, sep, value = line.partition(": ")
        if m := re.fullmatch(
            r"\s*(\d+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(.*)", line
        ):
            out["segments"].append(
                (int(m[2], 16), int(m[3], 16), int(m[4], 16), tuple(m[5].split(", ")))
            )
        elif key == "Detected image type":
            out["chip"] = value
        elif key == "Entry point":
            out["entry"] = int(value, 16)
        elif line == "Entry point not set":
            out["entry"] = 0
        elif key == "Image version":
            out["image_version"] = int(value)
        elif key == "Flash size":
            out["flash_size"] = value
        elif key == "Flash freq":
            out["flash_freq"] = value
        elif key == "Flash mode":
            out["flash_mode"] = value
        elif key == "Chip ID":
            out["chip_id"] = int(value.split()[0])
        elif key == "Minimal chip revision":
            out["min_rev"] = value.split(",")[0]
        elif key == "Maximal chip revision":
            out["max_rev"] = value
        elif key == "Checksum":
            out["checksum_valid"] = value.endswith("(valid)")
        elif key == "Validation hash":
            digest, state = value.split()
            out["hash"] = (digest, state == "(valid)")
        elif section == "Application Information" and sep:
            out["app"] = {**(out["app"] or {}), key: value}
        elif section == "Bootloader Information" and sep:
            out["bootloader"] = {**(out["bootloader"] or {}), key: value}
    return out


def espsec_report(path: Path) -> dict[str, Any]:
    result = CliRunner().invoke(group, ["info", str(path), "--json"])
    assert result.exit_code in (0, 1), result.output
    return dict(json.loads(result.output))


def _rev(full: int) -> str:
    return f"{full // 100}.{full % 100}"


def assert_agree(path: Path, *, expect_bootloader_desc: bool = True) -> dict[str, Any]:
    """Both reports name the same chip, header, segments, checks and descriptor."""
    theirs, ours = esptool_report(path), espsec_report(path)
    assert theirs["chip"] == ours["chip_name"]
    assert theirs["image_version"] == ours["image_version"]
    assert theirs["chip_id"] == ours["chip_id"]
    assert theirs["entry"] == ours["entry_addr"]
    assert theirs["flash_size"] == ours["flash_size"]
    assert theirs["flash_freq"] == ours["flash_freq"]
    assert theirs["flash_mode"] == ours["flash_mode"]
    assert theirs["min_rev"] == ours["min_chip_revision"]
    assert theirs["max_rev"] == ours["max_chip_revision"]
    assert theirs["segments"] == [
        (s["length"], s["load_addr"], s["file_offset"], tuple(s["memory_types"]))
        for s in ours["segments"]
    ]
    assert theirs["checksum_valid"] == ours["checksum"]["valid"]
    if ours["validation_hash"] is None:
        assert "hash" not in theirs
    else:
        vh = ours["validation_hash"]
        assert theirs["hash"] == (vh["calculated"], vh["valid"])
    app = ours["app_desc"]
    if app is None:
        assert theirs["app"] is None
    else:
        assert theirs["app"] == {
            "Project name": app["project_name"],
            "App version": app["version"],
            "Compile time": f"{app['date']} {app['time']}",
            "ELF file SHA256": app["app_elf_sha256"],
            "ESP-IDF": app["idf_ver"],
            "Minimal eFuse block revision": _rev(app["min_efuse_blk_rev_full"]),
            "Maximal eFuse block revision": _rev(app["max_efuse_blk_rev_full"]),
            **(
                {"MMU page size": f"{app['mmu_page_size'] // 1024} KB"}
                if app["mmu_page_size"]
                else {}
            ),
            "Secure version": str(app["secure_version"]),
        }
    boot = ours["bootloader_desc"]
    if boot is not None and expect_bootloader_desc:
        assert theirs["bootloader"] == {
            "Bootloader version": str(boot["version"]),
            "ESP-IDF": boot["idf_ver"],
            "Compile time": boot["date_time"],
        }
    return ours


def _save(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- images our builders make ---------------------------------------------------------------


@pytest.mark.parametrize("chip", ["esp32s3", "esp32p4", "esp32c3"])
def test_esptool_agrees_on_our_app_images(tmp_path: Path, chip: str) -> None:
    data = build_app_image(get_chip(chip), version="3.2.1", project_name="oracle", secure_version=4)
    ours = assert_agree(_save(tmp_path, "app.bin", data))
    assert ours["checksum"]["valid"] and ours["validation_hash"]["valid"]
    assert ours["app_desc"]["secure_version"] == 4


def test_esptool_agrees_on_our_app_without_hash(tmp_path: Path) -> None:
    data = build_app_image(get_chip("esp32s3"), hash_appended=False, min_chip_rev_full=2)
    assert_agree(_save(tmp_path, "app.bin", data))


def test_esptool_agrees_on_our_s3_bootloader(tmp_path: Path) -> None:
    data = build_bootloader_image(get_chip("esp32s3"), version=5)
    ours = assert_agree(_save(tmp_path, "bootloader.bin", data))
    assert ours["bootloader_desc"]["version"] == 5


def test_esptool_agrees_on_our_p4_bootloader(tmp_path: Path) -> None:
    # esptool takes the bootloader descriptor from the *last* DRAM segment; on the P4
    # IRAM and DRAM share addresses, so it misses the descriptor ESP-IDF reads at 0x20.
    data = build_bootloader_image(get_chip("esp32p4"), version=5)
    ours = assert_agree(_save(tmp_path, "bootloader.bin", data), expect_bootloader_desc=False)
    assert ours["bootloader_desc"]["version"] == 5


def test_esptool_agrees_on_corrupted_checksum_and_hash(tmp_path: Path) -> None:
    data = bytearray(build_app_image(get_chip("esp32s3")))
    data[0x20 + 400] ^= 0x10
    ours = assert_agree(_save(tmp_path, "bad.bin", bytes(data)))
    assert not ours["checksum"]["valid"]
    assert not ours["validation_hash"]["valid"]


def test_esptool_agrees_on_image_followed_by_signature_sector(tmp_path: Path) -> None:
    app = build_app_image(get_chip("esp32s3"))
    padded = app + b"\xff" * (-len(app) % 4096)
    signed = padded + b"\xe7\x02" + bytes(1214) + b"\xff" * (4096 - 1216)
    ours = assert_agree(_save(tmp_path, "signed.bin", signed))
    assert ours["signature_sector"] == {"present": True, "offset": len(padded), "length": 4096}


# -- images esptool makes ------------------------------------------------------------------


def _logical_segments(data: bytes) -> list[Segment]:
    """Our image's segments with padding dropped and split pieces joined again."""
    segs = sorted((s for s in parse_image(data).segments if s.load_addr), key=lambda s: s.load_addr)
    joined: list[Segment] = []
    for seg in segs:
        if joined and joined[-1].load_addr + len(joined[-1].data) == seg.load_addr:
            joined[-1] = Segment(joined[-1].load_addr, joined[-1].data + seg.data)
        else:
            joined.append(seg)
    return joined


def _section_name(chip: Chip, seg: Segment) -> str:
    types = memory_types(chip, seg.load_addr)
    if seg.data[:4] == struct.pack("<I", 0xABCD5432):
        return ".flash.rodata"
    if "IROM" in types:
        return ".flash.text"
    return ".dram0.data" if "DRAM" in types and "IRAM" not in types else ".iram0.text"


@pytest.mark.parametrize("chip_name", ["esp32s3", "esp32c3"])
@pytest.mark.parametrize("code_size", [4096, 300_000])
def test_our_app_layout_is_byte_identical_to_elf2image(
    tmp_path: Path, chip_name: str, code_size: int
) -> None:
    chip = get_chip(chip_name)
    ours = build_app_image(chip, code_size=code_size)
    image = parse_image(ours)
    sections = [(_section_name(chip, s), s.load_addr, s.data) for s in _logical_segments(ours)]
    elf = make_elf(MACHINE[chip_name], image.header.entry_addr, sections)
    theirs = elf2image(tmp_path, chip_name, elf, "--max-rev-full", str(chip.rev_max_full))
    assert theirs == ours


def _app_elf(chip: Chip, desc: AppDesc) -> bytes:
    """A small app ELF laid out like an ESP-IDF one (descriptor with a zero ELF SHA)."""
    assert chip.load_addresses is not None
    la = chip.load_addresses
    text = hashlib.shake_256(b"text").digest(0x1800)
    sections = [
        (".flash.appdesc", la.drom + 0x10020, desc.to_bytes()),
        (".flash.rodata", la.drom + 0x10120, hashlib.shake_256(b"ro").digest(0x300)),
        (".flash.text", la.irom + 0x20, text),
        (".dram0.data", la.dram, hashlib.shake_256(b"data").digest(0x140)),
        (".iram0.text", la.iram, hashlib.shake_256(b"iram").digest(0x420)),
    ]
    return make_elf(MACHINE[chip.name], la.iram + 0x10, sections)


DESC = AppDesc(
    secure_version=2,
    version="esptool-made",
    project_name="elf2image",
    time="01:02:03",
    date="Feb  2 2025",
    idf_ver="v5.5.1",
    min_efuse_blk_rev_full=0,
    max_efuse_blk_rev_full=99,
    mmu_page_size=16,
)


@pytest.mark.parametrize("chip_name", ["esp32s3", "esp32p4"])
def test_agree_on_esptool_made_app(tmp_path: Path, chip_name: str) -> None:
    chip = get_chip(chip_name)
    elf = _app_elf(chip, DESC)
    data = elf2image(tmp_path, chip_name, elf, "--min-rev-full", "1", "--max-rev-full", "199")
    ours = assert_agree(_save(tmp_path, "app.bin", data))
    assert ours["app_desc"]["app_elf_sha256"] == hashlib.sha256(elf).hexdigest()
    assert ours["app_desc"]["project_name"] == "elf2image"
    assert ours["checksum"]["valid"] and ours["validation_hash"]["valid"]


@pytest.mark.parametrize(
    "options",
    [
        ("--dont-append-digest",),
        ("--secure-pad-v2",),
        ("--pad-to-size", "64KB"),
    ],
)
def test_agree_on_esptool_made_app_variants(tmp_path: Path, options: tuple[str, ...]) -> None:
    chip = get_chip("esp32s3")
    data = elf2image(tmp_path, "esp32s3", _app_elf(chip, DESC), *options)
    ours = assert_agree(_save(tmp_path, "app.bin", data))
    image = parse_image(data)
    if "--secure-pad-v2" in options:
        assert (image.image_length) % 0x10000 == 0  # sector goes on the next 64 KiB
        assert ours["segments"][-1]["memory_types"] == ["PADDING"]
    if "--pad-to-size" in options:
        assert len(data) % 0x10000 == 0
        assert ours["trailer_length"] == len(data) - image.image_length
        assert set(image.trailer) == {0xFF}


@pytest.mark.parametrize("chip_name", ["esp32s3", "esp32p4"])
def test_agree_on_esptool_made_bootloader(tmp_path: Path, chip_name: str) -> None:
    chip = get_chip(chip_name)
    assert chip.load_addresses is not None
    la = chip.load_addresses
    desc = BootloaderDesc(version=9, idf_ver="v5.5.1", date_time="Feb  2 2025 01:02:03")
    sections = [
        (".iram_loader.text", la.bootloader_iram, hashlib.shake_256(b"l").digest(0x800)),
        (".dram0.bootdesc", la.bootloader_dram, desc.to_bytes()),
        (".dram0.data", la.bootloader_dram + 0x50, hashlib.shake_256(b"d").digest(0x200)),
        (".iram.text", la.bootloader_iram + 0x3000, hashlib.shake_256(b"t").digest(0x1000)),
    ]
    elf = make_elf(MACHINE[chip_name], la.bootloader_iram + 0x3010, sections)
    data = elf2image(tmp_path, chip_name, elf)
    ours = assert_agree(
        _save(tmp_path, "bootloader.bin", data), expect_bootloader_desc=chip_name != "esp32p4"
    )
    assert ours["bootloader_desc"]["version"] == 9


@pytest.mark.parametrize("chip_name", ["esp32s3", "esp32p4", "esp32c3", "esp32c6", "esp32h2"])
def test_chip_memory_maps_and_flash_codes_match_esptool(chip_name: str) -> None:
    from esptool.targets import CHIP_DEFS

    rom = CHIP_DEFS[chip_name]
    chip = get_chip(chip_name)
    assert [(r.start, r.end, r.name) for r in chip.memory_map] == [tuple(r) for r in rom.MEMORY_MAP]
    assert dict(chip.flash_freqs) == rom.FLASH_FREQUENCY
    assert chip.image_chip_id == rom.IMAGE_CHIP_ID
