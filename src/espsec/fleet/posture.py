"""Device security posture: what each device reports at check-in, and which devices are weak.

A check-in may carry a :class:`~espsec.ota.protocol.Posture` (Secure Boot, flash
encryption mode, JTAG, download mode, eFuse ``secure_version``, app and IDF versions,
revoked key slots). The fleet records it against the identity the device proved with its
client certificate, and flags a weak device by the small rule set below, in the words of
the ESP-IDF security guide ("Security Features Enablement Workflows", "Debugging and
JTAG", "Secure Download Mode").

The project's security audit (``espsec.audit``) is the place for the full rule set; once
it offers rules over a decoded eFuse state, these rules should be replaced by it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from espsec.ota.protocol import Posture

NO_POSTURE = "no-posture"
"""Flag of a device that has never reported its posture."""


@dataclass(frozen=True)
class PostureRule:
    """One weakness: a short code, its severity, what it means, and the test."""

    code: str
    severity: str
    title: str
    weak: Callable[[Posture], bool]


RULES: tuple[PostureRule, ...] = (
    PostureRule(
        "secure-boot-off",
        "high",
        "Secure Boot v2 is not enabled (SECURE_BOOT_EN): any app image boots",
        lambda p: not p.secure_boot,
    ),
    PostureRule(
        "flash-encryption-off",
        "high",
        "flash encryption is off: flash contents can be read out",
        lambda p: p.flash_encryption == "disabled",
    ),
    PostureRule(
        "flash-encryption-development",
        "high",
        "flash encryption in development mode: plaintext can be flashed and read back",
        lambda p: p.flash_encryption == "development",
    ),
    PostureRule(
        "jtag-enabled",
        "medium",
        "JTAG is not disabled (DIS_PAD_JTAG / SOFT_DIS_JTAG)",
        lambda p: p.jtag == "enabled",
    ),
    PostureRule(
        "usb-jtag-enabled",
        "medium",
        "USB-Serial-JTAG debugging is not disabled (DIS_USB_JTAG)",
        lambda p: p.usb_jtag_disabled is False,
    ),
    PostureRule(
        "download-mode-open",
        "medium",
        "UART download mode is fully open (neither ENABLE_SECURITY_DOWNLOAD nor DIS_DOWNLOAD_MODE)",
        lambda p: p.download_mode == "normal",
    ),
    PostureRule(
        "secure-version-zero",
        "low",
        "the eFuse secure_version was never raised: anti-rollback protects nothing yet",
        lambda p: p.secure_version == 0,
    ),
)
RULE_BY_CODE = {r.code: r for r in RULES}
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}


def findings(posture: Posture | None) -> tuple[str, ...]:
    """The codes of the rules ``posture`` breaks (``no-posture`` without one)."""
    if posture is None:
        return (NO_POSTURE,)
    return tuple(rule.code for rule in RULES if rule.weak(posture))


def flags_text(posture: Posture | None) -> str:
    """:func:`findings` as stored with the device (comma-separated; '' when none)."""
    return ",".join(findings(posture))


def weak_codes(flags: str | None) -> tuple[str, ...]:
    """Stored flags back as codes (a device with no stored posture is ``no-posture``)."""
    if flags is None:
        return (NO_POSTURE,)
    return tuple(f for f in flags.split(",") if f)


def aggregate(
    rows: Iterable[tuple[str, str, str | None, str | None, str | None]],
) -> dict[str, Any]:
    """Fleet-wide posture from ``(device_id, cohort, chip, posture JSON, flags)`` rows.

    Counts devices by each posture field's value and by weakness, and lists the weak
    devices with their findings (most severe first).
    """
    devices = 0
    by_field: dict[str, Counter[str]] = {
        k: Counter()
        for k in ("secure_boot", "flash_encryption", "jtag", "download_mode", "idf_version")
    }
    by_flag: Counter[str] = Counter()
    weak: list[dict[str, Any]] = []
    for device_id, cohort, chip, posture_json, flags in rows:
        devices += 1
        codes = weak_codes(flags)
        if posture_json:
            posture = json.loads(posture_json)
            for key, counter in by_field.items():
                counter[str(posture.get(key))] += 1
        for code in codes:
            by_flag[code] += 1
        if codes:
            ordered = sorted(
                codes,
                key=lambda c: SEVERITY_ORDER.get(
                    RULE_BY_CODE[c].severity if c in RULE_BY_CODE else "medium", 3
                ),
            )
            weak.append({"device_id": device_id, "cohort": cohort, "chip": chip, "flags": ordered})
    return {
        "devices": devices,
        "weak_devices": len(weak),
        "by_flag": dict(sorted(by_flag.items())),
        "by_field": {k: dict(sorted(v.items())) for k, v in by_field.items()},
        "rules": [{"code": r.code, "severity": r.severity, "title": r.title} for r in RULES]
        + [{"code": NO_POSTURE, "severity": "medium", "title": "never reported its posture"}],
        "weak": weak,
    }
