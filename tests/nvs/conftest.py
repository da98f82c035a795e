"""Fixtures for the NVS tests: CSVs that cover every type and encoding."""

from __future__ import annotations

import base64
import random
import string

import pytest

from espsec.nvs.value import ValueType, int_range

INT_RANGES = {str(t): int_range(t) for t in ValueType if t.is_integer}


def random_csv(seed: int, rows: int, *, version: int = 2, namespaces: int = 3) -> str:
    """A generator CSV with every data encoding, sizes around entry and page edges.

    Strings stay under 3968 bytes and v1 blobs under 1984 bytes, the sizes
    esp-idf-nvs-partition-gen handles (it crashes on longer strings).
    """
    rng = random.Random(seed)
    lines = ["key,type,encoding,value", "ns0,namespace,,"]
    blob_max = 1984 if version == 1 else 9000
    string_max = 1983 if version == 1 else 3967
    names = 1
    for i in range(rows):
        key = f"k{i}"
        pick = rng.random()
        if pick < 0.04 and names < namespaces:
            lines.append(f"ns{names},namespace,,")
            names += 1
        elif pick < 0.4:
            enc = rng.choice(list(INT_RANGES))
            low, high = INT_RANGES[enc]
            value = rng.choice([low, high, 0, rng.randint(low, high)])
            lines.append(f"{key},data,{enc},{value}")
        elif pick < 0.6:
            size = rng.choice([0, 1, 30, 31, 32, rng.randint(0, 200), rng.randint(0, string_max)])
            text = "".join(rng.choice(string.ascii_letters + " ;:") for _ in range(size))
            lines.append(f"{key},data,string,{text}")
        elif pick < 0.8:
            size = rng.choice([0, 1, 32, 33, rng.randint(0, 300), rng.randint(0, blob_max)])
            lines.append(f"{key},data,hex2bin,{rng.randbytes(size).hex()}")
        elif pick < 0.93:
            size = rng.choice([0, 5, rng.randint(0, 100), rng.randint(0, blob_max)])
            lines.append(f"{key},data,base64,{base64.b64encode(rng.randbytes(size)).decode()}")
        else:
            text = "".join(rng.choice(string.ascii_letters) for _ in range(rng.randint(0, 90)))
            lines.append(f"{key},data,binary,{text}")
    return "\n".join(lines) + "\n"


@pytest.fixture()
def every_type_csv(tmp_path):
    """A CSV file with every row type and encoding, including file rows."""
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 5)
    (tmp_path / "text.txt").write_text("from a file\n")
    (tmp_path / "hex.txt").write_text("  deadbeef  \n")
    (tmp_path / "b64.txt").write_text(base64.b64encode(b"file base64").decode())
    (tmp_path / "num.txt").write_text("1234")
    csv = tmp_path / "every.csv"
    csv.write_text(
        "# a comment line\n"
        "key,type,encoding,value\n"
        "storage,namespace,,\n"
        "u8,data,u8,255\n"
        "i8,data,i8,-128\n"
        "u16,data,u16,65535\n"
        "i16,data,i16,-32768\n"
        "u32,data,u32,4294967295\n"
        "i32,data,i32,-2147483648\n"
        "u64,data,u64,18446744073709551615\n"
        "i64,data,i64,-9223372036854775808\n"
        'str,data,string,"hello, world"\n'
        "empty,data,string,\n"
        "hex,data,hex2bin,0123456789abcdef\n"
        "b64,data,base64,aGVsbG8gd29ybGQ=\n"
        "bin,data,binary,raw text\n"
        "fill,data,blob_fill(8;0xaa),ab\n"
        "szfill,data,blob_sz_fill(6;0x00),xyz\n"
        "other,namespace,,\n"
        "fblob,file,binary,blob.bin\n"
        "ftext,file,string,text.txt\n"
        "fhex,file,hex2bin,hex.txt\n"
        "fb64,file,base64,b64.txt\n"
        "fnum,file,u16,num.txt\n"
    )
    return csv


@pytest.fixture(scope="session")
def make_csv():
    """:func:`random_csv`, for tests that build their own CSVs."""
    return random_csv
