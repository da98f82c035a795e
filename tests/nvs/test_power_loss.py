"""Power-loss safety: a cut after any flash write leaves every key at its old or new value.

Each update of a series is recorded as the flash operations it performs; the flash a cut
after the k-th of them leaves behind is the flash before the update with the first k
operations applied. Every such image is reopened and checked, for every k of every
update (the series makes the store garbage-collect several times).

The flash is the NOR model the virtual device runs on, which ANDs a program into what
is stored as the chip does. The recorder also reads every program back, as ESP-IDF's
NVS host tests do with their strict emulator (``components/nvs_flash/test_nvs_host/
spi_flash_emulation.h``): NVS must never need a bit to go 0 -> 1 without an erase.
"""

from __future__ import annotations

import random

import pytest

from espsec.flash import FaultPlan, NorFlash, PowerCut, WriteCounter
from espsec.nvs import (
    DataRow,
    NamespaceRow,
    NvsError,
    NvsKeys,
    NvsStore,
    ValueType,
    generate_partition,
)
from espsec.nvs.runtime import errors

KEYS = [f"k{i}" for i in range(5)]
FRESH = {  # a value of each type no update of the series uses
    ValueType.STRING: (ValueType.STRING, "fresh"),
    ValueType.BLOB: (ValueType.BLOB, b"\xee\xdd" * 2100),
}
FREEING = b"\xf8\xff\xff\xff"  # a page header state word marking garbage collection


class RecordingFlash(NorFlash):
    """NOR flash that logs each write and erase it performs and verifies each write."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.log: list[tuple[str, int, bytes]] = []

    def write(self, offset: int, data: bytes, *, what: str = "") -> None:
        super().write(offset, data, what=what)
        assert self.read(offset, len(data)) == data, f"NVS set 0 bits to 1 at 0x{offset:x}"
        self.log.append(("write", offset, bytes(data)))

    def erase_sector(self, offset: int, *, what: str = "") -> None:
        super().erase_sector(offset, what=what)
        self.log.append(("erase", offset, b""))


def apply(image: bytearray, op: tuple[str, int, bytes]) -> None:
    """What the chip does for a recorded operation: AND a program in, erase to 0xFF."""
    kind, offset, data = op
    if kind == "write":
        old = image[offset : offset + len(data)]
        image[offset : offset + len(data)] = bytes(a & b for a, b in zip(old, data, strict=True))
    else:
        image[offset : offset + 4096] = b"\xff" * 4096


def updates(seed: int, count: int, max_blob: int = 5000):
    rng = random.Random(seed)
    for _ in range(count):
        key = rng.choice(KEYS)
        pick = rng.random()
        if pick < 0.1:
            yield ("erase", key, None, None)
        elif pick < 0.45:
            yield ("set", key, ValueType.U32, rng.getrandbits(32))
        elif pick < 0.7:
            yield ("set", key, ValueType.STRING, "s" * rng.randrange(0, 300))
        else:
            # Some payload entries start with 0xFFFFFFFF, like erased flash.
            pattern = rng.choice([rng.randbytes(1), b"\xff" * 4 + rng.randbytes(1) * 28])
            size = rng.randrange(0, max_blob)
            yield ("set", key, ValueType.BLOB, (pattern * (size // len(pattern) + 1))[:size])


def perform(handle, update) -> bool:
    kind, key, vtype, value = update
    try:
        if kind == "erase":
            handle.erase_key(key)
        else:
            handle.set(key, vtype, value)
    except NvsError as exc:
        if exc.code in (errors.NOT_FOUND, errors.NOT_ENOUGH_SPACE):
            return False
        raise
    return True


def read_all(store: NvsStore) -> dict[str, tuple[ValueType, object]]:
    handle = store.open("ns")
    found = {}
    for key in KEYS:
        vtype = handle.find_key(key)
        if vtype is not None:
            found[key] = (vtype, handle.get(key, vtype))
    return found


def check_every_cut(initial: bytes, series, keys: NvsKeys | None = None, *, recheck=2):
    """Run ``series`` on ``initial``; reopen after a cut at every flash operation."""
    flash = RecordingFlash(initial)
    handle = NvsStore.init(flash, keys=keys).open("ns")
    state = read_all(NvsStore.init(NorFlash(flash.snapshot()), keys=keys))
    cuts = collections = 0
    for update in series:
        before_image = bytearray(flash.snapshot())
        flash.log.clear()
        changed = perform(handle, update)
        after = dict(state)
        if update[0] == "erase":
            after.pop(update[1], None)
        elif changed:
            after[update[1]] = (update[2], update[3])
        image = before_image
        for k, op in enumerate(flash.log):
            # Power was cut before operation k (operations 0..k-1 reached flash).
            got = read_all(NvsStore.init(NorFlash(bytes(image)), keys=keys))
            assert got in (state, after), f"cut before op {k} of {update[:2]}"
            if cuts % recheck == 0:
                # The store stays usable: a later update of the same key wins, for good.
                rebooted = NorFlash(bytes(image))
                again = NvsStore.init(rebooted, keys=keys).open("ns")
                fresh = FRESH.get(update[2], (ValueType.U32, 0xC0FFEE))
                stored = perform(again, ("set", update[1], *fresh))
                expected = {**got, update[1]: fresh} if stored else got
                assert read_all(NvsStore.init(rebooted, keys=keys)) == expected
            cuts += 1
            apply(image, op)
        assert bytes(image) == flash.snapshot()
        collections += sum(op == ("write", op[1], FREEING) for op in flash.log)
        state = after
    assert read_all(NvsStore.init(NorFlash(flash.snapshot()), keys=keys)) == state
    return cuts, collections


@pytest.mark.slow
def test_every_cut_of_a_series_of_updates_keeps_old_or_new_values():
    cuts, collections = check_every_cut(b"\xff" * 0x5000, updates(1, 120))
    assert cuts > 1000 and collections > 10


@pytest.mark.slow
def test_every_cut_with_garbage_collection_on_a_small_partition():
    cuts, collections = check_every_cut(b"\xff" * 0x3000, updates(2, 150, max_blob=2500))
    assert cuts > 1000 and collections > 10


@pytest.mark.slow
def test_every_cut_of_an_encrypted_store():
    keys = NvsKeys.generate()
    _, collections = check_every_cut(b"\xff" * 0x4000, updates(3, 40, max_blob=4500), keys)
    assert collections > 3


def test_every_cut_while_updating_a_generator_made_version_1_partition():
    rows = [NamespaceRow("ns")] + [
        DataRow(key, ValueType.BLOB, bytes([i]) * 1000) for i, key in enumerate(KEYS)
    ]
    initial = generate_partition(rows, 0x5000, version=1)
    check_every_cut(initial, updates(4, 30))


def test_recording_matches_a_real_power_cut():
    """The recorded-operations shortcut gives the same flash as cutting power for real."""
    series = list(updates(5, 6))
    flash = RecordingFlash(b"\xff" * 0x4000)
    handle = NvsStore.init(flash).open("ns")
    for update in series:
        perform(handle, update)
    total = len(flash.log)
    for cut in range(0, total, max(total // 25, 1)):
        real = NorFlash(0x4000, WriteCounter(FaultPlan(cut)))
        with pytest.raises(PowerCut):
            h = NvsStore.init(real).open("ns")
            for update in series:
                perform(h, update)
        image = bytearray(b"\xff" * 0x4000)
        for op in flash.log[:cut]:
            apply(image, op)
        assert real.snapshot() == bytes(image)


def test_a_second_cut_during_recovery_is_also_safe():
    flash = RecordingFlash(b"\xff" * 0x3000)
    handle = NvsStore.init(flash).open("ns")
    for update in updates(6, 30, max_blob=2500):
        perform(handle, update)
    before = read_all(NvsStore.init(NorFlash(flash.snapshot())))
    image = bytearray(flash.snapshot())
    flash.log.clear()
    handle.set_blob("k0", b"\x42" * 3000)  # forces garbage collection here
    after = {**before, "k0": (ValueType.BLOB, b"\x42" * 3000)}
    for k, op in enumerate(flash.log):
        # Reopen the cut image, and cut power again at every step of that recovery.
        probe = RecordingFlash(bytes(image))
        NvsStore.init(probe)
        recovery = probe.log[:]
        for j in range(len(recovery) + 1):
            again = bytearray(image)
            for step in recovery[:j]:
                apply(again, step)
            assert read_all(NvsStore.init(NorFlash(bytes(again)))) in (before, after), (k, j)
        apply(image, op)
