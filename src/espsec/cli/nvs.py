"""``espsec nvs``: generate, encrypt, decrypt and dump NVS partitions; NVS keys."""

from __future__ import annotations

from pathlib import Path

import click

from espsec import nvs as nvs_lib
from espsec._io import STDIO, output_file, read_bytes, write_output, write_secret
from espsec.cli._common import (
    INPUT,
    INT,
    command_group,
    emit,
    json_option,
    note,
    output_option,
    source,
)
from espsec.errors import UsageError
from espsec.nvs.generator import READ_WRITE_MIN_SIZE, check_partition_size

group = command_group("nvs", "NVS partitions: generate, encrypt, decrypt, dump; NVS keys.")

_size = click.option(
    "--size",
    type=INT,
    required=True,
    help="Partition size in bytes: a multiple of 0x1000, at least 0x3000, at most 128 MiB.",
)
_version = click.option(
    "--version",
    type=click.Choice(["1", "2"]),
    default="2",
    show_default=True,
    help="1: blobs in one page (max 1984 bytes); 2: multi-page blobs.",
)
_keys = click.option(
    "--keys", "keys_file", type=INPUT, help="nvs_keys partition image (from generate-keys)."
)
_hmac = click.option(
    "--hmac-key", "hmac_file", type=INPUT, help="HMAC_UP eFuse key the chip derives keys from."
)
_wifi = click.option(
    "--no-wifi-extras",
    is_flag=True,
    help="Do not add the Wi-Fi keys esp-idf-nvs-partition-gen adds for sta.*/ap.* rows.",
)
_base = click.option(
    "--base-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder that 'file' rows are relative to (default: the current directory).",
)


def check_size(size: int) -> None:
    """Refuse (before any work) a ``--size`` ``nvs_partition_gen`` would refuse, or one no
    flash holds: a multiple of 0x1000, from 0x3000 (the read/write minimum of
    esp-idf-nvs-partition-gen ``check_size``) to the largest flash."""
    check_partition_size(size)
    if size < READ_WRITE_MIN_SIZE:
        raise UsageError(
            f"NVS partition size must be at least {READ_WRITE_MIN_SIZE:#x} (the smallest "
            f"read/write partition nvs_partition_gen makes), got {size:#x}"
        )


def _load_keys(keys_file: Path | None, hmac_file: Path | None) -> nvs_lib.NvsKeys | None:
    if keys_file is not None and hmac_file is not None:
        raise UsageError("give either --keys or --hmac-key, not both")
    if keys_file is not None:
        with source(str(keys_file)):
            return nvs_lib.NvsKeys.parse(read_bytes(keys_file, what="keys file"))
    if hmac_file is not None:
        with source(str(hmac_file)):
            return nvs_lib.NvsKeys.from_hmac_key(read_bytes(hmac_file, what="HMAC key file"))
    return None


def _generate(
    csv_file: Path,
    output: Path,
    size: int,
    version: str,
    keys: nvs_lib.NvsKeys | None,
    no_wifi_extras: bool,
    base_dir: Path | None,
    as_json: bool,
) -> None:
    wifi_extras = not no_wifi_extras
    if str(output) == STDIO:  # nothing goes out unless the whole image was made
        image = nvs_lib.generate_csv_file(
            csv_file,
            size,
            version=int(version),
            keys=keys,
            base_dir=base_dir,
            wifi_extras=wifi_extras,
        )
        write_output(output, image)
        image_size = len(image)
    else:  # page by page, into a file that replaces the output only once complete
        with output_file(output) as fh:
            image_size = nvs_lib.write_csv_partition(
                csv_file,
                fh,
                size,
                version=int(version),
                keys=keys,
                base_dir=base_dir,
                wifi_extras=wifi_extras,
            )
    report = {
        "output": str(output),
        "size": size,
        "image_size": image_size,
        "version": int(version),
        "encrypted": keys is not None,
    }
    what = "encrypted NVS partition" if keys else "NVS partition"
    emit(report, as_json, lambda: note(f"{what} written to {output}", output))


@group.command("generate")
@_size
@_version
@_wifi
@_base
@output_option(help="The partition image to write ('-': standard output).")
@json_option
@click.argument("csv_file", metavar="CSV", type=INPUT)
def generate(
    size: int,
    version: str,
    no_wifi_extras: bool,
    base_dir: Path | None,
    output: Path,
    as_json: bool,
    csv_file: Path,
) -> None:
    """Generate a plain NVS partition from a nvs_partition_gen CSV."""
    check_size(size)
    _generate(csv_file, output, size, version, None, no_wifi_extras, base_dir, as_json)


@group.command("encrypt")
@_size
@_version
@_keys
@_hmac
@_wifi
@_base
@output_option(help="The encrypted partition image to write ('-': standard output).")
@json_option
@click.argument("csv_file", metavar="CSV", type=INPUT)
def encrypt(
    size: int,
    version: str,
    keys_file: Path | None,
    hmac_file: Path | None,
    no_wifi_extras: bool,
    base_dir: Path | None,
    output: Path,
    as_json: bool,
    csv_file: Path,
) -> None:
    """Generate an encrypted NVS partition from a CSV (--keys or --hmac-key)."""
    check_size(size)
    keys = _load_keys(keys_file, hmac_file)
    if keys is None:
        raise UsageError("encrypt needs --keys KEYS.bin or --hmac-key HMAC.bin")
    _generate(csv_file, output, size, version, keys, no_wifi_extras, base_dir, as_json)


@group.command("decrypt")
@_keys
@_hmac
@output_option(help="The plain partition image to write (mode 0600; '-': standard output).")
@json_option
@click.argument("partition", type=INPUT)
def decrypt(
    keys_file: Path | None, hmac_file: Path | None, output: Path, as_json: bool, partition: Path
) -> None:
    """Decrypt an encrypted NVS PARTITION image into a plain one."""
    keys = _load_keys(keys_file, hmac_file)
    if keys is None:
        raise UsageError("decrypt needs --keys KEYS.bin or --hmac-key HMAC.bin")
    data = read_bytes(partition, what="NVS partition")
    with source(str(partition)):
        contents = nvs_lib.read_partition(data, keys=keys)  # wrong keys: refused before writing
        plain = nvs_lib.decrypt_partition(data, keys)
    write_output(output, plain, mode=0o600)
    report = {"output": str(output), "size": len(plain), "entries": len(contents.entries)}
    emit(report, as_json, lambda: note(f"decrypted NVS partition written to {output}", output))


@group.command("dump")
@click.argument("partition", type=INPUT, required=False)
@click.option(
    "--device",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Read the partition from this virtual device instead, as its app reads it.",
)
@click.option(
    "--name", "label", default="nvs", show_default=True, help="Partition label (--device)."
)
@_keys
@_hmac
@output_option(required=False, help="Write the CSV here (mode 0600) instead of stdout.")
@json_option
def dump(
    partition: Path | None,
    device: Path | None,
    label: str,
    keys_file: Path | None,
    hmac_file: Path | None,
    output: Path | None,
    as_json: bool,
) -> None:
    """Print the namespaces and values of an NVS PARTITION as generator CSV (or JSON).

    With --device, the partition is read from a virtual device through its flash
    encryption, with the keys its app would use (nvs_keys partition or HMAC_UP eFuse key)
    unless --keys/--hmac-key is given. With -o, the CSV goes to that file and the report
    (--json) or a status line to standard output.
    """
    if (partition is None) == (device is None):
        raise UsageError("give an NVS PARTITION file or --device DIR (not both)")
    keys = _load_keys(keys_file, hmac_file)
    if device is not None:
        from espsec.device import VirtualDevice
        from espsec.device.nvs import read_device_nvs

        with source(str(device)):
            contents = read_device_nvs(VirtualDevice.open(device), label, keys=keys)
        where = str(device)
    else:
        assert partition is not None
        data = read_bytes(partition, what="NVS partition")
        with source(str(partition)):
            contents = nvs_lib.read_partition(data, keys=keys)
        where = str(partition)
    to_file = output is not None and str(output) != "-"
    with source(where):
        text = (
            nvs_lib.dump_csv(nvs_lib.rows_from_entries(contents.entries))
            if to_file or not as_json
            else ""
        )
    if output is not None and to_file:
        write_output(output, text.encode(), mode=0o600)
        emit(
            {**contents.to_json(), "output": str(output)},
            as_json,
            lambda: click.echo(f"{len(contents.entries)} values written to {output}"),
        )
        return
    emit(contents.to_json(), as_json, lambda: click.echo(text, nl=False))


@group.command("generate-keys")
@_hmac
@output_option(
    "--hmac-key-output",
    "hmac_key_output",
    required=False,
    secret=True,
    help="Create a random HMAC_UP key here (mode 0600) and derive the NVS keys from it.",
)
@output_option(
    help="The nvs_keys partition image to create (mode 0600; never overwrites).", secret=True
)
@json_option
def generate_keys(
    hmac_file: Path | None, hmac_key_output: Path | None, output: Path, as_json: bool
) -> None:
    """Write an nvs_keys partition image.

    Random keys; with --hmac-key, the keys a chip derives from that HMAC_UP eFuse key;
    with --hmac-key-output, a new random HMAC key and the keys derived from it.
    """
    if hmac_file is not None and hmac_key_output is not None:
        raise UsageError("give either --hmac-key (an existing key) or --hmac-key-output, not both")
    if hmac_key_output is not None:
        hmac_key = nvs_lib.generate_hmac_key()
        keys = nvs_lib.NvsKeys.from_hmac_key(hmac_key)
        write_secret(hmac_key_output, hmac_key)
    else:
        keys = _load_keys(None, hmac_file) or nvs_lib.NvsKeys.generate()
    write_secret(output, keys.to_bytes())
    derived_from = hmac_key_output or hmac_file
    how = f"derived from {derived_from}" if derived_from else "random"
    report = {
        "output": str(output),
        "derived_from": str(derived_from) if derived_from else None,
        "hmac_key_output": str(hmac_key_output) if hmac_key_output else None,
    }
    emit(report, as_json, lambda: click.echo(f"NVS keys ({how}) written to {output}"))
