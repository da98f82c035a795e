"""``espsec nvs``: generate, encrypt, decrypt and dump NVS partitions; NVS keys."""

from __future__ import annotations

from pathlib import Path

import click

from espsec import nvs as nvs_lib
from espsec._io import read_bytes, write_atomic, write_secret
from espsec.cli._common import INT, emit, json_option, source
from espsec.errors import UsageError

group = click.Group("nvs", help="NVS partitions: generate, encrypt, decrypt, dump; NVS keys.")

_path = click.Path(dir_okay=False, path_type=Path)
_size = click.option(
    "--size", type=INT, required=True, help="Partition size in bytes (multiple of 0x1000)."
)
_version = click.option(
    "--version",
    type=click.Choice(["1", "2"]),
    default="2",
    show_default=True,
    help="1: blobs in one page (max 1984 bytes); 2: multi-page blobs.",
)
_keys = click.option(
    "--keys", "keys_file", type=_path, help="nvs_keys partition image (from generate-keys)."
)
_hmac = click.option(
    "--hmac-key", "hmac_file", type=_path, help="HMAC_UP eFuse key the chip derives keys from."
)
_wifi = click.option(
    "--no-wifi-extras",
    is_flag=True,
    help="Do not add the Wi-Fi keys esp-idf-nvs-partition-gen adds for sta.*/ap.* rows.",
)
_base = click.option(
    "--base-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder that 'file' rows are relative to (default: the current directory).",
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
    image = nvs_lib.generate_csv_file(
        csv_file,
        size,
        version=int(version),
        keys=keys,
        base_dir=base_dir,
        wifi_extras=not no_wifi_extras,
    )
    write_atomic(output, image)
    report = {
        "output": str(output),
        "size": size,
        "image_size": len(image),
        "version": int(version),
        "encrypted": keys is not None,
    }
    what = "encrypted NVS partition" if keys else "NVS partition"
    emit(report, as_json, lambda: click.echo(f"{what} written to {output}"))


@group.command("generate")
@click.argument("csv_file", metavar="CSV", type=_path)
@click.argument("output", metavar="OUT", type=_path)
@_size
@_version
@_wifi
@_base
@json_option
def generate(
    csv_file: Path,
    output: Path,
    size: int,
    version: str,
    no_wifi_extras: bool,
    base_dir: Path | None,
    as_json: bool,
) -> None:
    """Generate a plain NVS partition OUT from a nvs_partition_gen CSV."""
    _generate(csv_file, output, size, version, None, no_wifi_extras, base_dir, as_json)


@group.command("encrypt")
@click.argument("csv_file", metavar="CSV", type=_path)
@click.argument("output", metavar="OUT", type=_path)
@_size
@_version
@_keys
@_hmac
@_wifi
@_base
@json_option
def encrypt(
    csv_file: Path,
    output: Path,
    size: int,
    version: str,
    keys_file: Path | None,
    hmac_file: Path | None,
    no_wifi_extras: bool,
    base_dir: Path | None,
    as_json: bool,
) -> None:
    """Generate an encrypted NVS partition OUT from a CSV (--keys or --hmac-key)."""
    keys = _load_keys(keys_file, hmac_file)
    if keys is None:
        raise UsageError("encrypt needs --keys KEYS.bin or --hmac-key HMAC.bin")
    _generate(csv_file, output, size, version, keys, no_wifi_extras, base_dir, as_json)


@group.command("decrypt")
@click.argument("partition", type=_path)
@click.argument("output", metavar="OUT", type=_path)
@_keys
@_hmac
def decrypt(partition: Path, output: Path, keys_file: Path | None, hmac_file: Path | None) -> None:
    """Decrypt an encrypted NVS PARTITION image into a plain one (mode 0600)."""
    keys = _load_keys(keys_file, hmac_file)
    if keys is None:
        raise UsageError("decrypt needs --keys KEYS.bin or --hmac-key HMAC.bin")
    data = read_bytes(partition, what="NVS partition")
    with source(str(partition)):
        nvs_lib.read_partition(data, keys=keys)  # refuse wrong keys before writing
        plain = nvs_lib.decrypt_partition(data, keys)
    write_atomic(output, plain, mode=0o600)
    click.echo(f"decrypted NVS partition written to {output}")


@group.command("dump")
@click.argument("partition", type=_path, required=False)
@click.option(
    "--device",
    type=click.Path(file_okay=False, path_type=Path),
    help="Read the partition from this virtual device instead, as its app reads it.",
)
@click.option(
    "--name", "label", default="nvs", show_default=True, help="Partition label (--device)."
)
@_keys
@_hmac
@click.option("-o", "--output", type=_path, help="Write the CSV here instead of stdout.")
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
    unless --keys/--hmac-key is given.
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
    with source(where):
        text = "" if as_json else nvs_lib.dump_csv(nvs_lib.rows_from_entries(contents.entries))
    if output is not None and not as_json:
        write_atomic(output, text.encode(), mode=0o600)
        click.echo(f"{len(contents.entries)} values written to {output}")
        return
    emit(contents.to_json(), as_json, lambda: click.echo(text, nl=False))


@group.command("generate-keys")
@click.argument("output", metavar="OUT", type=_path)
@_hmac
@click.option("--new-hmac-key", is_flag=True, help="Create a random HMAC key at --hmac-key first.")
def generate_keys(output: Path, hmac_file: Path | None, new_hmac_key: bool) -> None:
    """Write an nvs_keys partition image OUT (mode 0600; never overwrites).

    Random keys, or with --hmac-key the keys a chip derives from that HMAC_UP eFuse key.
    """
    if new_hmac_key:
        if hmac_file is None:
            raise UsageError("--new-hmac-key needs --hmac-key PATH to write the key to")
        if output.exists():
            raise UsageError("refusing to overwrite an existing file", source=str(output))
        write_secret(hmac_file, nvs_lib.generate_hmac_key())
    keys = _load_keys(None, hmac_file) or nvs_lib.NvsKeys.generate()
    write_secret(output, keys.to_bytes())
    how = f"derived from {hmac_file}" if hmac_file else "random"
    click.echo(f"NVS keys ({how}) written to {output}")
