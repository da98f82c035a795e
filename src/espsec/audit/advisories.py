"""The advisory database: Espressif's security advisories and ESP-IDF CVEs, as signed data.

The database is one JSON document (``data/advisories.json`` in the package) and a
detached Ed25519 signature (``advisories.json.sig``: base64 of the 64-byte signature over
the file's exact bytes). It holds:

* ``advisories``: each with its id and aliases (CVE, GHSA, Espressif ``ARyyyy-nnn``), the
  chips and ESP-IDF version ranges it affects (``introduced`` ≤ version < ``fixed``), the
  Kconfig condition under which the vulnerable code is built (``requires``), the fix
  commits, and the source the entry was taken from;
* ``releases``: ESP-IDF release branches with their latest bugfix release and the date
  the table was recorded, for "not on the latest bugfix of its release branch" and the
  30-month support period.

Trust: a database is used only if its signature verifies against a key pinned below
(:data:`PINNED_KEYS`). ``espsec advisories import`` installs a newer one (higher
``serial``) into a data folder; it never replaces the packaged file and refuses an older
or equal serial (a rollback). See ``docs/adr/`` "Signed advisory database".
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from espsec._io import PathLike, read_bytes, write_atomic
from espsec.audit.findings import Severity
from espsec.errors import FormatError, UsageError, VerificationError
from espsec.sdkconfig import expr

FORMAT = "espsec-advisories"
DATABASE_FILE = "advisories.json"
SIGNATURE_SUFFIX = ".sig"

PINNED_KEYS: tuple[bytes, ...] = (
    bytes.fromhex("cead7c8172b63112e27ae3b3e66b9baa762f7cc6929acc32322b383ce895897c"),
)
"""Ed25519 public keys (raw, 32 bytes) a database must be signed by. The private half of
the first key signed the shipped database and was then destroyed; a database update needs
a new key pinned here in a new espsec release (``docs/adr/0011-signed-advisory-database.md``)."""


# -- ESP-IDF versions -------------------------------------------------------------------

_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:-(.+))?$")
_PRE = re.compile(r"^(dev|beta\d*|rc\d*)(?:$|[-.])")


@dataclass(frozen=True)
class IdfVersion:
    """An ESP-IDF version as ``esp_app_desc_t.idf_ver`` or ``project_description.json``
    spell it (``v5.5.1``, ``v5.4.2-123-gdeadbeef-dirty``, ``v6.0-beta1``)."""

    major: int
    minor: int
    patch: int
    prerelease: bool
    """``-dev``, ``-beta``, ``-rc``: before ``major.minor.0`` and outside any support period."""
    text: str

    @classmethod
    def parse(cls, text: str) -> IdfVersion | None:
        """The version ``text`` names, or ``None`` when it names none (e.g. a git hash)."""
        m = _VERSION.match(text.strip())
        if m is None:
            return None
        suffix = m.group(4) or ""
        return cls(
            int(m.group(1)),
            int(m.group(2)),
            int(m.group(3) or 0),
            bool(_PRE.match(suffix)) and m.group(3) is None,
            text.strip(),
        )

    @property
    def branch(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def key(self) -> tuple[int, int, int, int]:
        return (self.major, self.minor, self.patch, -1 if self.prerelease else 0)

    def __str__(self) -> str:
        return self.text


def _version_key(text: str) -> tuple[int, int, int, int]:
    """A plain ``major.minor[.patch]`` of the database (``0``: before everything)."""
    if text == "0":
        return (0, 0, 0, 0)
    found = IdfVersion.parse(text)
    if found is None or found.prerelease or found.text != text:
        raise ValueError(text)
    return found.key


# -- the database ------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """Affected from ``introduced`` (inclusive) until ``fixed`` (exclusive; ``None``: no fix)."""

    introduced: str
    fixed: str | None

    def contains(self, version: IdfVersion) -> bool:
        # A pre-release of x.y (x.y-beta1) is on the x.y branch: inside a range that
        # starts at x.y, and before every x.y.z fix.
        if version.key[:3] < _version_key(self.introduced)[:3]:
            return False
        return self.fixed is None or version.key < _version_key(self.fixed)


@dataclass(frozen=True)
class Fix:
    branch: str
    commit: str
    first_release: str


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]
    title: str
    summary: str
    component: str
    chips: tuple[str, ...]
    """Chip names (``esp32s3``), or ``*`` for every chip."""
    requires: str
    """Kconfig condition under which the affected code is built (empty: always)."""
    severity: Severity
    severity_source: str
    affected: tuple[Range, ...]
    fixes: tuple[Fix, ...]
    source: str
    references: tuple[str, ...]
    note: str = ""

    def affects_chip(self, chip: str | None) -> bool:
        return chip is None or "*" in self.chips or chip in self.chips

    def affects_version(self, version: IdfVersion) -> bool:
        return any(r.contains(version) for r in self.affected)

    def fixed_in(self, version: IdfVersion) -> str | None:
        """The first fixed release on ``version``'s branch (or the next one that has a fix)."""
        candidates = sorted(
            (r.fixed for r in self.affected if r.fixed and r.contains(version)),
            key=_version_key,
        )
        return candidates[0] if candidates else None

    def condition(self) -> expr.Expr | None:
        return expr.parse(self.requires) if self.requires else None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "aliases": list(self.aliases),
            "title": self.title,
            "severity": self.severity.label,
            "chips": list(self.chips),
            "requires": self.requires,
            "affected": [{"introduced": r.introduced, "fixed": r.fixed} for r in self.affected],
            "source": self.source,
        }


@dataclass(frozen=True)
class Branch:
    branch: str
    released: dt.date
    latest: str
    latest_date: dt.date


@dataclass(frozen=True)
class Releases:
    recorded: dt.date
    source: str
    support_months: int
    support_source: str
    branches: tuple[Branch, ...]

    def branch(self, version: IdfVersion) -> Branch | None:
        return next((b for b in self.branches if b.branch == version.branch), None)

    def newest(self) -> Branch:
        return max(self.branches, key=lambda b: _version_key(b.branch))

    def end_of_support(self, branch: Branch) -> dt.date:
        """``released`` plus the support period (ESP-IDF ``docs/en/versions.rst``)."""
        months = branch.released.month - 1 + self.support_months
        year = branch.released.year + months // 12
        month = months % 12 + 1
        day = min(branch.released.day, 28)
        return dt.date(year, month, day)


@dataclass(frozen=True)
class Database:
    serial: int
    generated: dt.date
    sources: tuple[str, ...]
    releases: Releases
    advisories: tuple[Advisory, ...]
    origin: str
    """Where it was loaded from (``package`` or the imported file)."""
    sha256: str = ""
    """SHA-256 of the file's bytes (what its signature covers)."""

    @classmethod
    def parse(cls, data: bytes, *, origin: str) -> Database:
        """A database document; :class:`FormatError` names the entry and field that fail."""
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError("not JSON", found=str(exc), source=origin) from None
        parsed = _Reader(origin).database(doc)
        return dataclasses.replace(parsed, sha256=hashlib.sha256(data).hexdigest())

    def describe(self) -> str:
        return (
            f"advisory database serial {self.serial} of {self.generated.isoformat()} "
            f"({len(self.advisories)} advisories, releases recorded "
            f"{self.releases.recorded.isoformat()}; {self.origin})"
        )

    def get(self, ident: str) -> Advisory:
        wanted = ident.upper()
        for a in self.advisories:
            if wanted == a.id.upper() or wanted in (x.upper() for x in a.aliases):
                return a
        raise UsageError(f"no advisory {ident!r} in the database")

    def matching(self, version: IdfVersion, chip: str | None) -> tuple[Advisory, ...]:
        """Advisories whose chips and version ranges include ``version`` on ``chip``."""
        return tuple(
            a for a in self.advisories if a.affects_chip(chip) and a.affects_version(version)
        )


class _Reader:
    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, where: str, what: str, found: object = None) -> FormatError:
        return FormatError(what, field=where, found=found, source=self.origin)

    def get(self, obj: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
        value = obj.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"{where}.{key}", f"expected {kind.__name__}", type(value).__name__)
        return value

    def strings(self, obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
        items = self.get(obj, key, list, where)
        if not all(isinstance(i, str) for i in items):
            raise self.fail(f"{where}.{key}", "expected a list of strings")
        return tuple(items)

    def date(self, obj: Mapping[str, Any], key: str, where: str) -> dt.date:
        text = self.get(obj, key, str, where)
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise self.fail(f"{where}.{key}", "expected YYYY-MM-DD", text) from None

    def version(self, text: object, where: str, *, zero: bool = False) -> str:
        if not isinstance(text, str) or (text == "0" and not zero):
            raise self.fail(where, "expected a version such as 5.4.2", text)
        try:
            _version_key(text)
        except ValueError:
            raise self.fail(where, "expected a version such as 5.4.2", text) from None
        return text

    def database(self, doc: object) -> Database:
        if not isinstance(doc, Mapping) or doc.get("format") != FORMAT:
            raise self.fail("format", f"not an {FORMAT} document")
        if doc.get("version") != 1:
            raise self.fail("version", "unsupported database version", doc.get("version"))
        serial = self.get(doc, "serial", int, "database")
        raw_advisories = self.get(doc, "advisories", list, "database")
        advisories = tuple(self.advisory(a, i) for i, a in enumerate(raw_advisories))
        ids = [a.id for a in advisories]
        if len(set(ids)) != len(ids):
            raise self.fail("advisories", "duplicate advisory id")
        return Database(
            serial=serial,
            generated=self.date(doc, "generated", "database"),
            sources=self.strings(doc, "sources", "database"),
            releases=self.releases(self.get(doc, "releases", dict, "database")),
            advisories=advisories,
            origin=self.origin,
        )

    def releases(self, doc: Mapping[str, Any]) -> Releases:
        branches = []
        for i, b in enumerate(self.get(doc, "branches", list, "releases")):
            where = f"releases.branches[{i}]"
            if not isinstance(b, Mapping):
                raise self.fail(where, "expected an object")
            name = self.get(b, "branch", str, where)
            latest = self.version(b.get("latest"), f"{where}.latest")
            if not latest.startswith(name + ".") and latest != name:
                raise self.fail(f"{where}.latest", f"not a release of branch {name}", latest)
            branches.append(
                Branch(
                    name,
                    self.date(b, "released", where),
                    latest,
                    self.date(b, "latest_date", where),
                )
            )
        months = self.get(doc, "support_months", int, "releases")
        return Releases(
            recorded=self.date(doc, "recorded", "releases"),
            source=self.get(doc, "source", str, "releases"),
            support_months=months,
            support_source=self.get(doc, "support_source", str, "releases"),
            branches=tuple(branches),
        )

    def advisory(self, a: object, index: int) -> Advisory:
        where = f"advisories[{index}]"
        if not isinstance(a, Mapping):
            raise self.fail(where, "expected an object")
        ident = self.get(a, "id", str, where)
        where = f"advisories[{ident}]"
        ranges = []
        for i, r in enumerate(self.get(a, "affected", list, where)):
            if not isinstance(r, Mapping):
                raise self.fail(f"{where}.affected[{i}]", "expected an object")
            fixed = r.get("fixed")
            ranges.append(
                Range(
                    self.version(r.get("introduced"), f"{where}.affected[{i}]", zero=True),
                    None if fixed is None else self.version(fixed, f"{where}.affected[{i}]"),
                )
            )
        if not ranges:
            raise self.fail(f"{where}.affected", "no affected range")
        fixes = []
        for i, f in enumerate(self.get(a, "fixes", list, where)):
            if not isinstance(f, Mapping):
                raise self.fail(f"{where}.fixes[{i}]", "expected an object")
            fixes.append(
                Fix(
                    self.get(f, "branch", str, f"{where}.fixes[{i}]"),
                    self.get(f, "commit", str, f"{where}.fixes[{i}]"),
                    self.version(f.get("first_release"), f"{where}.fixes[{i}].first_release"),
                )
            )
        requires = self.get(a, "requires", str, where)
        if requires:
            try:
                expr.parse(requires)
            except expr.ExprError as exc:
                raise self.fail(f"{where}.requires", str(exc), requires) from None
        severity_text = self.get(a, "severity", str, where)
        try:
            severity = Severity.parse(severity_text)
        except UsageError:
            raise self.fail(f"{where}.severity", "unknown severity", severity_text) from None
        source = self.get(a, "source", str, where)
        if not source.startswith("https://"):
            raise self.fail(f"{where}.source", "expected an https:// URL", source)
        return Advisory(
            id=ident,
            aliases=self.strings(a, "aliases", where),
            title=self.get(a, "title", str, where),
            summary=self.get(a, "summary", str, where),
            component=self.get(a, "component", str, where),
            chips=self.strings(a, "chips", where),
            requires=requires,
            severity=severity,
            severity_source=self.get(a, "severity_source", str, where),
            affected=tuple(ranges),
            fixes=tuple(fixes),
            source=source,
            references=self.strings(a, "references", where),
            note=str(a.get("note", "")),
        )


# -- signatures, loading and import -------------------------------------------------------


def sign(data: bytes, private_key: Ed25519PrivateKey) -> bytes:
    """The ``.sig`` file for ``data``: base64 of the Ed25519 signature, one line."""
    return base64.b64encode(private_key.sign(data)) + b"\n"


def verify(
    data: bytes, signature_file: bytes, *, keys: Sequence[bytes] | None = None, source: str
) -> None:
    """Check the detached signature; :class:`VerificationError` unless a pinned key signed
    (``keys``: the trusted public keys, :data:`PINNED_KEYS` unless given)."""
    keys = PINNED_KEYS if keys is None else keys
    try:
        signature = base64.b64decode(signature_file.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(
            "signature file is not base64", source=source + SIGNATURE_SUFFIX
        ) from None
    for key in keys:
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(signature, data)
            return
        except (InvalidSignature, ValueError):
            continue
    raise VerificationError("not signed by a pinned advisory database key", source=source)


def packaged() -> tuple[bytes, bytes]:
    """The shipped database and its signature."""
    folder = resources.files("espsec.audit") / "data"
    return (
        (folder / DATABASE_FILE).read_bytes(),
        (folder / (DATABASE_FILE + SIGNATURE_SUFFIX)).read_bytes(),
    )


def load(data_dir: PathLike | None = None, *, keys: Sequence[bytes] | None = None) -> Database:
    """The newest database that verifies: the packaged one, or one imported into
    ``data_dir`` with a higher serial. A tampered imported file is an error, not a
    silent fallback."""
    data, sig = packaged()
    verify(data, sig, keys=keys, source="package " + DATABASE_FILE)
    best = Database.parse(data, origin="package")
    if data_dir is not None:
        path = Path(data_dir) / DATABASE_FILE
        if path.exists():
            imported = _verified_file(path, Path(str(path) + SIGNATURE_SUFFIX), keys)
            if imported.serial > best.serial:
                best = imported
    return best


def _verified_file(path: Path, signature: Path, keys: Sequence[bytes] | None) -> Database:
    data = read_bytes(path, what="advisory database")
    sig = read_bytes(signature, what="advisory database signature")
    verify(data, sig, keys=keys, source=str(path))
    return Database.parse(data, origin=str(path))


def import_database(
    path: PathLike,
    *,
    data_dir: PathLike,
    signature: PathLike | None = None,
    keys: Sequence[bytes] | None = None,
) -> Database:
    """Install the database at ``path`` (signature ``path.sig`` unless given) into
    ``data_dir`` after checking it; refuse one older than the database in use, or of the
    same serial with other contents. The database in use itself is accepted as is."""
    sig_path = Path(signature) if signature is not None else Path(str(path) + SIGNATURE_SUFFIX)
    new = _verified_file(Path(path), sig_path, keys)
    current = load(data_dir, keys=keys)
    if new.sha256 == current.sha256:
        return current
    if new.serial <= current.serial:
        raise VerificationError(
            f"serial {new.serial} is not newer than the database in use (serial "
            f"{current.serial}): refusing a rollback",
            source=str(path),
        )
    folder = Path(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / (DATABASE_FILE + SIGNATURE_SUFFIX), read_bytes(sig_path))
    write_atomic(folder / DATABASE_FILE, read_bytes(path))
    return Database.parse(read_bytes(folder / DATABASE_FILE), origin=str(folder / DATABASE_FILE))


def summary_rows(advisories: Iterable[Advisory]) -> list[dict[str, Any]]:
    """Advisories as table rows (``advisories list``)."""
    return [
        {
            "id": a.id,
            "aliases": ", ".join(a.aliases),
            "severity": a.severity.label,
            "chips": ", ".join(a.chips),
            "fixed": ", ".join(r.fixed for r in a.affected if r.fixed) or "no fix",
            "title": a.title,
        }
        for a in advisories
    ]
