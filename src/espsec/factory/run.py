"""Running a batch: plan it, provision devices, resume after a crash, report status.

:class:`Factory` drives each device through the journal's states (see
:mod:`espsec.factory.journal`). Before each step with an effect the journal is
committed; the artifacts a burned chip still needs (ciphertext and public data) are on
disk before its eFuses are touched; the keys are dropped once burned. So after a
``kill -9`` anywhere, :meth:`Factory.resume` finds each of its devices in a state that
says what to do: start again with fresh keys (nothing burned), read the chip to tell a
finished burn from none or a partial one, flash from the stored artifacts, verify.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from espsec._io import atomic_output
from espsec.errors import EspsecError
from espsec.factory import journal as j
from espsec.factory.journal import DeviceRow, Journal, open_journal
from espsec.factory.pipeline import (
    Artifacts,
    Batch,
    CaSigner,
    DeviceKeys,
    FactoryError,
    RandomSource,
    applied_fraction,
    build_artifacts,
    check_plan,
    efuse_operations,
    expected_efuses,
    generate_keys,
    load_batch,
    os_random,
    public_record,
)
from espsec.factory.spec import BatchSpec, load_spec
from espsec.factory.targets import Target

BOUNDARIES = (
    "allocated",
    "keys",
    "efuse-planned",
    "efuse-applying",
    "burned",
    "efuse-applied",
    "written",
    "flashed",
    "verified",
    "done",
)
"""Points between steps where a crash can happen (tests inject one at each)."""

Boundary = Callable[[str, str], None]
"""Called as ``(boundary, serial)`` after each step (fault injection in tests)."""


def spec_digest(spec: BatchSpec) -> str:
    """SHA-256 of the spec file: a planned batch's spec cannot change underneath it."""
    return hashlib.sha256(spec.path.read_bytes()).hexdigest()


def default_station() -> str:
    """This station's name: the host name."""
    return socket.gethostname() or "station"


def open_ca(batch: Batch, stack: ExitStack) -> tuple[CaSigner | None, RandomSource]:
    """The device CA signer (a token session, or a key file) and the random source."""
    spec = batch.spec
    from espsec import _pem
    from espsec._io import read_bytes

    cert_pem = read_bytes(spec.ca.certificate, what="CA certificate")
    certs = _pem.load_certificates(cert_pem, source=str(spec.ca.certificate))
    ca_cert = certs[0]
    random: RandomSource = os_random
    if spec.ca.uri is not None:
        from espsec.secure_boot.pkcs11 import Pkcs11Signer

        signer = stack.enter_context(Pkcs11Signer(spec.ca.uri))
        if signer.public_key().public_numbers() != ca_cert.public_key().public_numbers():  # type: ignore[union-attr]
            raise FactoryError(
                "the PKCS#11 key is not the CA certificate's key", source=str(spec.ca.certificate)
            )
        ca = CaSigner(ca_cert, signer.sign_data)
        if spec.keys.random == "hsm":
            random = signer.token.random
        return ca, random
    assert spec.ca.key is not None
    key = _pem.load_private_key(read_bytes(spec.ca.key, what="CA key"), source=str(spec.ca.key))
    return CaSigner.from_key(ca_cert, key), random


@dataclass
class RunSummary:
    """What a run or resume did."""

    batch: str
    station: str
    provisioned: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    manifest: str | None = None

    @property
    def ok(self) -> bool:
        return not self.partial and not self.failed

    def to_json(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "station": self.station,
            "provisioned": len(self.provisioned),
            "partial": self.partial,
            "failed": [{"serial": s, "error": e} for s, e in self.failed],
            "counts": self.counts,
            "manifest": self.manifest,
        }


class Factory:
    """One station working on one batch."""

    def __init__(
        self,
        spec: BatchSpec,
        *,
        journal_url: str | None = None,
        station: str | None = None,
        boundary: Boundary | None = None,
    ) -> None:
        self.spec = spec
        self.batch = load_batch(spec)
        self.station = station or default_station()
        self.boundary = boundary or (lambda name, serial: None)
        self._stack = ExitStack()
        self.journal: Journal = open_journal(journal_url, spec.output)
        self._stack.callback(self.journal.close)
        self.ca: CaSigner | None = None
        self.random: RandomSource = os_random

    def __enter__(self) -> Factory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()

    # -- plan -----------------------------------------------------------------------

    def plan(self) -> dict[str, Any]:
        """Check the batch (a sample device's burn plan under the plan rules) and
        record its serials in the journal. Repeatable; a changed spec is refused."""
        sample = generate_keys(self.batch)
        ops = efuse_operations(self.batch, sample)
        report = check_plan(self.batch, ops)
        sample.destroy()
        created = self.journal.init_batch(
            self.spec.name, spec_digest(self.spec), self.spec.size, self.spec.iter_serials()
        )
        return {
            "batch": self.spec.name,
            "chip": self.batch.chip.name,
            "profile": self.spec.profile,
            "devices": self.spec.size,
            "created": created,
            "efuse_plan": [op.describe() for op in ops],
            "warnings": [f.code for f in report.findings if f.severity == "warn"],
            "output": str(self.spec.output),
        }

    # -- run ------------------------------------------------------------------------

    def _open_ca(self) -> None:
        if self.ca is None and (
            self.spec.keys.identity == "host" or self.spec.keys.random == "hsm"
        ):
            self.ca, self.random = open_ca(self.batch, self._stack)

    def _ensure_planned(self) -> None:
        self.journal.init_batch(
            self.spec.name, spec_digest(self.spec), self.spec.size, self.spec.iter_serials()
        )

    def run(
        self,
        target: Target,
        *,
        limit: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> RunSummary:
        """Resume this station's unfinished devices, then claim and provision new ones
        (at most ``limit`` in all) until the batch is used up."""
        self._ensure_planned()
        self._open_ca()
        summary = RunSummary(self.spec.name, self.station)
        todo = limit if limit is not None else self.spec.size
        rows = self.journal.in_flight(self.spec.name, self.station)
        total = min(todo, self.spec.size)

        def next_rows() -> Iterator[DeviceRow]:
            yield from rows
            while True:
                row = self.journal.claim(self.spec.name, self.station)
                if row is None:
                    return
                self.boundary("allocated", row.serial)
                yield row

        for done, row in enumerate(next_rows(), start=1):
            self._one(row, target, summary)
            if progress is not None:
                progress(done, total)
            if done >= todo:
                break
        self._finish(summary)
        return summary

    def resume(self, target: Target) -> RunSummary:
        """Finish only this station's devices that a crash left unfinished."""
        self._ensure_planned()
        self._open_ca()
        summary = RunSummary(self.spec.name, self.station)
        for row in self.journal.in_flight(self.spec.name, self.station):
            self._one(row, target, summary)
        self._finish(summary)
        return summary

    def _one(self, row: DeviceRow, target: Target, summary: RunSummary) -> None:
        try:
            final = self.provision(row, target)
        except EspsecError as exc:
            if row.state in (j.ALLOCATED, j.KEYS, j.PLANNED):
                # Nothing was burned: the serial is spent (never reused), the chip is not.
                row.record["error"] = exc.message
                self.journal.advance(self.spec.name, row, j.FAILED)
                summary.failed.append((row.serial, exc.message))
                return
            raise
        if final == j.DONE:
            summary.provisioned.append(row.serial)
        elif final == j.PARTIAL:
            summary.partial.append(row.serial)

    def _finish(self, summary: RunSummary) -> None:
        summary.counts = self.journal.counts(self.spec.name)
        summary.manifest = str(self.export_manifest())

    # -- one device -----------------------------------------------------------------

    def _folder(self, serial: str) -> Path:
        return self.spec.output / "devices" / serial

    def provision(self, row: DeviceRow, target: Target) -> str:
        """Drive one device from its journal state to ``done`` (or ``efuse-partial``)."""
        name = self.spec.name
        chip = target.attach(row.serial, self.batch)
        if row.state == j.ALLOCATED and row.mac is None:
            row.target = chip.name
            row.mac = chip.mac().hex()
        elif row.mac is not None and chip.mac().hex() != row.mac:
            raise FactoryError(
                f"serial {row.serial} belongs to the chip with MAC {row.mac}; the chip on "
                f"{chip.name} has {chip.mac().hex()}"
            )
        if row.state == j.APPLYING:
            done, total = applied_fraction(chip.read_efuses(), row.record["expected_efuses"])
            if done == total:
                self.journal.advance(name, row, j.APPLIED)
            elif done == 0:
                row.state = j.KEYS  # nothing burned: start again with fresh keys
            else:
                row.record["efuse_applied"] = f"{done}/{total}"
                self.journal.advance(name, row, j.PARTIAL)
                return j.PARTIAL
        if row.state in (j.ALLOCATED, j.KEYS, j.PLANNED):
            keys = generate_keys(self.batch, self.random)
            try:
                self._keys_to_burn(row, chip, keys)
            finally:
                keys.destroy()
        if row.state == j.APPLIED:
            writes = self._load_writes(row)
            chip.write_flash(writes)
            self.boundary("written", row.serial)
            self.journal.advance(name, row, j.FLASHED)
            self.boundary("flashed", row.serial)
        if row.state == j.FLASHED:
            row.record["verify"] = chip.verify(self.batch, row.record)
            self.journal.advance(name, row, j.VERIFIED)
            self.boundary("verified", row.serial)
        if row.state == j.VERIFIED:
            self.journal.advance(name, row, j.DONE)
            self.boundary("done", row.serial)
        return row.state

    def _keys_to_burn(self, row: DeviceRow, chip: Any, keys: DeviceKeys) -> None:
        name = self.spec.name
        index = row.seq
        mac = bytes.fromhex(row.mac or "")
        self.journal.advance(name, row, j.KEYS)
        self.boundary("keys", row.serial)
        ops = efuse_operations(self.batch, keys)
        checked = check_plan(self.batch, ops, chip.read_efuses())
        artifacts = build_artifacts(self.batch, row.serial, index, mac, keys, self.ca)
        row.record.update(public_record(self.batch, row.serial, mac, artifacts))
        row.record["expected_efuses"] = expected_efuses(self.batch, ops)
        row.record["flash"] = self._store(row.serial, artifacts)
        escrow = None
        if self.batch.escrow_key is not None:
            import base64

            from espsec.factory.escrow import wrap

            escrow = base64.b64encode(
                wrap(self.batch.escrow_key, keys.secret_blob(), row.serial)
            ).decode()
        self.journal.advance(name, row, j.PLANNED, escrow=escrow)
        self.boundary("efuse-planned", row.serial)
        self.journal.advance(name, row, j.APPLYING)
        self.boundary("efuse-applying", row.serial)
        chip.burn(ops, checked)
        self.boundary("burned", row.serial)
        self.journal.advance(name, row, j.APPLIED)
        self.boundary("efuse-applied", row.serial)

    def _store(self, serial: str, artifacts: Artifacts) -> list[dict[str, Any]]:
        """Write the device's own flash parts (ciphertext or public) before any burn."""
        folder = self._folder(serial)
        folder.mkdir(parents=True, exist_ok=True)
        shared = {(o, hashlib.sha256(d).hexdigest()) for o, d, _ in self.batch.firmware}
        entries = []
        for offset, data, label in artifacts.flash:
            digest = hashlib.sha256(data).hexdigest()
            entry: dict[str, Any] = {"offset": offset, "name": label, "sha256": digest}
            if (offset, digest) not in shared:
                file = f"{offset:08x}.bin"
                _durable_write(folder / file, data)
                entry["file"] = file
            entries.append(entry)
        if artifacts.certificate_der is not None:
            _durable_write(folder / "device-cert.der", artifacts.certificate_der)
        return entries

    def _load_writes(self, row: DeviceRow) -> list[tuple[int, bytes, str]]:
        folder = self._folder(row.serial)
        shared = {o: d for o, d, _ in self.batch.firmware}
        writes = []
        for entry in row.record["flash"]:
            offset = entry["offset"]
            data = (
                (folder / entry["file"]).read_bytes()
                if "file" in entry
                else shared.get(offset, b"")
            )
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise FactoryError(
                    f"stored flash part at 0x{offset:x} does not match the journal",
                    source=str(folder),
                )
            writes.append((offset, data, entry["name"]))
        return writes

    # -- reports --------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Counts per state, and the devices needing attention."""
        counts = self.journal.counts(self.spec.name)
        attention = [
            {"serial": r.serial, "state": r.state, "station": r.station}
            for r in self.journal.records(self.spec.name, (j.PARTIAL, j.FAILED))
        ]
        return {
            "batch": self.spec.name,
            "devices": self.spec.size,
            "counts": counts,
            "attention": attention,
        }

    def export_manifest(self) -> Path:
        """``manifest.jsonl``: one record per finished device (no secret), batch order;
        ``escrow.jsonl`` beside it when secrets were escrowed."""
        out = self.spec.output / "manifest.jsonl"
        with atomic_output(out) as fh:  # streamed: memory stays flat in the batch size
            for row in self.journal.records(self.spec.name):
                rec = {k: v for k, v in row.record.items() if k not in ("expected_efuses", "flash")}
                rec.update(
                    serial=row.serial, status=row.state, station=row.station, target=row.target
                )
                fh.write(json.dumps(rec, sort_keys=True).encode() + b"\n")
        escrow = self.spec.output / "escrow.jsonl"
        blobs = self.journal.escrow_blobs(self.spec.name)
        first = next(blobs, None)
        if first is not None:
            with atomic_output(escrow) as fh:
                for serial, blob in (first, *blobs):
                    fh.write(json.dumps({"serial": serial, "escrow": blob}).encode() + b"\n")
        return out


def _durable_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (a temporary file renamed into place).

    Whole or absent after a killed process, like the journal's commits (SQLite WAL,
    ``synchronous=NORMAL``): neither forces the disk, so a power cut of the station
    itself may lose the newest device, which resume then redoes or reports.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def open_factory(
    spec_path: Path,
    *,
    journal_url: str | None = None,
    station: str | None = None,
    boundary: Boundary | None = None,
) -> Factory:
    """Load the spec at ``spec_path`` and open its journal."""
    return Factory(
        load_spec(spec_path), journal_url=journal_url, station=station, boundary=boundary
    )
