"""The device's identity on the virtual device: esp_secure_cert, DS / ECDSA keys, signing, TLS.

A provisioned device holds:

* an ``esp_secure_cert`` partition (type 0x3F) with its certificate chain and the handle of
  its private key: DS data (ESP32-S3: RSA, unlocked by an ``HMAC_DOWN_DIGITAL_SIGNATURE``
  eFuse key) or a SEC_CFG naming the eFuse block of an ECDSA key (ESP32-P4);
* that key in eFuse, read-protected: software never reads it, only the peripheral uses it.

:func:`provision_identity` does what a factory does with esp-secure-cert-tool and espefuse
(generate the key on the host, burn the eFuse key, issue the certificate, write the
partition, forget the private key). :func:`read_identity` is ``esp_secure_cert_mgr`` on the
device: it finds the partition and tells how to reach the key. :meth:`DeviceIdentity.sign`
signs with whatever the device holds; :meth:`DeviceIdentity.client_key` gives the device's
TLS client its certificate and a handle that unlocks the key only in the peripheral model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from espsec._io import PathLike
from espsec.device.nvs import device_partition
from espsec.device.virtual_device import VirtualDevice
from espsec.efuse import Efuses, Transaction
from espsec.errors import EspsecError, FormatError, UsageError
from espsec.identity import ds as ds_lib
from espsec.identity import secure_cert as sc
from espsec.identity.ecdsa import EcdsaCurve, EcdsaPeripheral, KeyId
from espsec.identity.hmac import HmacPeripheral
from espsec.identity.tls import ClientKey, PrivateKey, chain_of, issue_device_certificate

PARTITION = sc.PARTITION_NAME
DS_PURPOSE = "HMAC_DOWN_DIGITAL_SIGNATURE"
ECDSA_PURPOSE = "ECDSA_KEY"
"""The purpose of a P-256 identity key (other curves: :func:`provision_identity`)."""


class IdentityError(EspsecError):
    """The device has no usable identity, or its key cannot be used."""


@dataclass(frozen=True)
class Signature:
    """A signature made by the device, and how."""

    signature: bytes
    algorithm: str
    """``rsa-pkcs1v15-sha256`` or ``ecdsa-sha256`` / ``ecdsa-sha384`` (DER)."""
    key_source: str

    def verify(self, public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey, data: bytes) -> None:
        """Raise ``InvalidSignature`` unless this signs ``data`` under ``public_key``."""
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(self.signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            algorithm = hashes.SHA384() if self.algorithm.endswith("384") else hashes.SHA256()
            public_key.verify(self.signature, data, ec.ECDSA(algorithm))


@dataclass(frozen=True)
class DeviceIdentity:
    """What ``esp_secure_cert_mgr`` finds on a device, and the eFuses its key lives in."""

    contents: sc.SecureCertContents
    efuses: Efuses

    @property
    def certificate(self) -> x509.Certificate:
        if self.contents.device_cert is None:
            raise IdentityError("the esp_secure_cert partition holds no device certificate")
        return chain_of([self.contents.device_cert])[0]

    @property
    def ca_certificates(self) -> tuple[x509.Certificate, ...]:
        return chain_of(self.contents.ca_certs)

    @property
    def key_source(self) -> str:
        return self.contents.key_source

    def _hmac_up(self) -> tuple[HmacPeripheral, int]:
        peripheral = HmacPeripheral(self.efuses)
        for key_id in range(peripheral.key_count):
            if peripheral.purpose(key_id) == "HMAC_UP":
                return peripheral, key_id
        raise IdentityError("no eFuse key with purpose HMAC_UP for the HMAC-protected key")

    def _ecdsa_curve(self) -> EcdsaCurve:
        public = self.certificate.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise IdentityError("the device certificate is not for an ECDSA key")
        return EcdsaCurve.of(public.curve)

    def _ecdsa_key(self, key_id: int) -> tuple[EcdsaPeripheral, KeyId, EcdsaCurve]:
        """The peripheral, the key's block(s) and its curve (from the certificate): a
        P-384 key is two blocks, the SEC_CFG one holding its high half."""
        curve = self._ecdsa_curve()
        unit = EcdsaPeripheral.of(self.efuses)
        return unit, unit.p384_key_id(key_id) if curve is EcdsaCurve.P384 else key_id, curve

    def _unlock(self) -> PrivateKey:
        """The private key for Python's TLS stack (where the model stops; ADR 0009)."""
        c = self.contents
        if c.ds is not None:
            ds_unit = ds_lib.DsPeripheral.of(HmacPeripheral(self.efuses))
            return ds_unit.key_for_tls(c.ds.data, c.ds.efuse_key_id)
        if c.ecdsa_key_id is not None:
            unit, blocks, curve = self._ecdsa_key(c.ecdsa_key_id)
            return unit.key_for_tls(blocks, curve)
        if c.hmac_encrypted_key is not None:
            peripheral, key_id = self._hmac_up()
            plain = sc.hmac_decrypt(c.hmac_encrypted_key, lambda m: peripheral.calculate(key_id, m))
            return sc.load_stored_private_key(plain)
        if c.hmac_derived_salt is not None:
            peripheral, key_id = self._hmac_up()
            mac = lambda m: peripheral.calculate(key_id, m)  # noqa: E731
            return sc.hmac_derived_ecdsa_key(mac, c.hmac_derived_salt)
        if c.private_key is not None:
            return sc.load_stored_private_key(c.private_key)
        raise IdentityError("the esp_secure_cert partition names no private key")

    def sign(self, data: bytes) -> Signature:
        """Sign ``data`` with the device key: RSA PKCS#1 v1.5 / SHA-256 through the DS
        peripheral, ECDSA through the ECDSA peripheral (SHA-256, SHA-384 for P-384), or the
        key the partition holds."""
        c = self.contents
        if c.ds is not None:
            ds_unit = ds_lib.DsPeripheral.of(HmacPeripheral(self.efuses))
            digest = hashlib.sha256(data).digest()
            signature = ds_unit.sign_pkcs1v15(digest, c.ds.data, c.ds.efuse_key_id, hashes.SHA256())
            return Signature(signature, "rsa-pkcs1v15-sha256", "ds")
        if c.ecdsa_key_id is not None:
            ecdsa_unit, key_id, curve = self._ecdsa_key(c.ecdsa_key_id)
            der = ecdsa_unit.sign_message(key_id, curve, data)
            name = "ecdsa-sha384" if curve is EcdsaCurve.P384 else "ecdsa-sha256"
            return Signature(der, name, "ecdsa-peripheral")
        key = self._unlock()
        if isinstance(key, rsa.RSAPrivateKey):
            sig = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
            return Signature(sig, "rsa-pkcs1v15-sha256", c.key_source)
        return Signature(key.sign(data, ec.ECDSA(hashes.SHA256())), "ecdsa-sha256", c.key_source)

    def client_key(self) -> ClientKey:
        """The device's TLS client identity (certificate, then CA certificates)."""
        return ClientKey((self.certificate,), self._unlock, self.key_source)


def read_identity(dev: VirtualDevice) -> DeviceIdentity:
    """``esp_secure_cert_mgr``: the identity in the device's ``esp_secure_cert`` partition."""
    table = dev.partition_table()
    if table is None or table.find(PARTITION) is None:
        raise IdentityError(
            f"the device's partition table has no {PARTITION!r} partition: not provisioned"
        )
    region = device_partition(dev, PARTITION)
    data = region.read(0, region.size)
    try:
        contents = sc.read_any(data, on_device=True)
    except FormatError as exc:
        if data == b"\xff" * len(data):
            raise IdentityError(f"the {PARTITION} partition is erased: not provisioned") from None
        exc.source = f"{PARTITION} partition"
        raise
    return DeviceIdentity(contents, dev.efuses)


def _free_key_block(efuses: Efuses) -> int:
    for key_id, block in enumerate(efuses.layout.key_blocks):
        if (
            efuses.key_purpose(block) == 0
            and efuses.is_empty(block)
            and not efuses.is_write_protected(block)
            and efuses.key_purpose_writeable(block)
        ):
            return key_id
    raise IdentityError("no free eFuse key block for the device identity key")


def provision_identity(
    dev: VirtualDevice,
    device_id: str,
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    *,
    key_id: int | None = None,
    rsa_bits: int = 2048,
    ca_chain: tuple[x509.Certificate, ...] = (),
    curve: EcdsaCurve = EcdsaCurve.P256,
) -> x509.Certificate:
    """Give ``dev`` an identity for ``device_id``, as a factory line does.

    ESP32-P4 (ECDSA peripheral): an ECDSA key on ``curve`` burned as esp-secure-cert-tool
    burns it (P-256: ``ECDSA_KEY``; P-192: ``ECDSA_KEY_P192`` where the purpose fits;
    P-384, ESP32-P4 v3.0+: ``ECDSA_KEY_P384``, its high half in the chosen block and its
    low half in the next free one). Other chips (DS
    peripheral): an RSA key encrypted as DS data under a random HMAC key burned as
    ``HMAC_DOWN_DIGITAL_SIGNATURE``. Either way the eFuse key is read-protected, the
    certificate is signed by the device CA, the ``esp_secure_cert`` partition is written,
    and the private key is not kept anywhere else. Returns the device certificate.
    """
    table = dev.partition_table()
    if table is None or table.find(PARTITION) is None:
        raise UsageError(
            f"the device's partition table has no {PARTITION!r} partition (type 0x3F): "
            "add one (0x2000 bytes) to provision an identity"
        )
    efuses = dev.efuses
    slot = _free_key_block(efuses) if key_id is None else key_id
    block = efuses.layout.key_blocks[slot].name
    if "ecdsa" in dev.chip.peripherals:
        unit = EcdsaPeripheral.of(efuses)
        unit.require(curve)
        purpose = "ECDSA_KEY_P384" if curve is EcdsaCurve.P384 else unit.purposes_for(curve)[0]
        key = ec.generate_private_key(curve.curve)
        scalar = key.private_numbers().private_value.to_bytes(curve.size, "big")
        cert = issue_device_certificate(ca_cert, ca_key, device_id, key.public_key())
        Transaction().burn_key(block, scalar, purpose).apply(efuses)
        partition = sc.build(
            ca_certs=[c.public_bytes(serialization.Encoding.PEM) for c in ca_chain],
            device_cert=cert.public_bytes(serialization.Encoding.PEM),
            ecdsa_key_id=slot,
        )
    else:
        import secrets

        rsa_key = rsa.generate_private_key(65537, rsa_bits)
        hmac_key = secrets.token_bytes(32)
        data = ds_lib.encrypt(rsa_key, hmac_key, chip=dev.chip.name)
        cert = issue_device_certificate(ca_cert, ca_key, device_id, rsa_key.public_key())
        Transaction().burn_key(block, hmac_key, DS_PURPOSE).apply(efuses)
        partition = sc.build(
            ca_certs=[c.public_bytes(serialization.Encoding.PEM) for c in ca_chain],
            device_cert=cert.public_bytes(serialization.Encoding.PEM),
            ds=sc.DsKey(data, slot),
        )
    _write_partition(dev, partition)
    return cert


def sign_with_device(folder: PathLike, data: bytes) -> Signature:
    """``espsec device sign``: sign ``data`` with the identity of the device in ``folder``."""
    return read_identity(VirtualDevice.open(folder)).sign(data)


def reissue_certificate(
    dev: VirtualDevice, device_id: str, ca_cert: x509.Certificate, ca_key: PrivateKey
) -> x509.Certificate:
    """Certify the key the device already holds under ``device_id`` and rewrite its
    ``esp_secure_cert`` partition (as an esp_secure_cert OTA update would): the eFuse key
    and its handle stay, only the certificate changes."""
    identity = read_identity(dev)
    public = identity.certificate.public_key()
    if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise IdentityError("the device certificate's key is neither RSA nor ECDSA")
    cert = issue_device_certificate(ca_cert, ca_key, device_id, public)
    c = identity.contents
    if c.format != "tlv":
        raise IdentityError(f"cannot rewrite a {c.format} esp_secure_cert partition")
    partition = sc.build(
        ca_certs=c.ca_certs,
        device_cert=cert.public_bytes(serialization.Encoding.PEM),
        private_key=c.private_key,
        ds=c.ds,
        ecdsa_key_id=c.ecdsa_key_id,
        hmac_derived_salt=c.hmac_derived_salt,
    )
    _write_partition(dev, partition)
    return cert


def _write_partition(dev: VirtualDevice, partition: sc.SecureCertPartition) -> None:
    region = device_partition(dev, PARTITION)
    image = partition.to_bytes()
    if len(image) > region.size:
        raise UsageError(f"the identity takes {len(image)} bytes; the partition has {region.size}")
    region.erase_range(0, region.size)
    region.write(0, image + b"\xff" * (-len(image) % 16))
