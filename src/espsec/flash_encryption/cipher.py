"""The flash cipher of the XTS-AES chips (ESP32-S2/S3/C3/C6/H2/P4…), exactly.

What the chip's flash-encryption engine applies, and what
``espsecure encrypt-flash-data --aes-xts`` computes: XTS-AES over 128-byte data units,
the tweak of a unit is ``LE32(unit flash address) ‖ 12 zero bytes``, and every unit is
byte-reversed before and after the standard XTS transform.

Any 16-byte-aligned address and length works: each 16-byte block's ciphertext depends
only on its own plaintext, its unit's address and its place in the unit, so a range that
starts or ends inside a unit gives the same bytes as the whole unit would.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from espsec._io import STDIO, PathLike, declare_input, output_file
from espsec.errors import EspsecError, OutputExistsError, UsageError
from espsec.flash_encryption.keys import FlashEncryptionKey

if TYPE_CHECKING:
    # The XTS engine (and NumPy) load when a cipher first encrypts or decrypts: a device
    # whose flash is not encrypted never loads them.
    from espsec.flash_encryption.xts import U8Array, XtsEngine

UNIT = 128
"""Bytes per XTS data unit in flash encryption."""
ALIGN = 16
"""Flash-encryption addresses and lengths must be multiples of this."""
ADDRESS_LIMIT = 1 << 32
"""Tweaks hold a 32-bit flash address."""
DEFAULT_CHUNK = 1 << 20
"""Bytes per read in streaming mode (one buffer, encrypted in place): big enough that
the per-chunk calls cost nothing, small enough to stay in the CPU's L2 cache between
the read, the cipher and the write, and to be little fresh memory for a new process."""

SCRATCH_LIMIT = 64 << 20
"""Largest scratch buffer a :class:`FlashCipher` keeps between ``encrypt`` calls."""

Progress = Callable[[int], None]
"""Called with the number of bytes just processed."""


def check_range(address: int, length: int) -> None:
    """Raise :class:`UsageError` unless ``[address, address+length)`` can be encrypted."""
    if address < 0:
        raise UsageError(f"flash address {address} is negative")
    if address % ALIGN:
        raise UsageError(f"flash address 0x{address:x} is not a multiple of 16")
    if length % ALIGN:
        raise UsageError(f"data length {length} is not a multiple of 16")
    if address + length > ADDRESS_LIMIT:
        raise UsageError(
            f"data at 0x{address:x} of {length} bytes runs past the 4 GiB flash address space"
        )


class FlashCipher:
    """Encrypt and decrypt flash contents at a given flash address with one key.

    Keeps its work buffers between calls (batch buffers per thread, and a scratch
    buffer of up to :data:`SCRATCH_LIMIT` bytes for :meth:`encrypt`/:meth:`decrypt`),
    so reuse one cipher for many calls. Safe to share between threads.
    """

    def __init__(
        self,
        key: FlashEncryptionKey | bytes,
        *,
        threads: int | None = None,
        batch_bytes: int | None = None,
    ) -> None:
        self.key = key if isinstance(key, FlashEncryptionKey) else FlashEncryptionKey(key)
        self._threads = threads
        self._batch_bytes = batch_bytes
        self._xts: XtsEngine | None = None
        self._xts_lock = threading.Lock()
        # encrypt()/decrypt() work in a scratch buffer kept between calls: fresh memory
        # costs a page fault per 4 KiB, as much as the cipher itself on some machines.
        self._scratch: U8Array | None = None
        self._scratch_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FlashCipher({self.key.mode})"

    @property
    def _engine(self) -> XtsEngine:
        """The XTS engine, made on first use (``batch_bytes`` defaults to the engine's)."""
        if self._xts is None:
            from espsec.flash_encryption.xts import BATCH_BYTES, XtsEngine

            with self._xts_lock:
                if self._xts is None:
                    self._xts = XtsEngine(
                        self.key.xts_key,
                        UNIT,
                        reverse_units=True,
                        threads=self._threads,
                        batch_bytes=self._batch_bytes or BATCH_BYTES,
                    )
        return self._xts

    @property
    def mode(self) -> str:
        """``AES-128-XTS`` or ``AES-256-XTS``."""
        return self.key.mode

    def encrypt(self, data: bytes | bytearray | memoryview, address: int) -> bytes:
        """Ciphertext of ``data`` written at flash ``address``."""
        return self._bytes(data, address, decrypt=False)

    def decrypt(self, data: bytes | bytearray | memoryview, address: int) -> bytes:
        """Plaintext of ``data`` read from flash ``address``."""
        return self._bytes(data, address, decrypt=True)

    def process_into(
        self,
        data: bytes | bytearray | memoryview | U8Array,
        address: int,
        out: U8Array,
        *,
        decrypt: bool,
    ) -> None:
        """Encrypt or decrypt ``data`` into ``out`` (a ``uint8`` array of the same length;
        it may be ``data`` itself, to work in place)."""
        import numpy as np

        src = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
        if src.dtype != np.uint8 or src.ndim != 1:
            raise UsageError("input array must be one-dimensional uint8")
        length = src.size
        check_range(address, length)
        if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != (length,):
            raise UsageError(f"output must be a writable uint8 array of {length} bytes")
        pos = 0
        head = (-address) % UNIT
        if head and length:
            # starts inside a unit: pad that unit (the padding does not affect our blocks)
            pos = min(length, head)
            self._partial_unit(src[:pos], address, out[:pos], decrypt)
        whole = (length - pos) // UNIT * UNIT
        if whole:
            self._engine.process_sequential(
                src[pos : pos + whole], out[pos : pos + whole], address + pos, decrypt=decrypt
            )
            pos += whole
        if pos < length:
            self._partial_unit(src[pos:], address + pos, out[pos:], decrypt)

    def process_stream(
        self,
        src: BinaryIO,
        dst: BinaryIO,
        address: int,
        *,
        decrypt: bool,
        chunk_size: int = DEFAULT_CHUNK,
        progress: Progress | None = None,
    ) -> int:
        """Stream ``src`` to ``dst`` in chunks; memory stays a few chunks whatever the size.

        Returns the number of bytes written. The total length must be a multiple of 16
        (checked when the stream ends; callers that know the size should check first).
        Each chunk is read into one buffer, encrypted there in place and written from
        it: the chunk stays in the CPU cache from the read to the write.
        """
        import numpy as np

        check_range(address, 0)
        chunk_size = max(UNIT, chunk_size // UNIT * UNIT)
        buffer = np.empty(chunk_size, dtype=np.uint8)
        # the first read ends on a unit boundary, so later chunks are whole units
        want = chunk_size - address % UNIT
        total = 0
        while True:
            got = _read_full(src, buffer[:want].data)
            if got == 0:
                break
            if got % ALIGN:
                raise UsageError(f"data length {total + got} is not a multiple of 16")
            chunk = buffer[:got]
            self.process_into(chunk, address + total, chunk, decrypt=decrypt)
            dst.write(chunk.data)
            total += got
            if progress is not None:
                progress(got)
            if got < want:
                break
            want = chunk_size
        return total

    def _bytes(self, data: bytes | bytearray | memoryview, address: int, *, decrypt: bool) -> bytes:
        import numpy as np

        src = np.frombuffer(data, dtype=np.uint8)
        size = src.size
        if size > SCRATCH_LIMIT or not self._scratch_lock.acquire(blocking=False):
            out = np.empty(size, dtype=np.uint8)
            self.process_into(src, address, out, decrypt=decrypt)
            return out.tobytes()
        try:
            if self._scratch is None or self._scratch.size < size:
                self._scratch = np.empty(size, dtype=np.uint8)
            out = self._scratch[:size]
            self.process_into(src, address, out, decrypt=decrypt)
            return out.tobytes()
        finally:
            self._scratch_lock.release()

    def _partial_unit(self, src: U8Array, address: int, out: U8Array, decrypt: bool) -> None:
        import numpy as np

        base = address & ~(UNIT - 1)
        at = address - base
        unit = np.zeros(UNIT, dtype=np.uint8)
        unit[at : at + src.size] = src
        result = np.empty(UNIT, dtype=np.uint8)
        self._engine.process_sequential(unit, result, base, decrypt=decrypt)
        out[:] = result[at : at + src.size]


def encrypt_flash_data(key: FlashEncryptionKey | bytes, data: bytes, address: int) -> bytes:
    """Ciphertext of ``data`` at flash ``address`` (``espsecure encrypt-flash-data -x``)."""
    return FlashCipher(key).encrypt(data, address)


def decrypt_flash_data(key: FlashEncryptionKey | bytes, data: bytes, address: int) -> bytes:
    """Plaintext of ``data`` read at flash ``address`` (``espsecure decrypt-flash-data -x``)."""
    return FlashCipher(key).decrypt(data, address)


def process_file(
    key: FlashEncryptionKey,
    input_path: PathLike,
    output_path: PathLike,
    address: int,
    *,
    decrypt: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
) -> int:
    """Encrypt (or decrypt) a file into another, streaming; returns the bytes written.

    Everything is checked before the output is created, and the output follows the
    output rule (:func:`espsec._io.output_file`: never over an input or a secret, written
    through a symlink, device or FIFO, ``-`` is standard output); a regular file appears
    only when complete, so on any error no output file is left behind.
    """
    src_path, dst_path = Path(input_path), Path(output_path)
    try:
        size = src_path.stat().st_size
    except FileNotFoundError:
        raise EspsecError("input file not found", source=str(input_path)) from None
    except OSError as exc:
        raise EspsecError(f"cannot read input: {exc.strerror}", source=str(input_path)) from None
    declare_input(src_path)
    if str(output_path) != STDIO and dst_path.exists() and os.path.samefile(src_path, dst_path):
        raise OutputExistsError(
            "refusing to write over the input file; choose another output",
            source=str(output_path),
        )
    if size == 0:
        raise UsageError("input is empty", source=str(input_path))
    check_range(address, 0)
    try:
        check_range(address, size)
    except UsageError as exc:
        exc.source = str(input_path)
        raise
    cipher = FlashCipher(key)
    try:
        src = src_path.open("rb")
    except OSError as exc:
        raise EspsecError(f"cannot read input: {exc.strerror}", source=str(input_path)) from None
    with src, output_file(output_path) as dst:
        return cipher.process_stream(
            src, dst, address, decrypt=decrypt, chunk_size=chunk_size, progress=progress
        )


def _read_full(src: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` from ``src`` unless the stream ends first; return bytes read."""
    got = 0
    readinto = getattr(src, "readinto", None)
    while got < len(view):
        if readinto is not None:
            n = readinto(view[got:])
        else:  # pragma: no cover - streams without readinto
            piece = src.read(len(view) - got)
            n = len(piece)
            view[got : got + n] = piece
        if not n:
            break
        got += n
    return got
