"""Reed-Solomon RS(44,32) over GF(2^8), the coding scheme of eFuse BLOCK1..BLOCK10.

The eFuse controller of ESP32-S3, ESP32-P4 and the other RS-coded chips stores 12 check
bytes after the 32 data bytes of a block. The code is the one ``reedsolo.RSCodec(12)``
implements (primitive polynomial 0x11d, generator 2, first consecutive root 0), applied
to the block's 32 bytes in register order (word 0 first, little-endian), shortened from
RS(255,243). It corrects up to 6 wrong bytes; the controller reports how many it
corrected and a fail bit when it could not.

Only :func:`check_value` is needed to burn; :func:`decode` models what the controller
reads back from a damaged block.
"""

from __future__ import annotations

from dataclasses import dataclass

DATA_BYTES = 32
CHECK_BYTES = 12
CODEWORD_BYTES = DATA_BYTES + CHECK_BYTES
MAX_CORRECTABLE = CHECK_BYTES // 2

_PRIM = 0x11D


def _tables() -> tuple[list[int], list[int]]:
    exp = [0] * 512
    log = [0] * 256
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        x <<= 1
        if x & 0x100:
            x ^= _PRIM
    for i in range(255, 512):
        exp[i] = exp[i - 255]
    return exp, log


_EXP, _LOG = _tables()


def _mul(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def _div(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError("GF(256) division by zero")
    if a == 0:
        return 0
    return _EXP[(_LOG[a] + 255 - _LOG[b]) % 255]


def _poly_mul(p: list[int], q: list[int]) -> list[int]:
    out = [0] * (len(p) + len(q) - 1)
    for j, qj in enumerate(q):
        for i, pi in enumerate(p):
            out[i + j] ^= _mul(pi, qj)
    return out


def _poly_eval(p: list[int], x: int) -> int:
    """Evaluate ``p`` (highest degree first) at ``x`` (Horner)."""
    y = p[0]
    for c in p[1:]:
        y = _mul(y, x) ^ c
    return y


def _generator() -> list[int]:
    g = [1]
    for i in range(CHECK_BYTES):
        g = _poly_mul(g, [1, _EXP[i]])
    return g


_GEN = _generator()


def check_value(data: bytes) -> bytes:
    """The 12 RS check bytes the controller stores after a 32-byte block."""
    if len(data) != DATA_BYTES:
        raise ValueError(f"RS(44,32) encodes {DATA_BYTES} bytes, got {len(data)}")
    rem = list(data) + [0] * CHECK_BYTES
    for i in range(DATA_BYTES):
        coef = rem[i]
        if coef:
            for j in range(1, len(_GEN)):
                rem[i + j] ^= _mul(_GEN[j], coef)
    return bytes(rem[DATA_BYTES:])


def encode(data: bytes) -> bytes:
    """``data`` followed by its check value: the 44-byte codeword."""
    return bytes(data) + check_value(data)


@dataclass(frozen=True)
class Decoded:
    """What the controller reads from a codeword: data, corrected bytes, failure."""

    data: bytes
    errors: int
    """Number of bytes corrected (0 when the codeword was intact)."""
    failed: bool
    """True when the codeword had more errors than RS(44,32) can correct."""


def _syndromes(codeword: bytes) -> list[int]:
    return [_poly_eval(list(codeword), _EXP[j]) for j in range(CHECK_BYTES)]


def decode(codeword: bytes) -> Decoded:
    """Correct up to 6 bad bytes in a 44-byte codeword, as the eFuse controller does.

    Returns the (corrected) 32 data bytes, the number of corrected bytes, and whether
    decoding failed; on failure the data is returned uncorrected.
    """
    if len(codeword) != CODEWORD_BYTES:
        raise ValueError(f"RS(44,32) decodes {CODEWORD_BYTES} bytes, got {len(codeword)}")
    synd = _syndromes(codeword)
    raw = bytes(codeword[:DATA_BYTES])
    if not any(synd):
        return Decoded(raw, 0, False)
    # Berlekamp-Massey: error locator sigma (lowest degree first).
    sigma, prev = [1], [1]
    n_locs, shift, last = 0, 1, 1
    for k in range(CHECK_BYTES):
        delta = synd[k]
        for i in range(1, n_locs + 1):
            if i < len(sigma):
                delta ^= _mul(sigma[i], synd[k - i])
        if delta == 0:
            shift += 1
            continue
        scale = _div(delta, last)
        update = _add_low(sigma, [0] * shift + [_mul(scale, c) for c in prev])
        if 2 * n_locs <= k:
            prev, last, n_locs, shift = sigma, delta, k + 1 - n_locs, 1
        else:
            shift += 1
        sigma = update
    sigma = sigma[: n_locs + 1]
    n_err = n_locs
    if n_err > MAX_CORRECTABLE:
        return Decoded(raw, n_err, True)
    # Chien search: position p (0 = first byte) has locator X = alpha^(n-1-p).
    n = CODEWORD_BYTES
    positions = [p for p in range(n) if _eval_low(sigma, _EXP[(255 - (n - 1 - p)) % 255]) == 0]
    if len(positions) != n_err:
        return Decoded(raw, n_err, True)
    # Forney (first consecutive root 0): e = X * omega(X^-1) / sigma'(X^-1).
    omega = _poly_mul(synd, sigma)[:CHECK_BYTES]  # same in either coefficient order
    deriv = [sigma[i] if i % 2 else 0 for i in range(1, len(sigma))]
    fixed = bytearray(codeword)
    for p in positions:
        x = _EXP[n - 1 - p]
        x_inv = _div(1, x)
        den = _eval_low(deriv, x_inv)
        if den == 0:
            return Decoded(raw, n_err, True)
        fixed[p] ^= _mul(x, _div(_eval_low(omega, x_inv), den))
    if any(_syndromes(bytes(fixed))):
        return Decoded(raw, n_err, True)
    return Decoded(bytes(fixed[:DATA_BYTES]), n_err, False)


def _add_low(p: list[int], q: list[int]) -> list[int]:
    out = [0] * max(len(p), len(q))
    for i, c in enumerate(p):
        out[i] ^= c
    for i, c in enumerate(q):
        out[i] ^= c
    return out


def _eval_low(p: list[int], x: int) -> int:
    """Evaluate ``p`` (lowest degree first) at ``x``."""
    y = 0
    for c in reversed(p):
        y = _mul(y, x) ^ c
    return y


__all__ = ["CHECK_BYTES", "DATA_BYTES", "Decoded", "check_value", "decode", "encode"]
