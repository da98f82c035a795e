"""Partition images: the page layout of esp-idf-nvs-partition-gen, sizes, limits, reading back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from espsec.errors import FormatError, UsageError
from espsec.nvs import (
    DataRow,
    ItemType,
    NamespaceRow,
    NvsKeys,
    PageImage,
    PageState,
    ValueType,
    generate_csv_file,
    generate_csv_partition,
    generate_partition,
    load_csv,
    parse_csv,
    read_partition,
    write_csv_partition,
)
from espsec.nvs.generator import WINDOW_PAGES
from espsec.nvs.layout import ENTRY_COUNT, PAGE_SIZE
from espsec.nvs.value import int_range

HEADER = "key,type,encoding,value\n"


def pages_of(image: bytes) -> list[PageImage]:
    return [PageImage.parse(image[i : i + 4096]) for i in range(0, len(image), 4096)]


def items_of(page: PageImage) -> list[tuple[int, int, str]]:
    return [(i, item.datatype, item.key) for i, item in page.items()]


def test_pages_are_full_then_active_then_erased_with_a_reserved_page():
    rows = [NamespaceRow("n")] + [DataRow(f"k{i}", ValueType.U8, i % 256) for i in range(200)]
    image = generate_partition(rows, 0x4000)
    pages = pages_of(image)
    assert [p.header.state for p in pages] == [
        PageState.FULL,
        PageState.ACTIVE,
        PageState.UNINITIALIZED,
        PageState.UNINITIALIZED,
    ]
    assert [p.header.seq for p in pages[:2]] == [0, 1]
    assert image[0x2000:] == b"\xff" * 0x2000
    assert len(list(pages[0].items())) == ENTRY_COUNT


def test_read_only_partitions_stop_after_the_last_used_page():
    rows = [NamespaceRow("n"), DataRow("a", ValueType.U8, 1)]
    assert len(generate_partition(rows, 0x1000)) == 0x1000
    assert len(generate_partition(rows, 0x2000)) == 0x1000
    assert len(generate_partition(rows, 0x3000)) == 0x3000


def test_a_string_that_would_reach_the_last_entry_moves_to_the_next_page():
    rows = [NamespaceRow("n")] + [DataRow(f"k{i}", ValueType.U8, 0) for i in range(120)]
    rows.append(DataRow("s", ValueType.STRING, "x" * 100))  # 1 + 4 entries: 121..125
    pages = pages_of(generate_partition(rows, 0x3000))
    assert items_of(pages[1]) == [(0, ItemType.SZ, "s")]
    assert pages[0].header.state == PageState.FULL


def test_a_string_of_4000_bytes_fills_a_whole_page():
    rows = [NamespaceRow("n"), DataRow("s", ValueType.STRING, "y" * 3999)]
    image = generate_partition(rows, 0x4000)
    assert items_of(pages_of(image)[1]) == [(0, ItemType.SZ, "s")]
    assert read_partition(image).entries[0].value == "y" * 3999
    with pytest.raises(FormatError, match="4001 bytes, at most 4000"):
        generate_partition([NamespaceRow("n"), DataRow("s", ValueType.STRING, "y" * 4000)], 0x4000)


def test_version_1_limits_blobs_and_strings_to_1984_bytes():
    ok = [NamespaceRow("n"), DataRow("b", ValueType.BLOB, bytes(1984))]
    image = generate_partition(ok, 0x3000, version=1)
    page = pages_of(image)[0]
    assert page.header.version == 0xFF
    assert items_of(page)[1] == (1, ItemType.BLOB, "b")
    too_big = [NamespaceRow("n"), DataRow("b", ValueType.BLOB, bytes(1985), line=7)]
    with pytest.raises(FormatError, match="line 7: value of 'b' is 1985 bytes, at most 1984"):
        generate_partition(too_big, 0x3000, version=1)


def test_version_2_blobs_are_chunked_across_pages_then_indexed():
    blob = bytes(range(256)) * 40  # 10240 bytes
    rows = [NamespaceRow("n"), DataRow("u", ValueType.U8, 1), DataRow("b", ValueType.BLOB, blob)]
    image = generate_partition(rows, 0x5000)
    pages = pages_of(image)
    chunks = [
        (p.header.seq, item.chunk_index, item.var_size)
        for p in pages[:3]
        for _, item in p.items()
        if item.datatype == ItemType.BLOB_DATA
    ]
    assert chunks == [(0, 0, 3936), (1, 1, 4000), (2, 2, 2304)]
    index = [item for _, item in pages[2].items() if item.datatype == ItemType.BLOB_IDX]
    assert [(i.blob_size, i.chunk_count, i.chunk_start) for i in index] == [(10240, 3, 0)]
    assert read_partition(image).entries[1].value == blob


def test_partition_too_small_names_the_row_that_did_not_fit():
    text = HEADER + "n,namespace,,\n" + "".join(f"k{i},data,u32,{i}\n" for i in range(300))
    with pytest.raises(FormatError, match=r"line 254: partition too small: 'k251'"):
        generate_csv_partition(text, 0x3000)
    with pytest.raises(FormatError, match=r"line 254: partition too small"):
        generate_partition(parse_csv(text), 0x3000)


@pytest.mark.parametrize(
    ("encoding", "value"),
    [("string", "x" * 100), ("hex2bin", "ab" * 100), ("base64", "q" * 400), ("u8", "7")],
)
def test_every_fast_row_kind_names_its_line_when_the_partition_is_full(encoding, value):
    # the one-pass CSV generator places these rows itself; it must fail as the rows do
    text = (
        HEADER + "n,namespace,,\n" + "".join(f"k{i},data,{encoding},{value}\n" for i in range(400))
    )
    with pytest.raises(FormatError) as from_rows:
        generate_partition(parse_csv(text), 0x3000)
    with pytest.raises(FormatError) as from_csv:
        generate_csv_partition(text, 0x3000)
    assert str(from_csv.value) == str(from_rows.value)
    assert "partition too small" in str(from_csv.value)


@pytest.mark.parametrize("size", [-0x1000, 0, 0x800, 0x3001, 0x800_1000, 0x1_0000_1000])
def test_sizes_that_are_not_whole_pages_are_refused(size):
    with pytest.raises(UsageError, match=r"multiple of 0x1000|at least 0x1000|largest flash"):
        generate_partition([], size)


def test_namespaces_can_be_revisited_and_get_one_entry_each():
    rows = parse_csv(HEADER + "a,namespace,,\nx,data,u8,1\nb,namespace,,\ny,data,u8,2\n"
                     "a,namespace,,\nz,data,u8,3\n")  # fmt: skip
    contents = read_partition(generate_partition(rows, 0x3000))
    assert contents.namespaces == {"a": 1, "b": 2}
    assert [(e.namespace, e.key) for e in contents.entries] == [("a", "x"), ("b", "y"), ("a", "z")]


def test_every_type_reads_back(every_type_csv, tmp_path):
    rows = load_csv(every_type_csv, base_dir=tmp_path)
    for version in (1, 2):
        for keys in (None, NvsKeys.generate()):
            image = generate_partition(rows, 0x6000, version=version, keys=keys)
            contents = read_partition(image, keys=keys)
            expected = [(r.key, r.type, r.value) for r in rows if isinstance(r, DataRow)]
            assert [(e.key, e.type, e.value) for e in contents.entries] == expected
            assert contents.version == version and contents.encrypted == (keys is not None)


def test_encrypted_images_keep_headers_and_empty_entries_plain():
    keys = NvsKeys.generate()
    rows = [NamespaceRow("n"), DataRow("a", ValueType.U8, 1)]
    plain = generate_partition(rows, 0x3000)
    cipher = generate_partition(rows, 0x3000, keys=keys)
    assert cipher[:64] == plain[:64]
    assert cipher[64:128] != plain[64:128]
    assert cipher[128:] == plain[128:]


@pytest.mark.parametrize(
    ("size", "version", "encrypted"),
    [
        (0x2000, 2, False),  # read-only: the image stops after the last used page
        (0x3000, 1, True),
        (0x40000, 2, True),
        ((3 * WINDOW_PAGES + 5) * PAGE_SIZE, 2, False),  # several windows, then erased pages
        ((3 * WINDOW_PAGES + 5) * PAGE_SIZE, 2, True),
    ],
)
def test_a_partition_written_as_it_is_made_is_the_generated_image(
    make_csv, tmp_path, size, version, encrypted
):
    import io

    csv = tmp_path / "in.csv"
    if size < 0x3000:
        csv.write_text(HEADER + "n,namespace,,\nk,data,string,one page\n")
    else:
        csv.write_text(make_csv(size, size // 0x1000 * 6, version=version))  # ~half full
    keys = NvsKeys.generate() if encrypted else None
    image = generate_csv_file(csv, size, version=version, keys=keys)
    out = io.BytesIO()
    assert write_csv_partition(csv, out, size, version=version, keys=keys) == len(image)
    assert out.getvalue() == image
    assert len(image) == size or size < 0x3000


@pytest.mark.parametrize("vtype", [t for t in ValueType if t.is_integer])
def test_integers_at_the_ends_of_their_range_are_stored_and_one_past_is_an_error(vtype):
    low, high = int_range(vtype)
    text = HEADER + f"n,namespace,,\nlow,data,{vtype},{low}\nhigh,data,{vtype},{high}\n"
    values = [e.value for e in read_partition(generate_csv_partition(text, 0x3000)).entries]
    assert values == [low, high]
    for bad in (low - 1, high + 1):
        with pytest.raises(FormatError, match=rf"line 3: value of 'x' does not fit {vtype}"):
            generate_csv_partition(HEADER + f"n,namespace,,\nx,data,{vtype},{bad}\n", 0x3000)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([1, 2]))
def test_one_pass_csv_generator_equals_rows_generator(make_csv, seed, version):
    text = make_csv(seed, 60, version=version)
    rows = parse_csv(text)
    assert generate_csv_partition(text, 0x40000, version=version) == generate_partition(
        rows, 0x40000, version=version
    )
