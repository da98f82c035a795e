"""The flash cipher: round trips, partial units, streaming in bounded memory, keys."""

from __future__ import annotations

import io
import os
import stat
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from espsec.chips import get_chip
from espsec.errors import KeyFormatError, OutputExistsError, UsageError
from espsec.flash_encryption import FlashCipher, FlashEncryptionKey, load_key, process_file
from espsec.flash_encryption.keys import generate_key_file

keys = st.sampled_from([16, 32, 64]).flatmap(lambda n: st.binary(min_size=n, max_size=n))
addresses = st.integers(0, (64 << 20) // 16).map(lambda a: a * 16)


@settings(max_examples=50, deadline=None)
@given(key=keys, address=addresses, blocks=st.integers(0, 100), seed=st.integers(0, 2**32 - 1))
def test_decrypt_inverts_encrypt(key: bytes, address: int, blocks: int, seed: int) -> None:
    data = np.random.default_rng(seed).bytes(16 * blocks)
    cipher = FlashCipher(key)
    encrypted = cipher.encrypt(data, address)
    assert len(encrypted) == len(data)
    assert cipher.decrypt(encrypted, address) == data
    if blocks:
        assert encrypted != data


@settings(max_examples=30, deadline=None)
@given(key=keys, unit=st.integers(0, 1 << 20), start=st.integers(0, 7), count=st.integers(1, 8))
def test_partial_unit_equals_slice_of_whole_unit(
    key: bytes, unit: int, start: int, count: int
) -> None:
    cipher = FlashCipher(key)
    base = unit * 128
    whole = os.urandom(256)
    full = cipher.encrypt(whole, base)
    a, b = start * 16, min(256, (start + count) * 16)
    assert cipher.encrypt(whole[a:b], base + a) == full[a:b]


def test_tweak_is_the_unit_address() -> None:
    # same plaintext at a different unit gives different ciphertext; same unit, same
    cipher = FlashCipher(bytes(range(32)))
    block = bytes(128)
    assert cipher.encrypt(block, 0x1000) != cipher.encrypt(block, 0x1080)
    assert cipher.encrypt(block, 0x1000) == cipher.encrypt(block, 0x1000)


@pytest.mark.parametrize(
    ("address", "length", "message"),
    [
        (0x1008, 32, "address 0x1008 is not a multiple of 16"),
        (0x1000, 33, "length 33 is not a multiple of 16"),
        (0xFFFFFFF0, 32, "4 GiB"),
        (-16, 16, "address -16 is negative"),
    ],
)
def test_rejects_unaligned_or_out_of_range(address: int, length: int, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        FlashCipher(bytes(32)).encrypt(bytes(length), address)


@pytest.mark.parametrize("address", [0x0, 0x10, 0x10070, 0x2000])
@pytest.mark.parametrize("chunk", [128, 4096, 1 << 16])
def test_stream_equals_one_shot(address: int, chunk: int) -> None:
    data = os.urandom(0x5010)
    cipher = FlashCipher(os.urandom(64))
    out = io.BytesIO()
    seen: list[int] = []
    written = cipher.process_stream(
        io.BytesIO(data), out, address, decrypt=False, chunk_size=chunk, progress=seen.append
    )
    assert written == len(data) == sum(seen)
    assert out.getvalue() == cipher.encrypt(data, address)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("address", [0x10000, 0x10030])
def test_encrypts_and_decrypts_in_place(threads: int, address: int) -> None:
    data = os.urandom(3 << 20)  # several batches, split across threads with 2
    cipher = FlashCipher(os.urandom(32), threads=threads)
    buffer = np.frombuffer(bytearray(data), dtype=np.uint8)
    cipher.process_into(buffer, address, buffer, decrypt=False)
    assert buffer.tobytes() == cipher.encrypt(data, address)
    cipher.process_into(buffer, address, buffer, decrypt=True)
    assert buffer.tobytes() == data


class _Zeros(io.RawIOBase):
    """A large input stream that holds no data in memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


class _Sink(io.RawIOBase):
    def __init__(self) -> None:
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        n = len(memoryview(data))  # type: ignore[arg-type]
        self.count += n
        return n


def test_streaming_memory_is_bounded_by_the_chunk_not_the_input() -> None:
    chunk = 1 << 20
    size = 48 << 20
    cipher = FlashCipher(os.urandom(32), threads=2)
    sink = _Sink()
    tracemalloc.start()
    try:
        cipher.process_stream(_Zeros(size), sink, 0x10000, decrypt=False, chunk_size=chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.count == size
    assert peak < 16 * chunk, f"peak {peak} bytes for {size} bytes of input"


class _FailingSink(io.RawIOBase):
    """Accepts ``ok`` writes, then fails every later one with ENOSPC (a full disk)."""

    def __init__(self, ok: int) -> None:
        self.ok = ok
        self.chunks: list[bytes] = []
        self.attempts = 0

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        self.attempts += 1
        if len(self.chunks) >= self.ok:
            raise OSError(28, "No space left on device")
        chunk = bytes(memoryview(data))  # type: ignore[arg-type]
        self.chunks.append(chunk)
        return len(chunk)


def test_stream_stops_at_a_failed_write_and_reports_it() -> None:
    chunk = 4096
    data = os.urandom(20 * chunk)
    cipher = FlashCipher(os.urandom(32))
    sink = _FailingSink(ok=2)
    with pytest.raises(OSError, match="No space left"):
        cipher.process_stream(io.BytesIO(data), sink, 0x10000, decrypt=False, chunk_size=chunk)
    # nothing after the failed write is written (or even tried): no chunk out of order
    assert sink.attempts == 3
    assert b"".join(sink.chunks) == cipher.encrypt(data[: 2 * chunk], 0x10000)


class _FailingSource(io.RawIOBase):
    """Gives ``ok`` bytes of zeros, then fails with EIO (a bad disk)."""

    def __init__(self, ok: int) -> None:
        self.left = ok

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.left == 0:
            raise OSError(5, "Input/output error")
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def test_stream_reports_a_failed_read() -> None:
    sink = _Sink()
    with pytest.raises(OSError, match="Input/output error"):
        FlashCipher(os.urandom(32)).process_stream(
            _FailingSource(3 * 4096), sink, 0x10000, decrypt=False, chunk_size=4096
        )
    assert sink.count <= 3 * 4096


class _EndsOnce(io.RawIOBase):
    """A terminal-like input: once a read has returned nothing, reading again fails
    (a terminal would wait for more input)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        assert not self.ended, "read again after the end of the input"
        n = min(len(buffer), len(self.data))
        buffer[:n] = self.data[:n]
        self.data = self.data[n:]
        self.ended = n == 0
        return n


@pytest.mark.parametrize("size", [16, 4096, 4096 + 16, 3 * 4096, 3 * 4096 + 48])
def test_stream_reads_no_further_than_the_end_of_its_input(size: int) -> None:
    data = os.urandom(size)
    cipher = FlashCipher(os.urandom(32))
    out = io.BytesIO()
    written = cipher.process_stream(_EndsOnce(data), out, 0x10000, decrypt=False, chunk_size=4096)
    assert written == size
    assert out.getvalue() == cipher.encrypt(data, 0x10000)


def test_process_file_writes_nothing_on_error(tmp_path: Path) -> None:
    key = FlashEncryptionKey(os.urandom(32))
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(100))  # not a multiple of 16
    out = tmp_path / "out.bin"
    with pytest.raises(UsageError, match="multiple of 16"):
        process_file(key, src, out, 0x10000)
    with pytest.raises(UsageError, match="multiple of 16"):
        process_file(key, src, out, 0x10008)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.bin"]


def test_process_file_refuses_to_write_over_its_input(tmp_path: Path) -> None:
    key = FlashEncryptionKey(os.urandom(32))
    data = os.urandom(0x100)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    (tmp_path / "alias.bin").hardlink_to(src)
    for target in (src, tmp_path / "alias.bin"):
        with pytest.raises(OutputExistsError, match="input"):
            process_file(key, src, target, 0x10000)
    assert src.read_bytes() == data


def test_process_file_round_trip(tmp_path: Path) -> None:
    key = FlashEncryptionKey(os.urandom(64))
    data = os.urandom(0x3000)
    (tmp_path / "in.bin").write_bytes(data)
    process_file(key, tmp_path / "in.bin", tmp_path / "enc.bin", 0x20000, chunk_size=1024)
    process_file(key, tmp_path / "enc.bin", tmp_path / "dec.bin", 0x20000, decrypt=True)
    assert (tmp_path / "enc.bin").read_bytes() == FlashCipher(key).encrypt(data, 0x20000)
    assert (tmp_path / "dec.bin").read_bytes() == data


# ---------------------------------------------------------------------------- keys


@pytest.mark.parametrize("size", [0, 15, 24, 31, 48, 65])
def test_key_of_wrong_size_is_one_clear_error(size: int, tmp_path: Path) -> None:
    path = tmp_path / "k.bin"
    path.write_bytes(b"\x5a" * size)
    with pytest.raises(KeyFormatError) as info:
        load_key(path)
    assert f"found {size} bytes" in str(info.value)
    assert str(path) in str(info.value)


def test_key_material_never_in_repr() -> None:
    key = FlashEncryptionKey(bytes.fromhex("ab" * 32))
    assert "ab" * 4 not in repr(key)
    assert "abab" not in repr(FlashCipher(key))


def test_key_modes() -> None:
    assert FlashEncryptionKey(bytes(32)).mode == "AES-128-XTS"
    assert FlashEncryptionKey(bytes(64)).mode == "AES-256-XTS"
    derived = FlashEncryptionKey(bytes(16))
    assert derived.mode == "AES-128-XTS"
    assert derived.xts_key == bytes.fromhex(
        "374708fff7719dd5979ec875d56cd2286f6d3cf7ec317a3b25632aab28ec37bb"
    )  # SHA-256 of 16 zero bytes


@pytest.mark.parametrize("bits", [256, 512])
def test_generated_key_file_is_private_and_never_overwritten(bits: int, tmp_path: Path) -> None:
    path = tmp_path / "fe.bin"
    key = generate_key_file(path, bits)
    assert path.read_bytes() == key.material and key.bits == bits
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(OutputExistsError):
        generate_key_file(path, bits)
    assert path.read_bytes() == key.material
    assert FlashEncryptionKey.generate(bits) != key  # fresh entropy


def test_chip_key_sizes_come_from_the_chip_catalogue() -> None:
    FlashEncryptionKey(bytes(64)).check_chip(get_chip("esp32s3"))
    FlashEncryptionKey(bytes(32)).check_chip(get_chip("esp32p4"))
    with pytest.raises(KeyFormatError, match="512-bit"):
        FlashEncryptionKey(bytes(64)).check_chip(get_chip("esp32c3"))
