"""Oracle: esp-idf-nvs-partition-gen 0.3.0, run in-process on the same CSVs and keys.

Plain (versions 1 and 2), encrypted with a keys file and with an HMAC key: our images
must be byte-identical to the reference tool's, and each side reads (decrypts) the
other's.
"""

from __future__ import annotations

import base64
import contextlib
import io
import random
import string
from pathlib import Path
from types import SimpleNamespace

import pytest
from esp_idf_nvs_partition_gen import nvs_partition_gen as reference

from espsec.flash import NorFlash
from espsec.nvs import (
    DataRow,
    NvsKeys,
    NvsStore,
    decrypt_partition,
    generate_csv_file,
    load_csv,
    read_partition,
)
from espsec.nvs.value import ValueType, int_range

INTS = {str(t): int_range(t) for t in ValueType if t.is_integer}


def make_csv(folder: Path, seed: int, rows: int, version: int) -> Path:
    """Every type and encoding (file rows too), sizes around entry and page edges."""
    rng = random.Random(seed)
    blob_max, string_max = (1984, 1983) if version == 1 else (9000, 3967)
    lines = ["key,type,encoding,value", "first,namespace,,"]
    for i in range(rows):
        key = f"key{i}"
        kind = rng.randrange(12)
        if kind < 4:
            enc = rng.choice(list(INTS))
            low, high = INTS[enc]
            lines.append(f"{key},data,{enc},{rng.choice([low, high, rng.randint(low, high)])}")
        elif kind == 4:
            size = rng.choice([0, 31, 32, rng.randint(0, 100), rng.randint(0, string_max)])
            text = "".join(rng.choice(string.ascii_letters + " ,;") for _ in range(size))
            lines.append(f'{key},data,string,"{text}"')
        elif kind == 5:
            size = rng.choice([0, 1, 32, 33, rng.randint(0, 200), rng.randint(0, blob_max)])
            lines.append(f"{key},data,hex2bin,{rng.randbytes(size).hex()}")
        elif kind == 6:
            data = rng.randbytes(rng.choice([0, 4, rng.randint(0, blob_max)]))
            lines.append(f"{key},data,base64,{base64.b64encode(data).decode()}")
        elif kind == 7:
            lines.append(f"{key},data,binary,{''.join(rng.choices(string.ascii_letters, k=40))}")
        elif kind == 8:
            name = f"f{seed}_{i}.bin"
            (folder / name).write_bytes(rng.randbytes(rng.randint(0, blob_max)))
            lines.append(f"{key},file,binary,{name}")
        elif kind == 9:
            name = f"f{seed}_{i}.txt"
            (folder / name).write_text("file text " * rng.randint(0, 20))
            lines.append(f"{key},file,string,{name}")
        elif kind == 10:
            lines.append(f"{key},data,blob_fill(40;0x5a),{'x' * rng.randint(0, 40)}")
        else:
            lines.append(f"ns{i},namespace,,")
    path = folder / f"s{seed}v{version}.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    # The reference tool resolves 'file' rows against the current directory.
    monkeypatch.chdir(tmp_path)
    return tmp_path


def quiet(fn, args: SimpleNamespace) -> None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        fn(args)


def ref_generate(csv: Path, out: Path, size: int, version: int) -> bytes:
    quiet(
        reference.generate,
        SimpleNamespace(
            input=[str(csv)], output=str(out), size=hex(size), version=version, outdir="."
        ),
    )
    return out.read_bytes()


def ref_encrypt(csv: Path, out: Path, size: int, version: int, **keys: object) -> bytes:
    args = {
        "keygen": False,
        "inputkey": None,
        "keyfile": None,
        "key_protect_hmac": False,
        "kp_hmac_keygen": False,
        "kp_hmac_keyfile": None,
        "kp_hmac_inputkey": None,
        **keys,
    }
    quiet(
        reference.encrypt,
        SimpleNamespace(
            input=[str(csv)], output=str(out), size=hex(size), version=version, outdir=".", **args
        ),
    )
    return out.read_bytes()


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("seed", range(6))
def test_plain_images_are_byte_identical(workdir, seed, version):
    csv = make_csv(workdir, seed, 150, version)
    theirs = ref_generate(csv, workdir / "ref.bin", 0x40000, version)
    ours = generate_csv_file(csv, 0x40000, version=version)
    assert ours == theirs
    rows = [r for r in load_csv(csv) if isinstance(r, DataRow)]
    assert [(e.key, e.value) for e in read_partition(theirs).entries] == [
        (r.key, r.value) for r in rows
    ]


def test_read_only_sizes_are_byte_identical(workdir):
    csv = workdir / "small.csv"
    csv.write_text(
        "key,type,encoding,value\nns,namespace,,\n"
        + "".join(f"k{i},data,u16,{i}\n" for i in range(60))
        + "s,data,string,hello\nb,data,hex2bin,00ff\n"
    )
    for size in (0x1000, 0x2000, 0x3000):
        assert generate_csv_file(csv, size) == ref_generate(csv, workdir / "r.bin", size, 2)


def test_injected_wifi_keys_are_byte_identical(workdir):
    csv = workdir / "wifi.csv"
    csv.write_text(
        "key,type,encoding,value\n"
        "nvs.net80211,namespace,,\n"
        "sta.ssid,data,string,lab\n"
        "sta.pswd,data,string,s3cret-pass\n"
        "ap.ssid,data,string,device-ap\n"
        "ap.authmode,data,u8,3\n"
        "ap.passwd,data,string,ap-password\n"
    )
    assert generate_csv_file(csv, 0x3000) == ref_generate(csv, workdir / "r.bin", 0x3000, 2)


@pytest.mark.parametrize("version", [1, 2])
def test_encrypted_with_a_keys_file_is_byte_identical_and_mutually_readable(workdir, version):
    csv = make_csv(workdir, 10 + version, 150, version)
    keys = NvsKeys.generate()
    (workdir / "keys.bin").write_bytes(keys.to_bytes())
    theirs = ref_encrypt(csv, workdir / "ref.bin", 0x40000, version, inputkey="keys.bin")
    ours = generate_csv_file(csv, 0x40000, version=version, keys=keys)
    assert ours == theirs
    # Their decryption of our image is our plain image, and the other way round.
    (workdir / "ours.bin").write_bytes(ours)
    quiet(
        reference.decrypt,
        SimpleNamespace(input="ours.bin", key="keys.bin", output="dec.bin", outdir="."),
    )
    plain = generate_csv_file(csv, 0x40000, version=version)
    assert (workdir / "dec.bin").read_bytes() == plain == decrypt_partition(theirs, keys)
    assert read_partition(theirs, keys=keys).entries == read_partition(plain).entries


def test_encrypted_with_an_hmac_key_is_byte_identical(workdir):
    csv = make_csv(workdir, 21, 150, 2)
    hmac_key = bytes(range(1, 33))
    (workdir / "hmac.bin").write_bytes(hmac_key)
    theirs = ref_encrypt(
        csv,
        workdir / "ref.bin",
        0x40000,
        2,
        keygen=True,
        keyfile="derived.bin",
        key_protect_hmac=True,
        kp_hmac_inputkey="hmac.bin",
    )
    keys = NvsKeys.from_hmac_key(hmac_key)
    assert generate_csv_file(csv, 0x40000, keys=keys) == theirs
    # The keys file the reference derives is our nvs_keys partition image.
    assert (workdir / "keys" / "derived.bin").read_bytes() == keys.to_bytes()


def test_reference_key_files_parse_as_nvs_keys(workdir):
    quiet(
        reference.generate_key,
        SimpleNamespace(
            keyfile="random.bin",
            key_protect_hmac=False,
            kp_hmac_keygen=False,
            kp_hmac_keyfile=None,
            kp_hmac_inputkey=None,
            outdir=".",
        ),
    )
    data = (workdir / "keys" / "random.bin").read_bytes()
    assert NvsKeys.parse(data).to_bytes() == data


def test_reference_decrypts_what_the_device_wrote(workdir):
    keys = NvsKeys.generate()
    flash = NorFlash(0x6000)
    nvs = NvsStore.init(flash, keys=keys).open("app")
    for i in range(200):
        nvs.set_u32(f"counter{i % 9}", i)
        nvs.set_str("name", f"device-{i}")
    nvs.set_blob("cert", bytes(range(256)) * 20)
    (workdir / "dev.bin").write_bytes(flash.snapshot())
    (workdir / "keys.bin").write_bytes(keys.to_bytes())
    quiet(
        reference.decrypt,
        SimpleNamespace(input="dev.bin", key="keys.bin", output="dec.bin", outdir="."),
    )
    plain = (workdir / "dec.bin").read_bytes()
    assert plain == decrypt_partition(flash.snapshot(), keys)
    values = {e.key: e.value for e in read_partition(plain).entries}
    assert values["counter0"] == 198 and values["name"] == "device-199"
    assert values["cert"] == bytes(range(256)) * 20
