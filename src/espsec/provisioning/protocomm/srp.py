"""SRP-6a as protocomm security 2 uses it: RFC 5054's 3072-bit group, ``g = 5``, SHA-512.

Follows ESP-IDF ``components/protocomm/src/crypto/srp6a/esp_srp.c`` byte for byte:

* ``k = H(N || PAD(g))``, ``u = H(PAD(A) || PAD(B))``, ``x = H(s || H(I || ":" || P))``;
* ``K = H(S)`` over the minimal big-endian bytes of ``S`` (64 bytes);
* ``M = H(H(N) xor H(PAD(g)) || H(I) || s || A || B || K)`` and the device's proof
  ``H(A || M || K)``, with ``s``, ``A`` and ``B`` hashed as the bytes sent on the wire;
* the device's secret ``b`` has 256 bits; ``A mod N == 0`` is refused (RFC 5054 §2.5.4).

Integers travel as minimal big-endian bytes (``esp_mpi_to_bin``); the device requires the
client's ``A`` to be exactly 384 bytes (``PUBLIC_KEY_LEN`` in ``security2.c``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

N_HEX = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA4836"
    "1C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804"
    "F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6"
    "955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64"
    "ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D226"
    "1AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF"
)
N = int(N_HEX, 16)
"""The RFC 5054 Appendix A 3072-bit prime (``N_3072`` in ``esp_srp.c``)."""
G = 5
N_LEN = 384
"""Bytes of ``N``; also the length the device requires of the client's public key ``A``."""
SALT_LEN = 16
"""Salt length ESP-IDF's examples and esp_prov's ``--sec2_salt_len`` default use."""
PROOF_LEN = 64
SECRET_BITS = 256


def _h(*parts: bytes) -> bytes:
    digest = hashlib.sha512()
    for part in parts:
        digest.update(part)
    return digest.digest()


def _int(data: bytes) -> int:
    return int.from_bytes(data, "big")


def to_bytes(value: int) -> bytes:
    """Minimal big-endian bytes of ``value`` (``esp_mpi_to_bin``)."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _pad(data: bytes) -> bytes:
    return data.rjust(N_LEN, b"\x00")


_N_BYTES = to_bytes(N)
_G_BYTES = to_bytes(G)
K_MULT = _int(_h(_N_BYTES, _pad(_G_BYTES)))
"""``k = H(N || PAD(g))``."""
_H_N_XOR_H_G = bytes(a ^ b for a, b in zip(_h(_N_BYTES), _h(_pad(_G_BYTES)), strict=True))


def compute_x(salt: bytes, username: bytes, password: bytes) -> int:
    """``x = H(s || H(I || ":" || P))``."""
    return _int(_h(salt, _h(username, b":", password)))


def verifier(username: bytes, password: bytes, salt: bytes) -> bytes:
    """The password verifier ``v = g^x mod N`` (minimal big-endian bytes), as firmware
    stores it (``esp_srp_gen_salt_verifier``, esp_prov ``--sec2_gen_cred``)."""
    return to_bytes(pow(G, compute_x(salt, username, password), N))


def new_salt(length: int = SALT_LEN) -> bytes:
    """A random salt whose first byte is not zero.

    esp_prov hashes the salt as an integer's minimal bytes, the device as the bytes it
    stores: the two agree only when the first byte is not zero.
    """
    while True:
        salt = secrets.token_bytes(length)
        if salt[0]:
            return salt


def _proof(username: bytes, salt: bytes, a_pub: bytes, b_pub: bytes, key: bytes) -> bytes:
    return _h(_H_N_XOR_H_G, _h(username), salt, a_pub, b_pub, key)


class SrpServer:
    """The device's side of one SRP-6a exchange (``esp_srp_handle``)."""

    def __init__(self, salt: bytes, verifier_bytes: bytes) -> None:
        if not salt or not verifier_bytes:
            raise ValueError("SRP salt and verifier must not be empty")
        self.salt = salt
        self._v = _int(verifier_bytes)
        self._b = secrets.randbits(SECRET_BITS)
        self.public_key = to_bytes((K_MULT * self._v + pow(G, self._b, N)) % N)
        self._a_pub = b""
        self._key: bytes | None = None

    def __repr__(self) -> str:
        return "<SrpServer>"

    @property
    def key(self) -> bytes | None:
        """The session key ``K`` once :meth:`session_key` has run."""
        return self._key

    def session_key(self, a_pub: bytes) -> bytes:
        """``K`` from the client's ``A`` (``esp_srp_get_session_key``); ``ValueError`` when
        ``A mod N == 0``."""
        a = _int(a_pub)
        if a % N == 0:
            raise ValueError("client public key A mod N == 0 (RFC 5054 section 2.5.4)")
        u = _int(_h(_pad(a_pub), _pad(self.public_key)))
        s = pow(a * pow(self._v, u, N), self._b, N)
        self._a_pub = a_pub
        self._key = _h(to_bytes(s))
        return self._key

    def verify_client(self, username: bytes, client_proof: bytes) -> bytes | None:
        """The device proof ``H(A || M || K)`` if ``client_proof`` is ``M``
        (``esp_srp_exchange_proofs``), else ``None``."""
        if self._key is None:
            return None
        expected = _proof(username, self.salt, self._a_pub, self.public_key, self._key)
        if not hmac.compare_digest(expected, client_proof):
            return None
        return _h(self._a_pub, expected, self._key)


class SrpClient:
    """The client's side of one SRP-6a exchange (esp_prov ``srp6a.py``)."""

    def __init__(self, username: bytes, password: bytes) -> None:
        self.username = username
        self._password = password
        while True:  # the device refuses an A shorter than 384 bytes
            self._a = secrets.randbits(SECRET_BITS)
            a_pub = pow(G, self._a, N)
            if a_pub.bit_length() > (N_LEN - 1) * 8:
                break
        self.public_key = to_bytes(a_pub)
        self._key: bytes | None = None
        self._expected_device_proof: bytes | None = None

    def __repr__(self) -> str:
        return f"<SrpClient {self.username!r}>"

    def process_challenge(self, salt: bytes, b_pub: bytes) -> bytes:
        """The client proof ``M`` for the device's salt and ``B``; ``ValueError`` for a
        ``B`` that would force the key (``B mod N == 0``, ``u == 0``)."""
        b = _int(b_pub)
        if b % N == 0:
            raise ValueError("device public key B mod N == 0")
        u = _int(_h(_pad(self.public_key), _pad(b_pub)))
        if u == 0:
            raise ValueError("SRP scrambling parameter u is 0")
        x = compute_x(salt, self.username, self._password)
        s = pow((b - K_MULT * pow(G, x, N)) % N, self._a + u * x, N)
        key = _h(to_bytes(s))
        proof = _proof(self.username, salt, self.public_key, b_pub, key)
        self._key = key
        self._expected_device_proof = _h(self.public_key, proof, key)
        return proof

    def verify_device(self, device_proof: bytes) -> bytes | None:
        """The session key ``K`` if ``device_proof`` is ``H(A || M || K)``, else ``None``."""
        if self._expected_device_proof is None or self._key is None:
            return None
        if not hmac.compare_digest(self._expected_device_proof, device_proof):
            return None
        return self._key


def c_arrays(salt: bytes, verifier_bytes: bytes) -> str:
    """``sec2_salt`` and ``sec2_verifier`` as the C arrays esp_prov's ``--sec2_gen_cred``
    prints for firmware (``protocomm_security2_params_t``)."""

    def array(name: str, data: bytes) -> str:
        items = ", ".join(f"0x{b:02x}" for b in data)
        lines = [items[i : i + 96].strip() for i in range(0, len(items), 96)]
        body = "\n    ".join(lines)
        return f"static const char {name}[] = {{\n    {body}\n}};\n"

    return array("sec2_salt", salt) + "\n" + array("sec2_verifier", verifier_bytes)
