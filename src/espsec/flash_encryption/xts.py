"""Vectorised XTS-AES (IEEE 1619-2007) over many data units at once.

Standard XTS, no Espressif specifics: each data unit of ``unit_size`` bytes has its own
16-byte tweak; the tweak is encrypted with the tweak key (second half of the key), and
block ``j`` of the unit is masked with ``E(K2, tweak) * alpha^j`` in GF(2^128) (the
little-endian convention of IEEE 1619). Units are whole multiples of 16 bytes, so there
is no ciphertext stealing.

Work is done in batches (256 KiB) with buffers that are allocated once and reused:
per batch one AES-ECB call encrypts every tweak, one computes every data block, and the
masks, XORs and byte reversals are NumPy operations on 64-bit words. Large inputs are
split across threads (OpenSSL and NumPy both release the GIL) on machines with cores to
spare (:func:`default_threads`).

:class:`XtsEngine` also offers the *unit-reversed* variant the ESP32 flash cipher uses:
``out = reverse(XTS(reverse(unit)))`` with each whole unit byte-reversed in and out.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from espsec.errors import UsageError

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    import numpy.typing as npt

__all__ = ["XtsEngine", "tweaks_from_le32", "xts_decrypt", "xts_encrypt"]

BLOCK = 16
#: Bytes of data processed per batch: big enough to amortise NumPy call overhead,
#: small enough for a batch's working set (about 4.5x the batch) to stay in the CPU's
#: L2 cache; measured (``bench/flash_encryption.py``) 256 to 512 KiB are fastest, and a
#: smaller batch also costs less to set up for the short reads of a boot.
BATCH_BYTES = 256 << 10
#: Inputs smaller than this per thread are not worth handing to another thread.
MIN_BYTES_PER_THREAD = 1 << 20

_U64 = np.dtype("<u8")
_U64_BE = np.dtype(">u8")
# 16-byte elements used only to move whole blocks around bit-exactly (never as numbers).
_BLOCK = np.dtype("V16")
#: Masks are built in chunks of this many block positions (``E(K2, tweak) * alpha^j``,
#: j < 8): what the shifts carry out of a chunk's base comes from the top 7 bits of each
#: of its two words (:func:`_carry_table`).
_CHUNK = 8

# npt.NDArray's definition, without loading numpy.typing at run time
U8Array = np.ndarray[Any, np.dtype[np.uint8]]
U64Array = np.ndarray[Any, np.dtype[np.uint64]]


def xts_encrypt(key: bytes, data: bytes, tweaks: U8Array, unit_size: int) -> bytes:
    """Encrypt ``data`` (``n`` units of ``unit_size`` bytes) with XTS-AES.

    ``key`` is 32 bytes (AES-128-XTS: data key ‖ tweak key) or 64 bytes (AES-256-XTS);
    ``tweaks`` is a ``uint8`` array of shape ``(n, 16)``, one tweak per unit.
    """
    return _one_shot(key, data, tweaks, unit_size, decrypt=False)


def xts_decrypt(key: bytes, data: bytes, tweaks: U8Array, unit_size: int) -> bytes:
    """Decrypt ``data``; the inverse of :func:`xts_encrypt` with the same arguments."""
    return _one_shot(key, data, tweaks, unit_size, decrypt=True)


def tweaks_from_le32(offsets: npt.NDArray[np.integer[Any]]) -> U8Array:
    """Tweaks ``LE32(offset) ‖ 12 zero bytes`` for each offset, shape ``(n, 16)``.

    This is the tweak both flash encryption (the flash address of a 128-byte unit) and
    NVS encryption (the offset of a 32-byte entry) use.
    """
    values = np.asarray(offsets)
    if values.ndim != 1:
        raise UsageError(f"offsets must be one-dimensional, got shape {values.shape}")
    if values.size and (int(values.min()) < 0 or int(values.max()) > 0xFFFFFFFF):
        raise UsageError("tweak offsets must fit in 32 bits")
    tweaks = np.zeros((values.size, BLOCK), dtype=np.uint8)
    tweaks[:, :4] = values.astype("<u4").view(np.uint8).reshape(-1, 4)
    return tweaks


def split_xts_key(key: bytes) -> tuple[bytes, bytes]:
    """Split an XTS key into (data key, tweak key), checking its size."""
    if len(key) not in (32, 64):
        raise UsageError(
            f"XTS-AES key must be 32 bytes (AES-128-XTS) or 64 bytes (AES-256-XTS), "
            f"got {len(key)} bytes"
        )
    half = len(key) // 2
    return bytes(key[:half]), bytes(key[half:])


class XtsEngine:
    """XTS-AES for one key and unit size, with reusable buffers and worker threads.

    ``reverse_units=True`` gives the ESP32 flash-cipher variant: each unit is
    byte-reversed before and after the standard transform.
    """

    def __init__(
        self,
        key: bytes,
        unit_size: int,
        *,
        reverse_units: bool = False,
        threads: int | None = None,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        self._data_key, self._tweak_key = split_xts_key(key)
        if unit_size <= 0 or unit_size % BLOCK:
            raise UsageError(f"XTS unit size must be a positive multiple of 16, got {unit_size}")
        self.unit_size = unit_size
        self.reverse_units = reverse_units
        self.threads = max(1, threads if threads is not None else default_threads())
        self._batch_units = max(1, batch_bytes // unit_size)
        self._workspaces: list[_Workspace] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show key material
        mode = "AES-128-XTS" if len(self._data_key) == 16 else "AES-256-XTS"
        return f"XtsEngine({mode}, unit_size={self.unit_size}, reverse={self.reverse_units})"

    def process(
        self,
        src: bytes | bytearray | memoryview | U8Array,
        tweaks: U8Array,
        out: U8Array,
        *,
        decrypt: bool = False,
    ) -> None:
        """Transform ``src`` into ``out`` (a writable ``uint8`` array of the same length).

        ``tweaks`` is a ``uint8`` array of shape ``(n, 16)``, one tweak per unit. ``out``
        may be ``src`` itself (each batch is read whole before it is written).
        """
        data = _as_u8(src)
        n = check_units(data.size, tweaks, self.unit_size)
        _check_out(out, data.size)
        self._dispatch(data, out, n, tweaks, decrypt)

    def process_sequential(
        self,
        src: bytes | bytearray | memoryview | U8Array,
        out: U8Array,
        first_offset: int,
        *,
        stride: int | None = None,
        decrypt: bool = False,
    ) -> None:
        """Like :meth:`process`, with tweak ``LE32(first_offset + i * stride) ‖ 0…`` for unit i.

        ``stride`` defaults to the unit size (each unit's tweak is its own offset). The
        tweaks are made batch by batch, so no array proportional to the input is built.
        """
        data = _as_u8(src)
        if data.size % self.unit_size:
            raise UsageError(
                f"data length {data.size} is not a whole number of {self.unit_size}-byte units"
            )
        n = data.size // self.unit_size
        step = self.unit_size if stride is None else stride
        if first_offset < 0 or step < 0 or first_offset + max(n - 1, 0) * step > 0xFFFFFFFF:
            raise UsageError("tweak offsets must fit in 32 bits")
        _check_out(out, data.size)
        self._dispatch(data, out, n, _Sequential(first_offset, step), decrypt)

    def _dispatch(
        self, data: U8Array, out: U8Array, n: int, tweaks: _TweakSource, decrypt: bool
    ) -> None:
        if n == 0:
            return
        parts = min(self.threads, max(1, data.size // MIN_BYTES_PER_THREAD))
        spaces = self._take_workspaces(parts, n)
        u = self.unit_size
        try:
            bounds = [n * i // parts for i in range(parts + 1)]
            jobs = [
                (spaces[i], data[a * u : b * u], out[a * u : b * u], _slice_tweaks(tweaks, a, b))
                for i, (a, b) in enumerate(pairwise(bounds))
            ]
            futures = [
                _pool().submit(ws.run, part_in, part_out, part_tweaks, decrypt)
                for ws, part_in, part_out, part_tweaks in jobs[1:]
            ]
            ws, part_in, part_out, part_tweaks = jobs[0]
            ws.run(part_in, part_out, part_tweaks, decrypt)
            for future in futures:
                future.result()
        finally:
            self._return_workspaces(spaces)

    def _take_workspaces(self, count: int, units: int) -> list[_Workspace]:
        """``count`` workspaces whose batches fit ``units`` units split ``count`` ways."""
        want = min(self._batch_units, -(-units // count))
        with self._lock:
            fitting = [ws for ws in self._workspaces if ws.batch >= want][:count]
            for ws in fitting:
                self._workspaces.remove(ws)
        while len(fitting) < count:
            fitting.append(
                _Workspace(
                    self._data_key, self._tweak_key, self.unit_size, want, self.reverse_units
                )
            )
        return fitting

    def _return_workspaces(self, spaces: list[_Workspace]) -> None:
        with self._lock:
            self._workspaces.extend(spaces)
            # keep the largest few: enough for one call per thread
            self._workspaces.sort(key=lambda ws: ws.batch, reverse=True)
            del self._workspaces[self.threads :]


def default_threads() -> int:
    """Threads used by default: half the CPUs this process may run on (1 to 8).

    The NumPy and OpenSSL calls release the GIL, but the glue between them does not,
    and each thread needs its own cache-sized batch buffers: on two cores a second
    thread measured no faster than one (``bench/flash_encryption.py`` shows both in
    the same run), so one thread per two cores.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus // 2, 8))


def check_units(data_len: int, tweaks: U8Array, unit_size: int) -> int:
    """Validate the shapes of an XTS call; return the number of units."""
    if unit_size <= 0 or unit_size % BLOCK:
        raise UsageError(f"XTS unit size must be a positive multiple of 16, got {unit_size}")
    if data_len % unit_size:
        raise UsageError(f"data length {data_len} is not a whole number of {unit_size}-byte units")
    n = data_len // unit_size
    if not isinstance(tweaks, np.ndarray) or tweaks.dtype != np.uint8 or tweaks.shape != (n, BLOCK):
        found = f"{tweaks.dtype} {tweaks.shape}" if isinstance(tweaks, np.ndarray) else "non-array"
        raise UsageError(f"tweaks must be a uint8 array of shape ({n}, 16), got {found}")
    return n


# --------------------------------------------------------------------------- internals


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            from concurrent.futures import ThreadPoolExecutor  # only when work is split

            _POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="espsec-xts")
        return _POOL


@dataclass(frozen=True)
class _Sequential:
    """Tweaks ``LE32(first + i * stride)`` for units i = 0, 1, …"""

    first: int
    stride: int


_TweakSource = U8Array | _Sequential


def _slice_tweaks(tweaks: _TweakSource, start: int, stop: int) -> _TweakSource:
    if isinstance(tweaks, _Sequential):
        return _Sequential(tweaks.first + start * tweaks.stride, tweaks.stride)
    return tweaks[start:stop]


def _check_out(out: U8Array, size: int) -> None:
    if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != (size,):
        raise UsageError(f"output must be a writable uint8 array of {size} bytes")
    if not out.flags.writeable:
        raise UsageError("output array is read-only")


def _as_u8(src: bytes | bytearray | memoryview | U8Array) -> U8Array:
    if isinstance(src, np.ndarray):
        if src.dtype != np.uint8 or src.ndim != 1:
            raise UsageError("input array must be one-dimensional uint8")
        return src
    return np.frombuffer(src, dtype=np.uint8)


def _one_shot(key: bytes, data: bytes, tweaks: U8Array, unit_size: int, *, decrypt: bool) -> bytes:
    engine = XtsEngine(key, unit_size)
    src = _as_u8(data)
    check_units(src.size, tweaks, unit_size)
    out = np.empty(src.size, dtype=np.uint8)
    engine.process(src, tweaks, out, decrypt=decrypt)
    return out.tobytes()


@functools.cache
def _carry_table(width: int) -> npt.NDArray[np.uint16]:
    """What ``T * alpha^j`` (j < ``width`` <= 8) adds to the plain per-word shift of T.

    Multiplying a 128-bit ``T = (lo, hi)`` by ``alpha^j`` is ``(lo << j, hi << j)`` plus
    two corrections that depend only on the top ``j`` bits of each word: the bits shifted
    out of ``hi`` fold back into ``lo`` as ``x^7 + x^2 + x + 1`` (``clmul(hi >> (64 - j),
    0x87)``, at most 14 bits) and the bits shifted out of ``lo`` enter ``hi``
    (``lo >> (64 - j)``). The table holds both as 16-bit values, ``[index, j, word]``,
    for ``index = t << (width - 1) | u`` with ``t`` and ``u`` the top ``width - 1`` bits
    of ``hi`` and ``lo``.
    """
    bits = width - 1
    index = np.arange(1 << (2 * bits), dtype=np.uint16)
    t, u = index >> bits, index & ((1 << bits) - 1)
    table = np.zeros((index.size, width, 2), dtype=np.uint16)
    for j in range(1, width):
        out_of_hi, out_of_lo = t >> (bits - j), u >> (bits - j)  # j bits each
        table[:, j, 0] = out_of_hi ^ (out_of_hi << 1) ^ (out_of_hi << 2) ^ (out_of_hi << 7)
        table[:, j, 1] = out_of_lo
    table.setflags(write=False)
    return table


class _Workspace:
    """One thread's ECB contexts and scratch buffers, sized for one batch.

    Per batch of ``n`` units of ``m`` blocks, over 64-bit words and in buffers that stay
    in the CPU cache (the batch's data is read once and written once):

    * one ECB call with the tweak key encrypts every unit's tweak ``T``;
    * the masks ``T * alpha^j`` (``j < m``), in unit order ``(n, m, 2)``, take three
      passes at full size: a repeat of each ``T`` ``m`` times, a shift of repeat ``j``
      by ``j`` bits, and an XOR of the bits the shifts carry between the two words and
      fold back (gathered per unit from a table indexed by the top bits of each word,
      :func:`_carry_table`) into the low 16 bits of each word;
    * one pass reads the input into the ECB buffer and XORs the masks in, one ECB call
      (in place) covers every data block, one pass XORs the masks again and writes the
      output.

    For reversed units (the ESP32 flash cipher) the two passes over the data also
    reverse it: the whole batch is read and written back to front with every 64-bit word
    byte-swapped, which reverses every unit in place and the order of the units; the
    tweaks are made in the reversed unit order to match, so no other pass is needed.
    """

    def __init__(
        self,
        data_key: bytes,
        tweak_key: bytes,
        unit_size: int,
        batch_units: int,
        reverse: bool,
    ) -> None:
        self.unit_size = unit_size
        self.blocks = unit_size // BLOCK
        self.batch = batch_units
        self.reverse = reverse
        # XTS is built here from raw AES block operations (ECB over whole buffers).
        self._tweak_enc = Cipher(algorithms.AES(tweak_key), modes.ECB()).encryptor()  # noqa: S305
        self._data_enc = Cipher(algorithms.AES(data_key), modes.ECB()).encryptor()  # noqa: S305
        self._data_dec = Cipher(algorithms.AES(data_key), modes.ECB()).decryptor()  # noqa: S305
        b = batch_units
        chunk = min(self.blocks, _CHUNK)
        # update_into needs room for one block more than it writes.
        self._plain_tweaks = np.zeros(b * BLOCK + BLOCK, dtype=np.uint8)
        self._tweaks = np.empty(b * BLOCK + BLOCK, dtype=np.uint8)
        self._up = np.arange(b, dtype=np.uint32)
        self._down = self._up[::-1].copy()
        self._carries = _carry_table(chunk)
        # shift of each word of the repeated tweaks: 0, 0, 1, 1, …, chunk-1, chunk-1, …
        self._shifts = np.tile(np.repeat(np.arange(chunk, dtype=_U64), 2), b)
        # whole masks of units longer than one chunk (128 bytes) are put together here
        self._masks = np.empty((b if self.blocks > chunk else 0, self.blocks, 2), dtype=_U64)
        self._carry = np.empty((b, chunk, 2), dtype=np.uint16)
        self._index = np.empty((2, b), dtype=np.intp)  # table indices (take wants intp)
        self._work = np.empty(b * unit_size + BLOCK, dtype=np.uint8)

    def run(self, src: U8Array, out: U8Array, tweaks: _TweakSource, decrypt: bool) -> None:
        u = self.unit_size
        n = src.size // u
        for start in range(0, n, self.batch):
            stop = min(n, start + self.batch)
            self._batch(
                src[start * u : stop * u],
                out[start * u : stop * u],
                _slice_tweaks(tweaks, start, stop),
                stop - start,
                decrypt,
            )

    def _batch(
        self, src: U8Array, out: U8Array, tweaks: _TweakSource, n: int, decrypt: bool
    ) -> None:
        masks = self._compute_masks(tweaks, n).reshape(-1)
        size = n * self.unit_size
        work = self._work[:size].view(_U64)
        ecb = self._data_dec if decrypt else self._data_enc
        words_in, words_out = src.view(_U64), out.view(_U64)
        if self.reverse:
            np.bitwise_xor(words_in.view(_U64_BE)[::-1], masks, out=work)
            ecb.update_into(self._work[:size].data, self._work[: size + BLOCK].data)
            np.bitwise_xor(work, masks, out=words_out.view(_U64_BE)[::-1])
        else:
            np.bitwise_xor(words_in, masks, out=work)
            ecb.update_into(self._work[:size].data, self._work[: size + BLOCK].data)
            np.bitwise_xor(work, masks, out=words_out)

    def _compute_masks(self, tweaks: _TweakSource, n: int) -> U64Array:
        """``E(K2, tweak) * alpha^j`` for every unit and block, as ``(n, blocks, 2)`` words.

        With reversed units, row ``i`` belongs to unit ``n - 1 - i`` (see the class).
        """
        plain = self._plain_tweaks[: n * BLOCK].reshape(n, BLOCK)
        if isinstance(tweaks, _Sequential):
            offsets = plain.view("<u4")[:, 0]
            order = self._down[self.batch - n :] if self.reverse else self._up[:n]
            np.multiply(order, np.uint32(tweaks.stride), out=offsets)
            offsets += np.uint32(tweaks.first)
        else:
            np.copyto(plain, tweaks[::-1] if self.reverse else tweaks)
        self._tweak_enc.update_into(
            self._plain_tweaks[: n * BLOCK].data, self._tweaks[: n * BLOCK + BLOCK].data
        )
        base = self._tweaks[: n * BLOCK].view(_U64).reshape(n, 2)
        chunk = self._carries.shape[1]
        if self.blocks == chunk:
            return self._chunk(base)
        # longer units: chunks of 8 positions, each starting from the last of the one before
        masks = self._masks[:n]
        for first in range(0, self.blocks - 1, chunk - 1):
            part = self._chunk(base)
            count = min(chunk, self.blocks - first)
            np.copyto(masks[:, first : first + count], part[:, :count])
            base = np.ascontiguousarray(part[:, chunk - 1])
        return masks

    def _chunk(self, base: U64Array) -> U64Array:
        """``out[i, j] = base[i] * alpha^j`` for ``j < 8`` (or the unit's blocks), in a
        new ``(n, width, 2)`` array: repeat each ``base``, shift the words of repeat ``j``
        by ``j`` bits, then XOR the carries (:func:`_carry_table`) into their low 16 bits."""
        n, width = base.shape[0], self._carries.shape[1]
        bits = width - 1
        top_bytes = base.view(np.uint8).reshape(n, BLOCK)
        index, low = self._index[0, :n], self._index[1, :n]
        np.right_shift(top_bytes[:, 15], 8 - bits, out=index, casting="unsafe")
        np.left_shift(index, bits, out=index)
        np.right_shift(top_bytes[:, 7], 8 - bits, out=low, casting="unsafe")
        np.bitwise_or(index, low, out=index)
        carry = self._carry[:n]
        np.take(self._carries, index, axis=0, out=carry, mode="clip")
        words = np.repeat(base.view(_BLOCK).reshape(n), width).view(_U64)
        np.left_shift(words, self._shifts[: words.size], out=words)
        low_bits = words.view(np.uint16)[::4]
        np.bitwise_xor(low_bits, carry.reshape(-1), out=low_bits)
        return words.reshape(n, width, 2)
