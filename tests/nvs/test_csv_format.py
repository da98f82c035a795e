"""The generator CSV: every encoding, comments and quoting, one-line errors naming the line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from espsec.errors import FormatError
from espsec.nvs import (
    DataRow,
    NamespaceRow,
    ValueType,
    dump_csv,
    generate_csv_partition,
    generate_partition,
    load_csv,
    parse_csv,
)

HEADER = "key,type,encoding,value\n"


def rows_of(text: str, **kw):
    return parse_csv(HEADER + text, **kw)


def test_every_type_and_encoding_decodes(every_type_csv, tmp_path):
    rows = load_csv(every_type_csv, base_dir=tmp_path)
    values = {r.key: (r.type, r.value) for r in rows if isinstance(r, DataRow)}
    assert values["u8"] == (ValueType.U8, 255)
    assert values["i64"] == (ValueType.I64, -(2**63))
    assert values["u64"] == (ValueType.U64, 2**64 - 1)
    assert values["str"] == (ValueType.STRING, "hello, world")
    assert values["empty"] == (ValueType.STRING, "")
    assert values["hex"] == (ValueType.BLOB, bytes.fromhex("0123456789abcdef"))
    assert values["b64"] == (ValueType.BLOB, b"hello world")
    assert values["bin"] == (ValueType.BLOB, b"raw text")
    assert values["fill"] == (ValueType.BLOB, b"ab" + b"\xaa" * 6)
    assert values["szfill"] == (ValueType.BLOB, b"\x03\x00\x00\x00xyz\x00\x00\x00")
    assert values["fblob"] == (ValueType.BLOB, bytes(range(256)) * 5)
    assert values["ftext"] == (ValueType.STRING, "from a file\n")
    assert values["fhex"] == (ValueType.BLOB, bytes.fromhex("deadbeef"))
    assert values["fb64"] == (ValueType.BLOB, b"file base64")
    assert values["fnum"] == (ValueType.U16, 1234)
    namespaces = [r.name for r in rows if isinstance(r, NamespaceRow)]
    assert namespaces == ["storage", "other"]


def test_comments_blank_lines_quotes_and_column_order():
    text = (
        "# comment before the header\n"
        "value,encoding,type,key\n"
        ",,namespace,ns\n"
        "\n"
        "# comment between rows\n"
        '"two\nlines, one value",string,data,s\n'
        "7,u8,data,n\n"
    )
    rows = parse_csv(text)
    assert rows[0] == NamespaceRow("ns", 3)
    assert rows[1] == DataRow("s", ValueType.STRING, "two\nlines, one value", 6)
    assert rows[2] == DataRow("n", ValueType.U8, 7, 8)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ns,namespace,,\nk,data,u9,1\n", r"line 3: unknown encoding for 'k'"),
        ("ns,namespace,,\nk,datum,u8,1\n", r"line 3: unknown type for 'k'"),
        ("ns,namespace,,\nk,data,u8,256\n", r"line 3: value of 'k' does not fit u8"),
        ("ns,namespace,,\nk,data,i8,-129\n", r"line 3: value of 'k' does not fit i8"),
        (
            "ns,namespace,,\nk,data,u32,ten\n",
            r"line 3: value of 'k' is not an integer \(expected an integer, found 'ten'\)",
        ),
        ("ns,namespace,,\nabcdefghijklmnop,data,u8,1\n", r"line 3: key 'abcdefghijklmnop'"),
        ("ns,namespace,,\nk,data,hex2bin,abc\n", r"line 3: hex value of 'k' has an odd"),
        ("ns,namespace,,\nk,data,hex2bin,zz\n", r"line 3: value of 'k' is not hexadecimal"),
        ("ns,namespace,,\nk,data,base64,a\n", r"line 3: value of 'k' is not base64"),
        ("k,data,u8,1\n", r"line 2: 'k' comes before any namespace"),
        ("ns,namespace,,\nk,data\n", r"line 3: row for 'k' has no value"),
        ("ns,namespace,,\nk,file,binary,x.bin\n", r"line 3: file row 'k' needs a base"),
        ("ns,namespace,,\n,data,u8,1\n", r"line 3: key must not be empty"),
    ],
)
def test_bad_rows_give_one_line_naming_the_csv_line(text, message):
    with pytest.raises(FormatError, match=message) as info:
        parse_csv(HEADER + text)
    assert "\n" not in str(info.value)
    # The one-pass generator reports the same row.
    with pytest.raises(FormatError, match=message.split(":")[0]):
        generate_csv_partition(HEADER + text, 0x3000)


def test_missing_header_is_reported():
    with pytest.raises(FormatError, match="line 1: CSV header must name the columns"):
        parse_csv("ns,namespace,,\n")
    with pytest.raises(FormatError, match="found nothing"):
        parse_csv("# only a comment\n")


def test_missing_file_names_the_line_and_the_file(tmp_path):
    csv = tmp_path / "f.csv"
    csv.write_text(HEADER + "ns,namespace,,\nk,file,binary,nope.bin\n")
    with pytest.raises(FormatError) as info:
        load_csv(csv, base_dir=tmp_path)
    assert str(info.value).startswith(f"{csv}: line 3: cannot read file for 'k'")
    assert "nope.bin" in str(info.value)


def test_wifi_keys_are_added_like_the_reference_tool():
    rows = rows_of(
        "nvs.net80211,namespace,,\n"
        "sta.ssid,data,string,lab\n"
        "sta.pswd,data,string,secret\n"
        "ap.ssid,data,string,myap\n"
        "ap.passwd,data,string,password1\n"
        "ap.authmode,data,u8,3\n"
    )
    keys = [r.key for r in rows if isinstance(r, DataRow)]
    assert keys == [
        "sta.ssid",
        "sta.apinfo",
        "sta.pmk",
        "sta.apsw",
        "sta.pswd",
        "ap.ssid",
        "ap.passwd",
        "ap.pmk_info",
        "ap.authmode",
    ]
    pmk = next(r for r in rows if isinstance(r, DataRow) and r.key == "ap.pmk_info")
    assert pmk.value[:100] == bytes(100) and len(pmk.value) == 132
    plain = rows_of("n,namespace,,\nsta.ssid,data,string,lab\n", wifi_extras=False)
    assert [r.key for r in plain if isinstance(r, DataRow)] == ["sta.ssid"]


def test_dump_csv_round_trips_rows():
    rows = rows_of(
        "a,namespace,,\n"
        "x,data,i16,-5\n"
        's,data,string,"comma, ""quote"" and\nnewline"\n'
        "b,data,hex2bin,00ff\n"
        "c,namespace,,\n"
        "y,data,u64,18446744073709551615\n"
    )
    text = dump_csv(rows)
    again = parse_csv(text)
    assert [r[:3] for r in again] == [r[:3] for r in rows]
    assert generate_partition(again, 0x3000) == generate_partition(rows, 0x3000)


def test_dump_csv_refuses_what_csv_cannot_hold():
    with pytest.raises(FormatError, match="use JSON"):
        dump_csv([NamespaceRow("n"), DataRow("s", ValueType.STRING, "a\n# b")])
    with pytest.raises(FormatError, match="use JSON"):
        dump_csv([NamespaceRow("n"), DataRow("f", ValueType.FLOAT, 1.5)])


def test_crlf_line_ends_extra_columns_and_long_strings():
    text = (
        "key,type,encoding,value,comment\r\n"
        "ns,namespace,,,first\r\n"
        'q,data,string,"a\r\nb",quoted\r\n'
        "n,data,u8,7,extra column\r\n"
        f"long,data,string,{'x' * 4000},too long\r\n"
    )
    rows = parse_csv(text)
    assert rows[1] == DataRow("q", ValueType.STRING, "a\nb", 3)
    assert rows[2] == DataRow("n", ValueType.U8, 7, 5)  # the quoted value spans lines 3-4
    with pytest.raises(FormatError, match=r"line 6: value of 'long' is 4001 bytes"):
        generate_csv_partition(text, 0x4000)
    with pytest.raises(FormatError, match=r"line 6: value of 'long' is 4001 bytes"):
        generate_partition(rows, 0x4000)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.booleans(), st.booleans())
def test_one_pass_generator_handles_quotes_crlf_and_comments(make_csv, seed, crlf, quoted):
    text = make_csv(seed, 40)
    lines = text.splitlines()
    if quoted:
        lines = [
            line.replace(",string,", ',string,"', 1) + '"' if ",string," in line else line
            for line in lines
        ]
    lines.insert(1, "# a comment")
    text = ("\r\n" if crlf else "\n").join(lines) + "\n"
    assert generate_csv_partition(text, 0x40000) == generate_partition(parse_csv(text), 0x40000)
    assert generate_csv_partition(text, 0x40000) == generate_csv_partition(
        make_csv(seed, 40), 0x40000
    )


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([1, 2]))
def test_one_pass_generator_reads_columns_in_any_order_and_extra_ones(make_csv, seed, version):
    # value,encoding,key,type plus a comment column, a blank line and a row without value
    records = [line.split(",", 3) for line in make_csv(seed, 40, version=version).splitlines()]
    lines = ["value,encoding,key,type,comment"]
    lines += [f"{v},{e},{k},{t},note" for k, t, e, v in records[1:]]
    lines.insert(3, "")
    text = "\n".join(lines) + "\n"
    image = generate_partition(parse_csv(text), 0x40000, version=version)
    assert generate_csv_partition(text, 0x40000, version=version) == image
    short = text + "x,u8,late\n"  # no type column: a data row needs one
    with pytest.raises(FormatError) as from_rows:
        parse_csv(short)
    with pytest.raises(FormatError) as from_csv:
        generate_csv_partition(short, 0x40000, version=version)
    assert str(from_csv.value) == str(from_rows.value)


def test_row_reprs_hide_values():
    rows = rows_of("wifi,namespace,,\npass,data,string,hunter2\n")
    assert "hunter2" not in repr(rows)
    assert repr(rows[1]) == "DataRow(key='pass', type='string', line=3)"


@settings(max_examples=20, deadline=None)
@given(
    st.integers(0, 10_000),
    st.sampled_from([7, 64, 1000]),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_a_csv_file_read_block_by_block_gives_the_image_of_its_whole_text(
    make_csv, tmp_path_factory, seed, block, crlf, quoted, bom
):
    # line breaks (\r\n split between blocks), comments and quoted values spanning
    # lines all land on block boundaries somewhere
    import espsec.nvs.csv_format as csv_format
    from espsec.nvs import generate_csv_file

    lines = make_csv(seed, 40).splitlines()
    lines.insert(1, "# a comment")
    lines.insert(len(lines) // 2, "# another")
    if quoted:
        lines.append('late,data,string,"two\nlines"')
    text = ("\r\n" if crlf else "\n").join(lines) + "\n"
    path = tmp_path_factory.mktemp("csv") / "in.csv"
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    whole = generate_csv_partition(text, 0x40000)
    previous = csv_format.CSV_BLOCK
    csv_format.CSV_BLOCK = block
    try:
        assert generate_csv_file(path, 0x40000) == whole
    finally:
        csv_format.CSV_BLOCK = previous


def test_a_csv_file_that_is_not_utf8_names_the_byte(tmp_path, monkeypatch):
    import espsec.nvs.csv_format as csv_format
    from espsec.nvs import generate_csv_file

    path = tmp_path / "in.csv"
    path.write_bytes((HEADER + "ns,namespace,,\n" + "k,data,u8,1\n" * 20).encode() + b"\xff\n")
    monkeypatch.setattr(csv_format, "CSV_BLOCK", 16)
    bad = path.stat().st_size - 2
    with pytest.raises(FormatError, match=rf"offset {bad:#x}: CSV is not UTF-8 text"):
        generate_csv_file(path, 0x4000)


def test_a_bad_row_in_a_later_block_names_its_file_line(tmp_path, monkeypatch):
    import espsec.nvs.csv_format as csv_format
    from espsec.nvs import generate_csv_file

    path = tmp_path / "in.csv"
    path.write_text(HEADER + "# note\nns,namespace,,\n" + "k,data,u8,1\n" * 30 + "bad,data,u8,x\n")
    monkeypatch.setattr(csv_format, "CSV_BLOCK", 32)
    with pytest.raises(FormatError, match=r"line 34: value of 'bad' is not an integer"):
        generate_csv_file(path, 0x4000)
