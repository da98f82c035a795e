"""Protocomm security 1: X25519, optional proof of possession, AES-256-CTR.

As ESP-IDF ``components/protocomm/src/security/security1.c`` and esp_prov
``security/security1.py``:

1. ``SessionCmd0`` carries the client's X25519 public key (32 bytes);
2. ``SessionResp0`` the device's public key and 16 random bytes;
3. the AES-256 key is the X25519 shared secret, XORed with ``SHA-256(PoP)`` when a proof
   of possession is set; the random bytes are the initial counter block;
4. ``SessionCmd1`` carries the device's public key encrypted (keystream bytes 0-31), and
   ``SessionResp1`` the client's public key encrypted (bytes 32-63).

One CTR keystream serves the whole session, both directions, in order: every later
request and reply continues it. A replayed, reordered or dropped message therefore
decrypts to noise and desynchronises the session; CTR has no integrity check.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from espsec.provisioning.errors import SessionError
from espsec.provisioning.proto import sec1_pb2, session_pb2
from espsec.provisioning.protocomm.security import (
    CRYPTO_ERROR,
    INVALID_ARGUMENT,
    INVALID_SESSION,
    SUCCESS,
    ClientSecurity,
    HandshakeSecurity,
    Outcome,
    Send,
    SessionReply,
    check_status,
)

PUBLIC_KEY_LEN = 32
RANDOM_LEN = 16


def _raw(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def session_key(shared: bytes, pop: bytes | None) -> bytes:
    """The AES-256 key: the shared secret, XORed with ``SHA-256(pop)`` if a PoP is set."""
    if not pop:
        return shared
    digest = hashlib.sha256(pop).digest()
    return bytes(a ^ b for a, b in zip(shared, digest, strict=True))


def _ctr(key: bytes, counter_block: bytes) -> CipherContext:
    return Cipher(algorithms.AES(key), modes.CTR(counter_block)).encryptor()


def _response(msg: int, status: int, **fields: bytes) -> bytes:
    reply = session_pb2.SessionData(sec_ver=session_pb2.SecScheme1)
    reply.sec1.msg = msg  # type: ignore[assignment]
    if msg == sec1_pb2.Session_Response0:
        reply.sec1.sr0.status = status  # type: ignore[assignment]
        for name, value in fields.items():
            setattr(reply.sec1.sr0, name, value)
    else:
        reply.sec1.sr1.status = status  # type: ignore[assignment]
        for name, value in fields.items():
            setattr(reply.sec1.sr1, name, value)
    return reply.SerializeToString()


class Security1Device(HandshakeSecurity[sec1_pb2.Sec1Payload]):
    """The device side; ``pop`` is the proof of possession (``None``: none)."""

    version = 1
    proto = "sec1"
    command0 = sec1_pb2.Session_Command0
    command1 = sec1_pb2.Session_Command1
    response0 = sec1_pb2.Session_Response0
    _response = staticmethod(_response)

    def __init__(self, pop: bytes | None = None) -> None:
        super().__init__()
        self._pop = pop or None
        self._reset()

    def __repr__(self) -> str:
        return f"<Security1Device pop={'set' if self._pop else 'none'}>"

    def _reset(self) -> None:
        self._state = 0
        self._device_pub = b""
        self._client_pub = b""
        self._key = b""
        self._random = b""
        self._cipher: CipherContext | None = None

    def _command0(self, payload: sec1_pb2.Sec1Payload) -> SessionReply:
        resp0 = sec1_pb2.Session_Response0
        if self._state != 0:
            self._reset()  # "Invalid state of session ... Restarting session."
        if payload.WhichOneof("payload") != "sc0":
            return self._fail(resp0, INVALID_ARGUMENT, "Command0 without sc0")
        client_pub = payload.sc0.client_pubkey
        if len(client_pub) != PUBLIC_KEY_LEN:
            return self._fail(resp0, INVALID_ARGUMENT, "client public key is not 32 bytes")
        device_key = X25519PrivateKey.generate()
        try:
            shared = device_key.exchange(X25519PublicKey.from_public_bytes(client_pub))
        except ValueError:
            return self._fail(resp0, INVALID_ARGUMENT, "client public key is a low-order point")
        self._device_pub = _raw(device_key)
        self._client_pub = client_pub
        self._key = session_key(shared, self._pop)
        self._random = secrets.token_bytes(RANDOM_LEN)
        self._state = 1
        data = _response(resp0, SUCCESS, device_pubkey=self._device_pub, device_random=self._random)
        return SessionReply(data, Outcome.PROGRESS)

    def _command1(self, payload: sec1_pb2.Sec1Payload) -> SessionReply:
        resp1 = sec1_pb2.Session_Response1
        if self._state != 1:
            return self._fail(resp1, INVALID_SESSION, "Command1 before Command0")
        if payload.WhichOneof("payload") != "sc1":
            return self._fail(resp1, INVALID_ARGUMENT, "Command1 without sc1")
        verify = payload.sc1.client_verify_data
        if len(verify) != PUBLIC_KEY_LEN:
            return self._fail(resp1, INVALID_ARGUMENT, "client verify data is not 32 bytes")
        cipher = _ctr(self._key, self._random)
        if not hmac.compare_digest(cipher.update(verify), self._device_pub):
            return self._fail(resp1, CRYPTO_ERROR, "client verify data does not match (wrong PoP)")
        device_verify = cipher.update(self._client_pub)
        self._cipher = cipher
        self._state = 2
        return SessionReply(
            _response(resp1, SUCCESS, device_verify_data=device_verify), Outcome.ESTABLISHED
        )

    def encrypt(self, session_id: int, data: bytes) -> bytes:
        self._check_session(session_id)
        assert self._cipher is not None
        return self._cipher.update(data)

    def decrypt(self, session_id: int, data: bytes) -> bytes:
        self._check_session(session_id)
        assert self._cipher is not None
        return self._cipher.update(data)


class Security1Client(ClientSecurity):
    """The client side; ``pop`` is the proof of possession (``None``: none)."""

    version = 1

    def __init__(self, pop: bytes | None = None) -> None:
        self._pop = pop or None
        self._cipher: CipherContext | None = None

    def __repr__(self) -> str:
        return "<Security1Client>"

    def handshake(self, send: Send) -> None:
        key = X25519PrivateKey.generate()
        client_pub = _raw(key)
        cmd0 = session_pb2.SessionData(sec_ver=session_pb2.SecScheme1)
        cmd0.sec1.msg = sec1_pb2.Session_Command0
        cmd0.sec1.sc0.client_pubkey = client_pub
        reply = self._reply(send(cmd0.SerializeToString())).sec1
        check_status(reply.sr0.status, "security 1 Command0")
        device_pub, device_random = reply.sr0.device_pubkey, reply.sr0.device_random
        if len(device_pub) != PUBLIC_KEY_LEN or len(device_random) != RANDOM_LEN:
            raise SessionError(
                "the device's SessionResp0 has a bad public key or random",
                status=INVALID_ARGUMENT,
            )
        try:
            shared = key.exchange(X25519PublicKey.from_public_bytes(device_pub))
        except ValueError:
            raise SessionError(
                "the device's public key is a low-order point", status=CRYPTO_ERROR
            ) from None
        cipher = _ctr(session_key(shared, self._pop), device_random)
        cmd1 = session_pb2.SessionData(sec_ver=session_pb2.SecScheme1)
        cmd1.sec1.msg = sec1_pb2.Session_Command1
        cmd1.sec1.sc1.client_verify_data = cipher.update(device_pub)
        reply = self._reply(send(cmd1.SerializeToString())).sec1
        check_status(reply.sr1.status, "the proof of possession (security 1 Command1)")
        verify = reply.sr1.device_verify_data
        if len(verify) != PUBLIC_KEY_LEN or not hmac.compare_digest(
            cipher.update(verify), client_pub
        ):
            raise SessionError(
                "the device did not prove the same key (wrong proof of possession?)",
                status=CRYPTO_ERROR,
            )
        self._cipher = cipher

    def _stream(self) -> CipherContext:
        if self._cipher is None:
            raise SessionError("no secure session established", status=INVALID_SESSION)
        return self._cipher

    def encrypt(self, data: bytes) -> bytes:
        return self._stream().update(data)

    def decrypt(self, data: bytes) -> bytes:
        return self._stream().update(data)
