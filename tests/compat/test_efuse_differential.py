"""espsec and espefuse, burn for burn, over every field of the eFuse tables.

hypothesis draws sequences of burns for ESP32-S3 and ESP32-P4: ``burn-efuse`` of every
field the table shows (values drawn against the field's current bits: the same bits,
fewer, more, others, none, too wide), ``burn-key`` with every key purpose,
``burn-key-digest``, ``write-protect-efuse`` and ``read-protect-efuse``. Each step goes
to two copies of one virtual eFuse file: espsec burns one the way ``espsec efuse``
does (:class:`espsec.efuse.BurnPlan`, refusals and all), espefuse burns the other
in-process through ``init_commands``, the API its own CLI runs (one process per step
would be far too slow). After every step both tools accepted or both refused, and
espefuse reads every field (value, readable, writeable, error flag) and every block's
error counters the same in both files. Raw bytes may differ: espefuse's emulator
leaves its program registers set after a burn.

Allowed differences, each checked where it happens (espsec is stricter on purpose):

``REFUSED_AFTER_BURN``
    espefuse judges a burn by reading it back after burning, so a request it refuses
    may already have burned bits (another pair of the same ``burn-efuse``, the new bits
    of a ``WR_DIS`` value that lacks old ones). espsec refuses before a bit changes.
    After a refused step espsec's file must be unchanged; espefuse's is put back.
``POLICY``
    a burn-plan rule refuses a request espefuse burns: a combination that bricks or
    weakens the chip (``SB_NO_DIGEST``, ``FE_NO_KEY``, ``FE_TURNED_OFF``,
    ``DL_OFF_FE_DEV``, ``KEY_READABLE_FOREVER``) or an all-zero key (``KEY_ZERO``).
    The step is then repeated with those codes allowed (``--allow``), and the tools
    must agree.
``KEY_NOT_HELD``
    ``burn-key`` / ``burn-key-digest`` whose key or purpose the block would not end up
    holding: a block already holding other data that contains every bit of the new
    key, a read-protected block (an all-zero key), or a ``KEY_PURPOSE_n`` whose bits
    already include the purpose asked for (on P4 v3.0, also one whose ``KEY_PURPOSE_n_H``
    bit is set while the purpose asked for has none). espefuse skips the bits it finds
    set and reports success; espsec refuses. The test checks espefuse's block does not
    hold the key, or the purpose, asked for.

``READ_BACK_HIDDEN``
    ``burn-efuse`` of a field together with the ``RD_DIS`` bit that hides it: espefuse
    cannot read the field back, so it reports success whatever the field holds (even a
    value lacking bits already burned). espsec refuses a value the field would not hold.
``PURPOSE_HIGH_BIT``
    from ESP32-P4 v3.0 a key purpose is ``KEY_PURPOSE_n`` (4 bits) plus
    ``KEY_PURPOSE_n_H``. ``burn-efuse KEY_PURPOSE_n V`` asks for the whole purpose, but
    espefuse burns and reads back the low 4 bits only: with ``_H`` set and ``V`` below 16
    it reports success while the purpose stays ``V + 16``. espsec refuses.

Three differences go the other way, espefuse bugs:

``WIDE_PURPOSE``
    ``burn-efuse KEY_PURPOSE_n V`` with ``V`` of 16 or more on ESP32-P4 v3.0: espefuse
    prints the new value as a 4-bit number before burning and fails there (its own
    ``save`` would split it over ``KEY_PURPOSE_n_H``); espsec burns the whole purpose.

``V3_EMULATOR_MASK``
    espefuse's ESP32-P4 emulator masks write-protected bits with the table before v3.0
    whatever the chip's revision. So a v3.0 field lying under another field's ``WR_DIS``
    bit in the old table (``DOWNLOAD_MODE_XPD_ON`` under ``WDT_DELAY_SEL``, bit 2;
    ``KEY_PURPOSE_5_H`` under ``PXA0_TIEH_SEL_2``) is not burned by the emulator: espefuse
    reports a failed burn, or (``burn-key``, which reads nothing back) a success with
    the bit missing. espsec follows the v3.0 table, a real chip's, and burns it.
``ECDSA_KEY_ALIAS``
    on ESP32-P4, purpose 1 is called both ``ECDSA_KEY_P256`` and ``ECDSA_KEY``, and
    espefuse reads it back as ``ECDSA_KEY_P256``. So ``burn-key ... ECDSA_KEY`` on a
    block already holding that key, with its purpose locked, is refused as a purpose
    change. espsec sees the same purpose and burns nothing (or only the protection
    asked for).

Two mappings, not differences: espefuse's ``BLOCK_USR_DATA`` is the whole 32-byte block
where ESP-IDF's table (and espsec) name its first 24 bytes, so espefuse is given those
24 bytes plus the 8 the block already holds; and no ``WAFER_VERSION_MAJOR`` bit of an
ESP32-P4 is burned, since at v3.0 both tools switch to another table (v3.0 is tested as
a chip of its own). ``PINNED`` keeps every disagreement this test found, as fixed
sequences.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import esptool
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from espefuse import init_commands
from espefuse.efuse.base_fields import CheckArgValue
from espefuse.efuse.bitstring import BitStream
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from espsec import efuse
from espsec.efuse import (
    BurnField,
    BurnKey,
    BurnKeyDigest,
    BurnPlan,
    Operation,
    ReadProtect,
    WriteProtect,
)
from espsec.errors import EspsecError

from .conftest import run_tool

pytestmark = pytest.mark.compat

POLICY = frozenset(
    {"SB_NO_DIGEST", "FE_NO_KEY", "FE_TURNED_OFF", "DL_OFF_FE_DEV", "KEY_READABLE_FOREVER"}
    | {"KEY_ZERO"}
)
"""Plan rules that refuse what espefuse burns (``POLICY`` in the module docstring)."""

K_A = bytes.fromhex("8a5b0c3d19e2f74611aa05c8d9e03b7f6c2e4a8b1d0f93e75a6c8e0b2d4f6a81")
K_B = bytes.fromhex("1f3e5d7c9bbad8f7e6c5b4a3928170615243342516071829a0b1c2d3e4f50617")
RAW_KEYS = (
    K_A,
    K_B,
    bytes(a & b for a, b in zip(K_A, K_B, strict=True)),  # a subset of both
    bytes(a | b for a, b in zip(K_A, K_B, strict=True)),  # a superset of both
    bytes(32),
    K_A + K_B,  # 512 bits: XTS_AES_256_KEY
    K_A[:16],  # no key purpose takes 16 bytes
)
STEPS = 10
EXAMPLES = 100
"""Per chip: ~10 s, and enough to find the SECURE_VERSION 7 -> 4 bug on every chip."""


def _ecdsa(curve: ec.EllipticCurve, value: int) -> tuple[bytes, bytes]:
    """(the scalar espsec burns, the PEM espefuse reads) of a fixed ECDSA key."""
    key = ec.derive_private_key(value, curve)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    size = (curve.key_size + 7) // 8
    return value.to_bytes(size, "big"), pem


ECDSA_KEYS = (
    _ecdsa(ec.SECP256R1(), int.from_bytes(K_A, "big") >> 8),
    _ecdsa(ec.SECP192R1(), int.from_bytes(K_B[:24], "big") >> 8),
    _ecdsa(ec.SECP384R1(), int.from_bytes(K_A + K_B[:16], "big") >> 8),
)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


# -- steps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyGroup:
    """One ``BLOCK KEYFILE PURPOSE`` group of ``burn-key`` / ``burn-key-digest``."""

    block: str
    purpose: str
    key: bytes
    """What espsec burns (an ECDSA key's scalar)."""
    key_file: bytes
    """What espefuse reads (an ECDSA key's PEM)."""


@dataclass(frozen=True)
class Step:
    """One command, as both tools take it."""

    kind: str
    """``burn``, ``key``, ``digest``, ``write-protect`` or ``read-protect``."""
    pairs: tuple[tuple[str, int | bytes | None], ...] = ()
    keys: tuple[KeyGroup, ...] = ()
    names: tuple[str, ...] = ()
    write_protect: bool = True
    read_protect: bool = True

    def operations(self) -> list[Operation]:
        wp, rp = self.write_protect, self.read_protect
        if self.kind == "burn":
            return [BurnField(n, v) for n, v in self.pairs]
        if self.kind == "key":
            return [BurnKey(g.block, g.key, g.purpose, wp, rp) for g in self.keys]
        if self.kind == "digest":
            return [BurnKeyDigest(g.block, g.key, g.purpose, wp) for g in self.keys]
        if self.kind == "write-protect":
            return [WriteProtect(n) for n in self.names]
        return [ReadProtect(n) for n in self.names]

    def __repr__(self) -> str:
        return "; ".join(op.describe() for op in self.operations())


V3_SWITCH = {"esp32p4": ("WAFER_VERSION_MAJOR_HI", "WAFER_VERSION_MAJOR_LO")}
"""Not burned: at wafer version 3.0 both tools read the chip with another table (the
test runs v3.0 as a chip of its own)."""

SECURITY_FIELDS = (
    "WR_DIS",
    "RD_DIS",
    "SPI_BOOT_CRYPT_CNT",
    "SECURE_VERSION",
    "SECURE_BOOT_",
    "KEY_PURPOSE_",
    "BLOCK_KEY",
    "DIS_DOWNLOAD_",
    "ENABLE_SECURITY_DOWNLOAD",
    "DIS_USB_",
    "SOFT_DIS_JTAG",
    "DIS_PAD_JTAG",
    "CUSTOM_MAC",
    "BLOCK_USR_DATA",
)
"""Prefixes of the fields drawn half of the time (the rest: any field)."""


def _field_values(f: efuse.FieldDef, current: int) -> st.SearchStrategy[int | bytes | None]:
    """Values for ``burn-efuse``, most of them chosen against the bits already burned."""
    if f.kind == "bool":
        return st.one_of(st.just(1), st.sampled_from([None, 0, 2]))
    top = (1 << f.length) - 1
    ints = st.integers(0, top)
    values = st.one_of(
        st.just(current),  # the same bits: nothing to burn
        ints.map(lambda m: current & m),  # fewer bits: unreachable unless the same
        ints.map(lambda m: current | m),  # more bits
        ints.map(lambda m: current | (m & -m)),  # one more bit
        ints,  # anything
    )
    if f.kind == "bytes":
        return values.map(lambda v: v.to_bytes(f.length // 8, "little"))
    return st.one_of(values, st.sampled_from([None, 0, 1, top, top + 1, -1]))


@st.composite
def _step(draw: st.DrawFn, chip: efuse.Efuses) -> Step:
    """One step, drawn against the chip's current state."""
    layout = chip.layout
    fields = [f for f in layout.fields if f.visible and f.name not in V3_SWITCH.get(chip.chip, ())]
    hot = [f for f in fields if f.name.startswith(SECURITY_FIELDS)]
    burned = [f for f in fields if chip.get_int(f)]  # a second burn is where rules bite
    field = st.one_of(*(st.sampled_from(group) for group in (burned, hot, fields) if group))
    kind = draw(st.sampled_from(["burn", "burn", "key", "digest", "protect"]))
    if kind == "burn":
        chosen = draw(st.lists(field, min_size=1, max_size=2, unique_by=lambda f: f.name))
        pairs = tuple((f.name, draw(_field_values(f, chip.get_int(f)))) for f in chosen)
        return Step("burn", pairs=pairs)
    if kind == "protect":
        if draw(st.booleans()):
            names = st.lists(field, min_size=1, max_size=2, unique_by=lambda f: f.name)
            return Step("write-protect", names=tuple(f.name for f in draw(names)))
        protectable = [f.name for f in fields if f.rd_dis is not None]
        names = st.lists(
            st.sampled_from(protectable + [f.name for f in hot[:3]]),
            min_size=1,
            max_size=2,
            unique=True,
        )
        return Step("read-protect", names=tuple(draw(names)))
    blocks = [b.name for b in layout.key_blocks]
    first = draw(st.sampled_from(blocks))
    after = blocks[(blocks.index(first) + 1) % len(blocks)]  # where a second half goes
    groups = [first, *draw(st.lists(st.sampled_from([after, first, *blocks]), max_size=1))]
    wp, rp = draw(st.booleans()), draw(st.booleans())
    if kind == "digest":
        digests = [p.name for p in layout.purposes if p.digest]
        keys = []
        for block in groups:
            digest = draw(st.sampled_from(RAW_KEYS[:5]))
            keys.append(KeyGroup(block, draw(st.sampled_from(digests)), digest, digest))
        return Step("digest", keys=tuple(keys), write_protect=wp)
    purposes = st.one_of(
        st.sampled_from([p.name for p in layout.purposes if p.virtual]),  # two blocks
        st.sampled_from([p.name for p in layout.purposes]),
    )
    keys = []
    for block in groups:
        purpose = draw(purposes)
        if purpose.startswith("ECDSA_KEY") and not purpose.endswith(("_L", "_H")):
            key, key_file = draw(st.sampled_from(ECDSA_KEYS))
        else:
            size = 64 if layout.purpose(purpose).virtual else 32
            fitting = st.sampled_from([k for k in RAW_KEYS if len(k) == size])
            key = key_file = draw(st.one_of(fitting, st.sampled_from(RAW_KEYS)))
        keys.append(KeyGroup(block, purpose, key, key_file))
    return Step("key", keys=tuple(keys), write_protect=wp, read_protect=rp)


# -- espefuse ---------------------------------------------------------------------------


class Espefuse:
    """espefuse's ``EspEfuses`` over an in-memory virtual eFuse file.

    Building one takes ~0.2 s (it parses the chip's YAML table), so each test builds two
    and loads file contents into them. espefuse picks the table from the wafer revision
    of the file it starts on (``first``): ESP32-P4 from v3.0 on has its own.
    """

    def __init__(self, chip: str, first: bytes, tmp: Path) -> None:
        path = tmp / f"{chip}-{id(self)}.bin"
        path.write_bytes(first)
        with _quiet():
            self.cmds = init_commands(
                chip=chip, virt=True, virt_efuse_file=str(path), do_not_confirm=True
            )
        self.efuses = self.cmds.efuses
        self.efuses._esp.efuse_file = None  # from now on in memory only
        self.last_error: str | None = None
        for group in self.efuses._get_lazy_efuse_groups():
            self.efuses[group[0].name]  # loads calibration fields, as naming one does

    def discard(self) -> None:
        """Drop what a refused command staged but did not burn."""
        self.efuses.batch_mode_cnt = 0
        for block in self.efuses.blocks:
            block.wr_bitarray.set(0)

    def load(self, data: bytes) -> None:
        """Point the emulator at ``data`` (a virtual eFuse file) and read it again."""
        ef = self.efuses
        ef._esp.mem = BitStream(bytes=data, length=len(data) * 8)
        self.discard()
        with _quiet():
            ef.read_coding_scheme()
            ef.read_blocks()
            ef.get_coding_scheme_warnings(silent=True)
            ef.update_efuses()

    def data(self) -> bytes:
        return bytes(self.efuses._esp.mem.bytes)

    def view(self) -> dict[str, Any]:
        """Every field and block as espefuse reads them."""
        ef = self.efuses
        rd_dis, wr_dis = ef["RD_DIS"].get_raw(), ef["WR_DIS"].get_raw()
        out: dict[str, Any] = {  # is_readable/is_writeable, without a name lookup each
            e.name: (
                e.get_bitstring().uint,
                e.read_disable_bit is None or not rd_dis & e.get_read_disable_mask(),
                e.write_disable_bit is None or not wr_dis >> e.write_disable_bit & 1,
                e.fail,
            )
            for e in ef.efuses
            if not e.is_field_calculated()
        }
        for block in ef.blocks:
            out[f"errors:{block.name}"] = ef.get_block_errors(block.id)
        return out

    def block_value(self, block: str) -> tuple[int, bool]:
        e = self.efuses[block]
        return e.get_bitstring().uint, e.is_readable()

    def run(self, step: Step) -> str | None:
        """Apply ``step`` as espefuse's CLI would; the error text when it refuses."""
        self.last_error = self._run(step)
        return self.last_error

    def _run(self, step: Step) -> str | None:
        c = self.cmds
        try:
            with _quiet():
                if step.kind == "burn":
                    c.burn_efuse({n: self._value(n, v) for n, v in step.pairs})
                elif step.kind == "key":
                    c.burn_key(
                        [g.block for g in step.keys],
                        [io.BytesIO(g.key_file) for g in step.keys],
                        [g.purpose for g in step.keys],
                        no_write_protect=not step.write_protect,
                        no_read_protect=not step.read_protect,
                    )
                elif step.kind == "digest":
                    c.burn_key(
                        [g.block for g in step.keys],
                        [None for _ in step.keys],
                        [g.purpose for g in step.keys],
                        no_write_protect=not step.write_protect,
                        digest=[g.key_file for g in step.keys],
                    )
                elif step.kind == "write-protect":
                    c.write_protect_efuse(list(step.names))
                else:
                    c.read_protect_efuse(list(step.names))
        except esptool.FatalError as exc:
            return str(exc)
        except SystemExit as exc:
            return f"exit {exc.code}"
        except AssertionError as exc:  # ECDSA_KEY_P384 given another curve's key
            return f"espefuse crashed: {exc}"
        return None

    def _value(self, name: str, value: int | bytes | None) -> Any:
        """What espefuse's CLI makes of ``NAME VALUE`` (CheckArgValue)."""
        e = self.efuses[name]
        if isinstance(value, bytes):
            if name == "BLOCK_USR_DATA" and len(value) * 8 < e.bit_len:
                # espefuse's BLOCK_USR_DATA is the whole block; ESP-IDF's table (and
                # espsec) name only its first 24 bytes. The rest stays as burned.
                value += e.get_bitstring().bytes[::-1][len(value) :]
            return CheckArgValue.check_arg_value(e, value)
        try:
            return CheckArgValue(self.efuses, name)(None if value is None else str(value))
        except AttributeError:  # KEY_PURPOSE_n without a value: espefuse's CLI crashes
            raise esptool.FatalError(f"{name} needs a value") from None


# -- espsec -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    refused: bool
    message: str = ""
    codes: frozenset[str] = frozenset()
    """Plan findings that refused it (empty: the OTP rules did)."""


def espsec_apply(chip: efuse.Efuses, step: Step, allow: frozenset[str] = frozenset()) -> Outcome:
    """What ``espsec efuse burn/burn-key/...`` does: stage, check the plan, burn."""
    try:
        report = BurnPlan(step.operations(), allow=allow).check(chip, strict=True)
    except EspsecError as exc:
        return Outcome(True, str(exc))
    codes = frozenset(f.code for f in report.findings if f.severity == "refuse" and not f.allowed)
    if codes:
        return Outcome(True, f"plan refused: {sorted(codes)}", codes)
    assert report.staged is not None
    report.staged.commit(chip)
    return Outcome(False)


# -- the test ---------------------------------------------------------------------------


class Differential:
    """Both tools on one chip: :meth:`step` applies a step to both and compares."""

    def __init__(self, chip: str, revision: int | None, tmp: Path) -> None:
        self.chip, self.revision = chip, revision
        first = efuse.new(chip, revision).to_file_bytes()
        self.theirs, self.reader = Espefuse(chip, first, tmp), Espefuse(chip, first, tmp)
        self.reset()

    def reset(self) -> None:
        """Both files back to a fresh chip (every bit 0 but the wafer revision's)."""
        self.ours = efuse.new(self.chip, self.revision)
        self.theirs.load(self.ours.to_file_bytes())
        self.log: list[str] = []

    def step(self, step: Step) -> str:
        """Apply ``step`` to both files; how it went: ``accepted``, ``refused`` or the
        name of the allowed difference (module docstring). Fails on any other."""
        self.log.append(repr(step))
        where = "\n  ".join(self.log)
        theirs, before = self.theirs, self.ours.copy()
        snapshot = theirs.data()
        held = {g.block: theirs.block_value(g.block) for g in step.keys}
        their_error = theirs.run(step)
        outcome = espsec_apply(self.ours, step)
        result = "refused" if outcome.refused else "accepted"
        if outcome.codes and their_error is None:
            assert outcome.codes <= POLICY, f"{outcome.message}\n  {where}"
            outcome = espsec_apply(self.ours, step, allow=outcome.codes)
            result = "POLICY"
        if outcome.refused:
            assert self.ours == before, f"espsec refused and changed the chip\n  {where}"
        if outcome.refused != (their_error is not None):
            who = (
                f"espsec refused ({outcome.message}), espefuse burned"
                if outcome.refused
                else f"espefuse refused ({(their_error or '').strip()}), espsec burned"
            )
            allowed = self._allowed_difference(step, before, held)
            assert allowed, f"{who}\n  {where}"
            result, self.ours = allowed, before  # go on from the state before the step
        elif their_error is not None and theirs.data() != snapshot:
            result = "REFUSED_AFTER_BURN"
        if result not in ("accepted", "POLICY"):
            if theirs.data() == snapshot:
                theirs.discard()
            else:
                theirs.load(snapshot)
        diff = self._differences()
        if diff and _emulator_masked(before, [k for k in diff if ":" not in k]):
            result, self.ours = "V3_EMULATOR_MASK", before
            theirs.load(snapshot)
            diff = self._differences()
        assert not diff, f"espefuse reads the files differently: {diff}\n  {where}"
        return result

    def _differences(self) -> dict[str, Any]:
        """What espefuse reads differently in espsec's file and in its own."""
        self.reader.load(self.ours.to_file_bytes())
        mine, ref = self.reader.view(), self.theirs.view()
        return {k: (ref[k], mine.get(k)) for k in ref if ref[k] != mine.get(k)}

    def _allowed_difference(
        self, step: Step, before: efuse.Efuses, held: dict[str, tuple[int, bool]]
    ) -> str | None:
        """The allowed difference that explains a step one tool accepted and the other
        refused; ``None`` when none does."""
        theirs, layout = self.theirs, before.layout
        if step.kind == "burn" and theirs.last_error is not None:
            for name, value in step.pairs:
                block = layout.block_of_purpose_field(name)
                low = layout.field(name).length
                if block and block.purpose_field_high and isinstance(value, int) and value >> low:
                    return "WIDE_PURPOSE"
            if _emulator_masked(before, [name for name, _ in step.pairs]):
                return "V3_EMULATOR_MASK"
        if step.kind == "burn" and theirs.last_error is None:
            for name, _ in step.pairs:
                if before.is_readable(name) and not theirs.efuses[name].is_readable():
                    return "READ_BACK_HIDDEN"
            for name, value in step.pairs:
                block = layout.block_of_purpose_field(name)
                if block is None or block.purpose_field_high is None:
                    continue
                parts = layout.purpose_parts(block)
                if sum(theirs.efuses[f.name].get_raw() << at for f, at in parts) != value:
                    return "PURPOSE_HIGH_BIT"
        for group in step.keys:
            block = layout.block(group.block)
            parts = layout.purpose_parts(block)  # KEY_PURPOSE_n (and _H from P4 v3.0 on)
            purpose = layout.purpose(group.purpose)
            if purpose.virtual:
                purpose = layout.purpose(purpose.name + ("_1" if purpose.is_xts else "_H"))
            if theirs.last_error is None:  # espefuse burned, espsec refused
                value, readable = held[group.block]
                now, still_readable = theirs.block_value(block.name)
                # espefuse never adds bits to a non-empty RS block: what it held, it
                # holds (and may now hide, if the step read-protected it).
                key_kept = (value or not readable) and (now == value or not still_readable)
                now_purpose = sum(theirs.efuses[f.name].get_raw() << at for f, at in parts)
                if key_kept or now_purpose != purpose.id:
                    return "KEY_NOT_HELD"
            elif (
                group.purpose == "ECDSA_KEY"
                and before.key_purpose(block) == purpose.id
                and not before.key_purpose_writeable(block)
            ):
                return "ECDSA_KEY_ALIAS"
        return None


def _emulator_masked(before: efuse.Efuses, names: list[str]) -> bool:
    """Every field of ``names`` lies, in the table espefuse's emulator masks with (the
    chip's first), under a set ``WR_DIS`` bit, though it is writeable in the chip's own
    table (``V3_EMULATOR_MASK``)."""
    layout, wr_dis = before.layout, before.get_int("WR_DIS")
    emulated = efuse.layout_for(layout.name)
    if not names or emulated.source == layout.source:
        return False
    for name in names:
        f = layout.field(name)
        under = {g.wr_dis for g in emulated.fields_in(f.block) if g.mask & f.mask} - {None}
        if not before.is_writeable(f) or not any(wr_dis >> b & 1 for b in under):
            return False
    return True


CHIPS = [("esp32s3", None), ("esp32p4", None), ("esp32p4", 300)]
"""Every eFuse layout: ESP32-S3, ESP32-P4 before v3.0 and from v3.0 on."""


@pytest.fixture(
    scope="module",
    params=CHIPS,
    ids=lambda c: c[0] + (f"-v{c[1] // 100}.{c[1] % 100}" if c[1] else ""),
)
def both(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Differential:
    chip, revision = request.param
    return Differential(chip, revision, tmp_path_factory.mktemp("espefuse"))


@pytest.mark.slow
def test_espsec_and_espefuse_accept_and_refuse_the_same_burns(both: Differential) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the step log says it all
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def run(data: st.DataObject) -> None:
        both.reset()
        for _ in range(data.draw(st.integers(1, STEPS))):
            both.step(data.draw(_step(both.ours)))

    run()


# -- the disagreements found, pinned ------------------------------------------------------


def burn(*pairs: tuple[str, int | bytes | None]) -> Step:
    return Step("burn", pairs=pairs)


def key(block: str, data: bytes, purpose: str, **flags: bool) -> Step:
    return Step("key", keys=(KeyGroup(block, purpose, data, data),), **flags)


K_AB = RAW_KEYS[3]

PINNED = {
    "the issue: SECURE_VERSION 7 then 4": (
        [burn(("SECURE_VERSION", 7)), burn(("SECURE_VERSION", 4))],
        ["accepted", "refused"],
    ),
    "the same value again is a no-op": (
        [burn(("SECURE_VERSION", 7)), burn(("SECURE_VERSION", 7))],
        ["accepted", "accepted"],
    ),
    "counter 0 while none is burned, then after one is": (
        [
            burn(("SPI_BOOT_CRYPT_CNT", 0)),
            burn(("SPI_BOOT_CRYPT_CNT", 1)),
            burn(("SPI_BOOT_CRYPT_CNT", 0)),
        ],
        ["accepted", "POLICY", "refused"],
    ),
    "WR_DIS lacking a burned bit": (
        [
            burn(("WR_DIS", 0x10)),
            burn(("WR_DIS", 0x20)),
            burn(("WR_DIS", 0x30)),
            burn(("WR_DIS", 0)),
        ],
        ["accepted", "REFUSED_AFTER_BURN", "accepted", "refused"],
    ),
    "one pair of a burn-efuse unreachable": (
        [burn(("SECURE_VERSION", 3)), burn(("DIS_PAD_JTAG", 1), ("SECURE_VERSION", 1))],
        ["accepted", "REFUSED_AFTER_BURN"],
    ),
    "write-protected field": (
        [
            Step("write-protect", names=("DIS_DOWNLOAD_MODE",)),
            burn(("SECURE_VERSION", 1)),
            burn(("SECURE_VERSION", 0)),
        ],
        ["accepted", "refused", "accepted"],
    ),
    "the factory MAC": ([burn(("MAC", bytes(6)))], ["refused"]),
    "a key whose bits the block already holds": (
        [
            key("BLOCK_KEY1", K_AB, "HMAC_UP", read_protect=False),
            key("BLOCK_KEY1", K_A, "HMAC_UP", read_protect=False),
            key("BLOCK_KEY1", K_AB, "HMAC_UP"),
        ],
        ["accepted", "KEY_NOT_HELD", "accepted"],
    ),
    "a purpose whose bits KEY_PURPOSE_n already holds": (
        [burn(("KEY_PURPOSE_0", 5)), key("BLOCK_KEY0", K_A, "XTS_AES_128_KEY")],
        ["accepted", "KEY_NOT_HELD"],
    ),
    "a 512-bit key's second half skips the blocks the command names": (
        [
            Step(
                "key",
                keys=(
                    KeyGroup("BLOCK_KEY0", "XTS_AES_256_KEY", K_A + K_B, K_A + K_B),
                    KeyGroup("BLOCK_KEY1", "HMAC_UP", K_B, K_B),
                ),
            )
        ],
        ["accepted"],
    ),
    "XTS_AES_256_KEY twice in one command": (
        [
            Step(
                "key",
                keys=(
                    KeyGroup("BLOCK_KEY0", "XTS_AES_256_KEY", K_A + K_B, K_A + K_B),
                    KeyGroup("BLOCK_KEY3", "XTS_AES_256_KEY", K_B + K_A, K_B + K_A),
                ),
            )
        ],
        ["refused"],
    ),
    "a value the same burn read-protects": (
        [
            key("BLOCK_KEY1", K_A, "SECURE_BOOT_DIGEST0"),
            burn(("RD_DIS", 0b10), ("BLOCK_KEY1", bytes(32))),
        ],
        ["accepted", "READ_BACK_HIDDEN"],
    ),
    "a zero key, and then into a read-protected block": (
        [key("BLOCK_KEY2", bytes(32), "HMAC_UP"), key("BLOCK_KEY2", bytes(32), "HMAC_UP")],
        ["POLICY", "KEY_NOT_HELD"],
    ),
}


@pytest.mark.parametrize("case", list(PINNED))
def test_pinned_burns_agree_with_espefuse(both: Differential, case: str) -> None:
    steps, expected = PINNED[case]
    both.reset()
    assert [both.step(s) for s in steps] == expected


def test_espefuse_misnames_a_locked_ecdsa_key_purpose(tmp_path: Path) -> None:
    both = Differential("esp32p4", None, tmp_path)
    group = KeyGroup("BLOCK_KEY0", "ECDSA_KEY", *ECDSA_KEYS[0])
    again = Step("key", keys=(group,), read_protect=False)
    assert [both.step(again), both.step(again)] == ["accepted", "ECDSA_KEY_ALIAS"]


@pytest.mark.slow
@pytest.mark.parametrize("chip", ["esp32s3", "esp32p4"])
def test_both_clis_refuse_secure_version_7_then_4(chip: str, tmp_path: Path) -> None:
    """The commands of the bug report, each tool's own command line."""
    ours, theirs = tmp_path / "ours.bin", tmp_path / "theirs.bin"
    efuse.create(ours, chip)  # espsec efuse new
    run_tool("espsec", "efuse", "burn", "--efuse-file", ours, "SECURE_VERSION", "7")
    theirs.write_bytes(ours.read_bytes())
    before = ours.read_bytes()
    refused = run_tool(
        "espsec", "efuse", "burn", "--efuse-file", ours, "SECURE_VERSION", "4", check=False
    )
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("error: SECURE_VERSION is 0x7: cannot burn 0x4 (")
    assert refused.stderr.count("\n") == 1 and ours.read_bytes() == before
    virt = ("--chip", chip, "--virt", "--path-efuse-file", theirs, "--do-not-confirm")
    espefuse = run_tool("espefuse", *virt, "burn-efuse", "SECURE_VERSION", "4", check=False)
    assert espefuse.returncode != 0 and "SECURE_VERSION failed to burn" in espefuse.stdout


def test_pinned_burns_of_esp32p4_v3_agree_with_espefuse(tmp_path: Path) -> None:
    """5-bit key purposes (``KEY_PURPOSE_n`` + ``_H``) and 512-bit keys of both kinds."""
    both = Differential("esp32p4", 300, tmp_path)
    assert [both.step(burn(("KEY_PURPOSE_0_H", None)))] == ["refused"]  # needs a value
    assert [both.step(burn(("KEY_PURPOSE_0_H", 1))), both.step(burn(("KEY_PURPOSE_0", 2)))] == [
        "accepted",
        "PURPOSE_HIGH_BIT",
    ]
    assert both.step(burn(("KEY_PURPOSE_1", 16))) == "WIDE_PURPOSE"
    both.reset()
    xpd = [both.step(burn(("WR_DIS", 4))), both.step(burn(("DOWNLOAD_MODE_XPD_ON", 1)))]
    assert xpd == ["accepted", "V3_EMULATOR_MASK"]
    both.reset()
    scalar, pem = ECDSA_KEYS[2]
    two = Step(
        "key",
        keys=(
            KeyGroup("BLOCK_KEY5", "ECDSA_KEY_P384", scalar, pem),
            KeyGroup("BLOCK_KEY0", "XTS_AES_256_KEY", K_A + K_B, K_A + K_B),
        ),
    )
    assert both.step(two) == "accepted"  # XTS takes BLOCK_KEY1 first, P-384 BLOCK_KEY2
    assert [both.ours.key_purpose(n) for n in range(4, 10)] == [2, 3, 17, 0, 0, 18]
