"""Running a batch: plan it, provision devices, resume after a crash, report status.

:class:`Factory` drives each device through the journal's states (see
:mod:`espsec.factory.journal`). Before each step with an effect the journal is
committed; the flash parts a burned chip still needs (ciphertext and public data) are
in the journal, on disk, before its eFuses are touched; the keys are dropped once
burned. So after a ``kill -9`` or a power cut anywhere, :meth:`Factory.resume` finds
each of its devices in a state that says what to do: start again with fresh keys
(nothing burned), read the chip to tell a finished burn from none or a partial one,
flash from the stored parts, verify (docs/adr/0015-factory-journal-and-resume.md).
"""

from __future__ import annotations

import hashlib
import json
import socket
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
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
    RsaKeysAhead,
    applied_fraction,
    build_artifacts,
    check_plan,
    default_key_workers,
    efuse_operations,
    expected_efuses,
    generate_keys,
    load_batch,
    needs_rsa_identity,
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

Writes = list[tuple[int, bytes, str]]

MAX_LISTED = 100
"""How many partly burned or failed serials a :class:`RunSummary` names (the journal
holds them all: ``espsec factory status``)."""


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
    """What a run or resume did: counts, and the first :data:`MAX_LISTED` serials that
    need attention (its size does not grow with the batch)."""

    batch: str
    station: str
    provisioned: int = 0
    partial: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    partial_count: int = 0
    failed_count: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    manifest: str | None = None

    @property
    def ok(self) -> bool:
        return not self.partial_count and not self.failed_count

    def add_partial(self, serial: str) -> None:
        self.partial_count += 1
        if len(self.partial) < MAX_LISTED:
            self.partial.append(serial)

    def add_failed(self, serial: str, error: str) -> None:
        self.failed_count += 1
        if len(self.failed) < MAX_LISTED:
            self.failed.append((serial, error))

    def to_json(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "station": self.station,
            "provisioned": self.provisioned,
            "partial": self.partial,
            "partial_count": self.partial_count,
            "failed": [{"serial": s, "error": e} for s, e in self.failed],
            "failed_count": self.failed_count,
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
        key_workers: int | None = None,
    ) -> None:
        """``key_workers``: threads making DS RSA keys ahead (default: one per core;
        0: each key made when its device needs it)."""
        self.spec = spec
        self.key_workers = default_key_workers() if key_workers is None else key_workers
        self.batch = load_batch(spec)
        self.station = station or default_station()
        self.boundary = boundary or (lambda name, serial: None)
        self._stack = ExitStack()
        self.journal: Journal = open_journal(journal_url, spec.output)
        self._stack.callback(self.journal.close)
        self.ca: CaSigner | None = None
        self.random: RandomSource = os_random
        self._rsa_keys: RsaKeysAhead | None = None
        self._shared: dict[int, str] | None = None

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
        free = self.journal.counts(self.spec.name)[j.FREE]
        total = min(todo, len(rows) + free)

        def next_rows() -> Iterator[DeviceRow]:
            yield from rows
            while True:
                row = self.journal.claim(self.spec.name, self.station)
                if row is None:
                    return
                self.boundary("allocated", row.serial)
                yield row

        with self._keys_ahead(total):
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
        rows = self.journal.in_flight(self.spec.name, self.station)
        with self._keys_ahead(len(rows)):
            for row in rows:
                self._one(row, target, summary)
        self._finish(summary)
        return summary

    @contextmanager
    def _keys_ahead(self, budget: int) -> Iterator[None]:
        """DS RSA keys made on every core ahead of the devices (for ``budget`` devices)."""
        if self.key_workers < 1 or budget < 2 or not needs_rsa_identity(self.batch):
            yield
            return
        self._rsa_keys = RsaKeysAhead(self.spec.keys.ds_rsa_bits, self.key_workers, budget)
        try:
            yield
        finally:
            self._rsa_keys.close()
            self._rsa_keys = None

    def _one(self, row: DeviceRow, target: Target, summary: RunSummary) -> None:
        try:
            final = self.provision(row, target)
        except EspsecError as exc:
            if row.state in (j.ALLOCATED, j.KEYS, j.PLANNED):
                # Nothing was burned: the serial is spent (never reused), the chip is not.
                row.record["error"] = exc.message
                self.journal.advance(self.spec.name, row, j.FAILED)
                summary.add_failed(row.serial, exc.message)
                return
            raise
        if final == j.DONE:
            summary.provisioned += 1
        elif final == j.PARTIAL:
            summary.add_partial(row.serial)

    def _finish(self, summary: RunSummary) -> None:
        summary.counts = self.journal.counts(self.spec.name)
        summary.manifest = str(self.export_manifest())

    # -- one device -----------------------------------------------------------------

    def provision(self, row: DeviceRow, target: Target) -> str:
        """Drive one device from its journal state to ``done`` (or ``efuse-partial``)."""
        name = self.spec.name
        chip = target.attach(row.serial, self.batch)
        if row.state == j.ALLOCATED and row.mac is None:
            row.target = chip.name
            self._check_revision(chip)
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
        writes: Writes | None = None
        if row.state in (j.ALLOCATED, j.KEYS, j.PLANNED):
            keys = generate_keys(self.batch, self.random, self._rsa_keys)
            try:
                writes = self._keys_to_burn(row, chip, keys)
            finally:
                keys.destroy()
        if row.state == j.APPLIED:
            if writes is None:  # resumed: the parts stored before the burn
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

    def _check_revision(self, chip: Any) -> None:
        """Refuse silicon older than ``[batch] min_revision`` (before anything is done)."""
        least = self.spec.min_revision
        if least is None:
            return
        found = chip.read_efuses().revision
        if found < least:
            from espsec.chips import revision_name

            raise FactoryError(
                f"the chip on {chip.name} is {self.batch.chip.display_name} "
                f"{revision_name(found)}; [batch] min_revision: expected at least "
                f"{revision_name(least)}, found {revision_name(found)}"
            )

    def _keys_to_burn(self, row: DeviceRow, chip: Any, keys: DeviceKeys) -> Writes:
        """Keys to burned eFuses: the flash parts and the plan are durable first."""
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
        row.record["flash"], blob = self._pack(artifacts)
        escrow = None
        if self.batch.escrow_key is not None:
            import base64

            from espsec.factory.escrow import wrap

            escrow = base64.b64encode(
                wrap(self.batch.escrow_key, keys.secret_blob(), row.serial)
            ).decode()
        # The flash parts and the wrapped secrets go in with the plan; the commit before
        # the burn is forced to disk, and with it that one: a power cut after this
        # point leaves a journal that knows the chip may be burned and can finish it.
        self.journal.advance(name, row, j.PLANNED, escrow=escrow, artifacts=blob)
        self.boundary("efuse-planned", row.serial)
        self.journal.advance(name, row, j.APPLYING, durable=True)
        self.boundary("efuse-applying", row.serial)
        chip.burn(ops, checked)
        self.boundary("burned", row.serial)
        self.journal.advance(name, row, j.APPLIED)
        self.boundary("efuse-applied", row.serial)
        return list(artifacts.flash)

    def _pack(self, artifacts: Artifacts) -> tuple[list[dict[str, Any]], bytes]:
        """The journal's flash entries, and the device's own parts as one blob
        (zlib over their concatenation; parts the batch shares are not repeated)."""
        shared = self._shared_parts()
        entries = []
        own = []
        for offset, data, label in artifacts.flash:
            digest = hashlib.sha256(data).hexdigest()
            entry: dict[str, Any] = {"offset": offset, "name": label, "sha256": digest}
            if shared.get(offset) != digest:
                entry["size"] = len(data)
                own.append(data)
            entries.append(entry)
        return entries, zlib.compress(b"".join(own), 1)

    def _shared_parts(self) -> dict[int, str]:
        if self._shared is None:
            self._shared = {o: hashlib.sha256(d).hexdigest() for o, d, _ in self.batch.firmware}
        return self._shared

    def _load_writes(self, row: DeviceRow) -> Writes:
        """The flash writes stored before the burn (checked against their digests)."""
        blob = self.journal.artifacts(self.spec.name, row.serial)
        try:
            own = zlib.decompress(blob) if blob is not None else b""
        except zlib.error:
            own = b""
        shared = {o: d for o, d, _ in self.batch.firmware}
        writes: Writes = []
        pos = 0
        for entry in row.record["flash"]:
            offset = entry["offset"]
            if "size" in entry:
                data = own[pos : pos + entry["size"]]
                pos += entry["size"]
            else:
                data = shared.get(offset, b"")
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise FactoryError(
                    f"serial {row.serial}: the stored flash part at 0x{offset:x} does not "
                    "match its digest in the journal"
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
        self.spec.output.mkdir(parents=True, exist_ok=True)
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


def open_factory(
    spec_path: Path,
    *,
    journal_url: str | None = None,
    station: str | None = None,
    boundary: Boundary | None = None,
    key_workers: int | None = None,
) -> Factory:
    """Load the spec at ``spec_path`` and open its journal (options as :class:`Factory`)."""
    return Factory(
        load_spec(spec_path),
        journal_url=journal_url,
        station=station,
        boundary=boundary,
        key_workers=key_workers,
    )
