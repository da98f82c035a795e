"""The host side: espsec talking to a chip's download mode through esptool and espefuse.

One code path for real and virtual chips: ``port`` is a serial port (``/dev/ttyUSB0``)
or a ``socket://HOST:PORT`` URL of a served device, and every exchange goes through
esptool's and espefuse's public Python APIs (``esptool.cmds.detect_chip``,
``esptool.cmds.write_flash``, ``espefuse.init_commands``), never a second protocol
implementation. :func:`serve_folder` serves a device folder on a free loopback port for
the length of a ``with`` block, so ``--device DIR`` is ``--port`` to the served folder:
the chip applies its own rules (Secure Download Mode, write protection, OTP).

The tools print progress; here their output is captured and only their errors surface,
as :class:`DownloadModeError` with esptool's message.
"""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from espsec._io import PathLike
from espsec.device.download.server import DownloadServer
from espsec.device.virtual_device import DEVICE_FILE, VirtualDevice
from espsec.efuse import (
    BurnField,
    BurnKey,
    BurnKeyDigest,
    BurnPlan,
    Efuses,
    Operation,
    ReadProtect,
    WriteProtect,
    layout_for,
)
from espsec.efuse.workflow import BurnOutcome, FileBurn
from espsec.errors import EspsecError, UsageError

T = TypeVar("T")


class DownloadModeError(EspsecError):
    """The chip refused, or could not be reached (esptool's or espefuse's message)."""


def is_device_folder(path: PathLike) -> bool:
    """``path`` is a virtual device folder (it holds ``device.json``)."""
    return (Path(path) / DEVICE_FILE).is_file()


@contextlib.contextmanager
def serve_folder(folder: PathLike, notes: list[str] | None = None) -> Iterator[str]:
    """Serve the device in ``folder`` on a free loopback port; yield its ``socket://`` URL."""
    if not is_device_folder(folder):
        raise UsageError("not a virtual device folder (no device.json)", source=str(folder))
    log = notes if notes is not None else []
    with DownloadServer(VirtualDevice.open(folder), notify=log.append).start() as server:
        yield server.url


def _quiet(action: Callable[[], T]) -> T:
    """Run an esptool/espefuse call with its output captured; its errors become ours."""
    import esptool

    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            return action()
    except esptool.FatalError as exc:
        raise DownloadModeError(str(exc).strip().splitlines()[0]) from None
    except SystemExit:
        lines = out.getvalue().strip().splitlines()
        raise DownloadModeError(lines[-1] if lines else "espefuse stopped") from None


def _connect_mode(port: str) -> str:
    return "no-reset" if port.startswith("socket://") else "default-reset"


def _connect(port: str) -> Any:
    from esptool.cmds import detect_chip

    return detect_chip(port, connect_mode=_connect_mode(port))


def _chip_name(esp: Any) -> str:
    return str(esp.CHIP_NAME).lower().replace("-", "")


def read_efuses(port: str) -> Efuses:
    """The chip's eFuses as its read registers show them (a snapshot over ``READ_REG``).

    Raises :class:`DownloadModeError` in Secure Download Mode: the ROM reads no register.
    """

    def read() -> Efuses:
        esp = _connect(port)
        try:
            if esp.secure_download_mode:
                raise DownloadModeError(
                    "the chip is in Secure Download Mode (ENABLE_SECURITY_DOWNLOAD): its "
                    "eFuses cannot be read or burned over the download port"
                )
            layout = layout_for(_chip_name(esp))
            base = esp.EFUSE_BASE
            regs = b"".join(
                struct.pack("<I", esp.read_reg(base + offset))
                for offset in range(0, layout.mem_size, 4)
            )
            return Efuses.from_registers(layout.name, regs)  # the revision's layout
        finally:
            esp._port.close()

    return _quiet(read)


def burn(port: str, operations: Sequence[Operation]) -> None:
    """Burn ``operations`` as espefuse does, in one batch (``espefuse.init_commands``)."""
    from espefuse import init_commands

    def run() -> None:
        cmds = init_commands(port=port, before=_connect_mode(port), do_not_confirm=True)
        try:
            cmds.use_batch_mode()
            for op in operations:
                _apply(cmds, op)
            try:
                if not cmds.burn_all(check_batch_mode=True):
                    raise DownloadModeError("espefuse did not burn the batch")
            except SystemExit as exc:  # burned ENABLE_SECURITY_DOWNLOAD / DIS_DOWNLOAD_MODE:
                if exc.code not in (0, None):  # espefuse reports success and stops there
                    raise
        finally:
            port_obj = getattr(cmds.efuses, "_esp", None)
            if port_obj is not None:
                port_obj._port.close()

    _quiet(run)


def _apply(cmds: Any, op: Operation) -> None:
    if isinstance(op, BurnField):
        value = op.value
        if value is None:
            raise UsageError(f"burn {op.name}: resolve the value first (see burn_checked)")
        shown = f"0x{value.hex()}" if isinstance(value, bytes) else str(value)
        cmds.burn_efuse({op.name: shown})
    elif isinstance(op, BurnKey):
        cmds.burn_key(
            [op.block],
            [io.BytesIO(_espefuse_key_file(op))],
            [op.purpose],
            no_write_protect=not op.write_protect,
            no_read_protect=not op.read_protect,
        )
    elif isinstance(op, BurnKeyDigest):
        cmds.burn_key(
            [op.block],
            [],
            [op.purpose],
            no_write_protect=not op.write_protect,
            no_read_protect=True,
            digest=[op.digest],
        )
    elif isinstance(op, WriteProtect):
        cmds.write_protect_efuse([op.name])
    elif isinstance(op, ReadProtect):
        cmds.read_protect_efuse([op.name])


def _espefuse_key_file(op: BurnKey) -> bytes:
    """The key file espefuse reads: an ECDSA key as PEM (espefuse's burn-key loads one for
    every ``ECDSA_KEY*`` purpose but the P-384 halves), other keys as raw bytes."""
    purpose = op.purpose.upper()
    if not purpose.startswith("ECDSA_KEY") or purpose.endswith(("_H", "_L")):
        return op.key
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    curves = {24: ec.SECP192R1(), 32: ec.SECP256R1(), 48: ec.SECP384R1()}
    curve = curves.get(len(op.key))
    if curve is None:
        raise UsageError(f"{op.purpose}: a {len(op.key)}-byte key is no ECDSA private key")
    try:
        key = ec.derive_private_key(int.from_bytes(op.key, "big"), curve)
    except ValueError:
        raise UsageError(f"{op.purpose}: the key is not a valid {curve.name} scalar") from None
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def write_flash(port: str, files: Sequence[tuple[int, bytes]], *, encrypt: bool = False) -> str:
    """``esptool write-flash`` of ``(offset, data)`` files; returns the chip's name.

    The stub is used outside Secure Download Mode (esptool falls back to the ROM in it);
    plaintext writes to a chip with flash encryption on are forced, as ``--force`` does.
    """
    from esptool.cmds import attach_flash, reset_chip, run_stub
    from esptool.cmds import write_flash as esptool_write_flash

    def run() -> str:
        esp = _connect(port)
        try:
            esp = run_stub(esp)
            attach_flash(esp)
            esptool_write_flash(esp, list(files), encrypt=encrypt, force=True, no_progress=True)
            reset_chip(esp, "no-reset")
            return _chip_name(esp)
        finally:
            esp._port.close()

    return _quiet(run)


def burn_checked(
    port: str,
    operations: Sequence[Operation],
    *,
    allow: Sequence[str] = (),
    apply: bool = True,
    target: str | None = None,
    app_secure_versions: Sequence[int] | None = None,
) -> FileBurn:
    """:func:`espsec.efuse.workflow.burn_file` for a chip on ``port``: the same plan
    policy on a snapshot of its eFuses, then (unless refused) the burn through espefuse.

    ``target`` names the chip in the result (default: ``port``); ``app_secure_versions``
    are those of the apps in its flash, when known (see :class:`~espsec.efuse.BurnPlan`).
    The chip's own rules apply on top: in Secure Download Mode nothing is read or burned.
    """
    snapshot = read_efuses(port)
    plan = BurnPlan(operations, allow=allow, app_secure_versions=app_secure_versions)
    report = plan.check(snapshot, strict=True)
    if report.refused:
        outcome = BurnOutcome.REFUSED
    elif not apply:
        outcome = BurnOutcome.PLANNED
    elif report.staged is None or report.staged.empty:
        outcome = BurnOutcome.NOTHING
    else:
        after = report.staged.result(snapshot)
        burn(port, [_resolved(op, after) for op in operations])
        outcome = BurnOutcome.BURNED
    return FileBurn(report, outcome, Path(target or port))


def _resolved(op: Operation, after: Efuses) -> Operation:
    """A ``burn-efuse NAME`` without a value (one more bit) as the value it burns."""
    if isinstance(op, BurnField) and op.value is None:
        return BurnField(op.name, after.get(op.name))
    return op
