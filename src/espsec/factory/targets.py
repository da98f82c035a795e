"""Where the factory writes: virtual devices, or chips reached over ``--port``.

A :class:`Target` hands out one :class:`FactoryDevice` per serial. Virtual devices are
folders (``<folder>/<serial>``) or, for benchmarks, in memory; a port is a real serial
port or a ``socket://`` URL of ``espsec device serve``, spoken to through esptool's and
espefuse's APIs (:mod:`espsec.device.download.host`), so the chip applies its own rules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from espsec.device.virtual_device import DEVICE_FILE, VirtualDevice
from espsec.efuse import BurnPlan, Efuses, Operation
from espsec.efuse.plan import PlanReport
from espsec.errors import EspsecError
from espsec.factory.pipeline import Batch, FactoryError

ESPRESSIF_OUI = bytes.fromhex("7cdfa1")
"""The first three bytes of the MAC a virtual chip is given (an Espressif OUI)."""


class FactoryDevice(Protocol):
    """One chip being provisioned."""

    name: str

    def mac(self) -> bytes: ...

    def read_efuses(self) -> Efuses: ...

    def burn(self, ops: Sequence[Operation], checked: PlanReport | None = None) -> None: ...

    def write_flash(self, writes: Sequence[tuple[int, bytes, str]]) -> None: ...

    def verify(self, batch: Batch, record: dict[str, Any]) -> dict[str, Any]: ...


class Target(Protocol):
    """A source of chips: one per serial."""

    def attach(self, serial: str, batch: Batch) -> FactoryDevice: ...


def virtual_mac(batch_name: str, serial: str) -> bytes:
    """The factory MAC of a virtual chip (stable per batch and serial)."""
    return ESPRESSIF_OUI + hashlib.sha256(f"{batch_name}/{serial}".encode()).digest()[:3]


class VirtualChip:
    """A virtual device, in a folder (kept) or in memory."""

    def __init__(self, dev: VirtualDevice, name: str) -> None:
        self.dev = dev
        self.name = name

    def _save(self) -> None:
        if self.dev.path is not None:
            self.dev.save()

    def mac(self) -> bytes:
        value = self.dev.efuses.get("MAC")
        assert isinstance(value, bytes)
        return value

    def read_efuses(self) -> Efuses:
        return self.dev.efuses.copy()

    def burn(self, ops: Sequence[Operation], checked: PlanReport | None = None) -> None:
        """Burn all or nothing, then save atomically. ``checked``: the plan's report
        against this chip's current eFuses (staged once, not twice)."""
        if checked is not None and checked.staged is not None and not checked.refused:
            checked.staged.commit(self.dev.efuses)
        else:
            BurnPlan(ops).apply(self.dev.efuses)
        self._save()

    def write_flash(self, writes: Sequence[tuple[int, bytes, str]]) -> None:
        self.dev.write_files(writes)
        self._save()

    def verify(self, batch: Batch, record: dict[str, Any]) -> dict[str, Any]:
        """Boot when the flash holds a bootloader and app; check the identity it finds."""
        names = {name for _, _, name in batch.firmware}
        result: dict[str, Any] = {}
        if {"bootloader", "app"} <= names:
            report = self.dev.boot()
            if not report.ok:
                raise FactoryError(
                    f"the provisioned device does not boot: {report.refusal or report.outcome}"
                )
            result["boot"] = str(report.outcome.value)
        if record.get("certificate_sha256"):
            from cryptography.hazmat.primitives.serialization import Encoding

            from espsec.device.identity import read_identity

            identity = read_identity(self.dev)
            der = identity.certificate.public_bytes(Encoding.DER)
            if hashlib.sha256(der).hexdigest() != record["certificate_sha256"]:
                raise FactoryError("the device's esp_secure_cert does not hold its certificate")
            result["identity"] = identity.key_source
        self._save()
        return result


class VirtualTarget:
    """Virtual chips: ``folder/<serial>`` device folders, or in memory (``folder=None``)."""

    def __init__(self, folder: Path | None, *, revision: int | None = None) -> None:
        """``revision``: the wafer revision of new chips (major * 100 + minor; default:
        the newest espsec knows)."""
        self.folder = folder
        self.revision = revision
        self.name = str(folder) if folder is not None else "memory"

    def attach(self, serial: str, batch: Batch) -> VirtualChip:
        kind, size, config, rev = batch.chip.name, batch.flash_size, batch.config, self.revision
        if self.folder is None:
            dev = VirtualDevice.new(kind, size, config=config, revision=rev)
            name = f"memory:{serial}"
        else:
            path = self.folder / serial
            name = str(path)
            if (path / DEVICE_FILE).is_file():
                return VirtualChip(VirtualDevice.open(path), name)
            dev = VirtualDevice.create(path, kind, size, config=config, revision=rev)
        # As the chip leaves Espressif: a factory MAC, in the same program as the wafer
        # revision (espsec's burn rules keep MAC for that line only).
        mac_field = dev.efuses.field("MAC")
        mac = int.from_bytes(virtual_mac(batch.spec.name, serial), "little")
        dev.efuses.factory_program(mac_field.block, mac << mac_field.start)
        chip = VirtualChip(dev, name)
        chip._save()
        return chip


class PortChip:
    """The chip in download mode on a serial port or ``socket://`` URL."""

    def __init__(self, port: str) -> None:
        self.name = port
        self.port = port

    def mac(self) -> bytes:
        value = self.read_efuses().get("MAC")
        assert isinstance(value, bytes)
        return value

    def read_efuses(self) -> Efuses:
        from espsec.device.download import host

        return host.read_efuses(self.port)

    def burn(self, ops: Sequence[Operation], checked: PlanReport | None = None) -> None:
        """Check again against the live chip (its state is the truth), then burn."""
        from espsec.device.download import host
        from espsec.efuse.workflow import BurnOutcome

        result = host.burn_checked(self.port, ops)
        if result.outcome is BurnOutcome.REFUSED:
            first = next(f for f in result.report.findings if f.severity == "refuse")
            raise FactoryError(f"eFuse plan refused by the chip's state: {first.code}")

    def write_flash(self, writes: Sequence[tuple[int, bytes, str]]) -> None:
        from espsec.device.download import host

        host.write_flash(self.port, [(offset, data) for offset, data, _ in writes])

    def verify(self, batch: Batch, record: dict[str, Any]) -> dict[str, Any]:
        from espsec.factory.pipeline import applied_fraction

        try:
            efuses = self.read_efuses()
        except EspsecError:
            return {"efuses": "not readable (Secure Download Mode)"}
        done, total = applied_fraction(efuses, record["expected_efuses"])
        if done != total:
            raise FactoryError(f"the chip shows {done} of {total} planned eFuse changes")
        return {"efuses": f"{done}/{total}"}


class PortTarget:
    """One chip per run on each port: the one in download mode there now."""

    def __init__(self, port: str) -> None:
        self.port = port
        self.name = port

    def attach(self, serial: str, batch: Batch) -> PortChip:
        chip = PortChip(self.port)
        efuses = chip.read_efuses()
        if efuses.chip != batch.chip.name:
            raise FactoryError(
                f"the chip on {self.port} is {efuses.chip}, the batch is for {batch.chip.name}"
            )
        return chip
