"""Protocomm security 2: SRP-6a (3072-bit group, SHA-512), then AES-256-GCM.

As ESP-IDF ``components/protocomm/src/security/security2.c`` and esp_prov
``security/security2.py``:

1. ``S2SessionCmd0``: the username and the client's public key ``A`` (384 bytes);
2. ``S2SessionResp0``: the device's public key ``B`` and the salt;
3. ``S2SessionCmd1``: the client proof ``M`` (64 bytes);
4. ``S2SessionResp1``: the device proof ``H(A || M || K)`` and the nonce.

The AES-256-GCM key is ``K[0:32]``, no associated data, a 16-byte tag after the
ciphertext. ``sec_patch_ver`` (reported by the version endpoint) says how nonces work:

* **1** (ESP-IDF since 2025, commit ``3bd5a22f5aa``): ``device_nonce`` is 8 random bytes
  and a 4-byte big-endian counter starting at 1, incremented after every successful
  encrypt and decrypt on each side; a replayed, reordered or tampered message fails the tag;
* **0** (older firmware, e.g. v5.4.0): one random 16-byte IV for the whole session. Every
  message uses the same nonce, so a replayed request decrypts; clients that can should
  require patch 1 (:class:`Security2Client` ``min_patch_version``).
"""

from __future__ import annotations

import secrets
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from espsec.provisioning.errors import ProtocommError, SessionError
from espsec.provisioning.proto import sec2_pb2, session_pb2
from espsec.provisioning.protocomm import srp
from espsec.provisioning.protocomm.security import (
    CRYPTO_ERROR,
    INTERNAL_ERROR,
    INVALID_ARGUMENT,
    INVALID_SEC_SCHEME,
    INVALID_SESSION,
    SUCCESS,
    ClientSecurity,
    HandshakeSecurity,
    Outcome,
    Send,
    SessionReply,
    check_status,
)

KEY_LEN = 32
TAG_LEN = 16
NONCE_LEN = {0: 16, 1: 12}
"""Length of ``device_nonce`` by ``sec_patch_ver``."""
SESSION_ID_LEN = 8
PATCH_VERSIONS = (0, 1)
CURRENT_PATCH_VERSION = 1


class GcmStream:
    """The session cipher of one side: AES-256-GCM with the ``sec_patch_ver`` nonce rule."""

    def __init__(self, key: bytes, nonce: bytes, patch_version: int) -> None:
        self._aead = AESGCM(key[:KEY_LEN])
        self._nonce = bytearray(nonce)
        self._counting = patch_version >= 1

    def __repr__(self) -> str:
        return "<GcmStream>"

    def _advance(self) -> None:
        if self._counting:
            (counter,) = struct.unpack_from(">I", self._nonce, SESSION_ID_LEN)
            struct.pack_into(">I", self._nonce, SESSION_ID_LEN, (counter + 1) & 0xFFFFFFFF)

    def _check_counter(self) -> None:
        if self._counting and self._nonce[SESSION_ID_LEN:] == b"\x00\x00\x00\x00":
            raise ProtocommError(
                "the GCM nonce counter wrapped: restart the session", status=INVALID_SESSION
            )

    def encrypt(self, data: bytes) -> bytes:
        self._check_counter()
        out = self._aead.encrypt(bytes(self._nonce), data, None)
        self._advance()
        return out

    def decrypt(self, data: bytes) -> bytes:
        """Plaintext, or :class:`ProtocommError` ``CryptoError`` (the counter stays)."""
        self._check_counter()
        try:
            out = self._aead.decrypt(bytes(self._nonce), data, None)
        except InvalidTag:
            raise ProtocommError(
                "message authentication failed (tampered, replayed or out of order)",
                status=CRYPTO_ERROR,
            ) from None
        self._advance()
        return out


def _response(msg: int, status: int, **fields: bytes) -> bytes:
    reply = session_pb2.SessionData(sec_ver=session_pb2.SecScheme2)
    reply.sec2.msg = msg  # type: ignore[assignment]
    body = reply.sec2.sr0 if msg == sec2_pb2.S2Session_Response0 else reply.sec2.sr1
    body.status = status  # type: ignore[assignment]
    for name, value in fields.items():
        setattr(body, name, value)
    return reply.SerializeToString()


class Security2Device(HandshakeSecurity[sec2_pb2.Sec2Payload]):
    """The device side, given the salt and verifier the firmware stores
    (``protocomm_security2_params_t``)."""

    version = 2
    proto = "sec2"
    command0 = sec2_pb2.S2Session_Command0
    command1 = sec2_pb2.S2Session_Command1
    response0 = sec2_pb2.S2Session_Response0
    _response = staticmethod(_response)

    def __init__(
        self, salt: bytes, verifier: bytes, *, patch_version: int = CURRENT_PATCH_VERSION
    ) -> None:
        super().__init__()
        if patch_version not in PATCH_VERSIONS:
            raise ValueError(f"sec_patch_ver must be 0 or 1, got {patch_version}")
        if not salt or not verifier:
            raise ValueError("security 2 needs a salt and a verifier")
        self.patch_version = patch_version
        self._salt = salt
        self._verifier = verifier
        self._reset()

    def __repr__(self) -> str:
        return f"<Security2Device sec_patch_ver={self.patch_version}>"

    def _reset(self) -> None:
        self._state = 0
        self._srp: srp.SrpServer | None = None
        self._username = b""
        self._stream: GcmStream | None = None

    def _command0(self, payload: sec2_pb2.Sec2Payload) -> SessionReply:
        resp0 = sec2_pb2.S2Session_Response0
        if self._state != 0:
            self._reset()  # "Invalid state of session ... Restarting session."
        if payload.WhichOneof("payload") != "sc0":
            return self._fail(resp0, INVALID_ARGUMENT, "Command0 without sc0")
        a_pub = payload.sc0.client_pubkey
        username = payload.sc0.client_username
        if len(a_pub) != srp.N_LEN:
            return self._fail(resp0, INVALID_ARGUMENT, "client public key is not 384 bytes")
        if not 0 < len(username) <= 0xFFFF:
            return self._fail(resp0, INVALID_ARGUMENT, "bad username length")
        server = srp.SrpServer(self._salt, self._verifier)
        try:
            server.session_key(a_pub)
        except ValueError as exc:
            return self._fail(resp0, INVALID_ARGUMENT, str(exc))
        self._srp = server
        self._username = username
        self._state = 1
        data = _response(resp0, SUCCESS, device_pubkey=server.public_key, device_salt=self._salt)
        return SessionReply(data, Outcome.PROGRESS)

    def _command1(self, payload: sec2_pb2.Sec2Payload) -> SessionReply:
        resp1 = sec2_pb2.S2Session_Response1
        if self._state != 1 or self._srp is None:
            return self._fail(resp1, INVALID_SESSION, "Command1 before Command0")
        if payload.WhichOneof("payload") != "sc1":
            return self._fail(resp1, INVALID_ARGUMENT, "Command1 without sc1")
        proof = payload.sc1.client_proof
        if len(proof) != srp.PROOF_LEN:
            return self._fail(resp1, INVALID_ARGUMENT, "client proof is not 64 bytes")
        device_proof = self._srp.verify_client(self._username, proof)
        key = self._srp.key
        if device_proof is None or key is None:
            return self._fail(
                resp1, CRYPTO_ERROR, "client proof does not match (wrong username or password)"
            )
        if self.patch_version >= 1:
            nonce = secrets.token_bytes(SESSION_ID_LEN) + struct.pack(">I", 1)
        else:
            nonce = secrets.token_bytes(NONCE_LEN[0])
        self._stream = GcmStream(key, nonce, self.patch_version)
        self._srp = None
        self._state = 2
        data = _response(resp1, SUCCESS, device_proof=device_proof, device_nonce=nonce)
        return SessionReply(data, Outcome.ESTABLISHED)

    def _gcm(self, session_id: int) -> GcmStream:
        self._check_session(session_id)
        if self._stream is None:  # pragma: no cover - established implies a stream
            raise ProtocommError("no session cipher", status=INTERNAL_ERROR)
        return self._stream

    def encrypt(self, session_id: int, data: bytes) -> bytes:
        return self._gcm(session_id).encrypt(data)

    def decrypt(self, session_id: int, data: bytes) -> bytes:
        return self._gcm(session_id).decrypt(data)


class Security2Client(ClientSecurity):
    """The client side. ``patch_version`` is the device's ``sec_patch_ver`` (from the
    version endpoint); ``min_patch_version`` refuses a device below it (downgrade)."""

    version = 2

    def __init__(
        self,
        username: bytes,
        password: bytes,
        *,
        patch_version: int = CURRENT_PATCH_VERSION,
        min_patch_version: int = CURRENT_PATCH_VERSION,
    ) -> None:
        if not username:
            raise ValueError("security 2 needs a username")
        if patch_version < min_patch_version:
            raise SessionError(
                f"the device offers security 2 sec_patch_ver {patch_version}; this client "
                f"requires {min_patch_version} (a fixed GCM nonce lets requests be replayed)",
                status=INVALID_SEC_SCHEME,
            )
        if patch_version not in PATCH_VERSIONS:
            raise SessionError(
                f"unknown security 2 sec_patch_ver {patch_version}", status=INVALID_SEC_SCHEME
            )
        self._username = username
        self._password = password
        self.patch_version = patch_version
        self._stream: GcmStream | None = None

    def __repr__(self) -> str:
        return f"<Security2Client {self._username!r} sec_patch_ver={self.patch_version}>"

    def handshake(self, send: Send) -> None:
        client = srp.SrpClient(self._username, self._password)
        cmd0 = session_pb2.SessionData(sec_ver=session_pb2.SecScheme2)
        cmd0.sec2.msg = sec2_pb2.S2Session_Command0
        cmd0.sec2.sc0.client_username = self._username
        cmd0.sec2.sc0.client_pubkey = client.public_key
        reply = self._reply(send(cmd0.SerializeToString())).sec2
        check_status(reply.sr0.status, "security 2 Command0")
        try:
            proof = client.process_challenge(reply.sr0.device_salt, reply.sr0.device_pubkey)
        except ValueError as exc:
            raise SessionError(
                f"the device's SRP challenge is unsafe: {exc}", status=CRYPTO_ERROR
            ) from None
        cmd1 = session_pb2.SessionData(sec_ver=session_pb2.SecScheme2)
        cmd1.sec2.msg = sec2_pb2.S2Session_Command1
        cmd1.sec2.sc1.client_proof = proof
        reply = self._reply(send(cmd1.SerializeToString())).sec2
        check_status(reply.sr1.status, "the username and password (security 2 Command1)")
        key = client.verify_device(reply.sr1.device_proof)
        if key is None:
            raise SessionError(
                "the device did not prove knowledge of the verifier", status=CRYPTO_ERROR
            )
        nonce = reply.sr1.device_nonce
        if len(nonce) != NONCE_LEN[self.patch_version]:
            raise SessionError(
                f"device nonce is {len(nonce)} bytes, sec_patch_ver {self.patch_version} "
                f"uses {NONCE_LEN[self.patch_version]}",
                status=INVALID_SEC_SCHEME,
            )
        self._stream = GcmStream(key, nonce, self.patch_version)

    def _gcm(self) -> GcmStream:
        if self._stream is None:
            raise SessionError("no secure session established", status=INVALID_SESSION)
        return self._stream

    def encrypt(self, data: bytes) -> bytes:
        return self._gcm().encrypt(data)

    def decrypt(self, data: bytes) -> bytes:
        return self._gcm().decrypt(data)
