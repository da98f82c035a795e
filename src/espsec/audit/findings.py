"""What an audit reports: findings with their evidence, and the report that holds them.

A :class:`Finding` names the rule that produced it (a stable id such as ``FE002``), how
severe it is under the chosen profile, what was found where (:class:`Evidence`: a Kconfig
option and the line that set it, an eFuse field, an image offset) and how to fix it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from espsec.errors import UsageError


class Severity(IntEnum):
    """How much a finding weakens the product (ordered: ``HIGH > MEDIUM``)."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        """``high`` → :attr:`HIGH` (case-insensitive); :class:`UsageError` otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise UsageError(f"unknown severity {text!r} (one of: {names})") from None


class Profile(StrEnum):
    """What the audit accepts: a lab build, or a device about to ship."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


@dataclass(frozen=True)
class Evidence:
    """One fact a finding rests on, and where it was read."""

    kind: str
    """``kconfig``, ``efuse``, ``image``, ``device``, ``nvs``, ``bundle``, ``manifest``,
    ``policy``, ``version`` or ``advisory``."""
    name: str
    """``CONFIG_SECURE_BOOT``, ``SPI_BOOT_CRYPT_CNT``, ``secure_version``, …"""
    value: str
    source: str
    """The file, folder or port it was read from."""
    line: int | None = None
    """sdkconfig line that set the option (``None``: a default, or not a text file)."""
    offset: int | None = None
    """Byte offset in an image or flash (``None``: not a binary location)."""

    def describe(self) -> str:
        where = self.source
        if self.line:
            where += f":{self.line}"
        if self.offset is not None:
            where += f" @0x{self.offset:x}"
        return f"{self.name} = {self.value} ({where})"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "value": self.value,
            "source": self.source,
            "line": self.line,
            "offset": None if self.offset is None else f"0x{self.offset:x}",
        }


@dataclass(frozen=True)
class RuleInfo:
    """A rule as a report describes it (the rule objects live in :mod:`.rules`)."""

    id: str
    name: str
    title: str
    guide: str
    """The ESP-IDF guide section the rule enforces, as ``document: heading``."""
    fix: str
    severity: Severity
    """Severity under the production profile (advisory findings carry their own)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "title": self.title,
            "guide": self.guide,
            "fix": self.fix,
            "severity": self.severity.label,
        }


@dataclass(frozen=True)
class Finding:
    """One rule violated by one input."""

    rule: str
    severity: Severity
    subject: str
    """The input it concerns (a project folder, a device, an image)."""
    message: str
    evidence: tuple[Evidence, ...]
    fix: str
    advisory: str | None = None
    """The advisory id, for an advisory finding."""
    help_uri: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity.label,
            "subject": self.subject,
            "message": self.message,
            "evidence": [e.to_json() for e in self.evidence],
            "fix": self.fix,
            "advisory": self.advisory,
            "help_uri": self.help_uri,
        }


@dataclass(frozen=True)
class Report:
    """The outcome of an audit."""

    profile: Profile
    inputs: tuple[str, ...]
    """What was audited, one line each (``project demo/ (esp32s3, ESP-IDF v5.5.1)``)."""
    rules: tuple[RuleInfo, ...]
    """Every rule that ran."""
    findings: tuple[Finding, ...]
    database: str = ""
    """The advisory database used (``serial 1, 2026-12-03``)."""
    notes: tuple[str, ...] = field(default=())
    """What could not be checked and why (e.g. no sdkconfig for advisory conditions)."""

    def counts(self) -> dict[str, int]:
        """Findings per severity, every severity listed (highest first)."""
        found = Counter(f.severity for f in self.findings)
        return {s.label: found.get(s, 0) for s in sorted(Severity, reverse=True)}

    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def fails(self, threshold: Severity) -> bool:
        """A finding at ``threshold`` or above (``--fail-on``)."""
        worst = self.worst()
        return worst is not None and worst >= threshold

    def rule(self, rule_id: str) -> RuleInfo:
        return next(r for r in self.rules if r.id == rule_id)

    def by_rule(self, rule_id: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.rule == rule_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile.value,
            "inputs": list(self.inputs),
            "database": self.database,
            "counts": self.counts(),
            "findings": [f.to_json() for f in self.findings],
            "rules": [r.to_json() for r in self.rules],
            "notes": list(self.notes),
        }


def sort_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """Most severe first, then by rule id and subject (stable output)."""
    return tuple(sorted(findings, key=lambda f: (-f.severity, f.rule, f.subject, f.message)))
