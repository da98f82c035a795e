"""Secure Boot v2, host side: keys, signature blocks, sign, verify, key digests.

The same code verifies on the host and in the virtual ROM/bootloader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from espsec._lazy import lazy_exports

if TYPE_CHECKING:
    from espsec.secure_boot.crypto import key_digest
    from espsec.secure_boot.keys import (
        PrivateKey,
        PublicKey,
        generate_private_key,
        load_private_key,
        load_public_key,
        public_key_pem,
        scheme_of,
    )
    from espsec.secure_boot.signature_block import (
        BLOCK_SIZE,
        MAX_BLOCKS,
        SECTOR_SIZE,
        SignatureBlock,
        SlotState,
        build_sector,
        read_sector,
    )
    from espsec.secure_boot.signer import KeySigner, Signer
    from espsec.secure_boot.signing import (
        ExternalSignature,
        existing_content,
        pad_to_sector,
        sign,
        signing_digest,
        split_signed,
    )
    from espsec.secure_boot.verification import (
        BlockInfo,
        BlockResult,
        BlockVerdict,
        VerifyReport,
        info,
        verify,
    )

_LAZY = {
    "BLOCK_SIZE": "espsec.secure_boot.signature_block",
    "BlockInfo": "espsec.secure_boot.verification",
    "BlockResult": "espsec.secure_boot.verification",
    "BlockVerdict": "espsec.secure_boot.verification",
    "ExternalSignature": "espsec.secure_boot.signing",
    "KeySigner": "espsec.secure_boot.signer",
    "MAX_BLOCKS": "espsec.secure_boot.signature_block",
    "PrivateKey": "espsec.secure_boot.keys",
    "PublicKey": "espsec.secure_boot.keys",
    "SECTOR_SIZE": "espsec.secure_boot.signature_block",
    "SignatureBlock": "espsec.secure_boot.signature_block",
    "Signer": "espsec.secure_boot.signer",
    "SlotState": "espsec.secure_boot.signature_block",
    "VerifyReport": "espsec.secure_boot.verification",
    "build_sector": "espsec.secure_boot.signature_block",
    "existing_content": "espsec.secure_boot.signing",
    "generate_private_key": "espsec.secure_boot.keys",
    "info": "espsec.secure_boot.verification",
    "key_digest": "espsec.secure_boot.crypto",
    "load_private_key": "espsec.secure_boot.keys",
    "load_public_key": "espsec.secure_boot.keys",
    "pad_to_sector": "espsec.secure_boot.signing",
    "public_key_pem": "espsec.secure_boot.keys",
    "read_sector": "espsec.secure_boot.signature_block",
    "scheme_of": "espsec.secure_boot.keys",
    "sign": "espsec.secure_boot.signing",
    "signing_digest": "espsec.secure_boot.signing",
    "split_signed": "espsec.secure_boot.signing",
    "verify": "espsec.secure_boot.verification",
}
"""Where each public name lives, loaded on first use: ``espsec secure-boot key-digest``
loads the key and digest code only, not the image parser or the signer."""


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "BLOCK_SIZE",
    "MAX_BLOCKS",
    "SECTOR_SIZE",
    "BlockInfo",
    "BlockResult",
    "BlockVerdict",
    "ExternalSignature",
    "KeySigner",
    "PrivateKey",
    "PublicKey",
    "SignatureBlock",
    "Signer",
    "SlotState",
    "VerifyReport",
    "build_sector",
    "existing_content",
    "generate_private_key",
    "info",
    "key_digest",
    "load_private_key",
    "load_public_key",
    "pad_to_sector",
    "public_key_pem",
    "read_sector",
    "scheme_of",
    "sign",
    "signing_digest",
    "split_signed",
    "verify",
]
