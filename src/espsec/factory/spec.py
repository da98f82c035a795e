"""The batch spec: one TOML file says what a factory run makes.

::

    [batch]
    name = "line-a-0519"
    chip = "esp32s3"            # a chip of espsec.chips
    min_revision = "v0.1"       # optional: refuse a chip of an older wafer revision
    count = 1000                # or: serials = ["SN-A1", "SN-A2"]
    serial_format = "SN{n:06d}" # with count; n counts from serial_start
    serial_start = 1
    profile = "production"      # "development": keys and digests only
    output = "out"              # folder for the journal, artifacts and manifest

    [keys]
    flash_encryption = "host"   # "host" | "device" (bootloader makes it) | "none"
    hmac = "host"               # HMAC_UP key for NVS encryption: "host" | "device" | "none"
    identity = "host"           # DS RSA key (S3) or ECDSA key (P4): "host" | "none"
    ds_rsa_bits = 3072
    random = "os"               # "os" (secrets) or "hsm" (the CA token's generator)
    escrow = "escrow.pub.pem"   # optional: keep host keys wrapped to this public key

    [secure_boot]
    digests = ["sb0.pub.pem", "sb1.digest"]   # public keys, 32-byte digest files or hex

    [nvs]
    template = "factory_nvs.csv"  # {serial} {mac} {device_id} {batch} {index} substituted
    partition = "nvs"             # partition-table name (or offset + size)
    encrypt = true

    [secure_cert]
    ca_chain = ["ca.pem"]         # CA certificates stored with the device certificate

    [ca]
    certificate = "ca.pem"
    uri = "pkcs11:token=factory;object=device-ca;type=private?module-path=..."
    # key = "ca.key.pem"          # development only: the key in a file

    [firmware]
    partition_table = "partitions.csv"
    bootloader = "bootloader.bin"
    app = "app.bin"               # written to the factory (or first OTA) partition
    flash_size = "4MB"
    sdkconfig = "sdkconfig"       # options the virtual bootloader runs with

Relative paths are relative to the spec file. Every error is one line naming the key
(``[keys] flash_encryption: expected one of host, device, none, found 'usb'``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from espsec.chips import Chip, get_chip, parse_revision
from espsec.errors import EspsecError, UsageError

PROFILES = ("development", "production")
KEY_SOURCES = ("host", "device", "none")
MAX_BATCH = 10_000_000


class SpecError(EspsecError):
    """The batch spec is malformed: the message names the table and key."""


@dataclass(frozen=True)
class KeysSpec:
    """Which per-device keys exist and where each is generated."""

    flash_encryption: str = "host"
    hmac: str = "host"
    identity: str = "host"
    ds_rsa_bits: int = 3072
    random: str = "os"
    escrow: Path | None = None


@dataclass(frozen=True)
class NvsSpec:
    """The factory NVS partition: a CSV template with per-device fields."""

    template: Path
    partition: str | None = "nvs"
    offset: int | None = None
    size: int | None = None
    encrypt: bool = True


@dataclass(frozen=True)
class CaSpec:
    """The device CA: its certificate, and its key in a token (or a file)."""

    certificate: Path
    uri: str | None = None
    key: Path | None = None


@dataclass(frozen=True)
class FirmwareSpec:
    """What the flash holds besides the per-device partitions."""

    partition_table: Path
    bootloader: Path | None = None
    app: Path | None = None
    flash_size: str = "4MB"
    sdkconfig: Path | None = None


@dataclass(frozen=True)
class BatchSpec:
    """A parsed, checked batch spec (paths resolved against the spec's folder)."""

    path: Path
    name: str
    chip: Chip
    profile: str
    output: Path
    keys: KeysSpec
    ca: CaSpec
    firmware: FirmwareSpec
    count: int | None = None
    serials: tuple[str, ...] = ()
    serial_format: str = "{n:06d}"
    serial_start: int = 1
    min_revision: int | None = None
    """The oldest wafer revision accepted (major * 100 + minor), or ``None``."""
    sb_digests: tuple[str, ...] = ()
    nvs: NvsSpec | None = None
    ca_chain: tuple[Path, ...] = ()
    efuses: Mapping[str, int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """How many devices the batch holds."""
        return len(self.serials) if self.serials else (self.count or 0)

    def serial(self, index: int) -> str:
        """The serial of device ``index`` (0-based) of the batch."""
        if self.serials:
            return self.serials[index]
        return self.serial_format.format(n=self.serial_start + index)

    def iter_serials(self) -> Iterator[str]:
        """Every serial, in batch order, generated lazily (memory flat in the size)."""
        for i in range(self.size):
            yield self.serial(i)


class _Table:
    """A TOML table with one-line errors naming ``[table] key``."""

    def __init__(self, data: Mapping[str, Any], name: str, source: str) -> None:
        self.data = data
        self.name = name
        self.source = source
        self.seen: set[str] = set()

    def fail(self, key: str, expected: str, found: object) -> SpecError:
        shown = f"{found!r}" if not isinstance(found, bool) else str(found).lower()
        return SpecError(
            f"[{self.name}] {key}: expected {expected}, found {shown}", source=self.source
        )

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        self.seen.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, bool) and kind is not bool and bool not in _as_tuple(kind):
            raise self.fail(key, _kind_name(kind), value)
        if not isinstance(value, kind):
            raise self.fail(key, _kind_name(kind), value)
        return value

    def required(self, key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in self.data:
            raise SpecError(f"[{self.name}] {key}: required, missing", source=self.source)
        return self.get(key, kind)

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            raise self.fail(key, f"one of {', '.join(choices)}", value)
        return str(value)

    def finish(self) -> None:
        extra = sorted(set(self.data) - self.seen)
        if extra:
            raise SpecError(
                f"[{self.name}] {extra[0]}: unknown key (known: {', '.join(sorted(self.seen))})",
                source=self.source,
            )


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))


def _tables(doc: Mapping[str, Any], source: str) -> dict[str, _Table]:
    known = ("batch", "keys", "secure_boot", "nvs", "secure_cert", "ca", "firmware", "efuses")
    for name, value in doc.items():
        if name not in known:
            raise SpecError(f"[{name}]: unknown table (known: {', '.join(known)})", source=source)
        if not isinstance(value, dict):
            raise SpecError(f"{name}: expected a table, found {value!r}", source=source)
    return {name: _Table(doc.get(name, {}), name, source) for name in known}


def parse_spec(text: str, path: Path) -> BatchSpec:
    """Parse and check a batch spec; :class:`SpecError` names the table and key."""
    source = str(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"not valid TOML: {exc}", source=source) from None
    t = _tables(doc, source)
    base = path.parent

    def rel(value: str | None) -> Path | None:
        return None if value is None else (base / value)

    b = t["batch"]
    if not doc.get("batch"):
        raise SpecError("[batch]: required table, missing", source=source)
    name = b.required("name", str)
    if not name or any(c in name for c in "/\\\0\n"):
        raise b.fail("name", "a name without slashes or newlines", name)
    chip_name = b.required("chip", str)
    try:
        chip = get_chip(chip_name)
    except EspsecError:
        raise b.fail("chip", "a chip espsec knows (esp32s3, esp32p4, ...)", chip_name) from None
    count = b.get("count", int)
    serials = b.get("serials", list, [])
    if (count is None) == (not serials):
        raise SpecError("[batch]: give exactly one of count or serials", source=source)
    if count is not None and not 1 <= count <= MAX_BATCH:
        raise b.fail("count", f"1..{MAX_BATCH}", count)
    for s in serials:
        if not isinstance(s, str) or not s or any(c in s for c in "/\\\0\n"):
            raise b.fail("serials", "strings without slashes or newlines", s)
    if len(set(serials)) != len(serials):
        dup = next(s for s in serials if serials.count(s) > 1)
        raise b.fail("serials", "unique serials", dup)
    serial_format = b.get("serial_format", str, "{n:06d}")
    serial_start = b.get("serial_start", int, 1)
    if count is not None:
        try:
            first = serial_format.format(n=serial_start)
            second = serial_format.format(n=serial_start + 1)
        except (KeyError, IndexError, ValueError):
            raise b.fail("serial_format", "a format with {n}", serial_format) from None
        if first == second or "/" in first:
            raise b.fail("serial_format", "a format that numbers serials with {n}", serial_format)
    profile = b.choice("profile", PROFILES, "development")
    output = rel(b.get("output", str, f"{name}-out"))
    assert output is not None
    min_revision_text = b.get("min_revision", str)
    min_revision = None
    if min_revision_text is not None:
        try:
            min_revision = parse_revision(min_revision_text)
        except UsageError:
            expected = "a chip revision vMAJOR.MINOR"
            raise b.fail("min_revision", expected, min_revision_text) from None
    b.finish()

    k = t["keys"]
    escrow = k.get("escrow", str)
    keys = KeysSpec(
        flash_encryption=k.choice("flash_encryption", KEY_SOURCES, "host"),
        hmac=k.choice("hmac", KEY_SOURCES, "host"),
        identity=k.choice("identity", ("host", "none"), "host"),
        ds_rsa_bits=k.get("ds_rsa_bits", int, 3072),
        random=k.choice("random", ("os", "hsm"), "os"),
        escrow=rel(escrow),
    )
    if keys.ds_rsa_bits not in (2048, 3072, 4096):
        raise k.fail("ds_rsa_bits", "2048, 3072 or 4096", keys.ds_rsa_bits)
    k.finish()

    sb = t["secure_boot"]
    digests = sb.get("digests", list, [])
    if len(digests) > 3 or not all(isinstance(d, str) for d in digests):
        raise sb.fail("digests", "at most 3 strings (public key, digest file or hex)", digests)
    sb.finish()

    nvs = None
    n = t["nvs"]
    if doc.get("nvs"):
        template = rel(n.required("template", str))
        assert template is not None
        offset = n.get("offset", int)
        size = n.get("size", int)
        partition = n.get("partition", str, None if offset is not None else "nvs")
        if (offset is None) != (size is None):
            raise SpecError("[nvs]: offset and size come together", source=source)
        if partition is not None and offset is not None:
            raise SpecError("[nvs]: give a partition name or an offset, not both", source=source)
        nvs = NvsSpec(template, partition, offset, size, n.get("encrypt", bool, True))
        if nvs.encrypt and keys.hmac != "host":
            raise SpecError(
                "[nvs] encrypt: the NVS keys derive from the HMAC key, so [keys] hmac must "
                f"be 'host' (found {keys.hmac!r})",
                source=source,
            )
    n.finish()

    c = t["secure_cert"]
    chain = tuple(p for p in (rel(x) for x in c.get("ca_chain", list, [])) if p is not None)
    c.finish()

    ca_t = t["ca"]
    if not doc.get("ca"):
        raise SpecError("[ca]: required table, missing", source=source)
    ca = CaSpec(
        rel(ca_t.required("certificate", str)) or Path(),
        ca_t.get("uri", str),
        rel(ca_t.get("key", str)),
    )
    if (ca.uri is None) == (ca.key is None):
        raise SpecError("[ca]: give exactly one of uri (PKCS#11) or key (a file)", source=source)
    if ca.uri is not None:
        from espsec.secure_boot.pkcs11 import Pkcs11Uri

        try:
            Pkcs11Uri.parse(ca.uri)
        except UsageError as exc:
            raise SpecError(f"[ca] uri: {exc.message}", source=source) from None
    ca_t.finish()
    if keys.random == "hsm" and ca.uri is None:
        raise SpecError("[keys] random: 'hsm' needs the CA in a token ([ca] uri)", source=source)

    f = t["firmware"]
    if not doc.get("firmware"):
        raise SpecError("[firmware]: required table, missing", source=source)
    firmware = FirmwareSpec(
        rel(f.required("partition_table", str)) or Path(),
        rel(f.get("bootloader", str)),
        rel(f.get("app", str)),
        f.get("flash_size", str, "4MB"),
        rel(f.get("sdkconfig", str)),
    )
    f.finish()

    efuses: dict[str, int] = {}
    e = t["efuses"]
    for key in list(e.data):
        efuses[key.upper()] = e.get(key, int)
    e.finish()

    return BatchSpec(
        path=path,
        name=name,
        chip=chip,
        profile=profile,
        output=output,
        keys=keys,
        ca=ca,
        firmware=firmware,
        count=count,
        serials=tuple(serials),
        serial_format=serial_format,
        serial_start=serial_start,
        min_revision=min_revision,
        sb_digests=tuple(digests),
        nvs=nvs,
        ca_chain=chain,
        efuses=efuses,
    )


def load_spec(path: Path) -> BatchSpec:
    """Read and parse the spec file at ``path``."""
    from espsec._io import read_bytes

    data = read_bytes(path, what="batch spec")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError("not UTF-8 text", source=str(path)) from None
    return parse_spec(text, path)
