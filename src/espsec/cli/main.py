"""Entry point of the ``espsec`` command.

Command groups load lazily: ``espsec --version`` imports none of them, and
``espsec GROUP ...`` imports only that group's module (see ``docs/cli.md``).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from espsec import __version__
from espsec._io import command_scope
from espsec.errors import EspsecError

GROUPS: dict[str, tuple[str, ...]] = {
    # command name: the module defining ``group``, then modules whose ``register(group)``
    # adds more commands to it.
    "advisories": ("espsec.cli.advisories",),
    "audit": ("espsec.cli.audit",),
    "cert-bundle": ("espsec.cli.cert_bundle",),
    "device": ("espsec.cli.device", "espsec.cli.device_serve", "espsec.cli.device_download"),
    "ds": ("espsec.cli.ds",),
    "efuse": ("espsec.cli.efuse",),
    "factory": ("espsec.cli.factory",),
    "flash-encryption": ("espsec.cli.flash_encryption",),
    "fleet": ("espsec.cli.fleet",),
    "image": ("espsec.cli.image",),
    "local-ctrl": ("espsec.cli.local_ctrl",),
    "nvs": ("espsec.cli.nvs",),
    "ota": ("espsec.cli.ota",),
    "prov": ("espsec.cli.prov",),
    "secure-boot": ("espsec.cli.secure_boot",),
    "secure-cert": ("espsec.cli.secure_cert",),
}


class EspsecGroup(click.Group):
    """The top-level group: loads command groups on demand, and turns an
    :class:`EspsecError` into one line on standard error and its exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(GROUPS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in GROUPS:
            module, *extensions = GROUPS[cmd_name]
            group: click.Command = importlib.import_module(module).group
            for extension in extensions:
                importlib.import_module(extension).register(group)
            self.add_command(group, cmd_name)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        # Before any command loads NumPy: its OpenBLAS starts a thread per core as it
        # loads, which doubled NumPy's import (about 50 to 100 ms) on a busy two-core
        # machine; no command does linear algebra. A user's setting wins.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        try:
            with command_scope():
                return super().invoke(ctx)
        except EspsecError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=EspsecGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="espsec")
def main() -> None:
    """Secure ESP32 products: Secure Boot v2, flash encryption, eFuses, identity,
    provisioning, NVS, OTA, audit and factory provisioning."""


if __name__ == "__main__":  # python -m espsec.cli.main (python -X importtime ... --version)
    main(prog_name="espsec")
