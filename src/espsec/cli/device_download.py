"""``espsec device serve``: the device's ROM download mode on a TCP port.

Kept apart from :mod:`espsec.cli.device` and attached to its group by :func:`register`.
The work is :class:`espsec.device.download.DownloadServer`; this module prints the URL,
one line per event the chip reports, and stops on Ctrl-C (or ``--max-seconds``).
"""

from __future__ import annotations

import threading
from pathlib import Path

import click

from espsec.cli._common import HOST, PORT, EspsecCommand
from espsec.efuse.download_mode import Interface

_dir = click.Path(file_okay=False, exists=True, path_type=Path)


@click.command("serve", cls=EspsecCommand)
@click.argument("folder", metavar="DIR", type=_dir)
@click.option("--host", type=HOST, default="127.0.0.1", show_default=True, help="Listen here.")
@click.option(
    "--port", type=PORT, default=0, show_default=True, help="TCP port to listen on; 0: a free one."
)
@click.option(
    "--interface",
    type=click.Choice([i.value for i in Interface]),
    default=Interface.UART.value,
    show_default=True,
    help="The port the host reaches download mode through (its eFuses may disable it).",
)
@click.option("--quiet", is_flag=True, help="Print only the URL.")
@click.option(
    "--max-seconds",
    type=click.FloatRange(0, None),
    help="Stop after this long (default: until interrupted).",
)
def serve(
    folder: Path, host: str, port: int, interface: str, quiet: bool, max_seconds: float | None
) -> None:
    """Serve the device in DIR in download mode, as strapping GPIO0 low does.

    The first line printed is socket://HOST:PORT, for esptool and espefuse --port. Each
    connection is a fresh reset into the ROM loader; the folder is updated after every
    command. What the eFuses allow applies: Secure Download Mode answers only its
    commands, DIS_DOWNLOAD_MODE answers nothing.
    """
    from espsec.device import VirtualDevice
    from espsec.device.download import DownloadServer

    def note(line: str) -> None:
        if not quiet:
            click.echo(line, err=True)

    device = VirtualDevice.open(folder)
    kind = Interface(interface)
    server = DownloadServer(device, host=host, port=port, interface=kind, notify=note)
    click.echo(server.url)
    server.start()
    stop = threading.Event()
    try:
        stop.wait(max_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


def register(group: click.Group) -> None:
    """Add ``serve`` to ``espsec device``."""
    group.add_command(serve)
