"""Read the C test-case headers ESP-IDF ships (``*_test_cases.h``) into Python values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

VECTORS = Path(__file__).parents[1] / "vectors"
CRYPTO_DRIVERS = VECTORS / "esp-idf/components/esp_security/test_apps/crypto_drivers/main"

_INT = re.compile(r"0x[0-9a-fA-F]+|\d+")


def ints(text: str) -> list[int]:
    """Every integer literal in ``text`` (comments removed first)."""
    text = re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.S)
    return [int(t, 0) for t in _INT.findall(text)]


def braced(text: str, start: int) -> tuple[str, int]:
    """The ``{...}`` block starting at or after ``start`` (nested braces kept)."""
    open_at = text.index("{", start)
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[open_at + 1 : i], i + 1
    raise ValueError("unbalanced braces")


def array(text: str, name: str) -> str:
    """The initializer of ``name[...] = { ... }``."""
    m = re.search(rf"\b{re.escape(name)}\s*(\[[^\]]*\])+\s*=", text)
    assert m is not None, name
    return braced(text, m.end())[0]


def words_le(words: list[int]) -> bytes:
    return b"".join(w.to_bytes(4, "little") for w in words)


@dataclass(frozen=True)
class DsCase:
    iv: bytes
    y: int
    m: int
    rb: int
    m_prime: int
    length: int
    expected_c: bytes
    hmac_key_idx: int
    expected_results: list[int]
    """One RSA result per test message, as an integer."""


def _field(body: str, name: str) -> str:
    m = re.search(rf"\.{name}\s*=\s*", body)
    assert m is not None, name
    if body[m.end()] == "{":
        return braced(body, m.end())[0]
    return body[m.end() : body.index(",", m.end())]


def ds_cases(path: Path) -> tuple[list[bytes], list[bytes], list[DsCase]]:
    """HMAC keys, messages (little-endian bytes) and cases of a DS test-case header."""
    text = path.read_text()
    keys = [bytes(ints(k)) for k in _rows(array(text, "test_hmac_keys"))]
    messages = [words_le(ints(m)) for m in _rows(array(text, "test_messages"))]
    cases = []
    for body in _rows(array(text, "test_cases")):
        length = ints(_field(body, "length"))[0]
        words = length + 1
        cases.append(
            DsCase(
                iv=bytes(ints(_field(body, "iv"))),
                y=int.from_bytes(words_le(ints(_field(body, "Y"))), "little"),
                m=int.from_bytes(words_le(ints(_field(body, "M"))), "little"),
                rb=int.from_bytes(words_le(ints(_field(body, "Rb"))), "little"),
                m_prime=ints(_field(body, "M_prime"))[0],
                length=length,
                expected_c=bytes(ints(_field(body, "expected_c"))),
                hmac_key_idx=ints(_field(body, "hmac_key_idx"))[0],
                expected_results=[
                    int.from_bytes(words_le(ints(r)[:words]), "little")
                    for r in _rows(_field(body, "expected_results"))
                ],
            )
        )
    return keys, messages, cases


def _rows(body: str) -> list[str]:
    out = []
    pos = 0
    while True:
        try:
            row, pos = braced(body, pos)
        except ValueError:
            return out
        out.append(row)
