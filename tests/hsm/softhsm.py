"""A SoftHSM2 token in a temporary folder, for tests of everything that signs in an HSM.

`make test` installs SoftHSM2 and OpenSC from Debian's packages; the token is made with
``softhsm2-util --init-token`` and keys are imported (so their PEM twins can check the
signatures) or generated inside the token with python-pkcs11.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
)
LABEL = "espsec-test"
PIN = "4711-test"
SO_PIN = "so-0815-test"


def module() -> str:
    """The SoftHSM2 PKCS#11 module installed on this machine."""
    for path in MODULE_CANDIDATES:
        if Path(path).is_file():
            return path
    raise RuntimeError(
        "SoftHSM2 is not installed (make test installs Debian's softhsm2 package); "
        f"looked for {', '.join(MODULE_CANDIDATES)}"
    )


@dataclass
class SoftHsm:
    """One initialised token; :meth:`uri` names a key in it (PIN from a file)."""

    folder: Path
    module: str
    label: str = LABEL
    pin_file: Path = field(init=False)
    next_id: int = 1

    def __post_init__(self) -> None:
        self.pin_file = self.folder / "pin.txt"

    def uri(self, obj: str, kind: str = "private", *, pin: bool = True) -> str:
        query = f"module-path={self.module}"
        if pin:
            query += f"&pin-source=file:{self.pin_file}"
        return f"pkcs11:token={self.label};object={obj};type={kind}?{query}"

    def session(self):  # type: ignore[no-untyped-def]
        import pkcs11

        return pkcs11.lib(self.module).get_token(token_label=self.label).open(user_pin=PIN, rw=True)

    def import_key(self, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, label: str) -> None:
        """Put ``key`` (and its public half) in the token under ``label``."""
        from pkcs11 import Attribute
        from pkcs11.util.ec import decode_ec_private_key, decode_ec_public_key
        from pkcs11.util.rsa import decode_rsa_private_key, decode_rsa_public_key

        key_id = self.next_id.to_bytes(2, "big")
        self.next_id += 1
        if isinstance(key, rsa.RSAPrivateKey):
            priv = decode_rsa_private_key(
                key.private_bytes(
                    serialization.Encoding.DER,
                    serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption(),
                )
            )
            pub = decode_rsa_public_key(
                key.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.PKCS1
                )
            )
        else:
            priv = decode_ec_private_key(
                key.private_bytes(
                    serialization.Encoding.DER,
                    serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption(),
                )
            )
            pub = decode_ec_public_key(
                key.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
        common = {Attribute.TOKEN: True, Attribute.LABEL: label, Attribute.ID: key_id}
        with self.session() as session:
            session.create_object({**priv, **common, Attribute.SENSITIVE: True})
            session.create_object({**pub, **common})

    def generate_ec(self, curve: str, label: str) -> None:
        """Generate an EC key pair inside the token (the private half never leaves it)."""
        from pkcs11 import Attribute, KeyType
        from pkcs11.util.ec import encode_named_curve_parameters

        key_id = self.next_id.to_bytes(2, "big")
        self.next_id += 1
        with self.session() as session:
            params = session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(curve)}, local=True
            )
            params.generate_keypair(store=True, label=label, id=key_id)


def make_token(folder: Path) -> SoftHsm:
    """Initialise a fresh token under ``folder`` and point SOFTHSM2_CONF at it.

    SoftHSM2 reads its configuration when the module is first initialised in a process,
    so one token serves a whole test session (one per xdist worker).
    """
    if shutil.which("softhsm2-util") is None:
        raise RuntimeError("softhsm2-util not found: make test installs Debian's softhsm2")
    tokens = folder / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = folder / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
        "log.level = ERROR\nslots.removable = false\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            LABEL,
            "--pin",
            PIN,
            "--so-pin",
            SO_PIN,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    hsm = SoftHsm(folder, module())
    hsm.pin_file.write_text(PIN + "\n")
    hsm.pin_file.chmod(0o600)
    return hsm
