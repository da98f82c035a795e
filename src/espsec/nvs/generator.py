"""Build NVS partition images from rows, laid out byte for byte as
``esp-idf-nvs-partition-gen`` 0.3.0 lays them out.

Layout rules of that tool, which this module follows:

* pages are filled in order, with sequence numbers 0, 1, 2 …; every page but the last
  used one is marked FULL, the last ACTIVE; unused pages and the reserved last page
  stay erased. Partitions under 0x3000 bytes are read-only: no reserved page, and the
  image stops after the last used page;
* a namespace entry is written when a namespace is first named;
* a string (and a version 1 blob) stays in one page; it moves to the next page when it
  would reach the end of the current one (the last entry of a page is never used by
  it);
* a version 2 blob fills the rest of the current page, then whole pages, one
  ``BLOB_DATA`` chunk per page, and is followed by its ``BLOB_IDX``;
* with keys, every written entry is XTS-encrypted with its own offset as tweak.

Where that tool fails or stores something other than the CSV says, this module differs
(compat tests use only CSVs the tool handles):

* naming a namespace again switches back to it (the tool keeps writing to the most
  recently created namespace);
* a string of 3969..4000 bytes (NUL included) gets a page of its own (the tool crashes);
* unknown row types, values that do not fit their type, rows before the first
  namespace and blobs of more than 127 chunks are errors naming the CSV line (the tool
  treats unknown types as data, crashes, writes to namespace 0, or writes chunk
  indices the runtime cannot read);
* ``binary`` rows with non-ASCII text store its UTF-8 bytes (the tool writes a size
  that disagrees with the data); encodings are case-insensitive; a ``file`` row for a
  Wi-Fi key stores the file's contents (the tool stores the file name).
"""

from __future__ import annotations

import binascii
import io
import struct
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, BinaryIO
from zlib import crc32

from espsec._io import PathLike
from espsec.chips import MAX_FLASH_SIZE
from espsec.errors import FormatError, UsageError, with_source
from espsec.nvs.csv_format import (
    CsvRecords,
    NamespaceRow,
    Row,
    RowDecoder,
    file_reader,
)
from espsec.nvs.layout import (
    CHUNK_ANY,
    CHUNK_MAX_SIZE,
    ENTRY_COUNT,
    ENTRY_SIZE,
    FIRST_ENTRY_OFFSET,
    KEY_FIELD_SIZE,
    MAX_KEY_LENGTH,
    NS_INDEX,
    PAGE_SIZE,
    PRIMITIVE_FORMATS,
    VERSION_1,
    VERSION_2,
    ItemType,
    PageState,
    blob_index_data,
    encode_key,
    var_data,
    written_entry_table,
)
from espsec.nvs.value import ValueType, check_value, string_payload

if TYPE_CHECKING:
    from espsec.nvs.nvs_keys import NvsKeys  # loaded by whoever has keys

MAX_V1_BLOB_SIZE = 1984
"""Largest version 1 blob or string (``nvs_partition_gen`` limit: about half a page)."""
MAX_STRING_SIZE = CHUNK_MAX_SIZE
"""Largest version 2 string, terminating NUL included (4000 bytes)."""
MAX_BLOB_CHUNKS = 127
"""A version 2 blob has at most 127 chunks (chunk indices 0..126 / 128..254)."""
MAX_NAMESPACES = 254
MIN_SIZE = PAGE_SIZE
MAX_SIZE = MAX_FLASH_SIZE
"""An NVS partition lives in flash: no larger than the largest flash (128 MB)."""
READ_WRITE_MIN_SIZE = 3 * PAGE_SIZE


def check_partition_size(size: int) -> None:
    """Raise :class:`UsageError` unless ``size`` can hold an NVS partition."""
    if size < MIN_SIZE:
        raise UsageError(f"NVS partition size must be at least 0x1000, got {size:#x}")
    if size % PAGE_SIZE:
        raise UsageError(f"NVS partition size must be a multiple of 0x1000, got {size:#x}")
    if size > MAX_SIZE:
        raise UsageError(
            f"NVS partition size {size:#x} is larger than the largest flash "
            f"({MAX_SIZE >> 20} MB, {MAX_SIZE:#x})"
        )


def is_read_only_size(size: int) -> bool:
    """Partitions under 0x3000 bytes have no spare page: they are read-only on the chip."""
    return size < READ_WRITE_MIN_SIZE


_ENTRY = struct.Struct("<4sI16s8s")
_HEAD = struct.Struct("<BBBB")
_PACKERS = {
    t: (struct.Struct(f).pack, b"\xff" * (8 - struct.calcsize(f)))
    for t, f in PRIMITIVE_FORMATS.items()
}


def _body_format(datatype: ItemType) -> str:
    """``key ‖ value ‖ 0xFF padding`` (the entry after its CRC) as a struct format."""
    fmt = PRIMITIVE_FORMATS[datatype][1:]
    return f"<16s{fmt}{8 - struct.calcsize('<' + fmt)}s"


_ENTRY_OF_BODY = struct.Struct("<4sI24s")  # head, CRC, then key and data
_HEADER_BODY = struct.Struct("<IB19s")  # page header bytes 4..28: seq, version, reserved
_PAGE_START = struct.Struct("<I24sI32s")  # state, header body, its CRC, entry-state table
_VAR_BODY = struct.Struct("<16sHHI")
_IDX_BODY = struct.Struct("<16sIBBH")
_PAD7 = b"\xff" * 7
_FF = [b"\xff" * n for n in range(ENTRY_SIZE)]
_FF_PAGE = b"\xff" * PAGE_SIZE
_FF19 = b"\xff" * 19
_TABLES = [written_entry_table(count) for count in range(ENTRY_COUNT + 1)]
WINDOW_PAGES = 64
"""Pages :func:`write_csv_partition` composes, encrypts and writes at a time (256 KiB)."""
_INT_BODIES = {
    vtype: (struct.Struct(_body_format(vtype.item_type)).pack, vtype.item_type)
    for vtype in ValueType
    if vtype.is_integer
}


def _entry(ns: int, datatype: int, span: int, chunk: int, key: bytes, data: bytes) -> bytes:
    head = _HEAD.pack(ns, datatype, span, chunk)
    return _ENTRY.pack(head, crc32(head + key + data, 0xFFFFFFFF), key, data)


def _head(ns: int, datatype: int, span: int, chunk: int) -> tuple[bytes, int]:
    """The first 4 bytes of an entry and the running CRC over them."""
    head = _HEAD.pack(ns, datatype, span, chunk)
    return head, crc32(head, 0xFFFFFFFF)


_IntSpec = tuple[Callable[..., bytes], bytes, int]
"""How :meth:`_Builder.run_csv` makes an integer entry: the packer of the entry after its
CRC (which refuses values out of the type's range), the entry head and its running CRC."""


class _Heads(dict[int, tuple[bytes, int]]):
    """Entry heads ``(ns, type, span, chunk)`` and their running CRC by span, each made
    on first use."""

    def __init__(self, ns: int, datatype: int, chunk: int) -> None:
        super().__init__()
        self.ns, self.datatype, self.chunk = ns, datatype, chunk

    def __missing__(self, span: int) -> tuple[bytes, int]:
        made = self[span] = _head(self.ns, self.datatype, span, self.chunk)
        return made


_FastTables = tuple[dict[str, _IntSpec], _Heads | None, _Heads | None, bytes, int]


def _fast_tables(ns: int, version: int) -> _FastTables:
    """What :meth:`_Builder.run_csv` needs to make the entries of namespace ``ns``: integer
    specs by CSV encoding, string and (version 2) blob chunk heads by span, and the blob
    index head with its running CRC. Before the first namespace: nothing (every row
    takes the slow path, which reports the error)."""
    if ns < 0:
        return {}, None, None, b"", 0
    ints = {
        str(vtype): (pack, *_head(ns, item_type, 1, CHUNK_ANY))
        for vtype, (pack, item_type) in _INT_BODIES.items()
    }
    strings = _Heads(ns, ItemType.SZ, CHUNK_ANY)
    if version == 1:
        return ints, strings, None, b"", 0
    chunks = _Heads(ns, ItemType.BLOB_DATA, 0)
    return ints, strings, chunks, *_head(ns, ItemType.BLOB_IDX, 1, CHUNK_ANY)


def _key_field(key: str) -> bytes:
    raw = key.encode("utf-8", "surrogateescape")
    if 0 < len(raw) <= MAX_KEY_LENGTH and b"\0" not in raw:
        return raw + bytes(KEY_FIELD_SIZE - len(raw))
    return encode_key(key)


def _check_arguments(size: int, version: int) -> None:
    check_partition_size(size)
    if version not in (1, 2):
        raise UsageError(f"NVS version must be 1 or 2, got {version}")


class _Builder:
    """Lays out entries page by page. A page is composed (header, entry-state table,
    entries) when the next one starts, into a window of pages: the whole image, which
    :meth:`image` returns; or, with ``out``, :data:`WINDOW_PAGES` pages that are
    encrypted (with ``keys``) and written to ``out`` each time the window is full, so
    the memory taken does not grow with the partition."""

    def __init__(
        self, size: int, version: int, keys: NvsKeys | None, out: BinaryIO | None = None
    ) -> None:
        _check_arguments(size, version)
        self.size = size
        self.version = version
        self.version_byte = VERSION_2 if version == 2 else VERSION_1
        self.keys = keys
        self.out = out
        self.read_only = is_read_only_size(size)
        self.data_pages = size // PAGE_SIZE - (0 if self.read_only else 1)
        self.image_bytes: io.BytesIO | None = None
        if out is None:
            # The image is written through a view of a BytesIO's own bytes object, which
            # getvalue() then hands out as the result without copying it.
            self.image_bytes = io.BytesIO(b"\xff" * size)
            self.window = self.image_bytes.getbuffer()
        else:
            self.window = memoryview(bytearray(WINDOW_PAGES * PAGE_SIZE))
        self.window_first = 0
        """The page at the start of the window."""
        self.counts: list[int] = []
        """Entries used in each page composed since the window's first page."""
        self.page = 0
        self.entry = 0
        self.parts: list[bytes] = []
        self.namespaces: dict[str, int] = {}
        self.ns_index = -1
        self.name = "?"
        """The key (or namespace) being placed, and its CSV line: for error messages."""
        self.line: int | None = None

    # -- placement ----------------------------------------------------------------------

    def _error(self, what: str) -> FormatError:
        return FormatError(what, field=f"line {self.line}" if self.line else None)

    def _compose(self, state: PageState) -> None:
        """Write the current page (header, table, entries) into the window."""
        index = self.page - self.window_first
        if index * PAGE_SIZE >= len(self.window):  # with ``out``: the window is full
            self._write_window(index)
            index = 0
        base = index * PAGE_SIZE
        body = _HEADER_BODY.pack(self.page, self.version_byte, _FF19)
        data = b"".join(self.parts)
        self.window[base : base + FIRST_ENTRY_OFFSET] = _PAGE_START.pack(
            state, body, crc32(body, 0xFFFFFFFF), _TABLES[self.entry]
        )
        start = base + FIRST_ENTRY_OFFSET
        end = start + len(data)
        self.window[start:end] = data
        if self.out is not None:  # the window is reused: the rest of the page is erased
            self.window[end : base + PAGE_SIZE] = _FF_PAGE[: base + PAGE_SIZE - end]
        self.parts.clear()
        self.counts.append(self.entry)

    def _encrypt(self, pages: int) -> None:
        """Encrypt the entry area of the window's first ``pages`` pages in place, then
        re-erase their empty slots."""
        if self.keys is None:
            return
        from espsec.nvs.encryption import encrypt_pages_in_place  # no NumPy

        window = self.window
        encrypt_pages_in_place(self.keys, window, pages, first_page=self.window_first)
        for index, count in enumerate(self.counts[:pages]):  # empty entries stay erased
            if count < ENTRY_COUNT:
                start = index * PAGE_SIZE + FIRST_ENTRY_OFFSET + count * ENTRY_SIZE
                end = (index + 1) * PAGE_SIZE
                window[start:end] = _FF_PAGE[: end - start]

    def _write_window(self, pages: int) -> None:
        """Encrypt and write out the window's first ``pages`` pages."""
        assert self.out is not None
        self._encrypt(pages)
        self.out.write(self.window[: pages * PAGE_SIZE])
        self.window_first += pages
        del self.counts[:pages]

    def _next_page(self) -> None:
        if self.page + 1 >= self.data_pages:
            reserved = "" if self.read_only else " plus 1 reserved page"
            raise self._error(
                f"partition too small: {self.name!r} does not fit in 0x{self.size:x} bytes "
                f"({self.data_pages} data pages{reserved})"
            )
        self._compose(PageState.FULL)
        self.page += 1
        self.entry = 0

    def _put_payload(self, payload: bytes) -> None:
        pad = -len(payload) % ENTRY_SIZE
        self.parts.append(payload + b"\xff" * pad if pad else payload)
        self.entry += (len(payload) + pad) // ENTRY_SIZE

    # -- rows ---------------------------------------------------------------------------

    def add(self, row: Row) -> None:
        self.name, self.line = row[0], row.line
        if isinstance(row, NamespaceRow):
            self._namespace(row.name)
            return
        key_text, vtype, value, _ = row
        if self.ns_index < 0:
            raise self._error(f"{key_text!r} comes before any namespace")
        try:
            key = _key_field(key_text)
        except ValueError as exc:
            raise self._error(str(exc)) from None
        if vtype is ValueType.STRING:
            if not isinstance(value, str):
                raise self._error(f"string value of {key_text!r} must be a str")
            limit = MAX_STRING_SIZE if self.version == 2 else MAX_V1_BLOB_SIZE
            self._single_page(ItemType.SZ, key, string_payload(value), limit)
        elif vtype is ValueType.BLOB:
            if not isinstance(value, bytes | bytearray):
                raise self._error(f"blob value of {key_text!r} must be bytes")
            if self.version == 1:
                self._single_page(ItemType.BLOB, key, bytes(value), MAX_V1_BLOB_SIZE)
            else:
                self._multi_page_blob(key, bytes(value))
        else:
            self._check(vtype, value)
            self._primitive(self.ns_index, vtype.item_type, key, value)  # type: ignore[arg-type]

    def _check(self, vtype: ValueType, value: object) -> None:
        try:
            check_value(vtype, value)
        except (TypeError, ValueError) as exc:
            raise self._error(f"{self.name!r}: {exc}") from None

    def _namespace(self, name: str) -> None:
        if name in self.namespaces:
            self.ns_index = self.namespaces[name]
            return
        try:
            key = _key_field(name)
        except ValueError as exc:
            raise self._error(str(exc)) from None
        if len(self.namespaces) >= MAX_NAMESPACES:
            raise self._error(f"too many namespaces (at most {MAX_NAMESPACES})")
        index = len(self.namespaces) + 1
        self._primitive(NS_INDEX, ItemType.U8, key, index)
        self.namespaces[name] = index
        self.ns_index = index

    def _primitive(self, ns: int, datatype: ItemType, key: bytes, value: int | float) -> None:
        if self.entry >= ENTRY_COUNT:
            self._next_page()
        pack, pad = _PACKERS[datatype]
        self.parts.append(_entry(ns, datatype, 1, CHUNK_ANY, key, pack(value) + pad))
        self.entry += 1

    def _single_page(self, datatype: ItemType, key: bytes, payload: bytes, limit: int) -> None:
        if len(payload) > limit:
            raise self._error(
                f"value of {self.name!r} is {len(payload)} bytes, at most {limit} allowed"
            )
        span = 1 + (len(payload) + ENTRY_SIZE - 1) // ENTRY_SIZE
        # The reference tool moves on when the item would reach the page's last entry;
        # an item that needs the whole page (it fails on those) is placed on a new page.
        if self.entry >= ENTRY_COUNT or (self.entry + span >= ENTRY_COUNT and self.entry):
            self._next_page()
        data = var_data(len(payload), crc32(payload, 0xFFFFFFFF))
        self.parts.append(_entry(self.ns_index, datatype, span, CHUNK_ANY, key, data))
        self.entry += 1
        self._put_payload(payload)

    def _multi_page_blob(self, key: bytes, data: bytes) -> None:
        if self.entry >= ENTRY_COUNT:
            self._next_page()
        size = len(data)
        span = 1 + (size + ENTRY_SIZE - 1) // ENTRY_SIZE
        if self.entry + span + 1 <= ENTRY_COUNT:
            # One chunk and its index both fit in this page (the common case); the
            # general loop below would lay them out the same way.
            ns = self.ns_index
            header = var_data(size, crc32(data, 0xFFFFFFFF))
            self.parts.append(_entry(ns, ItemType.BLOB_DATA, span, 0, key, header))
            pad = -size % ENTRY_SIZE
            self.parts.append(data + b"\xff" * pad if pad else data)
            index = blob_index_data(size, 1, 0)
            self.parts.append(_entry(ns, ItemType.BLOB_IDX, 1, CHUNK_ANY, key, index))
            self.entry += span + 1
            return
        chunks = 0
        offset = 0
        remaining = len(data)
        while True:
            tailroom = (ENTRY_COUNT - self.entry - 1) * ENTRY_SIZE
            size = min(tailroom, remaining)
            remaining -= size
            if chunks >= MAX_BLOB_CHUNKS:
                raise self._error(f"blob {self.name!r} needs more than {MAX_BLOB_CHUNKS} chunks")
            chunk = data[offset : offset + size]
            header = var_data(size, crc32(chunk, 0xFFFFFFFF))
            span = 1 + (size + ENTRY_SIZE - 1) // ENTRY_SIZE
            self.parts.append(_entry(self.ns_index, ItemType.BLOB_DATA, span, chunks, key, header))
            self.entry += 1
            self._put_payload(chunk)
            chunks += 1
            if remaining or tailroom - size < ENTRY_SIZE:
                self._next_page()
            offset += size
            if not remaining:
                index = blob_index_data(len(data), chunks, 0)
                self.parts.append(
                    _entry(self.ns_index, ItemType.BLOB_IDX, 1, CHUNK_ANY, key, index)
                )
                self.entry += 1
                return

    def run_csv(self, records: CsvRecords, decoder: RowDecoder) -> None:
        """Add every record of a CSV.

        Data rows of the common encodings (integers, ``string``, and in version 2
        ``hex2bin`` and ``base64``) are turned into entries right here, without building
        rows, and move to the next page here too; they come out exactly as :meth:`add`
        would make them. A blob that runs on into the next page is chunked by
        :meth:`_multi_page_blob`. Everything else (namespaces, files, Wi-Fi keys, other
        encodings, values the fast path does not take) goes through ``decoder`` and
        :meth:`add`, which also report every error.
        """
        append = self.parts.append
        entry = self.entry
        ns = self.ns_index
        tables = {ns: _fast_tables(ns, self.version)}
        ints, heads_sz, heads_chunk, index_head, index_crc = tables[ns]
        entry_of = _ENTRY_OF_BODY.pack
        var_body, idx_body = _VAR_BODY.pack, _IDX_BODY.pack
        crc, binascii_error, struct_error = crc32, binascii.Error, struct.error
        blob_decoders = {"hex2bin": binascii.a2b_hex, "base64": binascii.a2b_base64}
        string_limit = MAX_STRING_SIZE if self.version == 2 else MAX_V1_BLOB_SIZE
        wifi_keys = decoder.wifi_keys
        normalise = records.normalise
        pad7, ff = _PAD7, _FF
        max_key, count = MAX_KEY_LENGTH, ENTRY_COUNT
        value: str | None
        for line, fields in records.stream():
            try:
                key_text, rtype, encoding, value = fields
            except ValueError:
                record = normalise(fields)
                if record is None:
                    continue
                key_text, rtype, encoding, value = record
            else:
                if rtype == "data" and key_text not in wifi_keys:
                    try:
                        key = key_text.encode()
                    except UnicodeEncodeError:  # a lone surrogate (text from the API)
                        key = b""
                    if 0 < len(key) <= max_key and "\0" not in key_text:
                        spec = ints.get(encoding)
                        if spec is not None:
                            body_of, head, head_crc32 = spec
                            try:  # struct refuses a value out of the type's range
                                body = body_of(key, int(value), pad7)
                            except (ValueError, struct_error):
                                pass
                            else:
                                if entry >= count:
                                    entry = self._turn_page(entry, key_text, line)
                                append(entry_of(head, crc(body, head_crc32), body))
                                entry += 1
                                continue
                        elif encoding == "string" and heads_sz is not None:
                            try:
                                payload = value.encode() + b"\0"
                            except UnicodeEncodeError:
                                payload = b""
                            size = len(payload)
                            if 0 < size <= string_limit:
                                span = (size + 63) >> 5
                                # moves on when it would reach the page's last entry
                                if entry + span >= count and entry:
                                    entry = self._turn_page(entry, key_text, line)
                                head, head_crc32 = heads_sz[span]
                                body = var_body(key, size, 0xFFFF, crc(payload, 0xFFFFFFFF))
                                append(entry_of(head, crc(body, head_crc32), body))
                                append(payload + ff[-size & 31])
                                entry += span
                                continue
                        elif heads_chunk is not None and encoding in blob_decoders:
                            try:  # anything unusual takes the slow path, which reports errors
                                data = blob_decoders[encoding](value)
                            except (binascii_error, ValueError):
                                data = None
                            if data is not None:
                                size = len(data)
                                span = (size + 63) >> 5
                                if entry + span < count:
                                    # One chunk and its index both fit in this page.
                                    head, head_crc32 = heads_chunk[span]
                                    body = var_body(key, size, 0xFFFF, crc(data, 0xFFFFFFFF))
                                    append(entry_of(head, crc(body, head_crc32), body))
                                    append(data + ff[-size & 31])
                                    body = idx_body(key, size, 1, 0, 0xFFFF)
                                    append(entry_of(index_head, crc(body, index_crc), body))
                                    entry += span + 1
                                else:
                                    self.entry, self.name, self.line = entry, key_text, line
                                    self._multi_page_blob(key + bytes(16 - len(key)), data)
                                    entry = self.entry
                                continue
            self.entry = entry
            for row in decoder.decode(line, key_text, rtype, encoding, value):
                self.add(row)
            entry = self.entry
            if self.ns_index != ns:
                ns = self.ns_index
                if ns not in tables:
                    tables[ns] = _fast_tables(ns, self.version)
                ints, heads_sz, heads_chunk, index_head, index_crc = tables[ns]
        self.entry = entry

    def _turn_page(self, entry: int, name: str, line: int) -> int:
        """:meth:`_next_page` from the fast path of :meth:`run_csv`: the next entry (0)."""
        self.entry, self.name, self.line = entry, name, line
        self._next_page()
        return 0

    # -- output -------------------------------------------------------------------------

    def _finish(self) -> int:
        """Compose the last page used (the active one); the number of pages used."""
        self._compose(PageState.ACTIVE)
        return self.page + 1

    def image(self) -> bytes:
        """The partition image (without ``out``)."""
        assert self.image_bytes is not None
        used = self._finish()
        self._encrypt(used)
        self.window.release()
        if self.read_only:
            self.image_bytes.truncate(used * PAGE_SIZE)
        return self.image_bytes.getvalue()

    def write(self) -> int:
        """Write the rest of the partition image to ``out``; its size in bytes."""
        assert self.out is not None
        used = self._finish()
        self._write_window(used - self.window_first)
        total = used if self.read_only else self.size // PAGE_SIZE
        erased = b"\xff" * (min(WINDOW_PAGES, total - used) * PAGE_SIZE)
        for first in range(used, total, WINDOW_PAGES):
            self.out.write(erased[: min(WINDOW_PAGES, total - first) * PAGE_SIZE])
        return total * PAGE_SIZE


def generate_partition(
    rows: Iterable[Row], size: int, *, version: int = 2, keys: NvsKeys | None = None
) -> bytes:
    """An NVS partition image of ``size`` bytes holding ``rows``.

    ``version`` 2 stores blobs as multi-page chunks plus an index, version 1 as single
    items of at most 1984 bytes. With ``keys`` the image is NVS-encrypted. Raises
    :class:`FormatError` naming the row's CSV line for a row that cannot be stored
    (including when the partition is too small), :class:`UsageError` for a bad size.
    """
    builder = _Builder(size, version, keys)
    for row in rows:
        builder.add(row)
    return builder.image()


def generate_csv_partition(
    text: str,
    size: int,
    *,
    version: int = 2,
    keys: NvsKeys | None = None,
    read_file: Callable[[str], bytes] | None = None,
    wifi_extras: bool = True,
) -> bytes:
    """:func:`generate_partition` of :func:`parse_csv` ``(text)``, in one fast pass.

    ``read_file`` and ``wifi_extras`` are as for :func:`parse_csv`.
    """
    _check_arguments(size, version)  # before the CSV, as when the builder came first
    decoder = RowDecoder(read_file, wifi_extras=wifi_extras)
    builder = _Builder(size, version, keys)
    builder.run_csv(CsvRecords(text), decoder)
    return builder.image()


def generate_csv_file(
    path: PathLike,
    size: int,
    *,
    version: int = 2,
    keys: NvsKeys | None = None,
    base_dir: PathLike | None = None,
    wifi_extras: bool = True,
) -> bytes:
    """The partition image for a generator CSV file (see :func:`load_csv`).

    The file is read a block at a time as the partition fills (:meth:`CsvRecords.from_file`),
    so the memory it takes is about the image's size whatever the CSV's.
    """
    with with_source(str(path)):
        builder = _Builder(size, version, keys)
        _run_csv_file(builder, path, base_dir, wifi_extras)
        return builder.image()


def write_csv_partition(
    path: PathLike,
    out: BinaryIO,
    size: int,
    *,
    version: int = 2,
    keys: NvsKeys | None = None,
    base_dir: PathLike | None = None,
    wifi_extras: bool = True,
) -> int:
    """Write the image :func:`generate_csv_file` makes to ``out`` as it is made; returns
    its size in bytes.

    Pages go out (encrypted with ``keys``) :data:`WINDOW_PAGES` at a time, so the memory
    taken stays small whatever the partition's size. An error can come after part of the
    image was written: give a file that is then discarded (``espsec._io.output_file``).
    """
    with with_source(str(path)):
        builder = _Builder(size, version, keys, out)
        _run_csv_file(builder, path, base_dir, wifi_extras)
        return builder.write()


def _run_csv_file(
    builder: _Builder, path: PathLike, base_dir: PathLike | None, wifi_extras: bool
) -> None:
    decoder = RowDecoder(file_reader(base_dir), wifi_extras=wifi_extras)
    builder.run_csv(CsvRecords.from_file(path), decoder)
