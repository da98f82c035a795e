"""``espsec device``: a virtual ESP32-S3 / ESP32-P4 in a folder, flashed and booted.

Each command is one power-on or one serial session with the device; the folder is
saved after it (``espsec.device.virtual_device`` documents its layout). ``boot`` and
``ota`` exit 0 when an app runs, 1 when the device refused or lost power (a fleet
``ota`` exits 1 when the update was refused, rolled back or failed); anything the app
reports as refused exits 1. The work is done by :mod:`espsec.device.workflow`; this
module handles options and renders the results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from espsec.chips import EFUSE_MODEL_CHIPS, revision_name
from espsec.cli._common import (
    CHIP_PORT,
    INPUT,
    INT,
    URL,
    chip_option,
    command_group,
    emit,
    json_option,
    output_option,
    revision_option,
    source,
    style,
)
from espsec.errors import FormatError, UsageError
from espsec.flash import FaultPlan, WriteKind

if TYPE_CHECKING:  # the commands import the device code they use: --help loads none of it
    from espsec.device import BootReport, DeviceStatus, ImageCheck, StageReport
    from espsec.device.boot_select import OtaOpResult
    from espsec.device.ota_client import OtaReport
    from espsec.device.workflow import NoAppRunning
    from espsec.sdkconfig import BootloaderConfig

group = command_group("device", "A virtual chip: create, flash, boot, update, inspect.")

_dir = click.Path(file_okay=False, path_type=Path)


def _folder(required: bool = True) -> Callable[[Any], Any]:
    """The positional ``DIR``: the virtual device folder the command acts on."""
    return click.argument("folder", metavar="DIR", type=_dir, required=required)


def _config(sdkconfig: Path | None, options: Sequence[str]) -> BootloaderConfig | None:
    """``--sdkconfig FILE`` and ``--config NAME=VALUE`` as one bootloader configuration."""
    from espsec.device import workflow

    with source("--config"):
        return workflow.bootloader_config(sdkconfig, options)


_sdkconfig_options = [
    click.option(
        "--sdkconfig",
        type=INPUT,
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


def _no_app(ctx: click.Context, exc: NoAppRunning, as_json: bool, verbose: bool = False) -> None:
    """The boot that started no app, reported as ``boot`` reports it; exit 1."""
    emit(exc.report.to_json(), as_json, lambda: _render_boot(exc.report, verbose))
    ctx.exit(1)


@group.command("create")
@chip_option(chips=EFUSE_MODEL_CHIPS)
@click.option(
    "--flash-size", default="4MB", show_default=True, help="4MB, 16MB, 0x200000 … (up to 128MB)."
)
@revision_option(
    "Chip revision (v3.1); its eFuse layout follows (ESP32-P4 v3.0+: 5-bit key purposes, "
    "ECDSA-P384 Secure Boot) [default: the newest the chip data knows]."
)
@_with_sdkconfig
@json_option
@_folder()
def create(
    chip: str,
    flash_size: str,
    revision: int | None,
    sdkconfig: Path | None,
    config_options: tuple[str, ...],
    as_json: bool,
    folder: Path,
) -> None:
    """Create a blank virtual chip (eFuses 0 but the wafer revision, flash erased) in DIR."""
    from espsec.device import workflow

    config = _config(sdkconfig, config_options)
    dev = workflow.create_device(folder, chip, flash_size, config=config, revision=revision)
    rev = revision_name(dev.efuses.revision)
    report = {
        "device": str(folder),
        "chip": dev.chip.name,
        "revision": rev,
        "flash_size": dev.flash_size,
    }
    emit(
        report,
        as_json,
        lambda: click.echo(
            f"{dev.chip.display_name} {rev}, {dev.flash_size >> 20} MB flash, "
            f"blank eFuses -> {folder}"
        ),
    )


@group.command("flash")
@_folder(required=False)
@click.option(
    "--port",
    type=CHIP_PORT,
    help="Instead of DIR: a chip in download mode (socket://HOST:PORT or a serial port).",
)
@click.option(
    "--build-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="ESP-IDF build folder: flash what flasher_args.json lists.",
)
@click.option(
    "--write",
    "writes",
    type=(INT, INPUT),
    multiple=True,
    metavar="OFFSET FILE",
    help="Write FILE at OFFSET; repeatable.",
)
@click.option(
    "--partition-table",
    type=INPUT,
    help="Partition table (CSV or binary) to write at the table offset.",
)
@click.option(
    "--encrypt", is_flag=True, help="Let the ROM encrypt with the eFuse key (esptool --encrypt)."
)
@click.option(
    "--pre-encrypted",
    is_flag=True,
    help="The files are ciphertext already (espsecure encrypt-flash-data).",
)
@_with_sdkconfig
@json_option
def flash(
    folder: Path | None,
    port: str | None,
    build_dir: Path | None,
    writes: tuple[tuple[int, Path], ...],
    partition_table: Path | None,
    encrypt: bool,
    pre_encrypted: bool,
    sdkconfig: Path | None,
    config_options: tuple[str, ...],
    as_json: bool,
) -> None:
    """Write files to the device's flash over the ROM's serial protocol.

    The write goes through the chip's download mode as esptool's (DIR is served on a
    loopback port for it), so its eFuses decide what it accepts. The bootloader's
    options (--sdkconfig/--config, or the build's sdkconfig) are recorded with the
    bootloader, for the boots to come.
    """
    from espsec.device import WriteMode, workflow

    if encrypt and pre_encrypted:
        raise UsageError("--encrypt and --pre-encrypted exclude each other")
    if (folder is None) == (port is None):
        raise UsageError("give a device folder DIR or --port PORT (one of them)")
    if build_dir is None and not writes and partition_table is None:
        raise UsageError("nothing to flash: give --build-dir, --write or --partition-table")
    mode = WriteMode.PLAIN
    if encrypt:
        mode = WriteMode.ENCRYPT
    elif pre_encrypted:
        mode = WriteMode.PRE_ENCRYPTED
    result = workflow.flash_device(
        folder,
        build_dir=build_dir,
        writes=writes,
        partition_table=partition_table,
        mode=mode,
        config=_config(sdkconfig, config_options),
        port=port,
    )

    def render() -> None:
        for f in result.written:
            click.echo(f"0x{f.offset:06x}  {f.length:8d} bytes  {f.mode.value:13s}  {f.name}")
        if result.config_recorded:
            click.echo("bootloader options recorded with the device")

    emit(result.to_json(), as_json, render)


def _fault_plan(cut_after: int | None, cut_kind: str | None) -> FaultPlan | None:
    if cut_after is None:
        if cut_kind is not None:
            raise UsageError("--cut-kind needs --cut-after")
        return None
    return FaultPlan(cut_after, WriteKind(cut_kind) if cut_kind else None)


@group.command("boot")
@_folder()
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
    is_flag=True,
    help="The app confirms itself (esp_ota_mark_app_valid_cancel_rollback).",
)
@click.option(
    "--mark-invalid",
    is_flag=True,
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
    mark_valid: bool,
    mark_invalid: bool,
    verbose: bool,
    as_json: bool,
) -> None:
    """Power the device on: a report stage by stage, and the outcome.

    Exits 1 when no app runs, or when the app's --mark-valid/--mark-invalid is refused.
    """
    from espsec.device import workflow
    from espsec.device.workflow import AppAction

    if mark_valid and mark_invalid:
        raise UsageError("--mark-valid and --mark-invalid exclude each other")
    app_action = None
    if mark_valid:
        app_action = AppAction.MARK_VALID
    elif mark_invalid:
        app_action = AppAction.MARK_INVALID
    result = workflow.boot_device(
        folder, fault_plan=_fault_plan(cut_after, cut_kind), app_action=app_action
    )

    def render() -> None:
        _render_boot(result.report, verbose)
        for call in result.app_calls:
            _render_op(call)
        if result.after_reboot is not None:
            click.echo()
            click.echo("after the reboot:")
            _render_boot(result.after_reboot, verbose)

    emit(result.to_json(), as_json, render)
    if not result.ok or any(not call.ok for call in result.app_calls):
        ctx.exit(1)


@group.command("ota")
@_folder()
@click.argument("image", type=INPUT, required=False)
@click.option(
    "--server",
    "server_url",
    type=URL,
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
    from espsec.device import workflow
    from espsec.device.workflow import NoAppRunning

    if image is None:
        if slot or confirm:
            raise UsageError("--slot and --confirm go with an IMAGE, not with a fleet update")
        try:
            update = workflow.fleet_update(
                folder, server_url=server_url, self_test=self_test == "pass"
            )
        except NoAppRunning as exc:
            _no_app(ctx, exc, as_json, verbose)
            return
        emit(update.to_json(), as_json, lambda: _render_fleet_ota(update.running, update.report))
        if not update.ok:
            ctx.exit(1)
        return
    if server_url:
        raise UsageError("give an IMAGE or --server, not both")
    try:
        result = workflow.install_image(folder, image, slot=slot, confirm=confirm)
    except NoAppRunning as exc:
        _no_app(ctx, exc, as_json, verbose)
        return

    def render() -> None:
        click.echo(f"running {_app_line(result.running)}")
        _render_op(result.update, what=f"update with {image.name}")
        if result.after is not None:
            click.echo()
            _render_boot(result.after, verbose)
        if result.confirm is not None:
            _render_op(result.confirm, what="esp_ota_mark_app_valid_cancel_rollback")

    emit(result.to_json(), as_json, render)
    if not result.ok:
        ctx.exit(1)


@group.command("provision-ota")
@_folder()
@click.option(
    "--server", "server_url", type=URL, required=True, help="https://host:port of the fleet."
)
@click.option("--ca", type=INPUT, help="CA certificate the server's certificate chains to (PEM).")
@click.option("--pin", type=INPUT, help="Trust exactly this server certificate (PEM or DER).")
@click.option(
    "--manifest-key",
    type=INPUT,
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
    type=INPUT,
    help="Pre-encrypted images (RSA-3072): keep this private key in NVS to decrypt with.",
)
@output_option(
    "--pub-key-output",
    "pub_key_output",
    required=False,
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
    pub_key_output: Path | None,
    as_json: bool,
) -> None:
    """Provision the device's fleet OTA client: server, trust anchors, decryption key.

    The running app writes them to its NVS partition (namespace espsec_ota); the
    manifest counter already there is kept. Plain http:// is refused.
    """
    from espsec.device import workflow
    from espsec.device.workflow import NoAppRunning

    if (ca is None) == (pin is None):
        raise UsageError("give exactly one of --ca or --pin")
    if hmac_key_block and rsa_key:
        raise UsageError("--hmac-key-block (ECIES) and --rsa-key (RSA-3072) exclude each other")
    if generate_hmac_key and not hmac_key_block:
        raise UsageError("--generate-hmac-key needs --hmac-key-block")
    if pub_key_output is not None and not (hmac_key_block or rsa_key):
        raise UsageError("--pub-key-output: the device decrypts nothing (no key given)")
    try:
        result = workflow.provision_device_ota(
            folder,
            server_url=server_url,
            manifest_key=manifest_key,
            ca=ca,
            pin=pin,
            device_id=device_id,
            hmac_key_block=hmac_key_block,
            generate_hmac_key=generate_hmac_key,
            rsa_key=rsa_key,
            public_key_out=pub_key_output,
        )
    except NoAppRunning as exc:
        _no_app(ctx, exc, as_json)
        return

    def render() -> None:
        identity = result.identity
        p = identity.provisioning
        trust = "CA" if p.tls_ca_pem is not None else "pinned certificate"
        click.echo(f"{p.device_id}: fleet {p.server_url} ({trust})")
        if identity.generated_hmac_key:
            click.echo(f"  burned a fresh HMAC_UP key into {p.hmac_key_id} (read-protected)")
        if identity.recipient_id is not None:
            how = f"ECIES from {p.hmac_key_id}" if p.hmac_key_id else "RSA-3072"
            click.echo(f"  pre-encrypted images: {how}, recipient {identity.recipient_id[:16]}…")
            if result.public_key_out is not None:
                click.echo(f"  public key written to {result.public_key_out}")
        else:
            click.echo("  plain signed images only")
        click.echo("  written to NVS namespace espsec_ota")

    emit(result.to_json(), as_json, render)


@group.command("revoke-key")
@_folder()
@click.argument("slot", type=click.IntRange(0, 2))
@json_option
@click.pass_context
def revoke_key(ctx: click.Context, folder: Path, slot: int, as_json: bool) -> None:
    """The running app revokes SECURE_BOOT_DIGEST<SLOT> (esp_ota_revoke_secure_boot_public_key)."""
    from espsec.device import workflow
    from espsec.device.workflow import NoAppRunning, op_json

    try:
        result = workflow.revoke_key(folder, slot)
    except NoAppRunning as exc:
        _no_app(ctx, exc, as_json)
        return
    emit(op_json(result), as_json, lambda: _render_op(result, what=f"revoke key slot {slot}"))
    if not result.ok:
        ctx.exit(1)


@group.command("status")
@_folder()
@json_option
def status(folder: Path, as_json: bool) -> None:
    """The device's security posture: eFuses, JTAG, download mode, what flash holds."""
    from espsec.device import workflow

    report = workflow.read_status(folder)
    emit(report.to_json(), as_json, lambda: _render_status(report))


@group.command("jtag")
@_folder()
@click.option(
    "--token-file",
    type=INPUT,
    help="File with the HMAC token that re-enables soft-disabled JTAG (32 bytes, or 64 hex "
    "digits).",
)
@click.option("--key-block", help="The HMAC_DOWN_JTAG/HMAC_DOWN_ALL key block (BLOCK_KEYn).")
@click.option("--disable", is_flag=True, help="Disable JTAG re-enabled by a token.")
@click.option("--permanent", is_flag=True, help="With --disable: burn SOFT_DIS_JTAG odd.")
@json_option
def jtag(
    folder: Path,
    token_file: Path | None,
    key_block: str | None,
    disable: bool,
    permanent: bool,
    as_json: bool,
) -> None:
    """Show the JTAG state; re-enable it with the HMAC token, or disable it."""
    from espsec.device import workflow

    if token_file is not None and disable:
        raise UsageError("--token-file and --disable exclude each other")
    if permanent and not disable:
        raise UsageError("--permanent goes with --disable")
    raw = None if token_file is None else _jtag_token(token_file)
    state = workflow.jtag(
        folder, token=raw, key_block=key_block, disable=disable, permanent=permanent
    )
    emit(state.to_json(), as_json, lambda: click.echo(state.describe()))


def _jtag_token(path: Path) -> bytes:
    """The 32-byte JTAG token in ``path``: raw, or 64 hex digits."""
    from espsec._io import read_bytes

    raw = read_bytes(path, what="token file")
    if len(raw) == 32:
        return raw
    try:
        token = bytes.fromhex(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        token = b""
    if len(token) != 32:
        raise FormatError(
            "not a JTAG token",
            expected="32 bytes or 64 hex digits",
            found=f"{len(raw)} bytes",
            source=str(path),
        )
    return token


@group.command("sign")
@_folder()
@click.argument("data_file", metavar="DATA", type=INPUT)
@output_option(help="Signature to write (RSA PKCS#1 v1.5 / SHA-256, or DER ECDSA).")
@json_option
def sign(folder: Path, data_file: Path, output: Path, as_json: bool) -> None:
    """Sign the file DATA with the device's identity key (DS or ECDSA peripheral)."""
    from espsec.cli.device_identity import sign_command

    sign_command(folder, data_file, output, as_json)


@group.command("provision-identity")
@_folder()
@click.option("--device-id", required=True, help="The id the certificate names.")
@click.option("--ca", type=INPUT, required=True, help="Device CA certificate (PEM).")
@click.option("--ca-key", type=INPUT, required=True, help="Device CA private key (PEM).")
@click.option(
    "--key-block",
    type=click.Choice([f"BLOCK_KEY{n}" for n in range(6)], case_sensitive=False),
    help="eFuse key block for the identity key (default: a free one; a P-384 key's low "
    "half goes to the next free block).",
)
@click.option(
    "--curve",
    type=click.Choice(["P-256", "P-384", "P-192"], case_sensitive=False),
    default="P-256",
    show_default=True,
    help="Curve of an ECDSA-peripheral key (P-384: ESP32-P4 v3.0+).",
)
@json_option
def provision_identity(
    folder: Path,
    device_id: str,
    ca: Path,
    ca_key: Path,
    key_block: str | None,
    curve: str,
    as_json: bool,
) -> None:
    """Factory step: burn an identity key (DS or ECDSA), write esp_secure_cert."""
    from espsec.cli.device_identity import provision_identity_command

    key_id = None if key_block is None else int(key_block[-1])
    provision_identity_command(folder, device_id, ca, ca_key, key_id, as_json, curve=curve)


# -- rendering ------------------------------------------------------------------------


def _render_op(result: OtaOpResult, *, what: str = "") -> None:
    label = f"{what}: " if what else ""
    if result.ok:
        click.echo(f"{label}ok" + (f" ({'; '.join(result.reasons)})" if result.reasons else ""))
    else:
        error = result.error.value if result.error else "failed"
        click.echo(style(f"{label}refused: {error}", fg="red") + f" ({'; '.join(result.reasons)})")


def _render_fleet_ota(first: BootReport, report: OtaReport) -> None:
    from espsec.device.ota_client import OtaOutcome

    click.echo(f"running {_app_line(first)}")
    if report.resumed:
        click.echo("finishing the update an earlier cycle switched to")
    for event in report.events:
        mark = style("ok", fg="green") if event.ok else style("FAILED", fg="red")
        click.echo(f"  [{event.step.value}] {mark}: {event.detail}")
    running = f"{report.partition} {report.version} ({report.ota_state or 'no otadata state'})"
    tail = f"running {running}, eFuse secure version {report.efuse_secure_version}"
    if report.outcome is OtaOutcome.UPDATED:
        click.echo(style(f"updated to {report.target_version}: {tail}", fg="green", bold=True))
    elif report.outcome is OtaOutcome.NO_UPDATE:
        click.echo(style(f"no update: {report.reason}; {tail}", bold=True))
    else:
        where = f" at {report.step.value}" if report.step else ""
        click.echo(style(f"{report.outcome.value}{where}: {report.reason}", fg="red", bold=True))
        click.echo(tail)


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
    status = style("ok", fg="green") if image.ok else style("REFUSED", fg="red")
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
    from espsec.device import FlashWrite, ImageCheck

    status = style("ok", fg="green") if stage.ok else style("FAILED", fg="red")
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
        click.echo(style(f"    {stage.error}", fg="red"))


def _render_boot(report: BootReport, verbose: bool) -> None:
    from espsec.device import Outcome

    for n, one in enumerate(report.passes, start=1):
        click.echo(f"pass {n} ({one.ended})")
        for stage in one.stages:
            _render_stage(stage, verbose)
    if report.outcome is Outcome.RUNNING:
        click.echo(style(f"running {_app_line(report)}", fg="green", bold=True))
    elif report.outcome is Outcome.REFUSED:
        click.echo(style(f"refused: {report.refusal}", fg="red", bold=True))
    else:
        cut = report.power_cut
        assert cut is not None
        click.echo(style(f"power lost after {cut.after_writes} writes", fg="red", bold=True))
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
    for policy in status.download:
        click.echo(f"  {policy.interface.value}: {policy.mode} ({policy.reason})")
    click.echo(status.jtag.describe())
    if status.memory_protection is not None:
        click.echo(f"Memory protection: {status.memory_protection.describe()}")
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
