"""The device's fleet OTA client: ``esp_https_ota`` with pre-encrypted images, rollback
and anti-rollback, as the running app of a virtual device does it.

One update cycle (:func:`run_ota`) is, in the order ESP-IDF's ``esp_https_ota`` and its
OTA examples (``advanced_https_ota``, ``pre_encrypted_ota``, with
``CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK``) make the checks:

1. **startup** — an update switched to by an earlier cycle and not finished (the app is
   ``PENDING_VERIFY``, or a power cut fell after the switch) is finished first: self-test,
   then ``esp_ota_mark_app_valid_cancel_rollback`` (burns the eFuse secure version) or
   ``esp_ota_mark_app_invalid_rollback`` and a reboot; its outcome is reported;
2. **check-in** over HTTPS (server certificate checked against the provisioned CA or
   pinned certificate; plain HTTP refused) with a fresh nonce;
3. **manifest** — signature, device id, nonce, counter, expiry, and the release's
   ``secure_version`` against the eFuse (:class:`espsec.ota.ManifestTrust`); the counter
   is stored in NVS before anything else happens;
4. **image header** (``esp_https_ota_get_img_desc``) — the first bytes are downloaded
   (and, for a pre-encrypted image, decrypted); the image header's chip id, the
   ``esp_app_desc_t`` magic and its ``secure_version`` against the eFuse secure version
   are checked *before the rest is downloaded*, and before ``esp_ota_begin`` erases
   the passive slot;
5. **download** — the rest streams into the passive slot (``esp_ota_write``, through
   the flash-encryption engine when it is on), resumed with ``Range`` when cut; its
   SHA-256 must match the manifest;
6. **decrypt** — ``esp_encrypted_img_decrypt_end``: the GCM tag;
7. ``esp_ota_end`` — the device verifies the image and its Secure Boot v2 signature;
8. ``esp_ota_set_boot_partition``, reboot: the new app runs ``PENDING_VERIFY``;
9. **self-test**, mark valid or roll back (as in 1), and **report** the outcome.

The client's state lives in the device's NVS (:mod:`espsec.device.ota_state`); the
ECIES key is derived from the ``HMAC_UP`` eFuse key. A power cut can fall on any flash
or eFuse write of the cycle (:class:`~espsec.flash.PowerCut` propagates); the
device then boots its old app or the new one, and the next cycle finishes the job.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from espsec.device.boot_select import AppPartition
from espsec.device.identity import IdentityError, read_identity
from espsec.device.ota_state import (
    OtaNvs,
    PendingUpdate,
    TrustCounter,
    check_server_url,
    decryption_key,
)
from espsec.efuse.security import read_secure_version, security_state
from espsec.errors import EspsecError, FormatError, UsageError, VerificationError
from espsec.flash import PowerCut, WriteKind
from espsec.identity.tls import ClientKey
from espsec.image.descriptors import APP_DESC_SIZE, DESC_OFFSET, AppDesc
from espsec.image.header import HEADER_SIZE, ImageHeader
from espsec.nvs import NvsKeys
from espsec.ota import (
    CheckIn,
    DecryptionKey,
    EncryptedImageDecryptor,
    FleetClient,
    HashMismatch,
    ManifestError,
    ManifestTrust,
    OutcomeReport,
    ReleaseTarget,
    TransportError,
    recipient_id,
)
from espsec.ota.encrypted_image import scheme_of_key
from espsec.ota.protocol import MAX_REASON, BootState, Outcome, Posture

if TYPE_CHECKING:
    from espsec.device.app import AppRuntime
    from espsec.device.report import BootReport, RunningApp
    from espsec.device.virtual_device import VirtualDevice

IMAGE_DESC_END = DESC_OFFSET + APP_DESC_SIZE
"""Bytes of plaintext holding the image header, segment header and ``esp_app_desc_t``."""
WRITE_CHUNK = 4096
"""Bytes per ``esp_ota_write`` (and per HTTPS read): one flash sector."""
DEFAULT_TIMEOUT = 30.0
DOWNLOAD_DEADLINE = 600.0
"""Seconds a whole payload download may take, resumes included."""
MIN_DOWNLOAD_RATE = 256.0
"""Bytes per second a download must average after its first 10 s."""
HASH_RETRIES = 1
"""Downloads tried again after one arrives corrupted (hash mismatch) in the same cycle."""

SelfTest = Callable[["AppRuntime"], bool]
"""The new app's self-test (the diagnostic of ESP-IDF's rollback example): True passes."""


class OtaOutcome(StrEnum):
    """How an update cycle ended: a reported :class:`~espsec.ota.protocol.Outcome`, or
    no update (nothing to report)."""

    UPDATED = Outcome.UPDATED.value
    ROLLED_BACK = Outcome.ROLLED_BACK.value
    REFUSED = Outcome.REFUSED.value
    FAILED = Outcome.FAILED.value
    NO_UPDATE = "no_update"


class OtaStep(StrEnum):
    """The steps of a cycle, in order."""

    STARTUP = "startup"
    CHECK_IN = "check-in"
    MANIFEST = "manifest"
    IMAGE_HEADER = "image-header"
    OTA_BEGIN = "esp_ota_begin"
    DOWNLOAD = "download"
    DECRYPT = "decrypt"
    OTA_END = "esp_ota_end"
    SET_BOOT = "esp_ota_set_boot_partition"
    REBOOT = "reboot"
    SELF_TEST = "self-test"
    CONFIRM = "confirm"
    REPORT = "report"


@dataclass(frozen=True)
class OtaEvent:
    """One thing the client did or checked."""

    step: OtaStep
    ok: bool
    detail: str

    def to_json(self) -> dict[str, object]:
        return {"step": self.step.value, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class DownloadStats:
    """How the payload download went."""

    length: int
    """Payload bytes the manifest announced."""
    received: int
    """Payload bytes the device consumed before it finished or stopped."""
    requests: int | None = None
    resumed_at: tuple[int, ...] = ()
    """Offsets at which a cut transfer was resumed with ``Range``."""

    def to_json(self) -> dict[str, object]:
        return {
            "length": self.length,
            "received": self.received,
            "requests": self.requests,
            "resumed_at": list(self.resumed_at),
        }


@dataclass(frozen=True)
class OtaReport:
    """One update cycle: its outcome, why, and what the device runs afterwards."""

    device_id: str
    outcome: OtaOutcome
    reason: str
    step: OtaStep | None
    """The step that decided a refusal or failure (``None`` when none did)."""
    release_id: str | None
    target_version: str | None
    target_secure_version: int | None
    from_partition: str | None
    from_version: str | None
    partition: str | None
    """The app running at the end."""
    version: str | None
    ota_state: str | None
    efuse_secure_version: int
    counter: int | None
    """The manifest counter accepted in this cycle."""
    download: DownloadStats | None
    reported: bool
    """The outcome reached the fleet server."""
    resumed: bool
    """The cycle finished an update an earlier cycle had switched to."""
    events: tuple[OtaEvent, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """Nothing went wrong: updated, or nothing to update."""
        return self.outcome in (OtaOutcome.UPDATED, OtaOutcome.NO_UPDATE)

    def to_json(self) -> dict[str, object]:
        return {
            "device_id": self.device_id,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "step": None if self.step is None else self.step.value,
            "release_id": self.release_id,
            "target_version": self.target_version,
            "target_secure_version": self.target_secure_version,
            "from": {"partition": self.from_partition, "version": self.from_version},
            "running": {
                "partition": self.partition,
                "version": self.version,
                "ota_state": self.ota_state,
            },
            "efuse_secure_version": self.efuse_secure_version,
            "counter": self.counter,
            "download": None if self.download is None else self.download.to_json(),
            "reported": self.reported,
            "resumed": self.resumed,
            "events": [e.to_json() for e in self.events],
        }


class _Stop(Exception):
    """Ends a cycle early with an outcome (never leaves this module)."""

    def __init__(self, step: OtaStep, outcome: OtaOutcome, reason: str) -> None:
        super().__init__(reason)
        self.step = step
        self.outcome = outcome
        self.reason = reason


def _power_lost(report: BootReport) -> PowerCut:
    """The reboot's power cut, raised again as the cut it was."""
    cut = report.power_cut
    if cut is None:  # pragma: no cover - only called for a cut
        return PowerCut(WriteKind.FLASH, "reboot", 0)
    kind = WriteKind.EFUSE if cut.interrupted.startswith("eFuse") else WriteKind.FLASH
    return PowerCut(kind, f"reboot: {cut.interrupted}", cut.after_writes)


class _SlotWriter:
    """The download sink: decrypt, check the image header, then ``esp_ota_write``."""

    def __init__(
        self,
        runtime: AppRuntime,
        part: AppPartition,
        target: ReleaseTarget,
        key: DecryptionKey | None,
        floor: int,
        chunk: int,
        event: Callable[[OtaStep, bool, str], None],
    ) -> None:
        self._rt = runtime
        self._part = part
        self._target = target
        self._dec = None if key is None else EncryptedImageDecryptor(key)
        self._floor = floor
        self._chunk = chunk
        self._event = event
        self._buf = bytearray()
        self._offset = 0
        self._begun = False
        self._hash = hashlib.sha256()
        self.received = 0

    def __call__(self, data: bytes) -> None:
        self.received += len(data)
        if self._dec is not None:
            try:
                data = self._dec.feed(data)
            except EspsecError as exc:
                raise _Stop(
                    OtaStep.DECRYPT, OtaOutcome.REFUSED, f"pre-encrypted image: {exc.message}"
                ) from None
            header = self._dec.header
            if not self._begun and header is not None and header.bin_size != self._image_length:
                raise _Stop(
                    OtaStep.IMAGE_HEADER,
                    OtaOutcome.REFUSED,
                    f"pre-encrypted image holds {header.bin_size} bytes, the manifest says "
                    f"{self._image_length}",
                )
        self._hash.update(data)
        self._buf += data
        if not self._begun:
            if len(self._buf) < IMAGE_DESC_END:
                return
            self._check_header(bytes(self._buf[:IMAGE_DESC_END]))
            self._ota_begin()
        while len(self._buf) >= self._chunk:
            self._write(self._chunk)

    @property
    def _image_length(self) -> int:
        return self._target.image_length

    def _check_header(self, head: bytes) -> None:
        """``esp_https_ota_get_img_desc`` and the examples' version checks."""
        chip = self._rt.hw.chip
        try:
            header = ImageHeader.parse(head[:HEADER_SIZE])
            desc = AppDesc.parse(head[DESC_OFFSET:IMAGE_DESC_END], offset=DESC_OFFSET)
        except FormatError as exc:
            raise _Stop(
                OtaStep.IMAGE_HEADER, OtaOutcome.REFUSED, f"not an app image: {exc.message}"
            ) from None
        if header.chip_id != chip.image_chip_id:
            raise _Stop(
                OtaStep.IMAGE_HEADER,
                OtaOutcome.REFUSED,
                f"mismatch chip id, expected {chip.image_chip_id}, found {header.chip_id}",
            )
        if desc.secure_version < self._floor:
            raise _Stop(
                OtaStep.IMAGE_HEADER,
                OtaOutcome.REFUSED,
                f"downgrade: the image's secure_version {desc.secure_version} is below the "
                f"eFuse secure version {self._floor} (refused after {self.received} of "
                f"{self._target.length} bytes)",
            )
        t = self._target
        if (desc.project_name, desc.version, desc.secure_version) != (
            t.project_name,
            t.version,
            t.secure_version,
        ):
            raise _Stop(
                OtaStep.IMAGE_HEADER,
                OtaOutcome.REFUSED,
                f"the image's esp_app_desc_t ({desc.project_name} {desc.version}, "
                f"secure_version {desc.secure_version}) does not match the signed manifest "
                f"({t.project_name} {t.version}, secure_version {t.secure_version})",
            )
        self._event(
            OtaStep.IMAGE_HEADER,
            True,
            f"esp_app_desc_t: {desc.project_name} {desc.version}, secure_version "
            f"{desc.secure_version} >= eFuse {self._floor} (after {self.received} bytes)",
        )

    def _ota_begin(self) -> None:
        result = self._rt.ota_begin(self._part, self._image_length)
        if not result.ok:
            raise _Stop(
                OtaStep.OTA_BEGIN,
                OtaOutcome.FAILED,
                f"{result.error}: {'; '.join(result.reasons)}",
            )
        self._event(OtaStep.OTA_BEGIN, True, "; ".join(result.reasons))
        self._begun = True

    def _write(self, n: int) -> None:
        data = bytes(self._buf[:n])
        del self._buf[:n]
        try:
            self._rt.ota_write(self._part, self._offset, data)
        except EspsecError as exc:
            raise _Stop(
                OtaStep.DOWNLOAD, OtaOutcome.FAILED, f"esp_ota_write: {exc.message}"
            ) from None
        self._offset += len(data)

    def finish(self) -> bytes:
        """GCM tag (pre-encrypted), the last write; the plaintext image's SHA-256."""
        if self._dec is not None:
            try:
                self._dec.finish()
            except EspsecError as exc:
                raise _Stop(OtaStep.DECRYPT, OtaOutcome.REFUSED, exc.message) from None
            self._event(OtaStep.DECRYPT, True, "GCM tag verified")
        if not self._begun:
            raise _Stop(
                OtaStep.IMAGE_HEADER, OtaOutcome.REFUSED, "image shorter than its app descriptor"
            )
        if self._buf:
            self._write(len(self._buf))
        return self._hash.digest()


class _Cycle:
    """The state of one update cycle on one device."""

    def __init__(
        self,
        dev: VirtualDevice,
        self_test: SelfTest,
        server_url: str | None,
        now: Callable[[], float],
        timeout: float,
        chunk: int,
        nvs_keys: NvsKeys | None,
        download_deadline: float = DOWNLOAD_DEADLINE,
        min_download_rate: float = MIN_DOWNLOAD_RATE,
    ) -> None:
        self.download_deadline = download_deadline
        self.min_download_rate = min_download_rate
        self.dev = dev
        self.self_test = self_test
        self.now = now
        self.timeout = timeout
        self.chunk = chunk
        self.nvs_keys = nvs_keys
        runtime = self.runtime
        self.nvs = OtaNvs(runtime, keys=nvs_keys)
        self.prov = self.nvs.provisioning()
        self.url = check_server_url(server_url) if server_url else self.prov.server_url
        self.trust = self.prov.trust()
        self.events: list[OtaEvent] = []
        self._client: FleetClient | None = None
        app = dev.last_report.app if dev.last_report is not None else None
        self.from_partition = runtime.running.name
        self.from_version = app.version if app is not None else None
        self.release: ReleaseTarget | None = None
        self.target_version: str | None = None
        self.target_secure_version: int | None = None
        self.release_id: str | None = None
        self.counter: int | None = None
        self.download: DownloadStats | None = None
        self.reported = False
        self.resumed = False

    # -- plumbing ----------------------------------------------------------------------

    @property
    def runtime(self) -> AppRuntime:
        runtime = self.dev.running
        if runtime is None:
            raise UsageError("no app is running on the device: boot it first")
        return runtime

    def event(self, step: OtaStep, ok: bool, detail: str) -> None:
        self.events.append(OtaEvent(step, ok, detail))

    def client(self) -> FleetClient:
        if self._client is None:
            self._client = FleetClient(
                self.url,
                self.trust,
                timeout=self.timeout,
                chunk_size=self.chunk,
                identity=self.identity(),
            )
        return self._client

    def identity(self) -> ClientKey | None:
        """The device's mutual-TLS identity (``esp_secure_cert`` and its DS / ECDSA key);
        ``None`` for an unprovisioned device, which the fleet then refuses."""
        try:
            return read_identity(self.dev).client_key()
        except IdentityError:
            return None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def posture(self) -> Posture:
        """The security posture the device reports at check-in (eFuses, running app)."""
        state = security_state(self.dev.efuses)
        app = self.running_app()
        has_usb_jtag = self.dev.efuses.layout.has_field("DIS_USB_JTAG")
        return Posture(
            secure_boot=state.secure_boot_enabled,
            flash_encryption=state.flash_encryption_mode,
            jtag=state.jtag.mode,
            download_mode=state.download_mode,
            secure_version=self.efuse_secure_version(),
            app_version=((app.version if app is not None else None) or "")[:32],
            idf_version=(app.idf_ver[:32] if app is not None and app.idf_ver else None),
            revoked_key_slots=tuple(s.index for s in state.digest_slots if s.revoked),
            usb_jtag_disabled=state.jtag.usb_jtag_disabled if has_usb_jtag else None,
        )

    def efuse_secure_version(self) -> int:
        bits = self.dev.config.bootloader_app_sec_ver_size_efuse_field
        return read_secure_version(self.dev.efuses, bits)

    def floor(self) -> int:
        """The lowest ``secure_version`` this device takes: the eFuse's under
        anti-rollback, else the running app's."""
        runtime = self.runtime
        if runtime.policy.anti_rollback:
            return self.efuse_secure_version()
        app = self.running_app()
        return (app.secure_version if app is not None else None) or 0

    def running_app(self) -> RunningApp | None:
        report = self.dev.last_report
        return None if report is None else report.app

    def reboot(self) -> BootReport:
        self.close()  # the connection does not survive a reset
        report = self.runtime.reboot()
        if report.power_cut is not None:
            raise _power_lost(report)
        self.event(
            OtaStep.REBOOT,
            report.ok,
            f"running {report.app.partition} {report.app.version} ({report.app.ota_state})"
            if report.app is not None
            else f"no app runs: {report.refusal}",
        )
        if not report.ok:
            raise _Stop(OtaStep.REBOOT, OtaOutcome.FAILED, f"no app boots: {report.refusal}")
        self.nvs = OtaNvs(self.runtime, keys=self.nvs_keys)  # nvs_flash_init in the new app
        return report

    # -- the cycle -----------------------------------------------------------------------

    def run(self) -> OtaReport:
        try:
            try:
                pending = self.pending_at_startup()
                if pending is not None:
                    self.resumed = True
                    return self.conclude(
                        pending if pending.outcome is not None else self.confirm(pending)
                    )
                return self.update()
            except _Stop as stop:
                self.event(stop.step, False, stop.reason)
                if stop.step not in (OtaStep.CHECK_IN, OtaStep.STARTUP):
                    self.send_report(stop.outcome, stop.reason)
                return self.result(stop.outcome, stop.reason, stop.step)
        finally:
            self.close()

    def pending_at_startup(self) -> PendingUpdate | None:
        """The unfinished update, if any: recorded in NVS, or an app still PENDING_VERIFY."""
        try:
            pending = self.nvs.pending()
        except FormatError as exc:
            self.event(OtaStep.STARTUP, False, f"{exc.message}: forgotten")
            self.nvs.set_pending(None)
            pending = None
        if pending is not None:
            self.event(
                OtaStep.STARTUP,
                True,
                f"unfinished update to {pending.version} in {pending.partition} "
                f"({pending.outcome or 'not confirmed'})",
            )
            return pending
        runtime = self.runtime
        if runtime.state_of(runtime.running) == "PENDING_VERIFY":
            app = self.running_app()
            self.event(OtaStep.STARTUP, True, f"{runtime.running} is PENDING_VERIFY")
            return PendingUpdate(
                release_id=None,
                version=(app.version if app is not None else None) or "?",
                secure_version=(app.secure_version if app is not None else None) or 0,
                partition=runtime.running.name,
            )
        return None

    def update(self) -> OtaReport:
        runtime = self.runtime
        floor = self.floor()
        key = decryption_key(runtime, self.prov)
        counter = self.nvs.trust_counter()
        trust = ManifestTrust(
            self.prov.device_id,
            self.prov.manifest_key(),
            counter.last_counter,
            counter.last_accepted_at,
        )
        app = self.running_app()
        state = runtime.state_of(runtime.running)
        request = CheckIn(
            device_id=self.prov.device_id,
            chip=runtime.hw.chip.name,
            version=app.version if app is not None and app.version else "",
            secure_version=floor,
            boot_state=BootState.from_ota_img_state(state),
            nonce=trust.begin_check_in(),
            last_counter=counter.last_counter,
            project_name=app.project_name if app is not None else None,
            enc_key_id=None if key is None else recipient_id(key),
            posture=self.posture(),
        )
        try:
            raw = self.client().check_in(request)
        except VerificationError as exc:
            raise _Stop(OtaStep.CHECK_IN, OtaOutcome.REFUSED, exc.message) from None
        except EspsecError as exc:
            raise _Stop(OtaStep.CHECK_IN, OtaOutcome.FAILED, exc.message) from None
        self.event(OtaStep.CHECK_IN, True, f"checked in with {self.url}")
        try:
            manifest = trust.accept(raw, now=self.now(), min_secure_version=floor)
        except ManifestError as exc:
            raise _Stop(OtaStep.MANIFEST, OtaOutcome.REFUSED, exc.message) from None
        self.counter = manifest.counter
        self.nvs.set_trust_counter(TrustCounter(trust.last_counter, trust.last_accepted_at))
        target = manifest.release
        if target is None:
            reason = manifest.reason or "no update offered"
            self.event(OtaStep.MANIFEST, True, f"counter {manifest.counter}: {reason}")
            return self.result(OtaOutcome.NO_UPDATE, reason, None)
        self.release = target
        self.release_id = target.release_id
        self.target_version = target.version
        self.target_secure_version = target.secure_version
        self.event(
            OtaStep.MANIFEST,
            True,
            f"counter {manifest.counter}: release {target.release_id} ({target.project_name} "
            f"{target.version}, secure_version {target.secure_version}, {target.encryption})",
        )
        part = self.check_target(target, key)
        digest = self.fetch(target, part, key, floor)
        result = runtime.ota_end(part)
        if not result.ok:
            raise _Stop(
                OtaStep.OTA_END, OtaOutcome.REFUSED, f"{result.error}: {'; '.join(result.reasons)}"
            )
        self.event(
            OtaStep.OTA_END, True, f"{'; '.join(result.reasons)} (sha256 {digest.hex()[:16]}…)"
        )
        pending = PendingUpdate(
            release_id=target.release_id,
            version=target.version,
            secure_version=target.secure_version,
            partition=part.name,
            from_partition=self.from_partition,
            counter=manifest.counter,
        )
        now = self.now()
        ttl = manifest.expires_at - manifest.issued_at
        if now >= manifest.expires_at or trust.is_stale(now=now, max_age=ttl):
            raise _Stop(
                OtaStep.SET_BOOT,
                OtaOutcome.FAILED,
                f"the manifest expired during the download (valid until {manifest.expires_at}, "
                f"now {int(now)}): not switching; the next check-in asks again",
            )
        self.nvs.set_pending(pending)
        switched = runtime.set_boot_partition(part)
        if not switched.ok:
            self.nvs.set_pending(None)
            raise _Stop(
                OtaStep.SET_BOOT,
                OtaOutcome.REFUSED,
                f"{switched.error}: {'; '.join(switched.reasons)}",
            )
        self.event(OtaStep.SET_BOOT, True, "; ".join(switched.reasons))
        self.reboot()
        return self.conclude(self.confirm(pending))

    def check_target(self, target: ReleaseTarget, key: DecryptionKey | None) -> AppPartition:
        """What can be refused before downloading a byte: chip, encryption, slot size."""
        runtime = self.runtime
        if target.chip != runtime.hw.chip.name:
            raise _Stop(
                OtaStep.MANIFEST,
                OtaOutcome.REFUSED,
                f"release is for {target.chip}, this chip is {runtime.hw.chip.name}",
            )
        takes = "none" if key is None else scheme_of_key(key).value
        if target.encryption != takes:
            raise _Stop(
                OtaStep.MANIFEST,
                OtaOutcome.REFUSED,
                f"release payload is {target.encryption}; this device takes {takes} images",
            )
        if target.encryption == "none" and target.length != target.image_length:
            raise _Stop(
                OtaStep.MANIFEST,
                OtaOutcome.REFUSED,
                "plain payload length differs from the image length",
            )
        part = runtime.next_update_partition()
        if part is None:
            raise _Stop(OtaStep.OTA_BEGIN, OtaOutcome.FAILED, "no OTA partition to update")
        size = runtime.partition(part).size
        if target.image_length > size:
            raise _Stop(
                OtaStep.OTA_BEGIN,
                OtaOutcome.REFUSED,
                f"image of {target.image_length} bytes does not fit {part} ({size} bytes)",
            )
        return part

    def fetch(
        self, target: ReleaseTarget, part: AppPartition, key: DecryptionKey | None, floor: int
    ) -> bytes:
        """Download into the passive slot; the verified plaintext image's SHA-256.

        A download that arrives corrupted (its hash is not the manifest's) is tried again
        (:data:`HASH_RETRIES`), then reported ``failed``, not ``refused``: the fleet keeps
        offering the release, so one bad transfer does not block it for the device.
        """
        for attempt in range(HASH_RETRIES + 1):
            writer = _SlotWriter(self.runtime, part, target, key, floor, self.chunk, self.event)
            try:
                return self._fetch_once(target, writer)
            except HashMismatch as exc:
                self.close()
                self.download = DownloadStats(target.length, writer.received)
                if attempt == HASH_RETRIES:
                    raise _Stop(OtaStep.DOWNLOAD, OtaOutcome.FAILED, exc.message) from None
                self.event(OtaStep.DOWNLOAD, False, f"{exc.message}: downloading again")
        raise AssertionError("unreachable")

    def _fetch_once(self, target: ReleaseTarget, writer: _SlotWriter) -> bytes:
        try:
            result = self.client().download(
                target.url,
                writer,
                length=target.length,
                sha256=bytes.fromhex(target.sha256),
                deadline=self.download_deadline,
                min_rate=self.min_download_rate,
            )
        except HashMismatch:
            raise
        except _Stop:
            self.close()  # abandon the rest of the body
            self.download = DownloadStats(target.length, writer.received)
            raise
        except EspsecError as exc:
            self.close()
            self.download = DownloadStats(target.length, writer.received)
            outcome = OtaOutcome.FAILED if isinstance(exc, TransportError) else OtaOutcome.REFUSED
            raise _Stop(OtaStep.DOWNLOAD, outcome, exc.message) from None
        self.download = DownloadStats(
            target.length, writer.received, result.requests, result.resumed_at
        )
        resumed = (
            f", resumed at {', '.join(map(str, result.resumed_at))}" if result.resumed_at else ""
        )
        self.event(
            OtaStep.DOWNLOAD,
            True,
            f"{result.length} bytes in {result.requests} request(s){resumed}, SHA-256 as signed",
        )
        digest = writer.finish()
        if not hmac.compare_digest(digest.hex(), target.image_sha256):
            raise _Stop(
                OtaStep.DECRYPT,
                OtaOutcome.REFUSED,
                "the image does not match the manifest's image_sha256",
            )
        return digest

    # -- after the switch ----------------------------------------------------------------

    def confirm(self, pending: PendingUpdate) -> PendingUpdate:
        """The new app's startup: self-test, then confirm or roll back (records the outcome)."""
        runtime = self.runtime
        running = runtime.running.name
        if running != pending.partition:
            new_state = runtime.state_of(AppPartition.from_name(pending.partition))
            if new_state in ("ABORTED", "INVALID"):
                done = pending.finished(
                    OtaOutcome.ROLLED_BACK.value,
                    f"{pending.partition} {pending.version} did not confirm itself "
                    f"({new_state}): the bootloader started {running}",
                )
            else:
                done = pending.finished(
                    OtaOutcome.FAILED.value,
                    f"the switch to {pending.partition} did not take effect; {running} runs",
                )
            self.event(OtaStep.CONFIRM, False, done.reason)
            self.nvs.set_pending(done)
            return done
        state = runtime.state_of(runtime.running)
        if state == "VALID":
            done = pending.finished(OtaOutcome.UPDATED.value, f"{running} already confirmed")
            self.event(OtaStep.CONFIRM, True, done.reason)
            self.nvs.set_pending(done)
            return done
        passed = bool(self.self_test(runtime))
        self.event(OtaStep.SELF_TEST, passed, "passed" if passed else "failed")
        if passed:
            result = runtime.mark_app_valid()
            reasons = "; ".join(result.reasons)
            if result.ok:
                done = pending.finished(OtaOutcome.UPDATED.value, f"self-test passed: {reasons}")
            else:
                done = pending.finished(
                    OtaOutcome.FAILED.value, f"esp_ota_mark_app_valid: {result.error}: {reasons}"
                )
            self.event(OtaStep.CONFIRM, result.ok, reasons)
            self.nvs.set_pending(done)
            return done
        result = runtime.mark_app_invalid_rollback()
        if not result.ok:
            done = pending.finished(
                OtaOutcome.FAILED.value,
                f"self-test failed and rollback is not possible: {result.error}: "
                f"{'; '.join(result.reasons)}",
            )
            self.event(OtaStep.CONFIRM, False, done.reason)
            self.nvs.set_pending(done)
            return done
        self.event(OtaStep.CONFIRM, True, "; ".join(result.reasons))
        self.nvs.set_pending(pending.finished(OtaOutcome.ROLLED_BACK.value, "self-test failed"))
        report = self.reboot()
        back = f"{report.app.partition} {report.app.version}" if report.app is not None else "?"
        return pending.finished(
            OtaOutcome.ROLLED_BACK.value, f"self-test failed: rolled back to {back}"
        )

    def conclude(self, pending: PendingUpdate) -> OtaReport:
        """Report the outcome of a finished update and forget it."""
        outcome = OtaOutcome(pending.outcome or OtaOutcome.FAILED.value)
        self.release_id = pending.release_id
        self.target_version = pending.version
        self.target_secure_version = pending.secure_version
        if pending.counter is not None:
            self.counter = pending.counter
        if self.resumed and pending.from_partition is not None:
            self.from_partition = pending.from_partition
        self.send_report(outcome, pending.reason)
        self.nvs.set_pending(None)
        step = None if outcome is OtaOutcome.UPDATED else OtaStep.CONFIRM
        return self.result(outcome, pending.reason, step)

    def send_report(self, outcome: OtaOutcome, reason: str) -> None:
        app = self.running_app()
        report = OutcomeReport(
            device_id=self.prov.device_id,
            release_id=self.release_id,
            outcome=Outcome(outcome.value),
            reason=reason[:MAX_REASON],
            counter=self.counter,
            version=app.version if app is not None else None,
            secure_version=self.efuse_secure_version(),
        )
        try:
            self.client().report(report)
        except EspsecError as exc:
            self.event(OtaStep.REPORT, False, f"could not report: {exc.message}")
            return
        self.reported = True
        self.event(OtaStep.REPORT, True, f"reported {outcome.value} to the fleet")

    def result(self, outcome: OtaOutcome, reason: str, step: OtaStep | None) -> OtaReport:
        app = self.running_app()
        runtime = self.dev.running
        return OtaReport(
            device_id=self.prov.device_id,
            outcome=outcome,
            reason=reason,
            step=step,
            release_id=self.release_id,
            target_version=self.target_version,
            target_secure_version=self.target_secure_version,
            from_partition=self.from_partition,
            from_version=self.from_version,
            partition=app.partition if app is not None else None,
            version=app.version if app is not None else None,
            ota_state=runtime.state_of(runtime.running) if runtime is not None else None,
            efuse_secure_version=self.efuse_secure_version(),
            counter=self.counter,
            download=self.download,
            reported=self.reported,
            resumed=self.resumed,
            events=tuple(self.events),
        )


def run_ota(
    dev: VirtualDevice,
    *,
    self_test: SelfTest | bool = True,
    server_url: str | None = None,
    now: Callable[[], float] = time.time,
    timeout: float = DEFAULT_TIMEOUT,
    chunk_size: int = WRITE_CHUNK,
    nvs_keys: NvsKeys | None = None,
    download_deadline: float = DOWNLOAD_DEADLINE,
    min_download_rate: float = MIN_DOWNLOAD_RATE,
) -> OtaReport:
    """One update cycle of the running app's fleet OTA client (see the module docs).

    ``dev`` must be running an app provisioned with ``espsec device provision-ota``
    (:func:`espsec.device.ota_state.provision_ota`). ``self_test`` is the new
    app's diagnostic (or a fixed verdict); ``server_url`` overrides the provisioned URL
    for this cycle (the trust anchors stay the provisioned ones); ``now`` is the
    device's clock; ``nvs_keys`` overrides the app's NVS encryption keys (by default
    those its ``nvs_flash_init`` uses: :func:`espsec.device.nvs.app_nvs_keys`).
    ``download_deadline`` / ``min_download_rate`` bound the payload download as a whole
    (a server trickling bytes cannot hold the device forever). The device is left
    running; save it afterwards. A power cut armed on the device
    propagates as :class:`~espsec.flash.PowerCut`.
    """
    if chunk_size < IMAGE_DESC_END or chunk_size % 16:
        raise UsageError(f"chunk size must be a multiple of 16 and >= {IMAGE_DESC_END}")
    test: SelfTest
    if isinstance(self_test, bool):
        verdict = self_test

        def test(_: AppRuntime) -> bool:
            return verdict

    else:
        test = self_test
    return _Cycle(
        dev,
        test,
        server_url,
        now,
        timeout,
        chunk_size,
        nvs_keys,
        download_deadline=download_deadline,
        min_download_rate=min_download_rate,
    ).run()
