"""``espsec device``: a virtual ESP32-S3 / ESP32-P4 in a folder, flashed and booted.

Each command is one power-on or one serial session with the device; the folder is
saved after it (``espsec.device.virtual_device`` documents its layout). ``boot`` and
``ota`` exit 0 when an app runs, 1 when the device refused or lost power (a fleet
``ota`` exits 1 when the update was refused, rolled back or failed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from espsec._io import read_bytes, write_atomic
from espsec.cli._common import INT, emit, json_option, source
from espsec.device import (
    AppRuntime,
    BootReport,
    DeviceStatus,
    FaultPlan,
    FlashWrite,
    ImageCheck,
    Outcome,
    StageReport,
    VirtualDevice,
    WriteKind,
    WriteMode,
    device_status,
)
from espsec.device.boot_select import AppPartition, OtaOpResult
from espsec.device.ota_client import OtaOutcome, OtaReport, run_ota
from espsec.device.ota_state import DecryptionScheme, OtaProvisioning, provision_ota
from espsec.device.sdkconfig import BootloaderConfig
from espsec.device.virtual_device import SUPPORTED_CHIPS, FlashedFile
from espsec.errors import UsageError
from espsec.flash_encryption import parse_flash_size
from espsec.image.partition_table import load_partition_table
from espsec.ota import TlsTrust, load_manifest_public_key

group = click.Group("device", help="A virtual chip: create, flash, boot, update, inspect.")

_dir = click.Path(file_okay=False, path_type=Path)
_file = click.Path(dir_okay=False, exists=True, path_type=Path)


def _config(sdkconfig: Path | None, options: Sequence[str]) -> BootloaderConfig | None:
    """``--sdkconfig FILE`` and ``--config NAME=VALUE`` as one bootloader configuration."""
    if sdkconfig is None and not options:
        return None
    lines = []
    if sdkconfig is not None:
        lines.append(read_bytes(sdkconfig, what="sdkconfig").decode("utf-8", "replace"))
    for option in options:
        name, sep, value = option.partition("=")
        if not sep or not name:
            raise UsageError(f"--config takes NAME=VALUE, got {option!r}")
        name = name.strip().removeprefix("CONFIG_")
        value = value.strip()
        lines.append(f"# CONFIG_{name} is not set" if value == "n" else f"CONFIG_{name}={value}")
    with source(str(sdkconfig) if sdkconfig else "--config"):
        return BootloaderConfig.parse("\n".join(lines))


_sdkconfig_options = [
    click.option(
        "--sdkconfig",
        type=_file,
        help="The bootloader's ESP-IDF sdkconfig (or sdkconfig.defaults).",
    ),
    click.option(
        "--config",
        "config_options",
        multiple=True,
        metavar="NAME=VALUE",
        help="A bootloader option (SECURE_BOOT=y); repeatable, added to --sdkconfig.",
    ),
]


def _with_sdkconfig(f: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(_sdkconfig_options):
        f = option(f)
    return f


def _open(path: Path) -> VirtualDevice:
    with source(str(path)):
        return VirtualDevice.open(path)


@group.command("create")
@click.option("--chip", type=click.Choice(SUPPORTED_CHIPS), required=True)
@click.option("--flash-size", default="4MB", show_default=True, help="4MB, 16MB, 0x200000 …")
@_with_sdkconfig
@click.argument("folder", type=_dir)
def create(
    chip: str,
    flash_size: str,
    sdkconfig: Path | None,
    config_options: tuple[str, ...],
    folder: Path,
) -> None:
    """Create a blank virtual chip (all eFuses 0, flash erased) in FOLDER."""
    config = _config(sdkconfig, config_options)
    dev = VirtualDevice.create(folder, chip, parse_flash_size(flash_size), config=config)
    click.echo(
        f"{dev.chip.display_name}, {dev.flash_size >> 20} MB flash, blank eFuses -> {folder}"
    )


@group.command("flash")
@click.argument("folder", type=_dir)
@click.option(
    "--build-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="ESP-IDF build folder: flash what flasher_args.json lists.",
)
@click.option(
    "--write",
    "writes",
    type=(INT, _file),
    multiple=True,
    metavar="OFFSET FILE",
    help="Write FILE at OFFSET; repeatable.",
)
@click.option(
    "--partition-table",
    type=_file,
    help="Partition table (CSV or binary) to write at the table offset.",
)
@click.option(
    "--encrypt",
    "mode",
    flag_value=WriteMode.ENCRYPT.value,
    help="Let the ROM encrypt with the eFuse key (esptool --encrypt).",
)
@click.option(
    "--pre-encrypted",
    "mode",
    flag_value=WriteMode.PRE_ENCRYPTED.value,
    help="The files are ciphertext already (espsecure encrypt-flash-data).",
)
@_with_sdkconfig
@json_option
def flash(
    folder: Path,
    build_dir: Path | None,
    writes: tuple[tuple[int, Path], ...],
    partition_table: Path | None,
    mode: str | None,
    sdkconfig: Path | None,
    config_options: tuple[str, ...],
    as_json: bool,
) -> None:
    """Write files to the device's flash over the ROM's serial protocol.

    The bootloader's options (--sdkconfig/--config, or the build's sdkconfig) are
    recorded with the bootloader, for the boots to come.
    """
    dev = _open(folder)
    config = _config(sdkconfig, config_options)
    write_mode = WriteMode(mode) if mode else WriteMode.PLAIN
    files: list[tuple[int, bytes, str]] = []
    for offset, path in writes:
        files.append((offset, read_bytes(path, what="flash file"), str(path)))
    if partition_table is not None:
        with source(str(partition_table)):
            table = load_partition_table(read_bytes(partition_table, what="partition table"))
        offset = (config or dev.config).partition_table_offset
        files.append((offset, table.to_bytes(), str(partition_table)))
    if build_dir is None and not files:
        raise UsageError("nothing to flash: give --build-dir, --write or --partition-table")
    with dev:
        done: tuple[FlashedFile, ...] = ()
        if build_dir is not None:
            done = dev.flash_build_dir(build_dir, mode=write_mode, config=config)
            config = None
        if files or config is not None:
            done += dev.write_files(files, mode=write_mode, config=config)
    report = {"device": str(folder), "written": [f.to_json() for f in done]}

    def render() -> None:
        for f in done:
            click.echo(f"0x{f.offset:06x}  {f.length:8d} bytes  {f.mode.value:13s}  {f.name}")
        if dev.has_config:
            click.echo("bootloader options recorded with the device")

    emit(report, as_json, render)


def _fault_plan(cut_after: int | None, cut_kind: str | None) -> FaultPlan | None:
    if cut_after is None:
        if cut_kind is not None:
            raise UsageError("--cut-kind needs --cut-after")
        return None
    return FaultPlan(cut_after, WriteKind(cut_kind) if cut_kind else None)


@group.command("boot")
@click.argument("folder", type=_dir)
@click.option(
    "--cut-after",
    type=click.IntRange(0),
    metavar="N",
    help="Cut power after the Nth flash or eFuse write.",
)
@click.option(
    "--cut-kind",
    type=click.Choice([k.value for k in WriteKind]),
    help="Count only flash or only eFuse writes for --cut-after.",
)
@click.option(
    "--mark-valid",
    "app_action",
    flag_value="valid",
    help="The app confirms itself (esp_ota_mark_app_valid_cancel_rollback).",
)
@click.option(
    "--mark-invalid",
    "app_action",
    flag_value="invalid",
    help="The app rejects itself and reboots (esp_ota_mark_app_invalid_rollback).",
)
@click.option("-v", "--verbose", is_flag=True, help="Show every check and signature block.")
@json_option
@click.pass_context
def boot(
    ctx: click.Context,
    folder: Path,
    cut_after: int | None,
    cut_kind: str | None,
    app_action: str | None,
    verbose: bool,
    as_json: bool,
) -> None:
    """Power the device on: a report stage by stage, and the outcome."""
    dev = _open(folder)
    plan = _fault_plan(cut_after, cut_kind)
    with dev:
        report = dev.boot(fault_plan=plan)
        reports = [report]
        results: list[OtaOpResult] = []
        if report.ok and app_action and dev.running is not None:
            if app_action == "valid":
                results.append(dev.running.mark_app_valid())
            else:
                result = dev.running.mark_app_invalid_rollback()
                results.append(result)
                if result.ok:
                    reports.append(dev.running.reboot())
    doc: dict[str, object] = report.to_json()
    if results:
        doc["app_calls"] = [_op_json(r) for r in results]
    if len(reports) > 1:
        doc["after_reboot"] = reports[1].to_json()

    def render() -> None:
        _render_boot(report, verbose)
        for result in results:
            _render_op(result)
        for again in reports[1:]:
            click.echo()
            click.echo("after the reboot:")
            _render_boot(again, verbose)

    emit(doc, as_json, render)
    if not reports[-1].ok:
        ctx.exit(1)


@group.command("ota")
@click.argument("folder", type=_dir)
@click.argument("image", type=_file, required=False)
@click.option(
    "--server",
    "server_url",
    help="Fleet update: check in with this https:// URL (default: the provisioned one).",
)
@click.option(
    "--self-test",
    type=click.Choice(["pass", "fail"]),
    default="pass",
    show_default=True,
    help="Fleet update: the new app's self-test verdict after the reboot.",
)
@click.option("--slot", help="IMAGE: target partition (ota_N); default: the next update slot.")
@click.option(
    "--confirm", is_flag=True, help="IMAGE: after the reboot, the new app marks itself valid."
)
@click.option("-v", "--verbose", is_flag=True, help="Show every check and signature block.")
@json_option
@click.pass_context
def ota_update(
    ctx: click.Context,
    folder: Path,
    image: Path | None,
    server_url: str | None,
    self_test: str,
    slot: str | None,
    confirm: bool,
    verbose: bool,
    as_json: bool,
) -> None:
    """Update over the air: from the fleet server, or with a local IMAGE; then reboot.

    Without IMAGE: one cycle of the device's fleet OTA client (esp_https_ota): check in
    over HTTPS, verify the signed manifest, check the image's app descriptor against the
    eFuse secure version before downloading the rest, stream it (decrypting a
    pre-encrypted image) into the passive slot, esp_ota_end (Secure Boot), switch,
    reboot, self-test, confirm or roll back, report. Needs `device provision-ota` first.

    With IMAGE: write it to the passive slot through the flash encryption engine,
    verify it (esp_ota_end), select it (esp_ota_set_boot_partition) and reboot.

    Exits 1 when the update is refused, rolled back or fails, or the new app does not run.
    """
    if image is None:
        if slot or confirm:
            raise UsageError("--slot and --confirm go with an IMAGE, not with a fleet update")
        _fleet_ota(ctx, folder, server_url, self_test == "pass", verbose, as_json)
        return
    if server_url:
        raise UsageError("give an IMAGE or --server, not both")
    data = read_bytes(image, what="app image")
    dev = _open(folder)
    with dev:
        first, app = _boot_app(ctx, dev, as_json, verbose)
        target = AppPartition.from_name(slot) if slot else None
        result = app.install(data, target)
        after = app.reboot() if result.ok else None
        confirmed = None
        if after is not None and after.ok and confirm and dev.running is not None:
            confirmed = dev.running.mark_app_valid()
    doc: dict[str, object] = {
        "update": _op_json(result),
        "boot": after.to_json() if after else None,
        "confirm": _op_json(confirmed) if confirmed else None,
    }

    def render() -> None:
        click.echo(f"running {_app_line(first)}")
        _render_op(result, what=f"update with {image.name}")
        if after is not None:
            click.echo()
            _render_boot(after, verbose)
        if confirmed is not None:
            _render_op(confirmed, what="esp_ota_mark_app_valid_cancel_rollback")

    emit(doc, as_json, render)
    if not result.ok or after is None or not after.ok:
        ctx.exit(1)


def _fleet_ota(
    ctx: click.Context,
    folder: Path,
    server_url: str | None,
    self_test: bool,
    verbose: bool,
    as_json: bool,
) -> None:
    dev = _open(folder)
    with dev:
        first, _ = _boot_app(ctx, dev, as_json, verbose)
        report = run_ota(dev, self_test=self_test, server_url=server_url)
    emit(report.to_json(), as_json, lambda: _render_fleet_ota(first, report))
    if not report.ok:
        ctx.exit(1)


@group.command("provision-ota")
@click.argument("folder", type=_dir)
@click.option("--server", "server_url", required=True, help="https://host:port of the fleet.")
@click.option("--ca", type=_file, help="CA certificate the server's certificate chains to (PEM).")
@click.option("--pin", type=_file, help="Trust exactly this server certificate (PEM or DER).")
@click.option(
    "--manifest-key",
    type=_file,
    required=True,
    help="The fleet's manifest public key (manifest-key.pub.pem).",
)
@click.option("--device-id", help="The device's id in the fleet [default: chip and MAC eFuse].")
@click.option(
    "--hmac-key-block",
    help="Pre-encrypted images (ECIES): derive the key from this HMAC_UP eFuse key block.",
)
@click.option(
    "--generate-hmac-key",
    is_flag=True,
    help="With --hmac-key-block: if the block is empty, burn a random HMAC_UP key there "
    "from the device (the key never leaves the chip).",
)
@click.option(
    "--rsa-key",
    type=_file,
    help="Pre-encrypted images (RSA-3072): keep this private key in NVS to decrypt with.",
)
@click.option(
    "--public-key-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the device's decryption public key (PEM): encrypt releases to it.",
)
@json_option
@click.pass_context
def provision_ota_cmd(
    ctx: click.Context,
    folder: Path,
    server_url: str,
    ca: Path | None,
    pin: Path | None,
    manifest_key: Path,
    device_id: str | None,
    hmac_key_block: str | None,
    generate_hmac_key: bool,
    rsa_key: Path | None,
    public_key_out: Path | None,
    as_json: bool,
) -> None:
    """Provision the device's fleet OTA client: server, trust anchors, decryption key.

    The running app writes them to its NVS partition (namespace espsec_ota); the
    manifest counter already there is kept. Plain http:// is refused.
    """
    if (ca is None) == (pin is None):
        raise UsageError("give exactly one of --ca or --pin")
    if hmac_key_block and rsa_key:
        raise UsageError("--hmac-key-block (ECIES) and --rsa-key (RSA-3072) exclude each other")
    if generate_hmac_key and not hmac_key_block:
        raise UsageError("--generate-hmac-key needs --hmac-key-block")
    tls_ca = read_bytes(ca, what="CA certificate") if ca else None
    tls_pin = None
    if pin is not None:
        with source(str(pin)):
            tls_pin = TlsTrust.pinned(read_bytes(pin, what="pinned certificate")).pinned_cert_pem
    with source(str(manifest_key)):
        manifest_pem = read_bytes(manifest_key, what="manifest public key")
        load_manifest_public_key(manifest_pem)
    rsa_pem = read_bytes(rsa_key, what="RSA key") if rsa_key else None
    dev = _open(folder)
    with dev:
        _, app = _boot_app(ctx, dev, as_json)
        scheme = DecryptionScheme.NONE
        if hmac_key_block:
            scheme = DecryptionScheme.ECIES_P256
        elif rsa_pem is not None:
            scheme = DecryptionScheme.RSA3072
        with source(str(rsa_key) if rsa_key else str(folder)):
            prov = OtaProvisioning(
                device_id=device_id or _default_device_id(dev),
                server_url=server_url,
                manifest_key_pem=manifest_pem,
                tls_ca_pem=tls_ca,
                tls_pin_pem=tls_pin,
                decryption=scheme,
                hmac_key_id=hmac_key_block.upper() if hmac_key_block else None,
                rsa_key_pem=rsa_pem,
            )
        identity = provision_ota(app, prov, generate_key=generate_hmac_key)
    if public_key_out is not None:
        if identity.recipient_pem is None:
            raise UsageError("--public-key-out: the device decrypts nothing (no key given)")
        write_atomic(public_key_out, identity.recipient_pem)
    doc = identity.to_json()
    doc["public_key_out"] = None if public_key_out is None else str(public_key_out)

    def render() -> None:
        p = identity.provisioning
        click.echo(
            f"{p.device_id}: fleet {p.server_url} ({'CA' if tls_ca else 'pinned certificate'})"
        )
        if identity.generated_hmac_key:
            click.echo(f"  burned a fresh HMAC_UP key into {p.hmac_key_id} (read-protected)")
        if identity.recipient_id is not None:
            how = f"ECIES from {p.hmac_key_id}" if p.hmac_key_id else "RSA-3072"
            click.echo(f"  pre-encrypted images: {how}, recipient {identity.recipient_id[:16]}…")
            if public_key_out is not None:
                click.echo(f"  public key written to {public_key_out}")
        else:
            click.echo("  plain signed images only")
        click.echo("  written to NVS namespace espsec_ota")

    emit(doc, as_json, render)


def _default_device_id(dev: VirtualDevice) -> str:
    mac = dev.efuses.get_int("MAC")
    if not mac:
        raise UsageError("the chip's MAC eFuse is blank: give --device-id")
    return f"{dev.chip.name}-{mac:012x}"


@group.command("revoke-key")
@click.argument("folder", type=_dir)
@click.argument("slot", type=click.IntRange(0, 2))
@json_option
@click.pass_context
def revoke_key(ctx: click.Context, folder: Path, slot: int, as_json: bool) -> None:
    """The running app revokes SECURE_BOOT_DIGEST<SLOT> (esp_ota_revoke_secure_boot_public_key)."""
    dev = _open(folder)
    with dev:
        _, app = _boot_app(ctx, dev, as_json)
        result = app.revoke_secure_boot_public_key(slot)
    emit(_op_json(result), as_json, lambda: _render_op(result, what=f"revoke key slot {slot}"))
    if not result.ok:
        ctx.exit(1)


@group.command("status")
@click.argument("folder", type=_dir)
@json_option
def status(folder: Path, as_json: bool) -> None:
    """The device's security posture: eFuses, JTAG, download mode, what flash holds."""
    dev = _open(folder)
    report = device_status(dev)
    emit(report.to_json(), as_json, lambda: _render_status(report))


@group.command("jtag")
@click.argument("folder", type=_dir)
@click.option("--token", help="HMAC token (64 hex digits) to re-enable soft-disabled JTAG.")
@click.option("--key-block", help="The HMAC_DOWN_JTAG/HMAC_DOWN_ALL key block to use.")
@click.option("--disable", is_flag=True, help="Disable JTAG re-enabled by a token.")
@click.option("--permanent", is_flag=True, help="With --disable: burn SOFT_DIS_JTAG odd.")
@json_option
def jtag(
    folder: Path,
    token: str | None,
    key_block: str | None,
    disable: bool,
    permanent: bool,
    as_json: bool,
) -> None:
    """Show the JTAG state; re-enable it with the HMAC token, or disable it."""
    if token and disable:
        raise UsageError("--token and --disable exclude each other")
    if permanent and not disable:
        raise UsageError("--permanent goes with --disable")
    dev = _open(folder)
    with dev:
        if token is not None:
            try:
                raw = bytes.fromhex(token)
            except ValueError:
                raise UsageError("--token takes 64 hex digits") from None
            state = dev.jtag_enable(raw, key_block)
        elif disable:
            state = dev.jtag_disable(permanent=permanent)
        else:
            state = dev.jtag()
    emit(state.to_json(), as_json, lambda: click.echo(state.describe()))


@group.command("sign")
@click.argument("folder", type=_dir)
@click.option("--data", "data_file", type=_file, required=True, help="The file to sign.")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
    help="Signature to write (RSA PKCS#1 v1.5 / SHA-256, or DER ECDSA).",
)  # fmt: skip
@json_option
def sign(folder: Path, data_file: Path, output: Path, as_json: bool) -> None:
    """Sign a file with the device's identity key (DS or ECDSA peripheral)."""
    from espsec.cli.device_identity import sign_command

    sign_command(folder, data_file, output, as_json)


@group.command("provision-identity")
@click.argument("folder", type=_dir)
@click.option("--device-id", required=True, help="The id the certificate names.")
@click.option("--ca", type=_file, required=True, help="Device CA certificate (PEM).")
@click.option("--ca-key", type=_file, required=True, help="Device CA private key (PEM).")
@click.option("--key-block", type=click.IntRange(0, 5), help="eFuse key block (default: free).")
@json_option
def provision_identity(
    folder: Path, device_id: str, ca: Path, ca_key: Path, key_block: int | None, as_json: bool
) -> None:
    """Factory step: burn an identity key (DS or ECDSA), write esp_secure_cert."""
    from espsec.cli.device_identity import provision_identity_command

    provision_identity_command(folder, device_id, ca, ca_key, key_block, as_json)


# -- rendering ------------------------------------------------------------------------


def _op_json(result: OtaOpResult) -> dict[str, object]:
    return {
        "ok": result.ok,
        "error": None if result.error is None else result.error.value,
        "reasons": list(result.reasons),
        "actions": [a.describe() for a in result.actions],
    }


def _render_op(result: OtaOpResult, *, what: str = "") -> None:
    label = f"{what}: " if what else ""
    if result.ok:
        click.echo(f"{label}ok" + (f" ({'; '.join(result.reasons)})" if result.reasons else ""))
    else:
        error = result.error.value if result.error else "failed"
        click.echo(
            click.style(f"{label}refused: {error}", fg="red") + f" ({'; '.join(result.reasons)})"
        )


def _render_fleet_ota(first: BootReport, report: OtaReport) -> None:
    click.echo(f"running {_app_line(first)}")
    if report.resumed:
        click.echo("finishing the update an earlier cycle switched to")
    for event in report.events:
        mark = click.style("ok", fg="green") if event.ok else click.style("FAILED", fg="red")
        click.echo(f"  [{event.step.value}] {mark}: {event.detail}")
    running = f"{report.partition} {report.version} ({report.ota_state or 'no otadata state'})"
    tail = f"running {running}, eFuse secure version {report.efuse_secure_version}"
    if report.outcome is OtaOutcome.UPDATED:
        click.echo(
            click.style(f"updated to {report.target_version}: {tail}", fg="green", bold=True)
        )
    elif report.outcome is OtaOutcome.NO_UPDATE:
        click.echo(click.style(f"no update: {report.reason}; {tail}", bold=True))
    else:
        where = f" at {report.step.value}" if report.step else ""
        click.echo(
            click.style(f"{report.outcome.value}{where}: {report.reason}", fg="red", bold=True)
        )
        click.echo(tail)


def _boot_app(
    ctx: click.Context, dev: VirtualDevice, as_json: bool, verbose: bool = False
) -> tuple[BootReport, AppRuntime]:
    """Power on for a command the running app carries out; exit 1 with the report if no
    app runs."""
    report = dev.boot()
    if not report.ok or dev.running is None:
        emit(report.to_json(), as_json, lambda: _render_boot(report, verbose))
        ctx.exit(1)
    return report, dev.running


def _app_line(report: BootReport) -> str:
    app = report.app
    if app is None:
        return "no app"
    parts = [f"{app.partition} {app.version or '?'}"]
    if app.secure_version is not None:
        parts.append(f"secure_version {app.secure_version}")
    if app.ota_state:
        parts.append(app.ota_state)
    if app.efuse_slot is not None:
        parts.append(f"verified with SECURE_BOOT_DIGEST{app.efuse_slot}")
    return ", ".join(parts)


def _render_image(image: ImageCheck, verbose: bool) -> None:
    read = "decrypted" if image.decrypted else "plain"
    status = click.style("ok", fg="green") if image.ok else click.style("REFUSED", fg="red")
    version = f" {image.version}" if image.version else ""
    click.echo(f"    image {image.what}{version} @0x{image.offset:x} ({read} read): {status}")
    for check in image.checks:
        if verbose or not check.ok or check.name == "signature":
            mark = "+" if check.ok else "x"
            click.echo(f"      {mark} {check.name}" + (f": {check.detail}" if check.detail else ""))
    if image.signature is not None and (verbose or not image.ok):
        click.echo(f"      trusted: {image.trusted}")
        for block in image.signature.blocks:
            if block.verdict.value == "empty":
                continue
            slot = f", SECURE_BOOT_DIGEST{block.slot}" if block.slot is not None else ""
            click.echo(f"      block {block.index}: {block.verdict.value}{slot}")


def _render_stage(stage: StageReport, verbose: bool) -> None:
    status = click.style("ok", fg="green") if stage.ok else click.style("FAILED", fg="red")
    click.echo(f"  [{stage.stage.value}] {status}")
    for event in stage.events():
        if isinstance(event, str):
            if event != stage.error:
                click.echo(f"    {event}")
        elif isinstance(event, ImageCheck):
            _render_image(event, verbose)
        elif isinstance(event, FlashWrite):
            done = "" if event.completed else f" -- only {event.done} of {event.operations} made"
            enc = ", encrypted" if event.encrypted else ""
            click.echo(
                f"    flash: {event.what} (0x{event.offset:x}+0x{event.length:x}{enc}){done}"
            )
        else:
            done = "" if event.completed else f" -- only {event.programmed} of {len(event.blocks)}"
            click.echo(f"    eFuse burn [{event.reason}] {', '.join(event.blocks)}{done}")
            for op in event.operations:
                click.echo(f"      {op}")
    if stage.error:
        click.echo(click.style(f"    {stage.error}", fg="red"))


def _render_boot(report: BootReport, verbose: bool) -> None:
    for n, one in enumerate(report.passes, start=1):
        click.echo(f"pass {n} ({one.ended})")
        for stage in one.stages:
            _render_stage(stage, verbose)
    if report.outcome is Outcome.RUNNING:
        click.echo(click.style(f"running {_app_line(report)}", fg="green", bold=True))
    elif report.outcome is Outcome.REFUSED:
        click.echo(click.style(f"refused: {report.refusal}", fg="red", bold=True))
    else:
        cut = report.power_cut
        assert cut is not None
        click.echo(click.style(f"power lost after {cut.after_writes} writes", fg="red", bold=True))
        click.echo(f"  interrupted: {cut.interrupted}")
        click.echo(f"  during: {cut.during}")
        for line in cut.state:
            click.echo(f"  {line}")
        click.echo(f"  next power-on: {cut.next_boot}")
    burned = report.efuse_burns
    if burned:
        click.echo(f"eFuse batches burned by this boot: {len(burned)}")


def _render_status(status: DeviceStatus) -> None:
    s = status.security
    rev = f"v{status.chip_revision // 100}.{status.chip_revision % 100}"
    click.echo(f"{s.chip} {rev}, {status.flash_size >> 20} MB flash: {status.posture}")
    for finding in status.findings:
        click.echo(f"  - {finding}")
    click.echo(
        f"Secure Boot: {'on' if s.secure_boot_enabled else 'off'}"
        + (", aggressive revocation" if s.aggressive_revoke else "")
    )
    for slot in s.digest_slots:
        state = "revoked" if slot.revoked else ("in use" if slot.block else "empty")
        digest = f" {slot.digest[:16]}…" if slot.digest else ""
        where = f" in {slot.block}" if slot.block else ""
        click.echo(f"  SECURE_BOOT_DIGEST{slot.index}: {state}{where}{digest}")
    click.echo(
        f"Flash encryption: {s.flash_encryption_mode} "
        f"(SPI_BOOT_CRYPT_CNT = 0b{s.flash_crypt_cnt:03b}, key {s.flash_encryption_key or 'none'})"
    )
    click.echo(f"ROM download mode: {s.download_mode}")
    click.echo(status.jtag.describe())
    click.echo(f"Anti-rollback: eFuse secure version {s.secure_version}")
    click.echo(f"Bootloader: {status.bootloader}")
    for app in status.apps:
        state = f" [{app.ota_state}]" if app.ota_state else ""
        what = f"{app.version} (secure_version {app.secure_version})" if app.ok else app.reason
        click.echo(f"  {app.partition} @0x{app.offset:x}{state}: {what}")
    if status.config:
        click.echo(
            "Bootloader options: " + ", ".join(o.removeprefix("CONFIG_") for o in status.config)
        )
