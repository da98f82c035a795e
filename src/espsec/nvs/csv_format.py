"""The CSV format of ESP-IDF's ``nvs_partition_gen.py``: ``key,type,encoding,value``.

``type`` is ``namespace`` (``key`` names the namespace that following rows go to),
``data`` (``value`` is the value) or ``file`` (``value`` is a path whose contents are the
value). ``encoding`` is ``u8`` … ``i64``, ``string``, ``hex2bin``, ``base64`` or
``binary`` (and the generator's ``blob_fill(N;0xPP)`` / ``blob_sz_fill(N;0xPP)``).
Lines starting with ``#`` are comments. The first row after the header must be a
namespace.

Like ``esp-idf-nvs-partition-gen`` 0.3.0, the parser by default adds the Wi-Fi keys that
tool injects: ``sta.apinfo``, ``sta.pmk`` and ``sta.apsw`` after the first ``sta.ssid`` /
``sta.pswd``, and ``ap.pmk_info`` (PBKDF2 of the AP password) once ``ap.ssid``,
``ap.passwd`` and a non-zero ``ap.authmode`` are all known. Pass ``wifi_extras=False``
to get exactly the rows of the file.
"""

from __future__ import annotations

import binascii
import codecs
import io
import itertools
import re
import struct
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter, methodcaller
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from espsec._io import STDIO, PathLike, declare_input, read_bytes
from espsec.errors import EspsecError, FormatError
from espsec.nvs.layout import encode_key
from espsec.nvs.value import Value, ValueType, check_value, int_range

if TYPE_CHECKING:
    from espsec.nvs.entry import NvsEntry  # what a partition holds: rows_from_entries

HEADER = ("key", "type", "encoding", "value")
INT_ENCODINGS = ("u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64")
BLOB_ENCODINGS = ("hex2bin", "base64", "binary")
ENCODINGS = (*INT_ENCODINGS, "string", *BLOB_ENCODINGS)
ROW_TYPES = ("namespace", "data", "file")
WIFI_KEYS = frozenset({"ap.ssid", "ap.passwd", "ap.authmode", "sta.ssid", "sta.pswd"})
_SPLIT_COMMAS = methodcaller("split", ",")
_FILL = re.compile(r"(blob_fill|blob_sz_fill)\((\d+);(0x[0-9a-fA-F]{2})\)")


class NamespaceRow(NamedTuple):
    """Rows after this one go to namespace ``name`` (created on first use)."""

    name: str
    line: int | None = None


class DataRow(NamedTuple):
    """One value to store under ``key`` in the current namespace."""

    key: str
    type: ValueType
    value: Value
    line: int | None = None

    def __repr__(self) -> str:  # values are often secrets: not shown
        return f"DataRow(key={self.key!r}, type={self.type.value!r}, line={self.line})"


Row = NamespaceRow | DataRow


def _fail(line: int, what: str, *, expected: object = None, found: object = None) -> FormatError:
    return FormatError(what, field=f"line {line}", expected=expected, found=found)


CSV_BLOCK = 1 << 16
"""Bytes of a CSV file read at a time by :meth:`CsvRecords.from_file`. Under malloc's
mmap threshold (128 KiB), so each block's text and lines reuse the memory of the last
instead of mapping (and page-faulting) new memory: a 50k-row CSV read in 256 KiB blocks
took 1,700 more page faults."""


def _segment(block: str, number: int) -> tuple[list[str], Iterable[int], int]:
    """The lines of a piece of CSV text that starts at file line ``number`` (without
    line breaks and comments), their line numbers, and the number of the line after it.

    Line breaks are read as Python's universal newlines read them (``\\r\\n``, ``\\r``
    and ``\\n``), which is how ``nvs_partition_gen.py`` opens the CSV.
    """
    if "\r" in block:
        block = block.replace("\r\n", "\n").replace("\r", "\n")
    lines = block.split("\n")
    if lines[-1] == "":
        lines.pop()
    after = number + len(lines)
    # "#" first: a one-character search is a memchr, "\n#" is several times slower
    if "#" not in block or (not block.startswith("#") and "\n#" not in block):
        return lines, range(number, after), after
    numbers = [n for n, line in enumerate(lines, number) if not line.startswith("#")]
    return [line for line in lines if not line.startswith("#")], numbers, after


class CsvRecords:
    """The records of a generator CSV, its header parsed; read once, front to back.

    A line without a double quote (or NUL) is one record split on commas, exactly as
    ``csv.reader`` would split it, only faster; any other record goes to ``csv.reader``.
    :attr:`pick` takes ``(key, type, encoding, value)`` from a record of at least
    :attr:`width` fields. :meth:`from_file` reads the file a block at a time, so a large
    CSV is never in memory all at once.
    """

    def __init__(self, text: str) -> None:
        self._start(iter([text]))

    @classmethod
    def from_file(cls, path: PathLike) -> CsvRecords:
        """The records of a CSV file (UTF-8, with or without a byte-order mark)."""
        records = cls.__new__(cls)
        records._start(_read_blocks(path))
        return records

    def _start(self, blocks: Iterator[str]) -> None:
        self._stream = self._records(blocks)
        header: list[str] = []
        line = 1  # the line of the header, or of the last line looked at
        for number, fields in self._stream:
            line = number
            if fields and fields != [""]:
                header = fields
                break
        if not header or not all(name in header for name in HEADER):
            raise _fail(
                line,
                "CSV header must name the columns key,type,encoding,value",
                expected=",".join(HEADER),
                found=",".join(header) or "nothing",
            )
        self.columns = [header.index(name) for name in HEADER]
        self.width = max(self.columns) + 1
        self.pick = itemgetter(*self.columns)

    def _records(self, blocks: Iterator[str]) -> Iterator[tuple[int, list[str]]]:
        """``(line number, fields)`` of every record (some may be empty)."""
        return itertools.chain.from_iterable(self._segment_records(blocks))

    @staticmethod
    def _segment_records(blocks: Iterator[str]) -> Iterator[Iterator[tuple[int, list[str]]]]:
        number = 1
        for block in blocks:
            if '"' in block or "\0" in block:
                # a quoted record may run on into the next block: the rest in one piece
                lines, numbers, _ = _segment("".join([block, *blocks]), number)
                yield _quoted_records(lines, list(numbers))
                return
            lines, numbers, number = _segment(block, number)
            # lazily, in C: the lists die one by one (no GC churn)
            yield zip(numbers, map(_SPLIT_COMMAS, lines), strict=True)

    def stream(self) -> Iterator[tuple[int, list[str]]]:
        """``(line number, fields)`` of the records after the header: four fields are
        ``key, type, encoding, value``; any other record goes through :meth:`normalise`.
        """
        if self.columns == [0, 1, 2, 3]:
            return self._stream
        return (
            (line, [key, rtype, encoding] if value is None else [key, rtype, encoding, value])
            for line, key, rtype, encoding, value in self.records()
        )

    def normalise(self, fields: list[str]) -> tuple[str, str, str, str | None] | None:
        """``(key, type, encoding, value)`` of a record of :meth:`stream` that does not
        have four fields; ``None`` for an empty one."""
        if self.columns != [0, 1, 2, 3]:  # a record without a value column
            key, rtype, encoding = fields
            return key, rtype, encoding, None
        if len(fields) >= self.width:
            return self.pick(fields)  # type: ignore[no-any-return]
        if fields and fields != [""]:
            return self.short(fields)
        return None

    def records(self) -> Iterator[tuple[int, str, str, str, str | None]]:
        """``(line number, key, type, encoding, value)`` of every non-empty record."""
        width, pick = self.width, self.pick
        for line, fields in self._stream:
            if len(fields) >= width:
                yield (line, *pick(fields))
            elif fields and fields != [""]:
                yield (line, *self.short(fields))

    def short(self, fields: list[str]) -> tuple[str, str, str, str | None]:
        """``(key, type, encoding, value)`` of a record with missing fields."""
        key, rtype, encoding, value = (fields[i] if i < len(fields) else None for i in self.columns)
        return key or "", rtype or "", encoding or "", value


def _quoted_records(lines: list[str], numbers: list[int]) -> Iterator[tuple[int, list[str]]]:
    """Records of lines some of which need ``csv.reader`` (quotes, NUL)."""
    index = 0
    while index < len(lines):
        line = lines[index]
        if '"' not in line and "\0" not in line:
            fields = line.split(",")
            yield numbers[index], ([] if fields == [""] else fields)
            index += 1
            continue
        import csv  # only quoted records need it

        reader = csv.reader(lines[j] + "\n" for j in range(index, len(lines)))
        try:
            fields = next(reader, [])
        except csv.Error as exc:
            raise _fail(numbers[index], f"bad CSV: {exc}") from None
        yield numbers[index], fields
        index += max(reader.line_num, 1)


def _read_blocks(path: PathLike) -> Iterator[str]:
    """The text of a CSV file in pieces of about :data:`CSV_BLOCK` bytes, each ending at
    a line break (the last one at the end of the file)."""
    if str(path) == STDIO:
        yield read_csv_text(path)
        return
    declare_input(path)
    try:
        stream = Path(path).open("rb")  # noqa: SIM115 - closed below, read lazily
    except FileNotFoundError:
        raise EspsecError("CSV file not found", source=str(path)) from None
    except IsADirectoryError:
        raise EspsecError("expected a CSV file, found a directory", source=str(path)) from None
    except OSError as exc:
        raise EspsecError(f"cannot read CSV file: {exc.strerror}", source=str(path)) from None
    # utf-8 (loaded at start-up, unlike utf-8-sig), the byte-order mark dropped by hand
    decoder = codecs.getincrementaldecoder("utf-8")()
    done = 0  # bytes handed to the decoder so far
    carry = ""
    bom = "\ufeff"  # until the first text is seen
    with stream:
        while True:
            try:
                chunk = stream.read(CSV_BLOCK)
            except OSError as exc:
                raise EspsecError(
                    f"cannot read CSV file: {exc.strerror}", source=str(path)
                ) from None
            pending = len(decoder.getstate()[0])
            try:
                text = carry + decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                raise FormatError(
                    "CSV is not UTF-8 text", offset=done - pending + exc.start, source=str(path)
                ) from None
            done += len(chunk)
            if bom and text:
                if text.startswith(bom):
                    text = text[1:]
                bom = ""
            if not chunk:
                if text:
                    yield text
                return
            cut = text.rfind("\n") + 1
            carry = text[cut:]
            if cut:
                yield text[:cut]


def _decode_value(line: int, key: str, encoding: str, raw: str | bytes) -> tuple[ValueType, Value]:
    """Turn the text (or file contents) of a row into a typed value."""
    enc = encoding.lower()
    if enc in INT_ENCODINGS:
        vtype = ValueType(enc)
        try:
            number = int(raw)
        except ValueError:
            raise _fail(
                line, f"value of {key!r} is not an integer", expected="an integer", found=repr(raw)
            ) from None
        low, high = int_range(vtype)
        if not low <= number <= high:
            raise _fail(
                line,
                f"value of {key!r} does not fit {enc}",
                expected=f"{low}..{high}",
                found=str(number),
            )
        return vtype, number
    if enc == "string":
        if isinstance(raw, bytes):
            try:
                return ValueType.STRING, raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _fail(line, f"file for {key!r} is not UTF-8 text") from None
        return ValueType.STRING, raw
    if enc == "hex2bin":
        text = raw.strip()
        if len(text) % 2:
            raise _fail(
                line,
                f"hex value of {key!r} has an odd number of digits",
                expected="an even number",
                found=len(text),
            )
        try:
            return ValueType.BLOB, binascii.a2b_hex(text)
        except (binascii.Error, ValueError):
            raise _fail(line, f"value of {key!r} is not hexadecimal") from None
    if enc == "base64":
        try:
            return ValueType.BLOB, binascii.a2b_base64(raw)
        except (binascii.Error, ValueError):
            raise _fail(line, f"value of {key!r} is not base64") from None
    if enc == "binary":
        return ValueType.BLOB, raw.encode("utf-8") if isinstance(raw, str) else raw
    fill = _FILL.fullmatch(encoding)
    if fill:
        length, pad = int(fill.group(2)), int(fill.group(3), 16)
        content = raw.encode("utf-8") if isinstance(raw, str) else raw
        if len(content) > length:
            raise _fail(
                line,
                f"value of {key!r} is longer than {encoding}",
                expected=f"at most {length} bytes",
                found=f"{len(content)} bytes",
            )
        data = content + bytes([pad]) * (length - len(content))
        if fill.group(1) == "blob_sz_fill":
            data = struct.pack("<I", len(content)) + data
        return ValueType.BLOB, data
    raise _fail(
        line,
        f"unknown encoding for {key!r}",
        expected=", ".join(ENCODINGS),
        found=repr(encoding),
    )


class RowDecoder:
    """Turns CSV records into rows, one at a time, with the file's context."""

    def __init__(
        self, read_file: Callable[[str], bytes] | None = None, *, wifi_extras: bool = True
    ) -> None:
        self.read_file = read_file
        self.extras = _WifiExtras() if wifi_extras else None
        self.wifi_keys = WIFI_KEYS if wifi_extras else frozenset()
        self.have_namespace = False

    def decode(
        self, line: int, key: str, rtype: str, encoding: str, value: str | None
    ) -> list[Row]:
        """The rows one record stands for (more than one when Wi-Fi keys are added)."""
        try:
            encode_key(key)
        except ValueError as exc:
            raise _fail(line, str(exc)) from None
        if rtype == "namespace":
            self.have_namespace = True
            return [NamespaceRow(key, line)]
        if rtype not in ROW_TYPES:
            raise _fail(
                line,
                f"unknown type for {key!r}",
                expected=", ".join(ROW_TYPES),
                found=repr(rtype),
            )
        if not self.have_namespace:
            raise _fail(
                line,
                f"{key!r} comes before any namespace row; the first row must be a namespace",
            )
        if value is None:
            raise _fail(line, f"row for {key!r} has no value column")
        raw: str | bytes = value
        if rtype == "file":
            if self.read_file is None:
                raise _fail(line, f"file row {key!r} needs a base folder to read {value!r}")
            try:
                raw = self.read_file(value)
            except EspsecError as exc:
                raise _fail(line, f"cannot read file for {key!r}: {exc}") from None
        row = DataRow(key, *_decode_value(line, key, encoding, raw), line)
        if self.extras is not None and key in self.wifi_keys:
            return self.extras.around(row, value)
        return [row]


def parse_csv(
    text: str,
    *,
    read_file: Callable[[str], bytes] | None = None,
    wifi_extras: bool = True,
) -> list[Row]:
    """Parse generator CSV text into rows.

    ``read_file`` returns the contents of a ``file`` row's path; without it, ``file``
    rows are an error. Raises :class:`FormatError` naming the line of the first bad row.
    """
    records = CsvRecords(text)
    decoder = RowDecoder(read_file, wifi_extras=wifi_extras)
    rows: list[Row] = []
    for line, key, rtype, encoding, value in records.records():
        rows += decoder.decode(line, key, rtype, encoding, value)
    return rows


def read_csv_text(path: PathLike) -> str:
    """The text of a CSV file (UTF-8, with or without a byte-order mark)."""
    data = read_bytes(path, what="CSV file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError("CSV is not UTF-8 text", offset=exc.start, source=str(path)) from None


def file_reader(base_dir: PathLike | None) -> Callable[[str], bytes]:
    """Reads ``file`` rows' paths relative to ``base_dir`` (default: the current folder)."""
    folder = Path(base_dir) if base_dir is not None else Path.cwd()

    def read_file(name: str) -> bytes:
        return read_bytes(folder / name, what="value file")

    return read_file


def load_csv(
    path: PathLike, *, base_dir: PathLike | None = None, wifi_extras: bool = True
) -> list[Row]:
    """Read a generator CSV file and the files its ``file`` rows name.

    Relative paths in ``file`` rows are resolved against ``base_dir``, by default the
    current directory (as ``nvs_partition_gen.py`` does).
    """
    text = read_csv_text(path)
    try:
        return parse_csv(text, read_file=file_reader(base_dir), wifi_extras=wifi_extras)
    except EspsecError as exc:
        exc.source = exc.source or str(path)
        raise


class _WifiExtras:
    """The Wi-Fi keys ``esp-idf-nvs-partition-gen`` 0.3.0 adds (see the module doc).

    Like that tool, it works on the value text as written in the CSV.
    """

    def __init__(self) -> None:
        self.ap: dict[str, str] = {}
        self.sta_done = False

    def around(self, row: DataRow, text: str) -> list[Row]:
        out: list[Row] = []
        if row.key in ("ap.ssid", "ap.passwd", "ap.authmode"):
            if row.key != "ap.authmode" or text != "0":
                self.ap[row.key] = text
            if all(self.ap.get(k) for k in ("ap.ssid", "ap.passwd", "ap.authmode")):
                import hashlib

                pmk = hashlib.pbkdf2_hmac(
                    "sha1", self.ap["ap.passwd"].encode(), self.ap["ap.ssid"].encode(), 4096, 32
                )
                out.append(DataRow("ap.pmk_info", ValueType.BLOB, bytes(100) + pmk, row.line))
        out.append(row)
        if row.key in ("sta.ssid", "sta.pswd") and not self.sta_done:
            self.sta_done = True
            out += [
                DataRow("sta.apinfo", ValueType.BLOB, b"\xff" * 140, row.line),
                DataRow("sta.pmk", ValueType.BLOB, bytes(32), row.line),
                DataRow("sta.apsw", ValueType.BLOB, bytes(2), row.line),
            ]
        return out


def rows_from_entries(entries: Iterable[NvsEntry]) -> list[Row]:
    """Rows that regenerate ``entries`` in order, switching namespace where needed.

    Namespace rows come before the first entry of each namespace and again whenever the
    entries go back to a namespace seen before.
    """
    rows: list[Row] = []
    current: str | None = None
    for entry in entries:
        if entry.namespace != current:
            rows.append(NamespaceRow(entry.namespace))
            current = entry.namespace
        rows.append(DataRow(entry.key, entry.type, entry.value))
    return rows


def dump_csv(rows: Iterable[Row]) -> str:
    """Generator CSV text for ``rows`` (blobs hex-encoded)."""
    import csv

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for row in rows:
        if isinstance(row, NamespaceRow):
            writer.writerow((row.name, "namespace", "", ""))
            continue
        vtype, value = row.type, row.value
        check_value(vtype, value)
        if vtype.is_integer:
            writer.writerow((row.key, "data", str(vtype), str(value)))
        elif vtype is ValueType.STRING:
            assert isinstance(value, str)
            if re.search(r"[\r\n]#", value) or "\0" in value or _not_utf8(value):
                raise FormatError(
                    f"string {row.key!r} cannot be written as generator CSV (it holds a NUL, "
                    "bytes that are not UTF-8 or a line starting with '#'); use JSON"
                )
            writer.writerow((row.key, "data", "string", value))
        elif vtype is ValueType.BLOB:
            assert isinstance(value, bytes)
            writer.writerow((row.key, "data", "hex2bin", value.hex()))
        else:
            raise FormatError(f"{vtype} value {row.key!r} has no generator CSV encoding; use JSON")
    return out.getvalue()


def _not_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
