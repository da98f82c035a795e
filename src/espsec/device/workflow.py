"""The ``espsec device`` commands as library calls on a device folder.

Each function opens the virtual device saved in a folder (see
:mod:`espsec.device.virtual_device`), does one serial session or one power-on (and what
the running app then does), saves the folder and returns what happened. Nothing prints;
errors are :class:`~espsec.errors.EspsecError` subclasses that name the file at fault.
A call the running app makes on a device that starts no app raises
:class:`NoAppRunning`, which carries the boot report.

Example::

    from espsec.device import workflow

    workflow.create_device("dev", "esp32s3", "4MB")
    workflow.flash_device("dev", build_dir="build")
    result = workflow.boot_device("dev")  # BootResult: result.report is the BootReport
    update = workflow.install_image("dev", "app-v2.bin", confirm=True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from espsec._io import PathLike, read_bytes, write_output
from espsec.device.boot_select import AppPartition, EspErr, OtaOpResult
from espsec.device.report import BootReport
from espsec.device.virtual_device import FlashedFile, VirtualDevice, WriteMode
from espsec.errors import EspsecError, FormatError, UsageError, with_source
from espsec.flash import FaultPlan
from espsec.sdkconfig import Assignment, BootloaderConfig, read_name_values, read_sdkconfig

if TYPE_CHECKING:
    # What only some commands need loads in the functions that use it, so a boot
    # loads no OTA client, TLS, provisioning or status code.
    from espsec.device.app import AppRuntime
    from espsec.device.jtag import JtagStatus
    from espsec.device.ota_client import OtaReport
    from espsec.device.ota_state import OtaIdentity
    from espsec.device.status import DeviceStatus


class NoAppRunning(EspsecError):
    """The device started no app, so no app can carry out the request.

    ``report`` is the boot that did not reach an app.
    """

    def __init__(self, report: BootReport) -> None:
        super().__init__(f"no app runs: {report.refusal or report.outcome.value}")
        self.report = report


class AppAction(StrEnum):
    """What the app does about itself right after a boot."""

    MARK_VALID = "valid"
    """``esp_ota_mark_app_valid_cancel_rollback``."""
    MARK_INVALID = "invalid"
    """``esp_ota_mark_app_invalid_rollback_and_reboot``."""


def op_json(result: OtaOpResult) -> dict[str, object]:
    """An app-side OTA call's result as JSON: ``ok``, ``error``, ``reasons``, ``actions``."""
    return {
        "ok": result.ok,
        "error": None if result.error is None else result.error.value,
        "reasons": list(result.reasons),
        "actions": [a.describe() for a in result.actions],
    }


# -- create, open, flash -----------------------------------------------------------------


def bootloader_config(
    sdkconfig: PathLike | None = None, options: Sequence[str] = ()
) -> BootloaderConfig | None:
    """The bootloader's options from an ``sdkconfig`` file and ``NAME=VALUE`` options
    (``SECURE_BOOT=y``), the options after the file; ``None`` if neither is given."""
    if sdkconfig is None and not options:
        return None
    assignments: dict[str, Assignment] = {}
    if sdkconfig is not None:
        text = read_bytes(sdkconfig, what="sdkconfig")
        assignments.update(read_sdkconfig(text, source=str(sdkconfig)))
    assignments.update(read_name_values(options))
    return BootloaderConfig.resolve(assignments)


def create_device(
    folder: PathLike,
    chip: str,
    flash_size: int | str,
    *,
    config: BootloaderConfig | None = None,
    revision: int | None = None,
) -> VirtualDevice:
    """A blank chip (every eFuse 0 but the wafer revision, flash erased) in a new device
    ``folder``; ``revision`` (major * 100 + minor) defaults to the newest the chip data
    knows (ESP32-P4: v3.1).

    ``flash_size`` in bytes, or as esptool names it (``4MB``, ``0x400000``); a size the
    chip cannot have is refused before anything is written.
    """
    from espsec.flash_encryption import parse_flash_size

    size = parse_flash_size(flash_size)
    return VirtualDevice.create(folder, chip, size, config=config, revision=revision)


def open_device(folder: PathLike) -> VirtualDevice:
    """The device saved in ``folder``; errors name the folder when no file does."""
    with with_source(str(folder)):
        return VirtualDevice.open(folder)


@dataclass(frozen=True)
class FlashResult:
    """What one serial session wrote to a device's flash."""

    folder: Path
    written: tuple[FlashedFile, ...]
    config_recorded: bool
    """The device holds bootloader options (recorded now or before)."""

    def to_json(self) -> dict[str, object]:
        return {"device": str(self.folder), "written": [f.to_json() for f in self.written]}


def flash_device(
    folder: PathLike | None,
    *,
    build_dir: PathLike | None = None,
    writes: Sequence[tuple[int, PathLike]] = (),
    partition_table: PathLike | None = None,
    mode: WriteMode = WriteMode.PLAIN,
    config: BootloaderConfig | None = None,
    port: str | None = None,
) -> FlashResult:
    """Write files to the device's flash over the ROM's serial protocol.

    The write goes through the chip's download mode, as ``esptool write-flash`` does
    (:mod:`espsec.device.download.host`): the device in ``folder`` is served on a free
    loopback port for the write, or ``port`` names a chip already in download mode (a
    ``device serve`` URL or a serial port). The chip's eFuses decide what it accepts:
    nothing with ``DIS_DOWNLOAD_MODE``, only plain or ROM-encrypted writes in Secure
    Download Mode, no ROM encryption with ``DIS_DOWNLOAD_MANUAL_ENCRYPT``.

    ``build_dir``: an ESP-IDF build folder, flashed as ``flasher_args.json`` lists it
    (its sdkconfig is recorded unless ``config`` is given). ``writes``: (offset, file)
    pairs. ``partition_table``: a CSV or binary table, written at the table offset.
    ``config`` is recorded with the bootloader in ``folder``, for the boots to come.
    """
    from espsec.device.download import host
    from espsec.device.virtual_device import config_from_build_dir
    from espsec.flash_encryption import load_build_dir
    from espsec.image.partition_table import load_partition_table

    if (folder is None) == (port is None):
        raise UsageError("flash a device folder or a --port, not both")
    dev = open_device(folder) if folder is not None else None
    files: list[tuple[int, bytes, str]] = []
    if build_dir is not None:
        layout = load_build_dir(build_dir)
        if dev is not None and layout.chip.name != dev.efuses.chip:
            raise UsageError(
                f"the build is for {layout.chip.name}, the device is {dev.efuses.chip}",
                source=str(build_dir),
            )
        if config is None:
            config = config_from_build_dir(build_dir)
        files += [(w.offset, w.data, w.name) for w in layout.writes]
    for offset, path in writes:
        if offset < 0:
            raise UsageError(f"{path}: negative flash offset {offset}")
        files.append((offset, read_bytes(path, what="flash file"), str(path)))
    if partition_table is not None:
        with with_source(str(partition_table)):
            table = load_partition_table(read_bytes(partition_table, what="partition table"))
        base = config or (dev.config if dev is not None else BootloaderConfig.from_options())
        files.append((base.partition_table_offset, table.to_bytes(), str(partition_table)))
    if not files and config is None:
        raise UsageError("nothing to flash: no build folder, file or partition table given")
    if dev is not None and config is not None:
        dev.copy().set_config(config)  # refuse a config for another chip before writing
    encrypt = mode is WriteMode.ENCRYPT
    files.sort(key=lambda f: f[0])
    pairs = [(offset, data) for offset, data, _ in files]
    if pairs and port is not None:
        host.write_flash(port, pairs, encrypt=encrypt)
    elif pairs and folder is not None:
        with host.serve_folder(folder) as url:
            host.write_flash(url, pairs, encrypt=encrypt)
    recorded = False
    if folder is not None:
        dev = open_device(folder)
        if config is not None:
            dev.set_config(config)
        recorded = dev.has_config
    done = tuple(FlashedFile(offset, len(data), name, mode) for offset, data, name in files)
    return FlashResult(Path(folder if folder is not None else str(port)), done, recorded)


# -- power-on and what the app does --------------------------------------------------------


@dataclass(frozen=True)
class BootResult:
    """A power-on, what the app then did about itself, and the boot after its reboot."""

    report: BootReport
    app_calls: tuple[OtaOpResult, ...] = ()
    after_reboot: BootReport | None = None

    @property
    def final(self) -> BootReport:
        """The last boot: the one after the reboot, if the app rebooted."""
        return self.after_reboot or self.report

    @property
    def ok(self) -> bool:
        """An app runs at the end."""
        return self.final.ok

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = self.report.to_json()
        if self.app_calls:
            doc["app_calls"] = [op_json(r) for r in self.app_calls]
        if self.after_reboot is not None:
            doc["after_reboot"] = self.after_reboot.to_json()
        return doc


def boot_device(
    folder: PathLike,
    *,
    fault_plan: FaultPlan | None = None,
    app_action: AppAction | None = None,
) -> BootResult:
    """Power the device on (cutting power as ``fault_plan`` says); if an app runs, it
    then does ``app_action`` (marking itself invalid reboots it)."""
    dev = open_device(folder)
    with dev:
        report = dev.boot(fault_plan=fault_plan)
        calls: list[OtaOpResult] = []
        after = None
        if report.ok and app_action is not None and dev.running is not None:
            if app_action is AppAction.MARK_VALID:
                calls.append(dev.running.mark_app_valid())
            else:
                result = dev.running.mark_app_invalid_rollback()
                calls.append(result)
                if result.ok:
                    after = dev.running.reboot()
    return BootResult(report, tuple(calls), after)


def boot_app(dev: VirtualDevice) -> tuple[BootReport, AppRuntime]:
    """Power on for a request the running app carries out: the boot and the app.

    Raises :class:`NoAppRunning` (with the report) when no app starts.
    """
    report = dev.boot()
    if not report.ok or dev.running is None:
        raise NoAppRunning(report)
    return report, dev.running


@dataclass(frozen=True)
class InstallResult:
    """An app update from a local image: the boot before it, ``esp_ota_*``'s verdict,
    the boot after the reboot, and the new app's self-confirmation."""

    running: BootReport
    update: OtaOpResult
    after: BootReport | None
    confirm: OtaOpResult | None = None

    @property
    def ok(self) -> bool:
        """Installed, and the new app runs after the reboot."""
        return self.update.ok and self.after is not None and self.after.ok

    def to_json(self) -> dict[str, object]:
        return {
            "update": op_json(self.update),
            "boot": self.after.to_json() if self.after else None,
            "confirm": op_json(self.confirm) if self.confirm else None,
        }


def install_image(
    folder: PathLike, image: PathLike, *, slot: str | None = None, confirm: bool = False
) -> InstallResult:
    """The running app writes ``image`` to ``slot`` (default: the next update slot)
    through the flash encryption engine, verifies it (``esp_ota_end``), selects it
    (``esp_ota_set_boot_partition``) and reboots; with ``confirm`` the new app then
    marks itself valid.

    When the device refuses the signature of an image that carries no signature block,
    the reason says so ("image is not signed"), not what the bootloader happened to read
    after the image.
    """
    data = read_bytes(image, what="app image")
    dev = open_device(folder)
    with dev:
        first, app = boot_app(dev)
        target = AppPartition.from_name(slot) if slot else None
        result = app.install(data, target)
        if (
            result.error is EspErr.ESP_ERR_OTA_VALIDATE_FAILED
            and any("signature" in reason for reason in result.reasons)
            and not _is_signed(data)
        ):
            result = replace(result, reasons=(f"{Path(image).name}: image is not signed",))
        after = app.reboot() if result.ok else None
        confirmed = None
        if after is not None and after.ok and confirm and dev.running is not None:
            confirmed = dev.running.mark_app_valid()
    return InstallResult(first, result, after, confirmed)


def _is_signed(image: bytes) -> bool:
    """``image`` ends with a Secure Boot v2 signature sector holding a valid block."""
    from espsec.secure_boot.signature_block import SlotState, read_sector
    from espsec.secure_boot.signing import split_signed

    try:
        content, sector = split_signed(image)
    except FormatError:
        return False
    return any(s.state is SlotState.VALID for s in read_sector(sector, offset=len(content)))


@dataclass(frozen=True)
class FleetUpdate:
    """One cycle of the device's fleet OTA client, and the boot it started from."""

    running: BootReport
    report: OtaReport

    @property
    def ok(self) -> bool:
        return self.report.ok

    def to_json(self) -> dict[str, object]:
        return self.report.to_json()


def fleet_update(
    folder: PathLike, *, server_url: str | None = None, self_test: bool = True
) -> FleetUpdate:
    """Power on and run one cycle of the app's fleet OTA client
    (:func:`~espsec.device.ota_client.run_ota`); ``self_test`` is the new app's verdict."""
    from espsec.device.ota_client import run_ota

    dev = open_device(folder)
    with dev:
        first, _ = boot_app(dev)
        report = run_ota(dev, self_test=self_test, server_url=server_url)
    return FleetUpdate(first, report)


@dataclass(frozen=True)
class ProvisionResult:
    """A device provisioned for fleet OTA, and where its decryption public key went."""

    identity: OtaIdentity
    public_key_out: Path | None = None

    def to_json(self) -> dict[str, object]:
        doc = self.identity.to_json()
        doc["public_key_out"] = None if self.public_key_out is None else str(self.public_key_out)
        return doc


def default_device_id(dev: VirtualDevice) -> str:
    """``<chip>-<MAC eFuse in hex>``: the id a device checks in with by default."""
    mac = dev.efuses.get_int("MAC")
    if not mac:
        raise UsageError("the chip's MAC eFuse is blank: give a device id (--device-id)")
    return f"{dev.chip.name}-{mac:012x}"


def provision_device_ota(
    folder: PathLike,
    *,
    server_url: str,
    manifest_key: PathLike,
    ca: PathLike | None = None,
    pin: PathLike | None = None,
    device_id: str | None = None,
    hmac_key_block: str | None = None,
    generate_hmac_key: bool = False,
    rsa_key: PathLike | None = None,
    public_key_out: PathLike | None = None,
) -> ProvisionResult:
    """The running app writes its fleet OTA configuration to NVS (namespace espsec_ota):
    server, TLS trust (a ``ca`` bundle or one ``pin``\\ ned certificate, PEM or DER), the
    fleet's manifest public key, and how it decrypts pre-encrypted images (ECIES from the
    ``HMAC_UP`` key in ``hmac_key_block``, burned fresh with ``generate_hmac_key`` if
    empty; or the RSA-3072 private key ``rsa_key``). The manifest counter already there
    is kept. ``public_key_out`` receives the decryption public key (PEM).

    Every input file is checked before the device is powered on.
    """
    from espsec import _pem
    from espsec.device.ota_state import DecryptionScheme, OtaProvisioning, provision_ota
    from espsec.ota import TlsTrust, load_manifest_public_key

    if (ca is None) == (pin is None):
        raise UsageError("trust either a CA certificate or one pinned server certificate")
    if hmac_key_block and rsa_key:
        raise UsageError("ECIES (an HMAC_UP key block) and RSA-3072 decryption exclude each other")
    if generate_hmac_key and not hmac_key_block:
        raise UsageError("generating an HMAC_UP key needs its key block")
    if public_key_out is not None and not (hmac_key_block or rsa_key):
        raise UsageError("no public key to write: the device decrypts nothing (no key given)")
    tls_ca = None
    if ca is not None:
        tls_ca = read_bytes(ca, what="CA certificate")
        _pem.load_certificates(tls_ca, source=str(ca))
    tls_pin = None
    if pin is not None:
        with with_source(str(pin)):
            tls_pin = TlsTrust.pinned(read_bytes(pin, what="pinned certificate")).pinned_cert_pem
    manifest_pem = read_bytes(manifest_key, what="manifest public key")
    with with_source(str(manifest_key)):
        load_manifest_public_key(manifest_pem)
    rsa_pem = read_bytes(rsa_key, what="RSA key") if rsa_key else None
    scheme = DecryptionScheme.NONE
    if hmac_key_block:
        scheme = DecryptionScheme.ECIES_P256
    elif rsa_pem is not None:
        scheme = DecryptionScheme.RSA3072
    dev = open_device(folder)
    with dev:
        _, app = boot_app(dev)
        with with_source(str(rsa_key) if rsa_key else str(folder)):
            prov = OtaProvisioning(
                device_id=device_id or default_device_id(dev),
                server_url=server_url,
                manifest_key_pem=manifest_pem,
                tls_ca_pem=tls_ca,
                tls_pin_pem=tls_pin,
                decryption=scheme,
                hmac_key_id=hmac_key_block.upper() if hmac_key_block else None,
                rsa_key_pem=rsa_pem,
            )
        identity = provision_ota(app, prov, generate_key=generate_hmac_key)
    out = None
    if public_key_out is not None and identity.recipient_pem is not None:
        out = Path(public_key_out)
        write_output(out, identity.recipient_pem)
    return ProvisionResult(identity, out)


def revoke_key(folder: PathLike, slot: int) -> OtaOpResult:
    """The running app revokes ``SECURE_BOOT_DIGEST<slot>``
    (``esp_ota_revoke_secure_boot_public_key``)."""
    dev = open_device(folder)
    with dev:
        _, app = boot_app(dev)
        return app.revoke_secure_boot_public_key(slot)


def read_status(folder: PathLike) -> DeviceStatus:
    """The device's security posture: eFuses, JTAG, download mode, what flash holds."""
    from espsec.device.status import device_status

    return device_status(open_device(folder))


def jtag(
    folder: PathLike,
    *,
    token: bytes | None = None,
    key_block: str | None = None,
    disable: bool = False,
    permanent: bool = False,
) -> JtagStatus:
    """The JTAG state; with ``token``, re-enable soft-disabled JTAG (HMAC token under
    ``key_block``); with ``disable``, disable re-enabled JTAG (``permanent``: burn
    ``SOFT_DIS_JTAG`` odd)."""
    if token is not None and disable:
        raise UsageError("a token re-enables JTAG: it does not go with disabling it")
    if permanent and not disable:
        raise UsageError("permanent goes with disabling JTAG")
    dev = open_device(folder)
    with dev:
        if token is not None:
            return dev.jtag_enable(token, key_block)
        if disable:
            return dev.jtag_disable(permanent=permanent)
        return dev.jtag()
