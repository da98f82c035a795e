"""Device security posture: what each device reports at check-in, judged by the audit's rules.

A check-in may carry a :class:`~espsec.ota.protocol.Posture` (Secure Boot, flash
encryption mode, JTAG, download mode, eFuse ``secure_version``, app and IDF versions,
revoked key slots). The fleet records it against the identity the device proved with its
client certificate and flags a weak device with the rules of the security audit
(:mod:`espsec.audit.rules`): the same rule ids, titles and severities (production
profile) as ``espsec audit`` reports for that chip.

Only the rules a posture decides run (:data:`POSTURE_RULES`): the eFuse rules over the
facts the posture reports, and the ESP-IDF version and advisory rules over its
``idf_version``. The eFuse rules read an eFuse state, so :func:`posture_efuses` builds
one that decodes to the reported posture (every fact the posture does not report left
blank, and no rule that reads such a fact runs). A chip espsec has no eFuse model for
gets the version rules only. The build configuration is unknown to the fleet, so an
advisory that applies only to some configurations is flagged as ``espsec audit`` flags
it without a configuration.

The audit (and the virtual-device code it reads eFuses with) loads on first use:
importing this module stays cheap.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from espsec.chips import EFUSE_MODEL_CHIPS
from espsec.ota.protocol import Posture

if TYPE_CHECKING:
    from espsec.audit import Database, Finding
    from espsec.efuse import Efuses

NO_POSTURE = "no-posture"
"""Flag of a device that has never reported its posture (not an audit rule)."""
NO_POSTURE_TITLE = "The device never reported its security posture"
NO_POSTURE_SEVERITY = "medium"

EFUSE_RULES = ("EF001", "EF003", "EF004", "EF007", "EF009", "EF010")
"""The audit's eFuse rules a posture decides: Secure Boot, flash encryption off and not in
release mode, JTAG, USB-Serial-JTAG's JTAG, download mode. (Key blocks, digest slots,
direct boot and ``RD_DIS`` are not in a posture: those rules do not run.)"""
VERSION_RULES = ("IDF001", "IDF002", "IDF003", "ADV001")
"""The audit's ESP-IDF rules, over the posture's ``idf_version``: latest bugfix release,
end of support, unknown version, published advisories."""
POSTURE_RULES = EFUSE_RULES + VERSION_RULES
"""Every audit rule a posture is judged by, in the audit's report order."""
_USB_JTAG_RULE = "EF009"
"""Reads ``DIS_USB_JTAG``: runs only when the posture reports it."""
_CACHE_SIZE = 4096


def weak_codes(flags: str | None) -> tuple[str, ...]:
    """Stored flags back as codes (a device with no stored posture is ``no-posture``)."""
    if flags is None:
        return (NO_POSTURE,)
    return tuple(f for f in flags.split(",") if f)


def posture_efuses(chip: str, posture: Posture) -> Efuses | None:
    """An eFuse state of ``chip`` that decodes (:func:`espsec.efuse.security_state`) to
    the Secure Boot, flash encryption, JTAG and download mode ``posture`` reports.

    Only those fields are burned; everything the posture does not report stays blank.
    ``None`` for a chip espsec has no eFuse model for.
    """
    if chip not in EFUSE_MODEL_CHIPS:
        return None
    from espsec import efuse

    efuses = efuse.new(chip)
    layout = efuses.layout
    fields: dict[str, int | bytes | None] = {}
    if posture.secure_boot:
        fields["SECURE_BOOT_EN"] = 1
    if posture.flash_encryption == "development":
        fields["SPI_BOOT_CRYPT_CNT"] = 1  # odd: on; not locked
    elif posture.flash_encryption == "release":  # every bit set: on and locked
        fields["SPI_BOOT_CRYPT_CNT"] = (1 << layout.field("SPI_BOOT_CRYPT_CNT").length) - 1
        fields.update(dict.fromkeys(layout.facts.release_mode_fields, 1))
    if posture.jtag == "hard-disabled":
        fields["DIS_PAD_JTAG"] = 1
    elif posture.jtag == "soft-disabled":
        fields["SOFT_DIS_JTAG"] = 1
    if posture.usb_jtag_disabled and layout.has_field("DIS_USB_JTAG"):
        fields["DIS_USB_JTAG"] = 1
    if posture.download_mode == "disabled":
        fields["DIS_DOWNLOAD_MODE"] = 1
    elif posture.download_mode == "secure":
        fields["ENABLE_SECURITY_DOWNLOAD"] = 1
    efuse.burn(efuses, fields)
    return efuses


class PostureAudit:
    """The audit's rules over reported postures (thread-safe; results memoised, since a
    fleet reports few distinct postures).

    ``data_dir``: a folder that may hold an imported advisory database (``espsec
    advisories import --data-dir``); the newer of it and the packaged one is used.
    """

    def __init__(self, data_dir: Path | None = None) -> None:
        self._data_dir = data_dir
        self._database: Database | None = None
        self._lock = threading.Lock()
        self._cache: dict[tuple[str | None, Posture, dt.date], tuple[Finding, ...]] = {}

    def load(self) -> None:
        """Load the audit and its advisory database now (a server does, before serving:
        the first check-in then waits for neither)."""
        self._db()

    def _db(self) -> Database:
        if self._database is None:
            with self._lock:
                if self._database is None:
                    from espsec.audit import advisories

                    self._database = advisories.load(self._data_dir)
        return self._database

    def findings(self, chip: str | None, posture: Posture, as_of: dt.date) -> tuple[Finding, ...]:
        """What ``espsec audit`` (production profile) finds in ``posture`` on ``chip``,
        judged on the date ``as_of`` (support periods end)."""
        key = (chip, posture, as_of)
        found = self._cache.get(key)
        if found is None:
            found = self._run(chip, posture, as_of)
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = found
        return found

    def _run(self, chip: str | None, posture: Posture, as_of: dt.date) -> tuple[Finding, ...]:
        from espsec.audit import Inputs, Profile
        from espsec.audit.advisories import IdfVersion
        from espsec.audit.findings import sort_findings
        from espsec.audit.rules import RULES_BY_ID, Context
        from espsec.audit.subjects import DeviceSubject, VersionSubject

        source = "check-in posture"
        inputs = Inputs()
        efuses = posture_efuses(chip, posture) if chip is not None else None
        if efuses is not None:
            inputs.devices.append(DeviceSubject(source, source, efuses))
        if posture.idf_version:
            inputs.versions.append(
                VersionSubject(
                    source,
                    posture.idf_version,
                    IdfVersion.parse(posture.idf_version),
                    chip,
                    "posture idf_version",
                )
            )
        ctx = Context(inputs, Profile.PRODUCTION, self._db(), as_of)
        found: list[Finding] = []
        for rule_id in POSTURE_RULES:
            if rule_id == _USB_JTAG_RULE and posture.usb_jtag_disabled is None:
                continue
            found += RULES_BY_ID[rule_id].run(ctx)
        return sort_findings(found)

    def flags(self, chip: str | None, posture: Posture | None, as_of: dt.date) -> str:
        """The rule ids ``posture`` breaks, as stored with the device (comma-separated,
        most severe first; '' when none; ``no-posture`` without a posture)."""
        if posture is None:
            return NO_POSTURE
        ids = dict.fromkeys(f.rule for f in self.findings(chip, posture, as_of))
        return ",".join(ids)

    def rules(self) -> list[dict[str, Any]]:
        """The rules a posture is judged by (``code`` is the audit's rule id), and the
        fleet's own ``no-posture``."""
        from espsec.audit.rules import RULES_BY_ID

        return [
            {
                "code": rule.id,
                "name": rule.name,
                "severity": rule.severity.label,
                "title": rule.title,
            }
            for rule in (RULES_BY_ID[r] for r in POSTURE_RULES)
        ] + [
            {
                "code": NO_POSTURE,
                "name": NO_POSTURE,
                "severity": NO_POSTURE_SEVERITY,
                "title": NO_POSTURE_TITLE,
            }
        ]

    def aggregate(
        self,
        rows: Iterable[tuple[str, str, str | None, str | None, str | None]],
    ) -> dict[str, Any]:
        """Fleet-wide posture from ``(device_id, cohort, chip, posture JSON, flags)`` rows.

        Counts devices by each posture field's value and by rule, and lists the weak
        devices with the rules they break (most severe first). ``unchecked``: devices
        whose eFuse posture no rule could judge (a chip without an eFuse model).
        """
        from espsec.audit import Severity

        rules = self.rules()
        rank = {r["code"]: Severity.parse(r["severity"]) for r in rules}
        devices = 0
        unchecked = 0
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
                if chip not in EFUSE_MODEL_CHIPS:
                    unchecked += 1
            for code in codes:
                by_flag[code] += 1
            if codes:
                ordered = sorted(codes, key=lambda c: -rank.get(c, Severity.MEDIUM))
                weak.append(
                    {"device_id": device_id, "cohort": cohort, "chip": chip, "flags": ordered}
                )
        return {
            "devices": devices,
            "weak_devices": len(weak),
            "unchecked": unchecked,
            "by_flag": dict(sorted(by_flag.items())),
            "by_field": {k: dict(sorted(v.items())) for k, v in by_field.items()},
            "rules": rules,
            "weak": weak,
        }
