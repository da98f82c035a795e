"""Secure OTA: pre-encrypted images, release bundles, signed manifests, the HTTPS client.

For a device's OTA client (no device knowledge here):

* :class:`ManifestTrust` / :func:`verify_manifest` — is this answer to my check-in
  authentic, fresh, for me, and no downgrade?
* :mod:`espsec.ota.protocol` — the wire messages both sides share: :class:`CheckIn`,
  :class:`ReleaseTarget`, :class:`OutcomeReport`, :class:`Outcome`, :class:`BootState`;
* :class:`FleetClient` — check in, download with ``Range`` resume, report, over HTTPS
  with a CA bundle or a pinned certificate (:class:`TlsTrust`);
* :class:`EncryptedImageDecryptor` — decrypt ``esp_encrypted_img`` as it streams in;
  nothing is authentic before :meth:`~EncryptedImageDecryptor.finish`.

For release engineers: :func:`encrypt_image`, :func:`decrypt_image`,
:func:`device_public_key`, :func:`pack`, :func:`verify_release`, :func:`describe`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from espsec._lazy import lazy_exports

if TYPE_CHECKING:
    from espsec.ota.client import (
        DownloadResult,
        DownloadTooSlow,
        FleetClient,
        HashMismatch,
        HttpError,
        TlsTrust,
        TransportError,
    )
    from espsec.ota.encrypted_image import (
        DecryptionKey,
        DecryptResult,
        EncryptedImageDecryptor,
        EncryptedImageHeader,
        RecipientKey,
        Scheme,
        decrypt_image,
        device_private_key,
        device_public_key,
        encrypt_image,
        load_decryption_key,
        load_recipient_key,
        public_key_pem,
        recipient_id,
    )
    from espsec.ota.inspect import describe
    from espsec.ota.manifest import (
        Manifest,
        ManifestError,
        ManifestTrust,
        Refusal,
        generate_manifest_key,
        load_manifest_private_key,
        load_manifest_public_key,
        new_nonce,
        sign_manifest,
        verify_manifest,
    )
    from espsec.ota.protocol import (
        BootState,
        CheckIn,
        Encryption,
        Outcome,
        OutcomeReport,
        ReleaseTarget,
    )
    from espsec.ota.release import (
        ReleaseBundle,
        ReleaseReport,
        ReleaseStatement,
        pack,
        verify_release,
    )

_LAZY = {
    "BootState": "espsec.ota.protocol",
    "CheckIn": "espsec.ota.protocol",
    "DecryptResult": "espsec.ota.encrypted_image",
    "DecryptionKey": "espsec.ota.encrypted_image",
    "DownloadResult": "espsec.ota.client",
    "DownloadTooSlow": "espsec.ota.client",
    "EncryptedImageDecryptor": "espsec.ota.encrypted_image",
    "EncryptedImageHeader": "espsec.ota.encrypted_image",
    "Encryption": "espsec.ota.protocol",
    "FleetClient": "espsec.ota.client",
    "HashMismatch": "espsec.ota.client",
    "HttpError": "espsec.ota.client",
    "Manifest": "espsec.ota.manifest",
    "ManifestError": "espsec.ota.manifest",
    "ManifestTrust": "espsec.ota.manifest",
    "Outcome": "espsec.ota.protocol",
    "OutcomeReport": "espsec.ota.protocol",
    "RecipientKey": "espsec.ota.encrypted_image",
    "Refusal": "espsec.ota.manifest",
    "ReleaseBundle": "espsec.ota.release",
    "ReleaseReport": "espsec.ota.release",
    "ReleaseStatement": "espsec.ota.release",
    "ReleaseTarget": "espsec.ota.protocol",
    "Scheme": "espsec.ota.encrypted_image",
    "TlsTrust": "espsec.ota.client",
    "TransportError": "espsec.ota.client",
    "decrypt_image": "espsec.ota.encrypted_image",
    "describe": "espsec.ota.inspect",
    "device_private_key": "espsec.ota.encrypted_image",
    "device_public_key": "espsec.ota.encrypted_image",
    "encrypt_image": "espsec.ota.encrypted_image",
    "generate_manifest_key": "espsec.ota.manifest",
    "load_decryption_key": "espsec.ota.encrypted_image",
    "load_manifest_private_key": "espsec.ota.manifest",
    "load_manifest_public_key": "espsec.ota.manifest",
    "load_recipient_key": "espsec.ota.encrypted_image",
    "new_nonce": "espsec.ota.manifest",
    "pack": "espsec.ota.release",
    "public_key_pem": "espsec.ota.encrypted_image",
    "recipient_id": "espsec.ota.encrypted_image",
    "sign_manifest": "espsec.ota.manifest",
    "verify_manifest": "espsec.ota.manifest",
    "verify_release": "espsec.ota.release",
}
"""Where each public name lives, loaded on first use: packing a release loads no HTTPS client,
checking in loads no release packer."""


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "BootState",
    "CheckIn",
    "DecryptResult",
    "DecryptionKey",
    "DownloadResult",
    "DownloadTooSlow",
    "EncryptedImageDecryptor",
    "EncryptedImageHeader",
    "Encryption",
    "FleetClient",
    "HashMismatch",
    "HttpError",
    "Manifest",
    "ManifestError",
    "ManifestTrust",
    "Outcome",
    "OutcomeReport",
    "RecipientKey",
    "Refusal",
    "ReleaseBundle",
    "ReleaseReport",
    "ReleaseStatement",
    "ReleaseTarget",
    "Scheme",
    "TlsTrust",
    "TransportError",
    "decrypt_image",
    "describe",
    "device_private_key",
    "device_public_key",
    "encrypt_image",
    "generate_manifest_key",
    "load_decryption_key",
    "load_manifest_private_key",
    "load_manifest_public_key",
    "load_recipient_key",
    "new_nonce",
    "pack",
    "public_key_pem",
    "recipient_id",
    "sign_manifest",
    "verify_manifest",
    "verify_release",
]
