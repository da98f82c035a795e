"""``espsec secure-cert``: generate and inspect ``esp_secure_cert`` partitions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from espsec._io import read_bytes, write_output
from espsec.chips import DEFAULT_CHIP
from espsec.cli._common import (
    INPUT,
    chip_option,
    command_group,
    emit,
    json_option,
    note,
    output_option,
    source,
)
from espsec.cli.ds import DS_CHIPS
from espsec.errors import UsageError

group = command_group(
    "secure-cert",
    "esp_secure_cert partitions (TLV format; legacy cust_flash and NVS formats read).",
)


def _checked(path: Path | None, what: str, check: Callable[..., bytes]) -> bytes | None:
    """Read an input and check it parses (one-line error naming the file if not)."""
    if path is None:
        return None
    data = read_bytes(path, what=what)
    with source(str(path)):
        check(data, source=str(path))
    return data


def _user_data(values: tuple[str, ...]) -> list[tuple[int, bytes]]:
    out = []
    for value in values:
        slot, sep, path = value.partition("=")
        if not sep or not slot.isdigit() or not 1 <= int(slot) <= 5:
            raise UsageError(f"--user-data takes N=FILE with N in 1..5, found {value!r}")
        out.append((int(slot), read_bytes(path, what="user data file")))
    return out


@group.command("generate")
@click.option(
    "--ca-cert", "ca_certs", type=INPUT, multiple=True, help="CA certificate (repeatable)."
)
@click.option("--device-cert", type=INPUT, help="Device certificate (PEM or DER).")
@click.option("--private-key", type=INPUT, help="Private key stored in the partition.")
@click.option("--ds-key", type=INPUT, help="RSA key to keep in the DS peripheral instead.")
@click.option("--hmac-key", "hmac_key_file", type=INPUT, help="32-byte HMAC key file.")
@click.option("--efuse-key-id", type=click.IntRange(0, 5), help="Key block of the HMAC/ECDSA key.")
@click.option(
    "--ecdsa-peripheral", is_flag=True, help="The ECDSA key is in eFuse (--efuse-key-id)."
)
@click.option(
    "--hmac-encrypt", is_flag=True, help="Encrypt --private-key under the HMAC_UP --hmac-key."
)
@click.option(
    "--hmac-derived", is_flag=True, help="The device derives a P-256 key from its HMAC_UP key."
)
@click.option("--iv", help="DS IV, 32 hex digits (default: random).")
@chip_option(chips=DS_CHIPS, default=DEFAULT_CHIP)
@click.option("--user-data", "user_data", multiple=True, help="N=FILE for USER_DATA_N (1..5).")
@click.option("--no-integrity", is_flag=True, help="Leave out the integrity TLV.")
@output_option(
    "--pub-key-output",
    "pub_key_output",
    required=False,
    help="With --hmac-derived: write the derived public key (PEM).",
)
@output_option(help="The partition image to write ('-': standard output).")
@json_option
def generate(
    ca_certs: tuple[Path, ...],
    device_cert: Path | None,
    private_key: Path | None,
    ds_key: Path | None,
    hmac_key_file: Path | None,
    efuse_key_id: int | None,
    ecdsa_peripheral: bool,
    hmac_encrypt: bool,
    hmac_derived: bool,
    iv: str | None,
    chip: str,
    user_data: tuple[str, ...],
    no_integrity: bool,
    pub_key_output: Path | None,
    output: Path,
    as_json: bool,
) -> None:
    """Generate an esp_secure_cert partition (as esp-secure-cert-tool 2.6.1 lays it out).

    --chip fixes the DS size of --ds-key.
    """
    import secrets

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from espsec._pem import RSA, load_private_key
    from espsec.cli.ds import parse_iv, read_hmac_key
    from espsec.identity import ds as ds_lib
    from espsec.identity import secure_cert as sc
    from espsec.identity.hmac import hmac_sha256

    sources = [private_key is not None and not hmac_encrypt, ds_key is not None, ecdsa_peripheral]
    sources += [hmac_derived, hmac_encrypt]
    if sum(sources) > 1:
        raise UsageError(
            "choose one key: --private-key, --private-key with --hmac-encrypt, --ds-key, "
            "--ecdsa-peripheral or --hmac-derived"
        )
    if hmac_encrypt and private_key is None:
        raise UsageError("--hmac-encrypt encrypts --private-key: give one")
    if (ds_key is not None or ecdsa_peripheral) and efuse_key_id is None:
        raise UsageError("--ds-key and --ecdsa-peripheral need --efuse-key-id")
    needs_hmac = ds_key is not None or hmac_encrypt or hmac_derived
    if needs_hmac and hmac_key_file is None:
        raise UsageError("--ds-key, --hmac-encrypt and --hmac-derived need --hmac-key")
    if pub_key_output is not None and not hmac_derived:
        raise UsageError("--pub-key-output goes with --hmac-derived")
    hmac_key = read_hmac_key(hmac_key_file) if hmac_key_file is not None else None
    ca = [_checked(p, "CA certificate", sc.encode_certificate) for p in ca_certs]
    dev = _checked(device_cert, "device certificate", sc.encode_certificate)
    key_data = _checked(private_key, "private key", sc.encode_private_key)
    ds = None
    if ds_key is not None and hmac_key is not None and efuse_key_id is not None:
        with source(str(ds_key)):
            rsa_key = load_private_key(read_bytes(ds_key, what="key file"), kinds=[RSA])
        if not isinstance(rsa_key, rsa.RSAPrivateKey):  # pragma: no cover - kinds=[RSA]
            raise UsageError("the DS peripheral signs with RSA keys only")
        data = ds_lib.encrypt(rsa_key, hmac_key, iv=parse_iv(iv), chip=chip)
        ds = sc.DsKey(data, efuse_key_id)
    mac = None
    if hmac_key is not None and (hmac_encrypt or hmac_derived):
        key = hmac_key
        mac = lambda message: hmac_sha256(key, message)  # noqa: E731
    salt = secrets.token_bytes(32) if hmac_derived else None
    extra = _user_data(user_data)
    partition = sc.build(
        ca_certs=[c for c in ca if c is not None],
        device_cert=dev,
        private_key=key_data,
        ds=ds,
        ecdsa_key_id=efuse_key_id if ecdsa_peripheral else None,
        hmac_encrypt_key=mac if hmac_encrypt else None,
        hmac_derived_salt=salt,
        user_data=extra,
        integrity=not no_integrity,
    )
    if pub_key_output is not None and mac is not None and salt is not None:
        derived = sc.hmac_derived_ecdsa_key(mac, salt).public_key()
        pem = derived.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        write_output(pub_key_output, pem)
    write_output(output, partition.to_bytes())
    size = len(partition.to_bytes())
    report = {
        "output": str(output),
        "entries": len(partition.entries),
        "size": size,
        "pub_key_output": str(pub_key_output) if pub_key_output else None,
    }
    emit(
        report,
        as_json,
        lambda: note(f"{len(partition.entries)} TLV(s), {size} bytes -> {output}", output),
    )


@group.command("dump")
@json_option
@click.argument("partition", type=INPUT)
def dump(as_json: bool, partition: Path) -> None:
    """List what PARTITION holds (never private key bytes)."""
    from espsec.identity import secure_cert as sc

    with source(str(partition)):
        data = read_bytes(partition, what="partition image")
        if data[:4] == sc.MAGIC.to_bytes(4, "little"):
            parsed = sc.SecureCertPartition.parse(data)
            entries = [sc.describe_tlv(t) for t in parsed.entries]
            found = sc.contents(parsed)
        else:
            found = sc.read_any(data)
            entries = _legacy_entries(found)
    report = {"format": found.format, "key_source": found.key_source, "entries": entries}

    def render() -> None:
        click.echo(f"{partition}: {found.format} format, private key: {found.key_source}")
        for e in entries:
            flags = f" flags={','.join(e['flag_names'])}" if e.get("flag_names") else ""  # type: ignore[arg-type]
            sub = e.get("subtype", 0)
            click.echo(f"  {e['name']} [{sub}] {e['length']} bytes{flags}")
            for k in (
                "subject",
                "issuer",
                "not_after",
                "key",
                "warning",
                "rsa_bits",
                "efuse_key_id",
                "efuse_block",
                "algorithm",
                "sha256",
                "error",
            ):
                if k in e:
                    click.echo(f"      {k}: {e[k]}")

    emit(report, as_json, render)


def _legacy_entries(found: object) -> list[dict[str, object]]:
    from espsec.identity import secure_cert as sc

    assert isinstance(found, sc.SecureCertContents)
    out: list[dict[str, object]] = []
    for i, ca in enumerate(found.ca_certs):
        out.append(sc.describe_tlv(sc.Tlv(sc.TlvType.CA_CERT, i, ca)))
    if found.device_cert is not None:
        out.append(sc.describe_tlv(sc.Tlv(sc.TlvType.DEV_CERT, 0, found.device_cert)))
    if found.private_key is not None:
        out.append(sc.describe_tlv(sc.Tlv(sc.TlvType.PRIV_KEY, 0, found.private_key)))
    if found.ds is not None:
        out.append(sc.describe_tlv(sc.Tlv(sc.TlvType.DS_DATA, 0, found.ds.data.to_bytes())))
        ctx = sc.DsContext(found.ds.efuse_key_id, found.ds.data.bits)
        out.append(sc.describe_tlv(sc.Tlv(sc.TlvType.DS_CONTEXT, 0, ctx.to_bytes())))
    return out
