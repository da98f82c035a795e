"""Secure Boot v2, host side: keys, signature blocks, sign, verify, key digests.

The same code verifies on the host and in the virtual ROM/bootloader.
"""

from espsec.secure_boot.keys import (
    PrivateKey,
    PublicKey,
    generate_private_key,
    load_private_key,
    load_public_key,
    public_key_pem,
    scheme_of,
)
from espsec.secure_boot.sign import (
    ExternalSignature,
    existing_content,
    pad_to_sector,
    sign,
    signing_digest,
    split_signed,
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
from espsec.secure_boot.verify import (
    BlockInfo,
    BlockResult,
    BlockVerdict,
    VerifyReport,
    info,
    key_digest,
    verify,
)

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
