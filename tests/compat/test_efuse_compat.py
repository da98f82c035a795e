"""espefuse (PyPI esptool) and espsec take turns on one virtual eFuse file.

espefuse runs in-process through its public API (``espefuse.init_commands``, the same
code its CLI runs) to keep the suite fast; two tests run the real ``espefuse`` command.
After every step ``espefuse summary --format json`` and ``espsec.efuse.summary`` must
agree on every field, and a file written only by espefuse must hold the same block and
error registers as one written only by espsec.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import esptool
import pytest
from espefuse import init_commands
from espefuse.efuse.base_fields import CheckArgValue
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from espsec import efuse
from espsec.efuse import BurnRefused, Transaction
from espsec.errors import UsageError

from .conftest import run_tool

#: espefuse's derived read-only fields (computed from two table fields; not in the table).
CALCULATED = {"WAFER_VERSION_MINOR", "WAFER_VERSION_MAJOR", "PSRAM_CAPACITY"}
COMPARED = ("value", "raw_value", "readable", "writeable", "block", "word", "pos")

K_XTS = bytes(range(1, 33))
K_HMAC = bytes(range(40, 72))
K_512 = bytes(range(100, 164))


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


def scenario(chip: str, pub_pem: Path) -> list[tuple[Callable[[str, Path], None], ...]]:
    """Each step as (espefuse way, espsec way); the same burns either way."""
    pem = pub_pem.read_bytes()

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
        (
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
    ]


@pytest.mark.parametrize("chip,pub", [("esp32s3", "rsa3072"), ("esp32p4", "ecdsa256")])
def test_alternating_burns_agree_field_by_field(chip, pub, tmp_path, sb_key_dir):
    steps = scenario(chip, sb_key_dir / f"{pub}.pub.pem")
    alternating, only_espefuse, only_espsec = (tmp_path / n for n in ("alt", "ef", "es"))
    efuse.create(only_espsec, chip)
    layout = efuse.layout_for(chip)
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


# -- differential: random burns, both tools, same start --------------------------------

Op = tuple[str, str, Any, str, bool, bool]
"""(kind, name or block, value or key, purpose, no_write_protect, no_read_protect)."""


def _ops(chip: str) -> st.SearchStrategy[list[Op]]:
    layout = efuse.layout_for(chip)
    skip = {"DIS_USB_SERIAL_JTAG", "BLOCK_USR_DATA"}  # espefuse: ROM-bug pair; widened field
    fields = [f for f in layout.fields if f.visible and f.block in (0, 3) and f.name not in skip]
    rd_names = [f.name for f in layout.fields if f.visible and f.rd_dis is not None]
    blocks = [b.name for b in layout.key_blocks]
    purposes = [p.name for p in layout.purposes if not p.name.startswith("ECDSA")]
    digests = [p.name for p in layout.purposes if p.digest]
    keys = st.sampled_from([K_XTS, K_HMAC, K_512, bytes(32)])

    @st.composite
    def burn(draw: st.DrawFn) -> Op:
        f = draw(st.sampled_from(fields))
        if f.kind == "bytes":
            value: Any = draw(st.binary(min_size=f.length // 8, max_size=f.length // 8))
        else:
            top = (1 << f.length) - 1
            value = draw(st.sampled_from([1, top, top + 1]) | st.integers(0, top))
        return ("burn", f.name, value, "", False, False)

    flags = st.booleans()
    return st.lists(
        st.one_of(
            burn(),
            st.tuples(
                st.just("key"),
                st.sampled_from(blocks),
                keys,
                st.sampled_from(purposes),
                flags,
                flags,
            ),
            st.tuples(
                st.just("digest"),
                st.sampled_from(blocks),
                st.just(K_HMAC),
                st.sampled_from(digests),
                flags,
                st.just(False),
            ),
            st.tuples(
                st.just("write-protect"),
                st.sampled_from([f.name for f in fields] + blocks),
                st.none(),
                st.just(""),
                st.just(False),
                st.just(False),
            ),
            st.tuples(
                st.just("read-protect"),
                st.sampled_from(rd_names),
                st.none(),
                st.just(""),
                st.just(False),
                st.just(False),
            ),
        ),
        min_size=1,
        max_size=5,
    )


def _espefuse_op(chip: str, path: Path, op: Op) -> bool:
    """True when espefuse refused (raised)."""
    kind, name, value, purpose, no_wp, no_rp = op

    def act(c: Any) -> None:
        if kind == "burn":
            arg = value if isinstance(value, bytes) else CheckArgValue(c.efuses, name)(str(value))
            c.burn_efuse({name: arg})
        elif kind == "key":
            c.burn_key([name], [io.BytesIO(value)], [purpose], no_wp, no_rp)
        elif kind == "digest":
            c.burn_key([name], [value], [purpose], no_wp, digest=[value])
        elif kind == "write-protect":
            c.write_protect_efuse([name])
        else:
            c.read_protect_efuse([name])

    try:
        espefuse(chip, path, act)
    except esptool.FatalError:
        return True
    return False


def _espsec_op(e: efuse.Efuses, op: Op) -> bool:
    kind, name, value, purpose, no_wp, no_rp = op
    tx = Transaction()
    if kind == "burn":
        tx.burn(name, value)
    elif kind == "key":
        tx.burn_key(name, value, purpose, write_protect=not no_wp, read_protect=not no_rp)
    elif kind == "digest":
        tx.burn_key_digest(name, value, purpose, write_protect=not no_wp)
    elif kind == "write-protect":
        tx.write_protect(name)
    else:
        tx.read_protect(name)
    try:
        tx.apply(e)
    except (UsageError, BurnRefused):
        return True
    return False


@pytest.mark.parametrize("chip", ["esp32s3", "esp32p4"])
def test_random_burns_have_the_same_effect_in_both_tools(chip):
    layout = efuse.layout_for(chip)

    def blocks_of(e: efuse.Efuses) -> list[bytes]:
        return [e.read_block(b) for b in layout.blocks]

    # No shrinking: every step runs espefuse, and a raw failing example is readable enough.
    @settings(
        max_examples=6,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(_ops(chip))
    def run(ops: list[Op]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "ef.bin"
            espefuse(chip, path, None)
            ours = efuse.new(chip)
            for op in ops:
                before = ours.copy()
                they_refused = _espefuse_op(chip, path, op)
                we_refused = _espsec_op(ours, op)
                theirs = efuse.Efuses.from_file_bytes(chip, path.read_bytes())
                assert blocks_of(theirs) == blocks_of(ours), op
                # espefuse also reports failure after some burns it did make (a WR_DIS
                # mask reads back with older bits); equal registers are what counts.
                if we_refused:
                    assert they_refused, f"espsec refused {op[:2]}, espefuse did not"
                    assert ours == before

    run()
