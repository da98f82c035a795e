"""``espsec efuse``: plan, rehearse and burn eFuses on a virtual eFuse file.

Every burn command stages the whole burn first (espefuse's one-time-programmable rules)
and runs the plan policy (``espsec.efuse.plan``): a burn that would brick or weaken the
chip is refused unless its finding code is passed to ``--allow``. Nothing is written
unless every bit can be burned.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from espsec import efuse
from espsec._io import read_bytes
from espsec.chips import EFUSE_MODEL_CHIPS
from espsec.cli._common import (
    CHIP_PORT,
    INPUT,
    chip_option,
    command_group,
    emit,
    json_option,
    key_digest_slots,
    revision_option,
    source,
)
from espsec.efuse.plan import REFUSAL_CODES, build_operations, check_allow, parse_plan
from espsec.errors import UsageError

if TYPE_CHECKING:  # keys and workflow read PEM keys: imported by the commands that burn
    from espsec.efuse.workflow import FileBurn

group = command_group("efuse", "eFuses: summary, burns, burn plans, security state.")

_path = click.Path(dir_okay=False, path_type=Path)


def _file_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--efuse-file`` (an offline file), or ``--device``/``--port`` (a chip, reached
    through its download mode: the chip's own rules apply, as on hardware)."""

    @functools.wraps(f)
    def command(*args: Any, device: Path | None, port: str | None, **kwargs: Any) -> Any:
        with _chip_target(kwargs.get("efuse_file"), device, port):
            return f(*args, **kwargs)

    command = click.option(
        "--port",
        type=CHIP_PORT,
        help="A chip in download mode: serial port or socket://HOST:PORT (device serve).",
    )(command)
    command = click.option(
        "--device",
        metavar="DIR",
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        help="A virtual device folder, reached through its download mode.",
    )(command)
    command = chip_option(
        chips=EFUSE_MODEL_CHIPS,
        required=False,
        help="Chip (needed only for a file without an espsec sidecar, e.g. from espefuse).",
    )(command)
    return click.option(
        "--efuse-file",
        "efuse_file",
        type=_path,
        help="Virtual eFuse file (espefuse --virt --path-efuse-file format).",
    )(command)


_PORT: list[tuple[str, str, Path | None]] = []
"""The chip the running command talks to, when not a file: (port URL, name shown, the
virtual device folder behind it if any)."""


@contextlib.contextmanager
def _chip_target(efuse_file: Path | None, device: Path | None, port: str | None) -> Iterator[None]:
    if sum(v is not None for v in (efuse_file, device, port)) != 1:
        raise UsageError("give one of --efuse-file, --device or --port")
    if efuse_file is not None:
        yield
        return
    from espsec.device.download import host

    with contextlib.ExitStack() as stack:
        url = port if port is not None else stack.enter_context(host.serve_folder(device or ""))
        name = str(device) if device is not None else f"the chip on {port}".replace("//", "")
        _PORT.append((url, name, device))
        try:
            with source(str(device or port)):
                yield
        finally:
            _PORT.pop()


def _device_folder_refusal(path: Path) -> None:
    from espsec.device.download.host import is_device_folder

    if path.name == "efuse.bin" and is_device_folder(path.parent):
        raise UsageError(
            f"this eFuse file belongs to a virtual device: burn through its download "
            f"mode with --device {path.parent}",
            source=str(path),
        )


def burn_file(
    efuses: efuse.Efuses,
    path: Path | None,
    ops: Sequence[efuse.Operation],
    *,
    allow: Sequence[str] = (),
    apply: bool = True,
) -> FileBurn:
    """A burn on the file, or on the chip when the command targets one."""
    from espsec.efuse import workflow

    if _PORT:
        from espsec.device.download.host import burn_checked

        url, name, folder = _PORT[-1]
        apps = None if folder is None else _app_secure_versions(folder)
        return burn_checked(
            url, ops, allow=allow, apply=apply, target=name, app_secure_versions=apps
        )
    assert path is not None
    _device_folder_refusal(path)
    return workflow.burn_file(efuses, path, ops, allow=allow, apply=apply)


def _app_secure_versions(folder: Path) -> list[int]:
    """The secure versions of the apps in a virtual device's flash (those that load)."""
    from espsec.device import workflow as device_workflow

    return [
        app.secure_version
        for app in device_workflow.read_status(folder).apps
        if app.ok and app.secure_version is not None
    ]


def _check_allow(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> Any:
    check_allow(value)  # an unknown code is a usage error naming the valid ones
    return value


_allow = click.option(
    "--allow",
    "allow",
    multiple=True,
    metavar="CODE",
    callback=_check_allow,
    help=f"Accept a refusal by its code; repeatable ({', '.join(sorted(REFUSAL_CODES))}).",
)


def _load(path: Path | None, chip: str | None) -> efuse.Efuses:
    if _PORT:
        from espsec.device.download.host import read_efuses

        return read_efuses(_PORT[-1][0])
    assert path is not None
    with source(str(path)):
        return efuse.load(path, chip)


def _secure_boot_digest(pem: bytes) -> bytes:
    """The Secure Boot v2 digest of a PEM key, for :mod:`espsec.efuse.keys` (eFuses sit
    below Secure Boot, so the CLI hands it in)."""
    from espsec import secure_boot

    return secure_boot.key_digest(secure_boot.load_public_key(pem))


def _secure_boot_scheme(pem: bytes) -> str:
    """The Secure Boot v2 scheme of a PEM key (the plan warns if the ROM cannot use it)."""
    from espsec import secure_boot

    return secure_boot.scheme_of(secure_boot.load_public_key(pem))


# -- rendering --------------------------------------------------------------------------


def _ranges(bits: Sequence[int]) -> str:
    out: list[str] = []
    for b in bits:
        if out and "-" not in out[-1] and int(out[-1]) == b - 1:
            out[-1] = f"{b - 1}-{b}"
        elif out and "-" in out[-1] and int(out[-1].split("-")[1]) == b - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{b}"
        else:
            out.append(str(b))
    return ",".join(out)


def _render_report(report: efuse.PlanReport, outcome: str) -> None:
    display = efuse.layout_for(report.chip).chip.display_name
    click.echo(f"{display} eFuse burn: {len(report.operations)} operation(s)")
    for op in report.operations:
        click.echo(f"  {op}")
    if report.changes:
        click.echo("Bits that change 0 -> 1 ('!' = irreversible):")
        for c in report.changes:
            mark = "!" if c.irreversible else " "
            if c.secret:
                where = ""
            elif len(c.bits) > 16:
                where = f" {len(c.bits)} bits"
            else:
                where = f" bit {_ranges(c.bits)}"
            values = "key material" if c.secret else f"{c.before} -> {c.after}"
            effect = f"  [{c.effect}]" if c.effect else ""
            click.echo(f"  {mark} {c.field} (BLOCK{c.block}){where}: {values}{effect}")
    for note in report.notes:
        click.echo(f"  note: {note}")
    for f in report.findings:
        label = "ALLOWED" if f.allowed else ("REFUSED" if f.severity == "refuse" else "warning")
        # A warning does not block the burn: it goes to standard error, as warnings do.
        click.echo(f"{label} {f.code}: {f.message}", err=label == "warning")
    click.echo(outcome)


def _emit_burn(result: FileBurn, as_json: bool) -> None:
    """Report a burn; exit 1 when the policy refused it."""
    from espsec.efuse.workflow import BurnOutcome

    outcomes = {
        BurnOutcome.REFUSED: "refused: nothing burned",
        BurnOutcome.PLANNED: "plan ok: nothing burned (add --apply to burn)",
        BurnOutcome.NOTHING: "nothing to burn",
    }
    outcome = outcomes.get(result.outcome, f"burned: {result.path} updated")
    emit(result.to_dict(), as_json, lambda: _render_report(result.report, outcome))
    if as_json:  # the warnings are in the JSON, and said on standard error as well
        for f in result.report.findings:
            if f.severity == "warn" and not f.allowed:
                click.echo(f"warning {f.code}: {f.message}", err=True)
    if result.outcome is BurnOutcome.REFUSED:
        raise SystemExit(1)


# -- commands ---------------------------------------------------------------------------


@group.command("new")
@chip_option(chips=EFUSE_MODEL_CHIPS)
@revision_option(
    "Wafer revision: its WAFER_VERSION eFuses are set, so espefuse --virt reads the file "
    "with that revision's eFuse table (ESP32-P4 v3.0+: esp32p4_v3.0) [default: a blank "
    "file, v0.0, as espefuse --virt starts]."
)
@click.option(
    "--efuse-file",
    "efuse_file",
    type=_path,
    required=True,
    help="The eFuse file to create (its 0600 sidecar beside it); never overwritten.",
)
@json_option
def new_cmd(chip: str, revision: int | None, efuse_file: Path, as_json: bool) -> None:
    """Create a fresh virtual eFuse file (all zeros but the wafer revision) and its sidecar:
    the --efuse-file the other commands act on."""
    made = efuse.create(efuse_file, chip, revision)
    name = made.layout.chip.display_name
    version = f"v{made.revision // 100}.{made.revision % 100}"
    report = {
        "chip": made.chip,
        "revision": version,
        "efuse_file": str(efuse_file),
        "sidecar": str(efuse.sidecar_path(efuse_file)),
    }
    emit(
        report, as_json, lambda: click.echo(f"{name} {version} eFuse file written to {efuse_file}")
    )


@group.command("summary")
@_file_options
@click.option("--all", "all_fields", is_flag=True, help="Include fields espefuse hides.")
@json_option
def summary_cmd(efuse_file: Path, chip: str | None, all_fields: bool, as_json: bool) -> None:
    """Every field's value and protection, block errors and the security state."""
    efuses = _load(efuse_file, chip)
    fields = efuse.summary(efuses, all_fields=all_fields)
    state = efuse.security_state(efuses)
    blocks = efuse.blocks_report(efuses)
    report = {
        "chip": efuses.chip,
        "fields": fields,
        "blocks": blocks,
        "security": state.to_dict(),
    }

    def render() -> None:
        click.echo(f"{efuses.layout.chip.display_name} eFuses ({efuse_file})")
        block = -1
        for r in fields.values():
            if r["block"] != block:
                block = r["block"]
                click.echo(efuses.layout.blocks[block].label + ":")
            perms = ("R" if r["readable"] else "-") + "/" + ("W" if r["writeable"] else "-")
            raw = "" if r["efuse_type"].startswith("bytes") else f" ({r['raw_value']})"
            err = " [error]" if r["errors"] else ""
            click.echo(f"  {r['name']}{err} = {r['value']} {perms}{raw}")
        for b in blocks:
            if b["errors"] or b["failed"]:
                click.echo(f"{b['name']}: ERRORS:{b['errors']} FAIL:{b['failed']}")
        _render_state(state)

    emit(report, as_json, render)


def _render_state(s: efuse.SecurityState) -> None:
    click.echo("Security:")
    slots = ", ".join(
        f"{d.index}: {d.block or '-'}{' (revoked)' if d.revoked else ''}" for d in s.digest_slots
    )
    click.echo(
        f"  Secure Boot: {'on' if s.secure_boot_enabled else 'off'}"
        f"{' (aggressive revoke)' if s.aggressive_revoke else ''}; digest slots {slots}"
    )
    fe = s.flash_encryption_mode if s.flash_encryption_enabled else "off"
    click.echo(
        f"  Flash encryption: {fe} (SPI_BOOT_CRYPT_CNT=0b{s.flash_crypt_cnt:03b}), "
        f"key {s.flash_encryption_key or 'none'}"
    )
    click.echo(f"  Download mode: {s.download_mode}")
    reen = ", ".join(s.jtag.hmac_reenable_blocks)
    click.echo(
        f"  JTAG: {s.jtag.mode}"
        f"{'; USB JTAG disabled' if s.jtag.usb_jtag_disabled else ''}"
        f"{'; HMAC re-enable key in ' + reen if reen and s.jtag.mode == 'soft-disabled' else ''}"
    )
    click.echo(f"  secure_version: {s.secure_version}")
    for k in s.key_blocks:
        if not k.empty or k.purpose != "USER":
            prot = (
                ("read-protected" if k.read_protected else "readable")
                + ", "
                + ("write-protected" if k.write_protected else "writable")
            )
            click.echo(f"  {k.block}: {k.purpose} ({prot})")


@group.command("burn")
@_file_options
@click.argument("pairs", nargs=-1, required=True, metavar="NAME [VALUE] ...")
@_allow
@json_option
def burn_cmd(
    efuse_file: Path,
    chip: str | None,
    pairs: tuple[str, ...],
    allow: tuple[str, ...],
    as_json: bool,
) -> None:
    """Burn fields by name: NAME VALUE pairs (a lone bool or counter NAME burns one bit)."""
    efuses = _load(efuse_file, chip)
    if len(pairs) == 1:
        ops: list[efuse.Operation] = [efuse.BurnField(pairs[0], None)]
    elif len(pairs) % 2:
        raise UsageError("burn takes NAME VALUE pairs")
    else:
        ops = [
            efuse.BurnField(n, efuse.parse_field_value(efuses.layout, n, v))
            for n, v in zip(pairs[::2], pairs[1::2], strict=True)
        ]
    _emit_burn(burn_file(efuses, efuse_file, ops, allow=allow), as_json)


@group.command("burn-key")
@_file_options
@click.argument("groups", nargs=-1, required=True, metavar="BLOCK KEYFILE PURPOSE ...")
@click.option("--no-write-protect", is_flag=True, help="Leave the key block writable.")
@click.option("--no-read-protect", is_flag=True, help="Leave a hardware-only key readable.")
@_allow
@json_option
def burn_key_cmd(
    efuse_file: Path,
    chip: str | None,
    groups: tuple[str, ...],
    no_write_protect: bool,
    no_read_protect: bool,
    allow: tuple[str, ...],
    as_json: bool,
) -> None:
    """Burn keys: BLOCK KEYFILE PURPOSE groups (raw key bytes; ECDSA keys may be PEM)."""
    from espsec.efuse import keys

    if len(groups) % 3:
        raise UsageError("burn-key takes groups of BLOCK KEYFILE PURPOSE")
    efuses = _load(efuse_file, chip)
    ops: list[efuse.Operation] = [
        efuse.BurnKey(
            groups[i],
            keys.read_key_file(groups[i + 1], groups[i + 2]),
            groups[i + 2],
            write_protect=not no_write_protect,
            read_protect=not no_read_protect,
            source=groups[i + 1],
        )
        for i in range(0, len(groups), 3)
    ]
    _emit_burn(burn_file(efuses, efuse_file, ops, allow=allow), as_json)


@group.command("burn-key-digest")
@_file_options
@click.argument("args", nargs=-1, required=True, metavar="BLOCK [PUBKEY] PURPOSE")
@click.option(
    "--key-digest",
    metavar="HEX_OR_FILE",
    help="The key digest instead of PUBKEY: 64 hex digits, or a file of 32 bytes "
    "(espsecure digest-sbv2-public-key).",
)
@click.option("--no-write-protect", is_flag=True, help="Leave the digest block writable.")
@_allow
@json_option
def burn_key_digest_cmd(
    efuse_file: Path,
    chip: str | None,
    args: tuple[str, ...],
    key_digest: str | None,
    no_write_protect: bool,
    allow: tuple[str, ...],
    as_json: bool,
) -> None:
    """Burn a Secure Boot v2 public key's digest into BLOCK as SECURE_BOOT_DIGESTn."""
    from espsec.efuse import keys

    scheme = None
    if key_digest is not None:
        if len(args) != 2:
            raise UsageError("with --key-digest, give BLOCK PURPOSE")
        block, purpose = args
        if key_digest == "-":
            raise UsageError("--key-digest: give 64 hex digits or a file, not -")
        digest = key_digest_slots((key_digest,))[0]
        assert digest is not None
    else:
        if len(args) != 3:
            raise UsageError("give BLOCK PUBKEY PURPOSE (or --key-digest and BLOCK PURPOSE)")
        block, pub, purpose = args
        digest = keys.read_public_key_digest(pub, _secure_boot_digest)
        with source(pub):
            scheme = _secure_boot_scheme(read_bytes(pub, what="public key file"))
    efuses = _load(efuse_file, chip)
    write_protect = not no_write_protect
    ops = [efuse.BurnKeyDigest(block, digest, purpose, write_protect, scheme)]
    _emit_burn(burn_file(efuses, efuse_file, ops, allow=allow), as_json)


def _protect_command(name: str, op: Callable[[str], efuse.Operation], doc: str) -> None:
    """``write-protect`` / ``read-protect``: one operation per NAME, burned as one."""

    @group.command(name, help=doc)
    @_file_options
    @click.argument("names", nargs=-1, required=True)
    @_allow
    @json_option
    def command(
        efuse_file: Path,
        chip: str | None,
        names: tuple[str, ...],
        allow: tuple[str, ...],
        as_json: bool,
    ) -> None:
        efuses = _load(efuse_file, chip)
        result = burn_file(efuses, efuse_file, [op(n) for n in names], allow=allow)
        _emit_burn(result, as_json)


_protect_command(
    "write-protect",
    efuse.WriteProtect,
    "Write-protect fields or blocks (every field sharing the WR_DIS bit is locked).",
)
_protect_command(
    "read-protect",
    efuse.ReadProtect,
    "Read-protect blocks or fields (key blocks only for hardware-only purposes).",
)


@group.command("plan")
@_file_options
@click.argument("plan_file", metavar="PLAN", type=INPUT)
@click.option("--apply", "apply", is_flag=True, help="Burn the plan if nothing refuses it.")
@_allow
@json_option
def plan_cmd(
    efuse_file: Path,
    chip: str | None,
    plan_file: Path,
    apply: bool,
    allow: tuple[str, ...],
    as_json: bool,
) -> None:
    """Show every bit a PLAN would change and what it risks; --apply burns it.

    PLAN has one espefuse-like command per line, e.g.
    ``burn-key BLOCK_KEY0 key.bin XTS_AES_128_KEY`` or ``burn-efuse SPI_BOOT_CRYPT_CNT 1``;
    file names are relative to the plan. Exit 1 when the plan is refused.
    """
    from espsec.efuse import keys
    from espsec.efuse.workflow import burn_plan_file

    efuses = _load(efuse_file, chip)
    if _PORT:  # the plan's operations, burned through the chip's download mode
        with source(str(plan_file)):
            lines = parse_plan(plan_file.read_text())
            ops = build_operations(
                efuses.layout,
                lines,
                keys.KeyFiles(plan_file.parent, _secure_boot_digest, _secure_boot_scheme),
            )
        result = burn_file(efuses, None, ops, allow=allow, apply=apply)
    else:
        if apply:
            _device_folder_refusal(efuse_file)
        result = burn_plan_file(
            efuses,
            efuse_file,
            plan_file,
            _secure_boot_digest,
            allow=allow,
            apply=apply,
            pem_scheme=_secure_boot_scheme,
        )
    _emit_burn(result, as_json)


@group.command("security-info")
@_file_options
@json_option
def security_info_cmd(efuse_file: Path, chip: str | None, as_json: bool) -> None:
    """The 20-byte GET_SECURITY_INFO record the ROM would return, decoded."""
    efuses = _load(efuse_file, chip)
    info = efuse.security_info(efuses)
    state = efuse.security_state(efuses)
    report = info.to_dict() | {"raw": info.to_bytes().hex(), "state": state.to_dict()}

    def render() -> None:
        click.echo(f"GET_SECURITY_INFO: {info.to_bytes().hex()}")
        click.echo(f"Flags: 0x{info.flags:08x} ({', '.join(info.flag_names) or 'none'})")
        click.echo(f"Flash crypt count: 0x{info.flash_crypt_cnt:x}")
        click.echo(f"Key purposes: {info.key_purposes}")
        click.echo(f"Chip ID: {info.chip_id}")
        click.echo(f"API version: {info.api_version}")
        _render_state(state)

    emit(report, as_json, render)
