"""Burn plans: rehearse a list of burns, see every bit that changes, refuse the bricks.

A plan is a text file with one espefuse-like command per line (``#`` starts a comment)::

    burn-key BLOCK_KEY0 flash_key.bin XTS_AES_128_KEY
    burn-key-digest BLOCK_KEY1 signing_pub.pem SECURE_BOOT_DIGEST0
    burn-efuse SPI_BOOT_CRYPT_CNT 1 SECURE_BOOT_EN 1
    write-protect-efuse DIS_DOWNLOAD_MANUAL_ENCRYPT
    read-protect-efuse BLOCK_KEY2

``burn``/``write-protect``/``read-protect`` are accepted for the ``-efuse`` names.
:func:`parse_plan` reads the text (no IO); the caller turns file names into key bytes
with a :class:`PlanResolver` (:func:`build_operations`). :meth:`BurnPlan.check` stages
the burn (the OTP rules of :mod:`espsec.efuse.burn`) and then applies the policy rules
below to the state before and after it:

========================  ===================================================================
refused                   a plan that newly creates the condition is refused
========================  ===================================================================
``SB_NO_DIGEST``          Secure Boot on with no valid (present, non-revoked) key digest
``FE_NO_KEY``             flash encryption on without a complete XTS-AES key
``FE_TURNED_OFF``         flash encryption switched off on a chip whose flash is encrypted
``DL_OFF_FE_DEV``         download mode disabled while flash encryption is in development mode
``KEY_READABLE_FOREVER``  ``RD_DIS`` write-protected while a hardware-only key is readable
``ROM_INCOMPATIBLE``      eFuse pairs the ROM cannot cope with (ESP32-S3: both USB JTAG bits)
``KEY_ZERO``              a key (or digest) of all zeros
========================  ===================================================================

Warnings: ``KEY_READABLE`` (a hardware-only key software can read), ``DIGEST_UNREVOKED``
(Secure Boot on, an unused digest slot not revoked), ``KEY_WRITABLE`` (a key block left
writable), ``SB_DOWNLOAD_OPEN``, ``FE_DEVELOPMENT``, ``JTAG_OPEN``,
``SECURE_VERSION_CODE`` (not a thermometer code), ``AGGRESSIVE_REVOKE``. A condition the
chip was already in before the plan is reported as a warning, never a refusal.
"""

from __future__ import annotations

import binascii
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from espsec.efuse.burn import (
    BurnField,
    BurnKey,
    BurnKeyDigest,
    Operation,
    ReadProtect,
    StagedBurn,
    Transaction,
    WriteProtect,
)
from espsec.efuse.layout import EfuseLayout, FieldDef
from espsec.efuse.model import Efuses
from espsec.efuse.security import SecurityState, security_state
from espsec.errors import EspsecError, UsageError

Severity = Literal["refuse", "warn"]

_ALIASES = {
    "burn-efuse": "burn",
    "burn": "burn",
    "burn-key": "burn-key",
    "burn-key-digest": "burn-key-digest",
    "write-protect-efuse": "write-protect",
    "write-protect": "write-protect",
    "read-protect-efuse": "read-protect",
    "read-protect": "read-protect",
}
_OPTIONS = {
    "burn-key": {"--no-write-protect", "--no-read-protect"},
    "burn-key-digest": {"--no-write-protect"},
}


class PlanRefused(EspsecError):
    """A plan with a refusal finding was asked to apply."""


# -- the plan file --------------------------------------------------------------------


@dataclass(frozen=True)
class PlanLine:
    """One command of a plan file."""

    lineno: int
    command: str
    """Canonical name: ``burn``, ``burn-key``, ``burn-key-digest``, ``write-protect``,
    ``read-protect``."""
    args: tuple[str, ...]
    options: frozenset[str] = frozenset()


def parse_plan(text: str) -> list[PlanLine]:
    """Split a plan file into commands (syntax only; names are checked on staging)."""
    lines = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise UsageError(f"line {n}: {exc}") from None
        if not words:
            continue
        command = _ALIASES.get(words[0])
        if command is None:
            raise UsageError(
                f"line {n}: unknown command {words[0]!r} (expected one of: "
                "burn-efuse, burn-key, burn-key-digest, write-protect-efuse, "
                "read-protect-efuse)"
            )
        opts = frozenset(w for w in words[1:] if w.startswith("--"))
        bad = opts - _OPTIONS.get(command, set())
        if bad:
            raise UsageError(f"line {n}: {command} has no option {sorted(bad)[0]}")
        args = tuple(w for w in words[1:] if not w.startswith("--"))
        if not args:
            raise UsageError(f"line {n}: {command} needs arguments")
        if command in ("burn-key", "burn-key-digest") and len(args) % 3:
            raise UsageError(f"line {n}: {command} takes groups of BLOCK FILE PURPOSE")
        lines.append(PlanLine(n, command, args, opts))
    return lines


class PlanResolver(Protocol):
    """Turns the file names of a plan into bytes (the CLI reads files; tests don't)."""

    def key(self, path: str, purpose: str) -> bytes:
        """The key bytes ``burn-key`` burns (as the key file holds them)."""

    def digest(self, path: str) -> bytes:
        """The 32-byte Secure Boot digest for a public key, private key or digest file."""

    def scheme(self, path: str) -> str | None:
        """The Secure Boot scheme of the key file (``None`` for a raw digest file)."""


def parse_field_value(layout: EfuseLayout, name: str, text: str | None) -> int | bytes | None:
    """A value for ``burn-efuse`` as espefuse reads it from the command line.

    Bytes fields: ``0x``-prefixed hex is the big-endian number (so it is reversed into
    block order), plain hex is the bytes in block order. ``KEY_PURPOSE_n``: a purpose name
    or number. Other fields: an integer in any base Python accepts (``5``, ``0x5``).
    """
    f = layout.field(name)
    if text is None:
        return None
    if layout.block_of_purpose_field(f.name) and not text[:1].isdigit():
        purpose = layout.purpose(text)  # KEY_PURPOSE_n also takes a purpose name
        if purpose.virtual:
            raise UsageError(
                f"{f.name}: {purpose.name} is not a hardware purpose (burn-key splits "
                "that key over two key blocks)"
            )
        return purpose.id
    try:
        if f.kind == "bytes":
            if text.lower().startswith("0x"):
                return binascii.unhexlify(text[2:])[::-1]
            return binascii.unhexlify(text)
        return int(text, 0)
    except (ValueError, binascii.Error):
        raise UsageError(f"{f.name}: {text!r} is not a valid {f.efuse_type} value") from None


def build_operations(
    layout: EfuseLayout, lines: Iterable[PlanLine], resolver: PlanResolver
) -> list[Operation]:
    """The operations of a parsed plan, with key files resolved."""
    ops: list[Operation] = []
    for line in lines:
        try:
            ops.extend(_line_operations(layout, line, resolver))
        except EspsecError as exc:
            if not exc.message.startswith("line "):
                exc.message = f"line {line.lineno}: {exc.message}"
                exc.args = (exc.message,)
            raise
    return ops


def _line_operations(
    layout: EfuseLayout, line: PlanLine, resolver: PlanResolver
) -> list[Operation]:
    a = line.args
    if line.command == "burn":
        if len(a) == 1:
            return [BurnField(a[0], None)]
        if len(a) % 2:
            raise UsageError("burn-efuse takes NAME VALUE pairs")
        return [
            BurnField(a[i], parse_field_value(layout, a[i], a[i + 1])) for i in range(0, len(a), 2)
        ]
    if line.command == "write-protect":
        return [WriteProtect(n) for n in a]
    if line.command == "read-protect":
        return [ReadProtect(n) for n in a]
    wp = "--no-write-protect" not in line.options
    ops: list[Operation] = []
    for i in range(0, len(a), 3):
        block, path, purpose = a[i : i + 3]
        if line.command == "burn-key":
            rp = "--no-read-protect" not in line.options
            key = resolver.key(path, purpose)
            ops.append(BurnKey(block, key, purpose, wp, rp, source=path))
        else:
            digest, scheme = resolver.digest(path), resolver.scheme(path)
            ops.append(BurnKeyDigest(block, digest, purpose, wp, scheme))
    return ops


# -- the report -------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message: str
    allowed: bool = False
    """A refusal the caller explicitly accepted (``allow=``)."""


@dataclass(frozen=True)
class FieldChange:
    """Bits of one field that go 0 -> 1."""

    field: str
    block: int
    before: str
    after: str
    bits: tuple[int, ...]
    """Bit numbers inside the block (empty for key material: they would reveal it)."""
    irreversible: bool
    effect: str = ""
    secret: bool = False
    """Key material: ``before``/``after`` are not shown."""


@dataclass(frozen=True)
class PlanReport:
    chip: str
    operations: tuple[str, ...]
    changes: tuple[FieldChange, ...] = ()
    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()
    staged: StagedBurn | None = field(default=None, repr=False)

    @property
    def refused(self) -> bool:
        return any(f.severity == "refuse" and not f.allowed for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chip": self.chip,
            "refused": self.refused,
            "operations": list(self.operations),
            "changes": [
                {
                    "field": c.field,
                    "block": c.block,
                    "before": c.before,
                    "after": c.after,
                    "bits": list(c.bits),
                    "irreversible": c.irreversible,
                    "effect": c.effect,
                }
                for c in self.changes
            ],
            "findings": [
                {"code": f.code, "severity": f.severity, "message": f.message, "allowed": f.allowed}
                for f in self.findings
            ],
            "notes": list(self.notes),
        }


class BurnPlan:
    """A transaction plus the policy that refuses bricking or weakening combinations.

    ``allow``: refusal codes accepted (:data:`REFUSAL_CODES`; any other is a usage
    error). ``app_secure_versions``: the secure versions of the apps the device holds,
    when known (a burn through ``--device``): a ``SECURE_VERSION`` above all of them is
    warned about, as the next boot would find nothing to boot.
    """

    def __init__(
        self,
        operations: Iterable[Operation],
        *,
        allow: Iterable[str] = (),
        app_secure_versions: Iterable[int] | None = None,
    ) -> None:
        self.transaction = Transaction(operations)
        self.allow = check_allow(allow)
        self.app_secure_versions = (
            None if app_secure_versions is None else tuple(app_secure_versions)
        )

    def check(self, efuses: Efuses, *, strict: bool = False) -> PlanReport:
        """Stage the burn on a copy and report changes and findings (nothing is burned).

        An operation that cannot be staged becomes an ``INVALID`` refusal, or with
        ``strict`` raises its error (one line naming the field or block).
        """
        ops = tuple(op.describe() for op in self.transaction.operations)
        try:
            staged = self.transaction.stage(efuses)
        except EspsecError as exc:
            if strict:
                raise
            return PlanReport(
                efuses.chip, ops, findings=(Finding("INVALID", "refuse", exc.message),)
            )
        after = staged.result(efuses)
        found = tuple(
            f if f.code not in self.allow else Finding(f.code, f.severity, f.message, True)
            for f in (
                *_key_findings(after, staged),
                *findings(efuses, after),
                *_burn_warnings(efuses, after, self.transaction.operations),
                *_secure_version_warning(efuses, after, self.app_secure_versions),
            )
        )
        changes = _changes(efuses, after, staged)
        return PlanReport(efuses.chip, ops, changes, found, staged.notes, staged)

    def apply(self, efuses: Efuses) -> PlanReport:
        """Check, then burn all-or-nothing; raise :class:`PlanRefused` when refused (and
        the staging error itself for an operation that cannot be burned)."""
        report = self.check(efuses, strict=True)
        if report.refused:
            first = next(f for f in report.findings if f.severity == "refuse" and not f.allowed)
            raise PlanRefused(f"plan refused: {first.code}: {first.message}")
        assert report.staged is not None
        report.staged.commit(efuses)
        return report


# -- changes ----------------------------------------------------------------------------

_EFFECTS = {
    "SECURE_BOOT_EN": "enables Secure Boot v2: the ROM boots only signed bootloaders",
    "SECURE_BOOT_AGGRESSIVE_REVOKE": "any failed signature check revokes that key",
    "DIS_DOWNLOAD_MODE": "disables the ROM download mode for good",
    "ENABLE_SECURITY_DOWNLOAD": "restricts the ROM download mode to Secure Download Mode",
    "DIS_PAD_JTAG": "disables pad JTAG for good",
    "DIS_USB_JTAG": "disables USB JTAG for good",
    "DIS_DOWNLOAD_MANUAL_ENCRYPT": "download mode can no longer encrypt flash writes",
    "DIS_DOWNLOAD_ICACHE": "download mode can no longer read flash through the cache",
    "DIS_DOWNLOAD_DCACHE": "download mode can no longer read flash through the cache",
    "SPI_DOWNLOAD_MSPI_DIS": "download mode can no longer access flash through MSPI",
    "DIS_DIRECT_BOOT": "disables direct boot",
}
_PARITY_COUNTERS = {"SPI_BOOT_CRYPT_CNT": "flash encryption", "SOFT_DIS_JTAG": "JTAG soft-disable"}


def _changes(before: Efuses, after: Efuses, staged: StagedBurn) -> tuple[FieldChange, ...]:
    layout = before.layout
    out = []
    for f in layout.fields:
        written = (staged.writes.get(f.block, 0) & f.mask) >> f.start
        old = before.get_int(f)
        new_bits = written & ~old
        if not new_bits:
            continue
        new = old | new_bits
        secret = _is_secret(after, f)
        bits = () if secret else tuple(f.start + i for i in range(f.length) if new_bits >> i & 1)
        out.append(
            FieldChange(
                field=f.name,
                block=f.block,
                before="<hidden>" if secret else _show(f, old),
                after="<hidden>" if secret else _show(f, new),
                bits=bits,
                irreversible=_irreversible(after, f, new),
                effect=_effect(layout, f, old, new, new_bits, secret),
                secret=secret,
            )
        )
    return tuple(out)


def _is_secret(after: Efuses, f: FieldDef) -> bool:
    block = after.layout.blocks[f.block]
    if not block.is_key_block:
        return False
    purpose = after.layout.purpose_by_id(after.key_purpose(block))
    return purpose is None or not purpose.digest


def _show(f: FieldDef, value: int) -> str:
    if f.kind == "bytes":
        return value.to_bytes(f.length // 8, "little").hex()
    return f"0x{value:x}"


def _irreversible(after: Efuses, f: FieldDef, new: int) -> bool:
    if f.name in _PARITY_COUNTERS:
        # One more bit flips the state back, while a bit is left and the field is writable.
        return new.bit_count() == f.length or not after.is_writeable(f)
    return True


def _effect(
    layout: EfuseLayout, f: FieldDef, old: int, new: int, new_bits: int, secret: bool
) -> str:
    if f.name == "WR_DIS":
        return "; ".join(
            f"WR_DIS[{b}] locks {', '.join(layout.write_disabled_by(b))}"
            for b in range(f.length)
            if new_bits >> b & 1
        )
    if f.name == "RD_DIS":
        return "; ".join(
            f"RD_DIS[{b}] hides {', '.join(layout.read_disabled_by(b))} from software"
            for b in range(f.length)
            if new_bits >> b & 1
        )
    if f.name in _PARITY_COUNTERS:
        what = _PARITY_COUNTERS[f.name]
        was, now = old.bit_count() % 2, new.bit_count() % 2
        state = "on" if now else "off"
        left = f.length - new.bit_count()
        return (
            f"{what} {'switches ' + state if was != now else 'stays ' + state}; "
            f"{left} bit{'s' if left != 1 else ''} left"
        )
    if f.name == "SECURE_VERSION":
        return f"secure_version {old.bit_count()} -> {new.bit_count()}"
    if f.name.startswith("SECURE_BOOT_KEY_REVOKE"):
        return f"revokes Secure Boot key digest {f.name[-1]} for good"
    block = layout.block_of_purpose_field(f.name)
    if block is not None:
        return f"{block.name} purpose: {layout.purpose_name(new)}"
    if secret:
        return f"{f.length}-bit key (not shown)"
    return _EFFECTS.get(f.name, "")


# -- findings -----------------------------------------------------------------------------


def _key_findings(after: Efuses, staged: StagedBurn) -> list[Finding]:
    """All-zero keys (espefuse burns their purpose and protection, and no key bit).

    A key the block would not end up holding is refused by the transaction itself.
    """
    return [
        Finding("KEY_ZERO", "refuse", f"the key for {after.layout.blocks[index].name} is all zeros")
        for index, wanted in staged.keys.items()
        if wanted == 0
    ]


_Rule = Callable[[Efuses, SecurityState], list[tuple[str, str]]]
"""A rule returns (instance key, message) for each place its condition holds."""


def _sb_no_digest(e: Efuses, s: SecurityState) -> list[tuple[str, str]]:
    if s.secure_boot_enabled and not any(slot.valid for slot in s.digest_slots):
        present = [slot for slot in s.digest_slots if slot.block]
        why = "all key digests are revoked" if present else "no key digest is burned"
        return [("", f"Secure Boot is enabled but {why}: the ROM will refuse every bootloader")]
    return []


def _fe_no_key(e: Efuses, s: SecurityState) -> list[tuple[str, str]]:
    if s.flash_encryption_enabled and s.flash_encryption_key is None:
        return [("", "flash encryption is enabled without a complete XTS-AES key")]
    return []


def _dl_off_fe_dev(e: Efuses, s: SecurityState) -> list[tuple[str, str]]:
    if s.download_mode == "disabled" and s.flash_encryption_mode == "development":
        return [
            (
                "",
                "download mode is disabled while flash encryption is in development mode "
                "(the chip can never be reflashed over serial nor moved to release mode "
                "from the host)",
            )
        ]
    return []


def _hardware_keys_readable(e: Efuses) -> list[str]:
    out = []
    for b in e.layout.key_blocks:
        p = e.layout.purpose_by_id(e.key_purpose(b))
        if p is not None and p.read_protect and not e.is_read_protected(b):
            out.append(f"{b.name} ({p.name})")
    return out


def _key_readable(e: Efuses, s: SecurityState) -> list[tuple[str, str]]:
    return [
        (k, f"{k} is readable by software; it should be read-protected")
        for k in _hardware_keys_readable(e)
    ]


def _key_readable_forever(e: Efuses, s: SecurityState) -> list[tuple[str, str]]:
    if e.is_writeable("RD_DIS"):
        return []
    return [
        (k, f"RD_DIS is write-protected while {k} is readable: it can never be protected")
        for k in _hardware_keys_readable(e)
    ]


def _incompatible(e: Efuses, s: SecurityState) -> list[tuple[str, str]]:
    out = []
    for a, b in e.layout.facts.incompatible:
        if e.get_int(a) and e.get_int(b):
            out.append((a + b, f"{a} and {b} cannot both be set (ROM bug; espefuse refuses)"))
    return out


def _digest_unrevoked(e: Efuses, s: SecurityState) -> list[tuple[str, str]]:
    if not s.secure_boot_enabled:
        return []
    unused = [str(d.index) for d in s.digest_slots if d.block is None and not d.revoked]
    if not unused:
        return []
    fields = " ".join(f"SECURE_BOOT_KEY_REVOKE{i}" for i in unused)
    return [
        (
            ",".join(unused),
            f"Secure Boot digest slot{'s' if len(unused) > 1 else ''} {', '.join(unused)} "
            f"unused and not revoked (burn {fields} so no key can be added later)",
        )
    ]


def _key_writable(e: Efuses, s: SecurityState) -> list[tuple[str, str]]:
    return [
        (k.block, f"{k.block} holds a key but is not write-protected")
        for k in s.key_blocks
        if not k.empty and not k.write_protected
    ]


def _sb_download_open(e: Efuses, s: SecurityState) -> list[tuple[str, str]]:
    if (s.secure_boot_enabled or s.flash_encryption_enabled) and s.download_mode == "normal":
        return [("", "download mode is fully open (enable ENABLE_SECURITY_DOWNLOAD)")]
    return []


def _fe_development(e: Efuses, s: SecurityState) -> list[tuple[str, str]]:
    if s.flash_encryption_mode == "development":
        return [("", "flash encryption is in development mode (not for production)")]
    return []


def _jtag_open(e: Efuses, s: SecurityState) -> list[tuple[str, str]]:
    if (s.secure_boot_enabled or s.flash_encryption_enabled) and s.jtag.mode == "enabled":
        return [("", "JTAG is still enabled (burn DIS_PAD_JTAG or SOFT_DIS_JTAG)")]
    return []


def _secure_version_code(e: Efuses, s: SecurityState) -> list[tuple[str, str]]:
    v = e.get_int("SECURE_VERSION")
    if v & (v + 1):
        return [
            (
                "",
                f"SECURE_VERSION 0x{v:x} is not a thermometer code: ESP-IDF counts its set "
                f"bits (secure_version {v.bit_count()})",
            )
        ]
    return []


def _aggressive(e: Efuses, s: SecurityState) -> list[tuple[str, str]]:
    if s.aggressive_revoke:
        return [("", "aggressive revocation: one failed signature check revokes that key")]
    return []


_RULES: tuple[tuple[str, Severity, _Rule], ...] = (
    ("SB_NO_DIGEST", "refuse", _sb_no_digest),
    ("FE_NO_KEY", "refuse", _fe_no_key),
    ("DL_OFF_FE_DEV", "refuse", _dl_off_fe_dev),
    ("KEY_READABLE_FOREVER", "refuse", _key_readable_forever),
    ("ROM_INCOMPATIBLE", "refuse", _incompatible),
    ("KEY_READABLE", "warn", _key_readable),
    ("DIGEST_UNREVOKED", "warn", _digest_unrevoked),
    ("KEY_WRITABLE", "warn", _key_writable),
    ("SB_DOWNLOAD_OPEN", "warn", _sb_download_open),
    ("FE_DEVELOPMENT", "warn", _fe_development),
    ("JTAG_OPEN", "warn", _jtag_open),
    ("SECURE_VERSION_CODE", "warn", _secure_version_code),
    ("AGGRESSIVE_REVOKE", "warn", _aggressive),
)


REFUSAL_CODES: tuple[str, ...] = (
    *(code for code, severity, _ in _RULES if severity == "refuse"),
    "FE_TURNED_OFF",
    "KEY_ZERO",
)
"""The refusals a caller can accept by code (``allow=``, ``--allow CODE``)."""

FINDING_CODES: frozenset[str] = frozenset(
    (
        *REFUSAL_CODES,
        *(code for code, _, _ in _RULES),
        "SB_SCHEME_UNSUPPORTED",
        "DIGEST_REVOKED",
        "SECURE_VERSION_ABOVE_APPS",
    )
)
"""Every code a finding can have (a warning needs no ``allow``, but naming one is no error)."""


def check_allow(codes: Iterable[str]) -> frozenset[str]:
    """``codes`` as accepted finding codes; a code that names no finding is a usage error."""
    wanted = frozenset(c.upper() for c in codes)
    unknown = sorted(wanted - FINDING_CODES)
    if unknown:
        raise UsageError(
            f"unknown --allow code {', '.join(unknown)} (refusal codes: "
            f"{', '.join(sorted(REFUSAL_CODES))})"
        )
    return wanted


def _burn_warnings(before: Efuses, after: Efuses, operations: Iterable[Operation]) -> list[Finding]:
    """Burns that succeed but hurt: a key digest the ROM cannot use."""
    out: list[Finding] = []
    chip = after.layout.chip
    slots = {d.index: d for d in security_state(after).digest_slots}
    old = {d.index: d for d in security_state(before).digest_slots}
    for op in operations:
        if not isinstance(op, BurnKeyDigest):
            continue
        block = after.layout.block(op.block).name
        if op.scheme is not None and op.scheme not in chip.secure_boot_schemes:
            accepted = "/".join(sorted(chip.secure_boot_schemes)) or "no"
            out.append(
                Finding(
                    "SB_SCHEME_UNSUPPORTED",
                    "warn",
                    f"{block}: an {op.scheme} key digest on {chip.display_name}, whose ROM "
                    f"verifies only {accepted} signatures: nothing signed with this key boots",
                )
            )
        for index, slot in slots.items():
            if slot.block == block and slot.revoked and old[index].block != block:
                out.append(
                    Finding(
                        "DIGEST_REVOKED",
                        "warn",
                        f"{block} becomes SECURE_BOOT_DIGEST{index}, which is revoked "
                        f"(SECURE_BOOT_KEY_REVOKE{index}): the ROM never trusts this key",
                    )
                )
    return out


def _secure_version_warning(
    before: Efuses, after: Efuses, app_versions: tuple[int, ...] | None
) -> list[Finding]:
    """A ``SECURE_VERSION`` above every app on the device: the next boot finds nothing."""
    if app_versions is None:
        return []
    old, new = security_state(before).secure_version, security_state(after).secure_version
    highest = max(app_versions, default=None)
    if new <= old or (highest is not None and new <= highest):
        return []
    held = "no app" if highest is None else f"the highest app secure version is {highest}"
    return [
        Finding(
            "SECURE_VERSION_ABOVE_APPS",
            "warn",
            f"eFuse secure version {new} is above every app on the device ({held}): "
            "anti-rollback refuses them all and the next boot finds nothing bootable",
        )
    ]


def findings(before: Efuses, after: Efuses) -> list[Finding]:
    """The policy findings for going from ``before`` to ``after``."""
    s0, s1 = security_state(before), security_state(after)
    out = []
    if s0.flash_encryption_enabled and not s1.flash_encryption_enabled:
        out.append(
            Finding(
                "FE_TURNED_OFF",
                "refuse",
                "flash encryption is switched off on a chip whose flash is encrypted "
                "(it would boot ciphertext)",
            )
        )
    for code, severity, rule in _RULES:
        old = dict(rule(before, s0))
        for key, message in rule(after, s1):
            if severity == "refuse" and key in old:
                out.append(Finding(code, "warn", message + " (already the case)"))
            else:
                out.append(Finding(code, severity, message))
    return out
