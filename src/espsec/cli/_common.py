"""Helpers every command group uses: the ``docs/cli.md`` convention as code.

``command_group`` makes a group whose commands check their outputs against the output
rule before any work; ``INPUT``/``output_option`` declare inputs and outputs; ``chip_option``
is the one ``--chip``; ``json_option`` and ``emit`` print reports; ``colour`` decides
whether to print escape codes (``style``, progress bars).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from espsec._io import STDIO, check_output, declare_input, read_bytes
from espsec.errors import FormatError, OutputExistsError, UsageError, with_source

source = with_source
"""Attach a file name to any :class:`~espsec.errors.EspsecError` raised inside the block."""

json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")


class InputPath(click.Path):
    """An input file (``-`` is standard input): must exist, and is remembered so that
    no output of the same command can be written over it."""

    def __init__(self, *, allow_dash: bool = True) -> None:
        super().__init__(exists=True, dir_okay=False, allow_dash=allow_dash, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = super().convert(value, param, ctx)
        if isinstance(path, Path):
            declare_input(path)
        return path


class OutputPath(click.Path):
    """A file the command writes (``-`` is standard output), under the output rule.

    A ``secret`` output (a generated key) is created 0600 and never overwrites anything,
    nor goes to standard output.
    """

    def __init__(self, *, allow_dash: bool = True, secret: bool = False) -> None:
        super().__init__(dir_okay=False, allow_dash=allow_dash, path_type=Path)
        self.secret = secret


INPUT = InputPath()
"""The type of every input file argument or option."""


def output_option(
    *param_decls: str,
    required: bool = True,
    help: str = "The file to write.",
    secret: bool = False,
) -> Callable[[Any], Any]:
    """``-o/--output FILE`` (or another ``--*-output`` name): a file the command writes.

    ``secret``: a generated key, never written over an existing file or to stdout.
    """
    decls = param_decls or ("-o", "--output", "output")
    kind = OutputPath(secret=secret)
    return click.option(*decls, type=kind, required=required, metavar="FILE", help=help)


class EspsecCommand(click.Command):
    """A command that applies the output rule to every output before doing any work."""

    def invoke(self, ctx: click.Context) -> Any:
        outputs: list[tuple[str, Path, bool]] = []
        for param in self.params:
            value = ctx.params.get(param.name or "")
            if isinstance(param.type, OutputPath) and value is not None:
                name = max(param.opts, key=len) if param.opts else str(param.name)
                outputs.append((name, Path(value), param.type.secret))
        _check_outputs(outputs, as_json=bool(ctx.params.get("as_json")))
        return super().invoke(ctx)


def _check_outputs(outputs: list[tuple[str, Path, bool]], *, as_json: bool) -> None:
    """The output rule for one command's outputs, before any work (see ``docs/cli.md``)."""
    import os
    import stat

    seen: dict[tuple[int, int] | str, str] = {}
    for name, path, secret in outputs:
        if str(path) == STDIO:
            if secret:
                raise UsageError(f"{name}: a secret is never written to standard output")
            if as_json:
                raise UsageError(f"--json and {name} - would both write standard output")
            ident: tuple[int, int] | str = STDIO
        elif secret and os.path.lexists(path):
            raise OutputExistsError(
                "refusing to overwrite an existing file (remove it first)", source=str(path)
            )
        else:
            check_output(path)
            try:
                st = os.stat(path)
            except OSError:
                ident = os.path.abspath(path)
            else:
                if not stat.S_ISREG(st.st_mode):
                    continue  # /dev/null, a FIFO: written through, may be named twice
                ident = (st.st_dev, st.st_ino)
        if ident in seen:
            raise UsageError(f"{seen[ident]} and {name} name the same output ({path})")
        seen[ident] = name


def note(message: str, *outputs: Path | None) -> None:
    """Print a human-readable status line: on standard error when one of ``outputs`` is
    standard output (``-o -``), so it never mixes with the data."""
    click.echo(message, err=any(o is not None and str(o) == STDIO for o in outputs))


class EspsecSubGroup(click.Group):
    """A command group whose commands (and sub-groups) are :class:`EspsecCommand`."""

    command_class = EspsecCommand


EspsecSubGroup.group_class = EspsecSubGroup


def command_group(name: str, help: str, **attrs: Any) -> click.Group:
    """The ``group`` of a CLI module: ``group = command_group("nvs", "NVS partitions: ...")``.

    ``attrs`` go to :class:`click.Group` (``invoke_without_command``, ``params``,
    ``callback``: a group that is also a command, as ``espsec prov``).
    """
    return EspsecSubGroup(name, help=help, **attrs)


def chip_option(
    *,
    chips: tuple[str, ...] | None = None,
    required: bool = True,
    default: str | None = None,
    help: str = "Target chip.",
) -> Callable[[Any], Any]:
    """The one ``--chip``: a choice of chip names from :mod:`espsec.chips`.

    ``chips`` narrows the list where a feature exists only on some chips (the eFuse model).
    """
    from espsec.chips import CHIPS

    names = chips if chips is not None else tuple(sorted(CHIPS))
    # No default=None: click 8.3+ takes an explicit None as a value given (required unmet).
    extra: dict[str, Any] = {"default": default, "show_default": True} if default else {}
    return click.option(
        "--chip",
        type=click.Choice(names),
        required=required and default is None,
        help=help,
        **extra,
    )


def colour(*, err: bool = False) -> bool:
    """The one decision whether to colour text or draw a progress bar: only on a terminal
    (standard output, or standard error with ``err``), and never when ``NO_COLOR`` is set
    (no-color.org: any non-empty value). Piped or redirected output gets no escape codes."""
    import os
    import sys

    if os.environ.get("NO_COLOR"):
        return False
    stream = sys.stderr if err else sys.stdout
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def style(text: str, **styles: Any) -> str:
    """``text`` in ``click.style`` colours (``fg="red"``, ``bold=True``) when standard
    output is coloured (:func:`colour`), plain otherwise."""
    return click.style(text, **styles) if colour() else text


def emit(report: Any, as_json: bool, render: Callable[[], None]) -> None:
    """Print ``report`` as JSON, or call ``render`` for the human-readable form."""
    if as_json:
        import json

        click.echo(json.dumps(report, indent=2, sort_keys=False))
    else:
        render()


class IntParam(click.ParamType[int]):
    """An integer in decimal or ``0x`` hex, as esptool accepts addresses."""

    name = "int"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return int(str(value), 0)
        except ValueError:
            self.fail(f"expected an integer such as 0x10000, found {value!r}", param, ctx)


INT = IntParam()


class RevisionParam(click.ParamType[int]):
    """A chip revision, ``v3.1``, ``3.1`` or ``301``, as major * 100 + minor."""

    name = "revision"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from espsec.chips import parse_revision
        from espsec.errors import UsageError

        if isinstance(value, int):
            return value
        try:
            return parse_revision(str(value))
        except UsageError as exc:
            self.fail(exc.message, param, ctx)


REVISION = RevisionParam()


def revision_option(help: str) -> Callable[[Any], Any]:
    """The one ``--revision``: a chip's wafer revision (``v3.1``)."""
    return click.option("--revision", type=REVISION, default=None, metavar="vX.Y", help=help)


def key_digest_slots(values: tuple[str, ...]) -> list[bytes | None]:
    """``--key-digest`` values in slot order: 64 hex digits, a 32-byte file, or ``-`` (empty)."""
    if len(values) > 3:
        raise UsageError(f"at most 3 eFuse key digests (slots 0-2), got {len(values)}")
    return [None if v == "-" else _key_digest(v) for v in values]


def _key_digest(text: str) -> bytes:
    path = Path(text)
    if path.is_file():
        raw = read_bytes(path, what="digest file")
        if len(raw) != 32:
            raise FormatError(
                "not a key digest", expected="32 bytes", found=f"{len(raw)} bytes", source=text
            )
        return raw
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"key digest {text!r} is neither a file nor 64 hex digits") from None
    if len(value) != 32:
        raise UsageError(f"key digest must be 32 bytes (64 hex digits), found {len(value)} bytes")
    return value


# -- network addresses: every URL, host and TCP port is checked here, in one line ----------


def _host_problem(host: str) -> str | None:
    """Why ``host`` is not a host name or IP address (``None`` if it is one)."""
    import ipaddress
    import re

    if not host:
        return "no host"
    try:
        ipaddress.ip_address(host.strip("[]") if host.startswith("[") else host)
        return None
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    label = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
    if len(host) > 253 or not all(label.match(part) for part in labels):
        return f"{host!r} is not a host name or IP address"
    return None


class HostParam(click.ParamType[str]):
    """A host name or an IP address (``127.0.0.1``, ``::1``, ``fleet.example``)."""

    name = "host"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        problem = _host_problem(text)
        if problem:
            self.fail(f"expected a host name or IP address, found {text!r}", param, ctx)
        return text


class PortParam(click.ParamType[int]):
    """A TCP port, 0 to 65535 (0: any free port, where a command listens)."""

    name = "port"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and 0 <= value <= 65535:
            return value
        try:
            port = int(str(value), 10)
        except ValueError:
            port = -1
        if not 0 <= port <= 65535:
            self.fail(f"expected a TCP port 0-65535, found {value!r}", param, ctx)
        return port


class UrlParam(click.ParamType[str]):
    """A URL with a host (and a valid port, if any) in one of ``schemes``."""

    name = "url"

    def __init__(self, *schemes: str) -> None:
        self.schemes = schemes

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from urllib.parse import urlsplit

        text = str(value)
        wanted = "a URL starting " + " or ".join(f"{s}://" for s in self.schemes)
        try:
            parts = urlsplit(text)
            host, _ = parts.hostname, parts.port  # .port raises on an out-of-range port
        except ValueError as exc:
            self.fail(f"expected {wanted}, found {text!r} ({exc})", param, ctx)
        if parts.scheme not in self.schemes:
            self.fail(f"expected {wanted}, found {text!r}", param, ctx)
        problem = _host_problem(host or "")
        if problem:
            self.fail(f"expected {wanted} and a host, found {text!r}", param, ctx)
        return text


class AddressParam(click.ParamType[str]):
    """``HOST:PORT`` (an IPv6 host in brackets: ``[::1]:8080``)."""

    name = "host:port"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        host, sep, port = text.rpartition(":")
        if not sep or _host_problem(host) or not port.isdigit() or not 0 < int(port) <= 65535:
            self.fail(f"expected HOST:PORT (port 1-65535), found {text!r}", param, ctx)
        return text


class ChipPortParam(click.ParamType[str]):
    """Where a chip in download mode is: a serial port, or ``socket://HOST:PORT``."""

    name = "port"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if "://" not in text:
            if not text:
                self.fail("expected a serial port or socket://HOST:PORT, found ''", param, ctx)
            return text
        scheme, _, address = text.partition("://")
        try:
            if scheme not in ("socket", "rfc2217"):
                raise click.BadParameter(scheme)
            ADDRESS.convert(address.split("?", 1)[0], param, ctx)
        except click.BadParameter:
            self.fail(f"expected a serial port or socket://HOST:PORT, found {text!r}", param, ctx)
        return text


HOST = HostParam()
"""The type of every ``--host`` option."""
PORT = PortParam()
"""The type of every TCP ``--port`` option (a command that listens)."""
URL = UrlParam("https")
"""The type of every ``https://`` URL option."""
ADDRESS = AddressParam()
"""The type of every ``HOST:PORT`` option (``--service-name``)."""
CHIP_PORT = ChipPortParam()
"""The type of every ``--port`` naming a chip (serial port or ``socket://HOST:PORT``)."""


def read_secret(path: Path | None, what: str) -> bytes | None:
    """A secret (PoP, password, passphrase, token) from a file, without its trailing
    newline: secrets never come from argv."""
    if path is None:
        return None
    return read_bytes(path, what=what).rstrip(b"\r\n")
