"""Entry point of the ``espsec`` command."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from espsec import __version__
from espsec.errors import EspsecError


class EspsecGroup(click.Group):
    """A click group that turns :class:`EspsecError` into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EspsecError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=EspsecGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="espsec")
def main() -> None:
    """Secure ESP32 products: Secure Boot v2, flash encryption, eFuses, NVS, OTA."""


def _register() -> None:
    # One line per command group; each module defines a click group named ``group``.
    from espsec.cli import device, efuse, flash_encryption, fleet, image, nvs, ota, secure_boot

    for module in (device, efuse, flash_encryption, fleet, image, nvs, ota, secure_boot):
        main.add_command(module.group)
    main.add_command(importlib.import_module("espsec.cli.cert_bundle").group)
    main.add_command(importlib.import_module("espsec.cli.ds").group)
    main.add_command(importlib.import_module("espsec.cli.secure_cert").group)
    main.add_command(importlib.import_module("espsec.cli.prov").group)
    main.add_command(importlib.import_module("espsec.cli.local_ctrl").group)
    main.add_command(importlib.import_module("espsec.cli.factory").group)
    importlib.import_module("espsec.cli.device_serve").register(device.group)
    importlib.import_module("espsec.cli.device_download").register(device.group)


_register()
