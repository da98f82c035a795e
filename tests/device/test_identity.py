"""The device's identity: provisioning, esp_secure_cert on flash, signing, mutual TLS."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from espsec.cli.main import main
from espsec.device import VirtualDevice
from espsec.device.identity import IdentityError, provision_identity, read_identity
from espsec.errors import EspsecError
from espsec.identity import ds
from espsec.identity import secure_cert as sc
from espsec.identity.cert_bundle import CertBundle
from espsec.identity.ecdsa import EcdsaCurve
from espsec.identity.tls import (
    ClientKey,
    ServerTrust,
    client_context,
    device_id_of,
    generate_device_ca,
)
from espsec.image.partition_table import PartitionTable

TABLE = PartitionTable.from_csv(
    """nvs, data, nvs, 0x9000, 0x4000,
esp_secure_cert, 0x3F, , 0xD000, 0x2000, encrypted
factory, app, factory, 0x10000, 0x30000,
"""
)


@pytest.fixture(scope="module")
def device_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    return generate_device_ca()


@pytest.fixture(scope="module")
def rsa2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


def _device(chip: str) -> VirtualDevice:
    dev = VirtualDevice.new(chip, 1 << 20)
    dev.write_files([(0x8000, TABLE.to_bytes(), "partition table")])
    return dev


@pytest.mark.parametrize(("chip", "source"), [("esp32s3", "ds"), ("esp32p4", "ecdsa-peripheral")])
def test_provisioned_identity_signs_with_its_peripheral(
    device_ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], chip: str, source: str
) -> None:
    dev = _device(chip)
    cert = provision_identity(dev, "dev-42", *device_ca)
    identity = read_identity(dev)
    assert identity.key_source == source and identity.certificate == cert
    assert device_id_of(cert) == "dev-42"
    block = dev.efuses.layout.key_blocks[0]
    assert dev.efuses.is_read_protected(block) and dev.efuses.read_block(block) == bytes(32)
    signature = identity.sign(b"firmware report")
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    signature.verify(public, b"firmware report")
    with pytest.raises(InvalidSignature):
        signature.verify(public, b"another report")


def test_unprovisioned_device_has_no_identity() -> None:
    with pytest.raises(IdentityError, match="erased: not provisioned"):
        read_identity(_device("esp32s3"))
    bare = VirtualDevice.new("esp32s3", 1 << 20)
    with pytest.raises(IdentityError, match="no 'esp_secure_cert' partition"):
        read_identity(bare)


def test_ds_blob_for_another_hmac_key_cannot_sign(
    device_ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], rsa2048: rsa.RSAPrivateKey
) -> None:
    dev = _device("esp32s3")
    provision_identity(dev, "dev-1", *device_ca)
    identity = read_identity(dev)
    assert identity.contents.ds is not None
    foreign = ds.encrypt(rsa2048, bytes(32), chip="esp32s3")
    part = sc.build(
        device_cert=identity.contents.device_cert,
        ds=sc.DsKey(foreign, identity.contents.ds.efuse_key_id),
    )
    from espsec.device.nvs import device_partition

    region = device_partition(dev, "esp_secure_cert")
    region.erase_range(0, region.size)
    region.write(0, part.to_bytes())
    with pytest.raises(ds.DsError, match="INVALID_DIGEST"):
        read_identity(dev).sign(b"x")


def test_device_sign_cli_signature_verifies_with_the_certificate(
    tmp_path: Path, device_ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
) -> None:
    folder = tmp_path / "dev"
    dev = VirtualDevice.create(folder, "esp32p4", 1 << 20)
    dev.write_files([(0x8000, TABLE.to_bytes(), "partition table")])
    cert = provision_identity(dev, "p4-7", *device_ca)
    dev.save()
    data = tmp_path / "msg.bin"
    data.write_bytes(b"rehearsal")
    out = tmp_path / "msg.sig"
    res = CliRunner().invoke(
        main, ["device", "sign", str(folder), str(data), "-o", str(out), "--json"]
    )
    assert res.exit_code == 0, res.output
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(out.read_bytes(), b"rehearsal", ec.ECDSA(hashes.SHA256()))


def test_device_sign_cli_refuses_unprovisioned_device_in_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "dev"
    dev = VirtualDevice.create(folder, "esp32s3", 1 << 20)
    dev.write_files([(0x8000, TABLE.to_bytes(), "partition table")])
    dev.save()
    data = tmp_path / "msg.bin"
    data.write_bytes(b"x")
    out = tmp_path / "sig"
    res = CliRunner().invoke(main, ["device", "sign", str(folder), str(data), "-o", str(out)])
    assert res.exit_code == 1 and not out.exists()
    assert len(res.output.strip().splitlines()) == 1 and "not provisioned" in res.output


# -- mutual TLS, in memory ------------------------------------------------------------------


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, host: str) -> x509.Certificate:
    s_in, s_out, c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    s = server.wrap_bio(s_in, s_out, server_side=True)
    c = client.wrap_bio(c_in, c_out, server_hostname=host)
    done = False
    for _ in range(10):
        for side in (c, s):
            try:
                side.do_handshake()
                done = side is s or done
            except ssl.SSLWantReadError:
                pass
        if c_out.pending:
            s_in.write(c_out.read())
        if s_out.pending:
            c_in.write(s_out.read())
    c.write(b"ping")
    s_in.write(c_out.read())
    assert s.read(4) == b"ping"
    der = s.getpeercert(binary_form=True)
    assert der is not None and done
    return x509.load_der_x509_certificate(der)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    device_ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> tuple[ssl.SSLContext, x509.Certificate]:
    """A TLS server for fleet.example that requires a client certificate from the device CA."""
    from ..identity.pki import cert as make_cert
    from ..identity.pki import ec_key

    root_key, leaf_key = ec_key(), ec_key()
    now = datetime.datetime.now(datetime.UTC)
    root = make_cert("Fleet Root", root_key, ca=True, start=now - datetime.timedelta(days=1))
    leaf = make_cert(
        "fleet.example",
        leaf_key,
        issuer=root,
        issuer_key=root_key,
        dns=("fleet.example",),
        start=now - datetime.timedelta(days=1),
    )
    folder = tmp_path_factory.mktemp("server")
    (folder / "chain.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(folder / "chain.pem", folder / "key.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=device_ca[0].public_bytes(serialization.Encoding.PEM).decode())
    return ctx, root


@pytest.mark.parametrize("chip", ["esp32s3", "esp32p4"])
def test_device_authenticates_with_its_peripheral_key_and_verifies_server_by_bundle(
    chip: str,
    device_ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    server: tuple[ssl.SSLContext, x509.Certificate],
) -> None:
    dev = _device(chip)
    cert = provision_identity(dev, f"{chip}-9", *device_ca)
    server_ctx, root = server
    trust = ServerTrust(bundle=CertBundle.from_certificates([root]))
    client = client_context(trust, read_identity(dev).client_key())
    seen = _handshake(server_ctx, client, "fleet.example")
    assert seen == cert and device_id_of(seen) == f"{chip}-9"


def test_device_refuses_server_outside_its_bundle(
    device_ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    server: tuple[ssl.SSLContext, x509.Certificate],
) -> None:
    from ..identity.pki import cert as make_cert
    from ..identity.pki import ec_key

    dev = _device("esp32p4")
    provision_identity(dev, "p4", *device_ca)
    impostor = make_cert("Fleet Root", ec_key(), ca=True)  # same name, another key
    trust = ServerTrust(bundle=CertBundle.from_certificates([impostor]))
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(
            server[0], client_context(trust, read_identity(dev).client_key()), "fleet.example"
        )


def test_skip_server_cert_verify_is_modelled_and_flagged(
    server: tuple[ssl.SSLContext, x509.Certificate],
    device_ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    dev = _device("esp32p4")
    provision_identity(dev, "p4", *device_ca)
    trust = ServerTrust(skip_verify=True)
    assert trust.findings and "ESP_TLS_SKIP_SERVER_CERT_VERIFY" in trust.findings[0]
    ctx = client_context(trust, read_identity(dev).client_key())
    assert ctx.verify_mode == ssl.CERT_NONE
    _handshake(server[0], ctx, "anything.example")


def test_client_identity_refuses_a_certificate_for_another_key(
    device_ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    dev = _device("esp32p4")
    provision_identity(dev, "p4", *device_ca)
    other = _device("esp32p4")
    other_cert = provision_identity(other, "p4b", *device_ca)
    key = read_identity(dev).client_key()
    mixed = ClientKey((other_cert,), key.unlock, key.source)
    with pytest.raises(EspsecError, match="not for the key"):
        client_context(ServerTrust(skip_verify=True), mixed)


def test_device_sign_with_a_ds_blob_for_another_hmac_key_is_one_line_and_writes_nothing(
    tmp_path: Path,
    device_ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    rsa2048: rsa.RSAPrivateKey,
) -> None:
    from espsec.device.nvs import device_partition

    folder = tmp_path / "dev"
    dev = VirtualDevice.create(folder, "esp32s3", 1 << 20)
    dev.write_files([(0x8000, TABLE.to_bytes(), "partition table")])
    provision_identity(dev, "s3-1", *device_ca)
    identity = read_identity(dev)
    assert identity.contents.ds is not None
    foreign = ds.encrypt(rsa2048, bytes(range(32)), chip="esp32s3")
    part = sc.build(
        device_cert=identity.contents.device_cert,
        ds=sc.DsKey(foreign, identity.contents.ds.efuse_key_id),
    )
    region = device_partition(dev, "esp_secure_cert")
    region.erase_range(0, region.size)
    region.write(0, part.to_bytes())
    dev.save()
    data = tmp_path / "msg.bin"
    data.write_bytes(b"x")
    out = tmp_path / "sig"
    res = CliRunner().invoke(main, ["device", "sign", str(folder), str(data), "-o", str(out)])
    assert res.exit_code == 1 and not out.exists()
    assert res.output.count("\n") == 1 and "ESP_ERR_HW_CRYPTO_DS_INVALID_DIGEST" in res.output


def test_p384_identity_on_p4_v3_is_two_read_protected_key_blocks_and_signs_via_cli(
    tmp_path: Path, device_ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
) -> None:
    ca_cert, ca_key = device_ca
    (tmp_path / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ca.key").write_bytes(
        ca_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    folder = tmp_path / "dev"
    runner = CliRunner()
    res = runner.invoke(
        main, ["device", "create", "--chip", "esp32p4", "--revision", "v3.1", str(folder)]
    )
    assert res.exit_code == 0, res.output
    dev = VirtualDevice.open(folder)
    dev.write_files([(0x8000, TABLE.to_bytes(), "partition table")])
    dev.save()
    res = runner.invoke(
        main,
        [
            "device", "provision-identity", str(folder), "--device-id", "p4-384",
            "--ca", str(tmp_path / "ca.pem"), "--ca-key", str(tmp_path / "ca.key"),
            "--key-block", "BLOCK_KEY2", "--curve", "P-384",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    dev = VirtualDevice.open(folder)
    layout = dev.efuses.layout
    names = [layout.purpose_name(dev.efuses.key_purpose(b)) for b in layout.key_blocks]
    assert names[2:4] == ["ECDSA_KEY_P384_H", "ECDSA_KEY_P384_L"]
    assert dev.efuses.read_block("BLOCK_KEY2") == dev.efuses.read_block("BLOCK_KEY3") == bytes(32)
    identity = read_identity(dev)
    assert identity.contents.ecdsa_key_id == 2  # SEC_CFG names the block burn-key was given
    public = identity.certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp384r1"
    data, out = tmp_path / "msg.bin", tmp_path / "msg.sig"
    data.write_bytes(b"rehearsal")
    res = runner.invoke(main, ["device", "sign", str(folder), str(data), "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    public.verify(out.read_bytes(), b"rehearsal", ec.ECDSA(hashes.SHA384()))
    with pytest.raises(InvalidSignature):
        public.verify(out.read_bytes(), b"rehearsaL", ec.ECDSA(hashes.SHA384()))


def test_p384_identity_is_refused_on_a_p4_before_v3_and_burns_nothing(
    device_ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    dev = VirtualDevice.new("esp32p4", 1 << 20, revision=100)
    dev.write_files([(0x8000, TABLE.to_bytes(), "partition table")])
    before = dev.efuses.copy()
    with pytest.raises(EspsecError, match=r"P-384 needs .* v1\.0 cannot hold them"):
        provision_identity(dev, "p4-old", *device_ca, curve=EcdsaCurve.P384)
    assert dev.efuses == before
