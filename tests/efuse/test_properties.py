"""OTP properties over random operation sequences (hypothesis).

Whatever is asked, in whatever order: no bit is ever cleared (hardware view), nothing
protected changes, a refused operation changes nothing, refusals are one of our errors,
and the file round-trips.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from espsec import efuse
from espsec.efuse import (
    BurnField,
    BurnKey,
    BurnKeyDigest,
    BurnRefused,
    ReadProtect,
    Transaction,
    WriteProtect,
)
from espsec.errors import UsageError


def operations(chip: str) -> st.SearchStrategy[efuse.Operation]:
    layout = efuse.layout_for(chip)
    fields = [f for f in layout.fields if f.block == 0 or f.block == 3]
    names = [f.name for f in layout.fields] + [b.name for b in layout.blocks]
    blocks = [b.name for b in layout.key_blocks] + ["BLOCK_USR_DATA"]
    purposes = [p.name for p in layout.purposes]

    @st.composite
    def burn_field(draw: st.DrawFn) -> BurnField:
        f = draw(st.sampled_from(fields))
        if f.kind == "bytes":
            return BurnField(
                f.name, draw(st.binary(min_size=f.length // 8, max_size=f.length // 8))
            )
        value = draw(st.one_of(st.none(), st.integers(0, (1 << f.length) - 1), st.integers(0)))
        return BurnField(f.name, value)

    key = st.binary(min_size=32, max_size=32) | st.binary(min_size=64, max_size=64)
    return st.one_of(
        burn_field(),
        st.builds(
            BurnKey,
            st.sampled_from(blocks),
            key,
            st.sampled_from(purposes),
            st.booleans(),
            st.booleans(),
        ),
        st.builds(
            BurnKeyDigest,
            st.sampled_from(blocks),
            st.binary(min_size=32, max_size=32),
            st.sampled_from(purposes),
        ),
        st.builds(WriteProtect, st.sampled_from(names)),
        st.builds(ReadProtect, st.sampled_from(names)),
    )


def hardware_bits(e: efuse.Efuses) -> list[int]:
    return [int.from_bytes(e.hardware_block(b), "little") for b in e.layout.blocks]


def protected_values(e: efuse.Efuses) -> dict[str, int]:
    """Hardware value of every field that can no longer be written."""
    out = {}
    for f in e.layout.fields:
        block = e.layout.blocks[f.block]
        if not e.is_writeable(f) or e.is_write_protected(block):
            hw = int.from_bytes(e.hardware_block(block), "little")
            out[f.name] = (hw & f.mask) >> f.start
    return out


def check_sequence(chip: str, batches: list[list[efuse.Operation]]) -> None:
    e = efuse.new(chip)
    for batch in batches:
        before = e.copy()
        bits, locked = hardware_bits(e), protected_values(e)
        try:
            Transaction(batch).apply(e)
        except (UsageError, BurnRefused):
            assert e == before, "a refused burn changed the chip"
            continue
        for old, new in zip(bits, hardware_bits(e), strict=True):
            assert old & ~new == 0, "a bit went 1 -> 0"
        for name, value in locked.items():
            assert protected_values(e)[name] == value, f"protected {name} changed"
        for b in e.layout.blocks:
            if e.is_read_protected(b):
                assert e.read_block(b) == bytes(b.words * 4), f"{b.name} readable"
        again = efuse.Efuses.from_file_bytes(
            chip, e.to_file_bytes(), hardware_keys=e.hardware_keys()
        )
        assert again == e


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(operations("esp32s3"), min_size=1, max_size=3), max_size=8))
def test_otp_properties_esp32s3(batches):
    check_sequence("esp32s3", batches)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(operations("esp32p4"), min_size=1, max_size=3), max_size=8))
def test_otp_properties_esp32p4(batches):
    check_sequence("esp32p4", batches)


@settings(max_examples=40, deadline=None)
@given(st.lists(operations("esp32s3"), min_size=1, max_size=6))
def test_plans_never_raise_only_report(ops):
    """A plan check turns every bad request into a finding, never an exception."""
    e = efuse.new("esp32s3")
    report = efuse.BurnPlan(ops).check(e)
    assert e == efuse.new("esp32s3")
    if report.staged is None:
        assert report.refused
