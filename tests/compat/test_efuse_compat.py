"""espefuse (PyPI esptool) and espsec take turns on one virtual eFuse file.

espefuse runs in-process through its public API (``espefuse.init_commands``, the same
code its CLI runs) to keep the suite fast; two tests run the real ``espefuse`` command.
After every step ``espefuse summary --format json`` and ``espsec.efuse.summary`` must
agree on every field, and a file written only by espefuse must hold the same block and
error registers as one written only by espsec. Random burn sequences, accepted and
refused alike, are compared in ``test_efuse_differential.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from espefuse import init_commands

from espsec import efuse

from .conftest import run_tool

#: espefuse's derived read-only fields (computed from two table fields; not in the table).
CALCULATED = {
    "WAFER_VERSION_MINOR",
    "WAFER_VERSION_MAJOR",
    "PSRAM_CAPACITY",
    "RECOVERY_BOOTLOADER_FLASH_SECTOR",  # P4 v3: six table fields put together
}
COMPARED = ("value", "raw_value", "readable", "writeable", "block", "word", "pos")

K_XTS = bytes(range(1, 33))
K_HMAC = bytes(range(40, 72))
K_512 = bytes(range(100, 164))
P384_PEM = (
    Path(__file__).parents[1]
    / "vectors/esp-idf/components/esp_hal_security/test_apps/crypto/main/ecdsa"
    / "ecdsa384_priv_key.pem"
)
"""ESP-IDF's ECDSA HAL test key (P-384), for the P4 v3 layout's two-block purpose."""


class _Text(io.StringIO):
    name = "<summary>"

    def close(self) -> None:  # espefuse closes the file it was given
        pass


def espefuse(chip: str, path: Path, action: Callable[[Any], object] | None) -> None:
    """Run one espefuse command in-process on the virtual file ``path``."""
    with contextlib.redirect_stdout(io.StringIO()):
        cmds = init_commands(chip=chip, virt=True, virt_efuse_file=str(path), do_not_confirm=True)
        if action is not None:
            action(cmds)


def espefuse_summary(chip: str, path: Path) -> dict[str, dict[str, Any]]:
    out = _Text()
    espefuse(chip, path, lambda c: c.summary(format="json", file=out))
    return json.loads(out.getvalue())


def assert_same_fields(theirs: dict[str, dict[str, Any]], ours: dict[str, dict[str, Any]]) -> None:
    for name, t in theirs.items():
        if name in CALCULATED:
            continue
        o = ours[name]
        if name == "BLOCK_USR_DATA":
            # espefuse widens USER_DATA to the whole block (256 bits); the table says 192.
            assert t["raw_value"][: len(o["raw_value"])] == o["raw_value"]
            continue
        for key in (*COMPARED, "efuse_type", "bit_len"):
            assert t[key] == o[key], f"{name}.{key}: espefuse {t[key]!r}, espsec {o[key]!r}"


def espsec_view(chip: str, path: Path) -> dict[str, dict[str, Any]]:
    side = efuse.sidecar_path(path)
    return efuse.summary(efuse.load(path, None if side.exists() else chip), all_fields=True)


def registers(path: Path, layout: efuse.EfuseLayout) -> bytes:
    """Block read registers and error registers (what both tools own)."""
    regs = path.read_bytes()[::-1]
    out = b"".join(regs[b.offset : b.offset + 4 * b.words] for b in layout.blocks)
    errs = sorted(
        {*layout.repeat_error_regs, *(b.rs_error.reg for b in layout.blocks if b.rs_error)}
    )
    return out + b"".join(regs[r : r + 4] for r in errs)


def _espsec_step(fn: Callable[[efuse.Efuses], object]) -> Callable[[str, Path], None]:
    def step(chip: str, path: Path) -> None:
        side = efuse.sidecar_path(path)
        e = efuse.load(path, None if side.exists() else chip)
        fn(e)
        efuse.save(e, path)

    return step


def _espefuse_step(fn: Callable[[Any], object]) -> Callable[[str, Path], None]:
    return lambda chip, path: espefuse(chip, path, fn)


def scenario(
    chip: str, pub_pem: Path, revision: int = 0
) -> list[tuple[Callable[[str, Path], None], ...]]:
    """Each step as (espefuse way, espsec way); the same burns either way (ESP32-P4 v3.0+:
    an ECDSA-P384 key over two blocks where the others burn XTS_AES_256_KEY, and the
    v3-only eFuses)."""
    pem = pub_pem.read_bytes()
    v3 = efuse.layout_for(chip, revision).has_field("SECURE_BOOT_SHA384_EN")
    p384, v3_fields = _v3_steps() if v3 else (None, None)

    def digest_cmd(blk: str, slot: int) -> Callable[[Any], object]:
        return lambda c: c.burn_key_digest([blk], [io.BytesIO(pem)], [f"SECURE_BOOT_DIGEST{slot}"])

    from espsec import secure_boot

    digest = secure_boot.key_digest(secure_boot.load_public_key(pem))
    return [
        (
            _espefuse_step(
                lambda c: c.burn_key(["BLOCK_KEY0"], [io.BytesIO(K_XTS)], ["XTS_AES_128_KEY"])
            ),
            _espsec_step(lambda e: efuse.burn_key(e, "BLOCK_KEY0", K_XTS, "XTS_AES_128_KEY")),
        ),
        (
            _espefuse_step(
                lambda c: c.burn_key(
                    ["BLOCK_KEY1"], [io.BytesIO(K_HMAC)], ["HMAC_DOWN_JTAG"], no_read_protect=True
                )
            ),
            _espsec_step(
                lambda e: efuse.burn_key(
                    e, "BLOCK_KEY1", K_HMAC, "HMAC_DOWN_JTAG", read_protect=False
                )
            ),
        ),
        (
            _espefuse_step(digest_cmd("BLOCK_KEY2", 0)),
            _espsec_step(
                lambda e: efuse.burn_key_digest(e, "BLOCK_KEY2", digest, "SECURE_BOOT_DIGEST0")
            ),
        ),
        (
            _espefuse_step(
                lambda c: c.burn_efuse(
                    {"SPI_BOOT_CRYPT_CNT": "1", "SOFT_DIS_JTAG": "1", "SECURE_VERSION": "7"}
                )
            ),
            _espsec_step(
                lambda e: efuse.burn(
                    e, {"SPI_BOOT_CRYPT_CNT": 1, "SOFT_DIS_JTAG": 1, "SECURE_VERSION": 7}
                )
            ),
        ),
        p384
        or (
            _espefuse_step(
                lambda c: c.burn_key(["BLOCK_KEY3"], [io.BytesIO(K_512)], ["XTS_AES_256_KEY"])
            ),
            _espsec_step(lambda e: efuse.burn_key(e, "BLOCK_KEY3", K_512, "XTS_AES_256_KEY")),
        ),
        (
            _espefuse_step(
                lambda c: c.burn_efuse(
                    {
                        "CUSTOM_MAC": bytes.fromhex("60554433221b"),
                        "SECURE_BOOT_EN": "1",
                        "SECURE_BOOT_KEY_REVOKE2": "1",
                    }
                )
            ),
            _espsec_step(
                lambda e: efuse.burn(
                    e,
                    {
                        "CUSTOM_MAC": bytes.fromhex("60554433221b"),
                        "SECURE_BOOT_EN": 1,
                        "SECURE_BOOT_KEY_REVOKE2": 1,
                    },
                )
            ),
        ),
        (
            _espefuse_step(lambda c: c.read_protect_efuse(["BLOCK_KEY1"])),
            _espsec_step(lambda e: efuse.read_protect(e, ["BLOCK_KEY1"])),
        ),
        (
            _espefuse_step(lambda c: c.write_protect_efuse(["DIS_DOWNLOAD_MODE", "RD_DIS"])),
            _espsec_step(lambda e: efuse.write_protect(e, ["DIS_DOWNLOAD_MODE", "RD_DIS"])),
        ),
        (
            _espefuse_step(lambda c: c.burn_efuse({"SPI_BOOT_CRYPT_CNT": "3"})),
            _espsec_step(lambda e: efuse.burn(e, {"SPI_BOOT_CRYPT_CNT": 3})),
        ),
        *([v3_fields] if v3_fields else []),
    ]


_Step = tuple[Callable[[str, Path], None], Callable[[str, Path], None]]


def _v3_steps() -> tuple[_Step, _Step]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = P384_PEM.read_bytes()
    key = serialization.load_pem_private_key(pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    scalar = key.private_numbers().private_value.to_bytes(48, "big")
    return (
        (
            _espefuse_step(
                lambda c: c.burn_key(["BLOCK_KEY3"], [io.BytesIO(pem)], ["ECDSA_KEY_P384"])
            ),
            _espsec_step(lambda e: efuse.burn_key(e, "BLOCK_KEY3", scalar, "ECDSA_KEY_P384")),
        ),
        (
            _espefuse_step(
                lambda c: c.burn_efuse({"SECURE_BOOT_SHA384_EN": "1", "XTS_DPA_PSEUDO_LEVEL": "2"})
            ),
            _espsec_step(
                lambda e: efuse.burn(e, {"SECURE_BOOT_SHA384_EN": 1, "XTS_DPA_PSEUDO_LEVEL": 2})
            ),
        ),
    )


@pytest.mark.parametrize(
    "chip,pub,revision",
    [("esp32s3", "rsa3072", 0), ("esp32p4", "ecdsa256", 0), ("esp32p4", "ecdsa384", 301)],
)
def test_alternating_burns_agree_field_by_field(chip, pub, revision, tmp_path, sb_key_dir):
    steps = scenario(chip, sb_key_dir / f"{pub}.pub.pem", revision)
    alternating, only_espefuse, only_espsec = (tmp_path / n for n in ("alt", "ef", "es"))
    efuse.create(only_espsec, chip, revision or None)
    if revision:  # espefuse has no way to make a chip of another revision: start from ours
        for path in (alternating, only_espefuse):
            path.write_bytes(only_espsec.read_bytes())
    layout = efuse.layout_for(chip, revision)
    for i, (by_espefuse, by_espsec) in enumerate(steps):
        (by_espefuse if i % 2 == 0 else by_espsec)(chip, alternating)
        by_espefuse(chip, only_espefuse)
        by_espsec(chip, only_espsec)
        expected = registers(only_espefuse, layout)
        assert registers(alternating, layout) == expected, f"step {i}"
        assert registers(only_espsec, layout) == expected, f"step {i}"
        if i == len(steps) // 2:
            assert_same_fields(espefuse_summary(chip, alternating), espsec_view(chip, alternating))
    assert_same_fields(espefuse_summary(chip, alternating), espsec_view(chip, alternating))
    assert_same_fields(espefuse_summary(chip, only_espsec), espsec_view(chip, only_espsec))
    # The hardware view keeps what espsec burned and read-protected itself.
    e = efuse.load(only_espsec)
    assert e.hardware_block("BLOCK_KEY0") == K_XTS[::-1]
    assert e.hardware_block("BLOCK_KEY1") == K_HMAC
    state = efuse.security_state(e)
    assert state.secure_boot_enabled and not state.flash_encryption_enabled
    assert state.jtag.mode == "soft-disabled" and state.secure_version == 3
    assert e.layout.table == layout.table
    if revision:
        purposes = [e.layout.purpose_name(e.key_purpose(b)) for b in e.layout.key_blocks]
        assert purposes[3:5] == ["ECDSA_KEY_P384_H", "ECDSA_KEY_P384_L"]
        assert e.get_int("SECURE_BOOT_SHA384_EN") == 1


@pytest.mark.parametrize("chip", ["esp32s3", "esp32p4"])
def test_espefuse_reads_the_error_bits_of_a_damaged_block(chip, tmp_path):
    path = tmp_path / "e.bin"
    e = efuse.new(chip)
    efuse.burn_key(e, "BLOCK_KEY2", K_HMAC, "HMAC_UP", read_protect=False)
    efuse.burn(e, {"CUSTOM_MAC": bytes.fromhex("60554433221b")})
    e.inject_fault("BLOCK_KEY2", [0, 40, 80])
    e.inject_fault("BLOCK3", [8 * i for i in range(9)])
    e.inject_fault(0, [e.field("SECURE_BOOT_EN").start])
    efuse.save(e, path)
    seen: dict[str, Any] = {}

    def look(c: Any) -> None:
        seen["key2"] = c.efuses.get_block_errors(6)
        seen["usr"] = c.efuses.get_block_errors(3)
        seen["sb"] = c.efuses["SECURE_BOOT_EN"].fail
        seen["sv"] = c.efuses["SECURE_VERSION"].fail

    espefuse(chip, path, look)
    assert seen["key2"] == (3, False)
    assert seen["usr"][1] is True
    assert seen["sb"] is True and seen["sv"] is False
    ours = efuse.summary(efuse.load(path))
    assert ours["SECURE_BOOT_EN"]["errors"] and ours["BLOCK_KEY2"]["errors"]
    assert "FAIL:True" in ours["CUSTOM_MAC"]["value"]


def test_espefuse_cli_reads_our_cli_burns(tmp_path):
    """The real commands, both ways, on one file."""
    path = tmp_path / "efuse.bin"
    key = tmp_path / "key.bin"
    key.write_bytes(K_XTS)

    def ours(*args: object) -> str:
        return run_tool("espsec", "efuse", *args).stdout

    ours("new", "--chip", "esp32s3", "--efuse-file", path)
    ours("burn-key", "--efuse-file", path, "BLOCK_KEY0", key, "XTS_AES_128_KEY")
    ours("burn", "--efuse-file", path, "SPI_BOOT_CRYPT_CNT", "1")
    base = ("--chip", "esp32s3", "--virt", "--path-efuse-file", path, "--do-not-confirm")
    run_tool("espefuse", *base, "burn-efuse", "SECURE_VERSION", "3")
    out = run_tool("espefuse", *base, "summary", "--format", "json").stdout
    theirs = json.loads(out[out.index("{") :])
    assert theirs["KEY_PURPOSE_0"]["value"] == "XTS_AES_128_KEY"
    assert theirs["SPI_BOOT_CRYPT_CNT"]["value"] == "Enable"
    assert theirs["BLOCK_KEY0"]["readable"] is False
    report = json.loads(ours("summary", "--efuse-file", path, "--json"))
    assert_same_fields(theirs, report["fields"])
    assert report["security"]["secure_version"] == 2


def test_espefuse_reads_a_p4_v3_file_we_made_with_its_v3_table(tmp_path):
    """``espsec efuse new --revision v3.1``: espefuse loads its ``esp32p4_v3.0`` table for
    the file, and both tools read each other's 5-bit key purposes."""
    path = tmp_path / "efuse.bin"

    def ours(*args: object) -> str:
        return run_tool("espsec", "efuse", *args).stdout

    ours("new", "--chip", "esp32p4", "--revision", "v3.1", "--efuse-file", path)
    ours("burn-key", "--efuse-file", path, "BLOCK_KEY1", P384_PEM, "ECDSA_KEY_P384")
    # espefuse's burn-efuse checks a purpose against KEY_PURPOSE_n's 4 bits: ours burns it.
    ours("burn", "--efuse-file", path, "KEY_PURPOSE_4", "ECDSA_KEY_P192")
    base = ("--chip", "esp32p4", "--virt", "--path-efuse-file", path, "--do-not-confirm")
    run_tool("espefuse", *base, "burn-efuse", "SECURE_BOOT_SHA384_EN", "1")
    out = run_tool("espefuse", *base, "summary", "--format", "json").stdout
    assert "Loading eFuses for ESP32-P4 v3.1" in out
    theirs = json.loads(out[out.index("{") :])
    assert theirs["KEY_PURPOSE_1"]["value"] == "ECDSA_KEY_P384_H"
    assert theirs["KEY_PURPOSE_2"]["value"] == "ECDSA_KEY_P384_L"
    assert theirs["KEY_PURPOSE_4"]["value"] == "ECDSA_KEY_P192"
    assert theirs["SECURE_BOOT_SHA384_EN"]["value"] is True
    report = json.loads(ours("summary", "--efuse-file", path, "--json"))
    assert_same_fields(theirs, report["fields"])
    assert efuse.load(path).layout.table == "esp32p4_v3.0"
