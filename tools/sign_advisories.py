"""Sign the advisory database: ``src/espsec/audit/data/advisories.json.sig``.

The signature is detached, Ed25519 over the file's exact bytes, base64 on one line
(:func:`espsec.audit.advisories.sign`). Only a key whose public half is pinned in
``espsec.audit.advisories.PINNED_KEYS`` makes a database espsec will use; the key that
signed the shipped database was destroyed after signing
(``docs/adr/0011-signed-advisory-database.md``), so a new database needs a new key pinned
in a new release. The private key never enters the repository.

Usage: ``.venv/bin/python tools/sign_advisories.py KEY.pem [DATABASE]``; with
``--new-key KEY.pem`` it first creates the key (0600) and prints the public key to pin.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from espsec.audit.advisories import SIGNATURE_SUFFIX, sign

DEFAULT = Path(__file__).resolve().parent.parent / "src/espsec/audit/data/advisories.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("key", type=Path, help="Ed25519 private key (PEM, PKCS#8)")
    parser.add_argument("database", type=Path, nargs="?", default=DEFAULT)
    parser.add_argument("--new-key", action="store_true", help="create the key first")
    args = parser.parse_args()
    if args.new_key:
        fd = os.open(args.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(
                Ed25519PrivateKey.generate().private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
    key = serialization.load_pem_private_key(args.key.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SystemExit(f"{args.key}: not an Ed25519 private key")
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    out = Path(str(args.database) + SIGNATURE_SUFFIX)
    out.write_bytes(sign(args.database.read_bytes(), key))
    print(f"wrote {out}; public key to pin: {public.hex()}")


if __name__ == "__main__":
    main()
