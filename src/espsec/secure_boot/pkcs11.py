"""Keys inside a PKCS#11 token (an HSM, or SoftHSM2 in tests), named by RFC 7512 URIs.

``pkcs11:token=release;object=sb-rsa;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin``

The private key never leaves the token: Secure Boot v2 signatures are made with
``CKM_RSA_PKCS_PSS`` (SHA-256, MGF1-SHA256, salt 32) or ``CKM_ECDSA`` over the image
digest, as espsecure's ``--hsm`` path does (esptool espsecure/esp_hsm_sign). The PIN
comes from a file (``pin-source=file:PATH``), an environment variable
(``pin-source=env:NAME``, or :data:`PIN_ENV`), never from the URI itself, because a URI
is typed on a command line. The module comes from ``module-path`` or :data:`MODULE_ENV`.

python-pkcs11 is imported when a token is opened, so nothing here costs a start-up.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils

from espsec.errors import EspsecError, KeyFormatError, UsageError
from espsec.secure_boot.keys import PublicKey, scheme_of
from espsec.secure_boot.signature_block import _COORD_LEN

if TYPE_CHECKING:
    import pkcs11 as _p11

PIN_ENV = "ESPSEC_PKCS11_PIN"
"""Environment variable holding the token's user PIN when the URI names no pin-source."""
MODULE_ENV = "ESPSEC_PKCS11_MODULE"
"""Environment variable naming the PKCS#11 module when the URI has no module-path."""

_PATH_ATTRS = frozenset(
    {
        "token",
        "manufacturer",
        "serial",
        "model",
        "library-manufacturer",
        "library-description",
        "library-version",
        "object",
        "id",
        "type",
        "slot-id",
        "slot-description",
        "slot-manufacturer",
    }
)
_QUERY_ATTRS = frozenset({"module-path", "module-name", "pin-source", "pin-value"})
_TYPES = frozenset({"private", "public", "cert", "secret-key", "data"})


@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed RFC 7512 PKCS#11 URI (path attributes and query attributes)."""

    path: Mapping[str, bytes]
    query: Mapping[str, bytes]
    text: str = field(compare=False)

    @classmethod
    def parse(cls, text: str) -> Pkcs11Uri:
        """Parse ``pkcs11:path?query``; :class:`UsageError` naming the bad attribute."""
        if not text.startswith("pkcs11:"):
            raise UsageError(f"PKCS#11 URI must start with 'pkcs11:', found {text[:16]!r}")
        body = text[len("pkcs11:") :]
        path_part, _, query_part = body.partition("?")
        path = _attrs(path_part, ";", _PATH_ATTRS, "path")
        query = _attrs(query_part, "&", _QUERY_ATTRS, "query")
        if "pin-value" in query:
            raise UsageError(
                "PKCS#11 URI carries pin-value: a PIN on the command line leaks to the process "
                f"list; use pin-source=file:PATH, pin-source=env:NAME or {PIN_ENV}"
            )
        kind = path.get("type")
        if kind is not None and kind.decode() not in _TYPES:
            raise UsageError(
                f"PKCS#11 URI attribute type: expected one of {', '.join(sorted(_TYPES))}, "
                f"found {kind.decode()!r}"
            )
        if "slot-id" in path and not path["slot-id"].isdigit():
            raise UsageError(
                f"PKCS#11 URI attribute slot-id: expected a decimal number, found "
                f"{path['slot-id'].decode(errors='replace')!r}"
            )
        return cls(path, query, text)

    def get(self, name: str) -> str | None:
        """A path or query attribute as text (``id`` is bytes: use :attr:`key_id`)."""
        value = self.path.get(name, self.query.get(name))
        return None if value is None else value.decode("utf-8", errors="replace")

    @property
    def key_id(self) -> bytes | None:
        """``CKA_ID`` of the object (the ``id`` attribute, percent-decoded bytes)."""
        return self.path.get("id")

    def __str__(self) -> str:
        return self.text


def _attrs(part: str, sep: str, known: frozenset[str], where: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    if not part:
        return out
    for item in part.split(sep):
        if not item:
            continue
        name, eq, value = item.partition("=")
        if not eq:
            raise UsageError(
                f"PKCS#11 URI {where} attribute {name!r}: expected NAME=VALUE, found no '='"
            )
        if name not in known:
            raise UsageError(
                f"PKCS#11 URI {where} attribute {name!r} is unknown "
                f"(expected one of: {', '.join(sorted(known))})"
            )
        if name in out:
            raise UsageError(f"PKCS#11 URI {where} attribute {name!r} is given twice")
        out[name] = unquote_to_bytes(value)
    return out


def module_path(uri: Pkcs11Uri, env: Mapping[str, str] | None = None) -> str:
    """The PKCS#11 module to load: ``module-path``, else :data:`MODULE_ENV`."""
    env = os.environ if env is None else env
    path = uri.get("module-path") or env.get(MODULE_ENV)
    if not path:
        raise UsageError(
            f"PKCS#11 URI names no module: add ?module-path=/path/to/module.so or set {MODULE_ENV}"
        )
    if not Path(path).is_file():
        raise EspsecError("PKCS#11 module not found", source=path)
    return path


def read_pin(uri: Pkcs11Uri, env: Mapping[str, str] | None = None) -> str | None:
    """The user PIN: from ``pin-source`` (``file:PATH``, ``env:NAME``) or :data:`PIN_ENV`.

    ``None`` when none is given (the token then needs no login, or logs in by other means).
    A PIN file's trailing newline is dropped, as p11-kit does.
    """
    env = os.environ if env is None else env
    src = uri.get("pin-source")
    if src is None:
        return env.get(PIN_ENV)
    if src.startswith("env:"):
        name = src[len("env:") :]
        if name not in env:
            raise UsageError(
                f"PKCS#11 pin-source names environment variable {name}, which is unset"
            )
        return env[name]
    path = src[len("file:") :] if src.startswith("file:") else src
    path = path.removeprefix("//")  # file:///abs/path
    if not path.startswith("/"):
        path = str(Path(path))
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise EspsecError(f"cannot read PKCS#11 PIN file: {exc.strerror}", source=path) from None
    return data.decode("utf-8", errors="strict").rstrip("\r\n")


class Pkcs11Token:
    """One logged-in session on the token a URI names (use as a context manager).

    Calls are serialised with a lock: one session serves one thread at a time.
    """

    def __init__(self, uri: Pkcs11Uri | str, *, env: Mapping[str, str] | None = None) -> None:
        self.uri = uri if isinstance(uri, Pkcs11Uri) else Pkcs11Uri.parse(uri)
        self._lock = threading.Lock()
        self._private: Any = None
        try:
            import pkcs11
        except ImportError:  # pragma: no cover - depends on the installation
            raise UsageError(
                "PKCS#11 support needs python-pkcs11: pip install 'espsec[hsm]'"
            ) from None
        self._p11 = pkcs11
        so = module_path(self.uri, env)
        pin = read_pin(self.uri, env)
        try:
            lib = pkcs11.lib(so)
            selector: dict[str, Any] = {}
            for attr, kw in (
                ("token", "token_label"),
                ("serial", "token_serial"),
                ("manufacturer", "manufacturer_id"),
            ):
                value = self.uri.path.get(attr)
                if value is not None:
                    selector[kw] = value if attr == "serial" else value.decode()
            if "slot-id" in self.uri.path:
                slot_id = int(self.uri.path["slot-id"])
                slots = [s for s in lib.get_slots(token_present=True) if s.slot_id == slot_id]
                if not slots:
                    raise EspsecError(f"PKCS#11 slot {slot_id} has no token", source=str(self.uri))
                token = slots[0].get_token()
            else:
                token = lib.get_token(**selector)
            try:
                self.session: _p11.Session = token.open(user_pin=pin)
            except pkcs11.UserAlreadyLoggedIn:
                # PKCS#11 logins belong to the application: another session of this
                # process (a second key on the same token) is logged in already.
                self.session = token.open()
        except pkcs11.PinIncorrect:
            raise EspsecError("PKCS#11 login failed: wrong PIN", source=str(self.uri)) from None
        except pkcs11.NoSuchToken:
            raise EspsecError("PKCS#11 token not found", source=str(self.uri)) from None
        except pkcs11.MultipleTokensReturned:
            raise EspsecError(
                "PKCS#11 URI matches more than one token; add token= or serial=",
                source=str(self.uri),
            ) from None
        except pkcs11.PKCS11Error as exc:
            raise EspsecError(
                f"PKCS#11 error opening the token: {type(exc).__name__}", source=str(self.uri)
            ) from None

    def __enter__(self) -> Pkcs11Token:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Log out and close the session."""
        with self._lock:
            self.session.close()

    def _find(self, object_class: Any) -> Any:
        p11 = self._p11
        label = self.uri.get("object")
        key_id = self.uri.key_id
        if label is None and key_id is None:
            raise UsageError("PKCS#11 URI names no key: add object=LABEL or id=%XX...")
        try:
            return self.session.get_key(object_class=object_class, label=label, id=key_id)
        except p11.NoSuchKey:
            kind = "private key" if object_class == p11.ObjectClass.PRIVATE_KEY else "public key"
            raise EspsecError(f"PKCS#11 {kind} not found", source=str(self.uri)) from None
        except p11.MultipleObjectsReturned:
            raise EspsecError(
                "PKCS#11 URI matches more than one key; add id=", source=str(self.uri)
            ) from None

    def private_key(self) -> Any:
        """The token's private key object the URI names (looked up once)."""
        if self._private is None:
            self._private = self._find(self._p11.ObjectClass.PRIVATE_KEY)
        return self._private

    def public_key(self) -> PublicKey:
        """The public key the URI names, as a pyca/cryptography object.

        Read from the token's public key object; an RSA private key's modulus and
        exponent serve when there is none.
        """
        p11 = self._p11
        from pkcs11.util.ec import encode_ec_public_key

        with self._lock:
            try:
                obj = self._find(p11.ObjectClass.PUBLIC_KEY)
            except EspsecError:
                obj = self._find(p11.ObjectClass.PRIVATE_KEY)
                if obj.key_type != p11.KeyType.RSA:
                    raise
            if obj.key_type == p11.KeyType.RSA:
                n = int.from_bytes(obj[p11.Attribute.MODULUS], "big")
                e = int.from_bytes(obj[p11.Attribute.PUBLIC_EXPONENT], "big")
                return rsa.RSAPublicNumbers(e, n).public_key()
            if obj.key_type == p11.KeyType.EC:
                loaded = serialization.load_der_public_key(encode_ec_public_key(obj))
            else:
                raise KeyFormatError(
                    f"PKCS#11 key is {obj.key_type.name}; expected RSA or EC",
                    source=str(self.uri),
                )
        if not isinstance(loaded, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise KeyFormatError("PKCS#11 public key is neither RSA nor EC", source=str(self.uri))
        return loaded

    def sign(self, data: bytes, mechanism: Any, mechanism_param: Any = None) -> bytes:
        """``C_Sign`` with the URI's private key (the key never leaves the token)."""
        p11 = self._p11
        with self._lock:
            key = self.private_key()
            try:
                return bytes(key.sign(data, mechanism=mechanism, mechanism_param=mechanism_param))
            except p11.PKCS11Error as exc:
                raise EspsecError(
                    f"PKCS#11 signing failed: {type(exc).__name__}", source=str(self.uri)
                ) from None

    def random(self, size: int) -> bytes:
        """``size`` bytes from the token's random number generator (``C_GenerateRandom``)."""
        with self._lock:
            return bytes(self.session.generate_random(size * 8))


class Pkcs11Signer:
    """A Secure Boot v2 :class:`~espsec.secure_boot.signer.Signer` whose key is in a token.

    RSA-3072 signs with ``CKM_RSA_PKCS_PSS`` (SHA-256, MGF1-SHA256, salt 32); ECDSA with
    ``CKM_ECDSA`` over the digest, whose raw r‖s the token returns is what the
    signature block stores. Also signs data for X.509 (:meth:`sign_data`).
    """

    def __init__(
        self, uri: Pkcs11Uri | str | Pkcs11Token, *, env: Mapping[str, str] | None = None
    ) -> None:
        self.token = uri if isinstance(uri, Pkcs11Token) else Pkcs11Token(uri, env=env)
        try:
            self._public = self.token.public_key()
            self.token.private_key()  # fail now, not at the first signature
        except BaseException:
            if not isinstance(uri, Pkcs11Token):
                self.token.close()
            raise

    def __enter__(self) -> Pkcs11Signer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the token session."""
        self.token.close()

    def __repr__(self) -> str:
        return f"Pkcs11Signer({self.token.uri.text!r})"

    def public_key(self) -> PublicKey:
        """The public half of the token's key."""
        return self._public

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign a Secure Boot v2 image digest inside the token."""
        p11 = self.token._p11
        scheme = scheme_of(self._public)
        if isinstance(self._public, rsa.RSAPublicKey):
            return self.token.sign(
                digest, p11.Mechanism.RSA_PKCS_PSS, (p11.Mechanism.SHA256, p11.MGF.SHA256, 32)
            )
        raw = self.token.sign(digest, p11.Mechanism.ECDSA)
        return _fixed_width(raw, _COORD_LEN[scheme])

    def sign_data(self, data: bytes, hash_name: str = "sha256") -> bytes:
        """Sign ``data`` as X.509 does: RSA PKCS#1 v1.5 or ECDSA (DER), hashed on the host."""
        p11 = self.token._p11
        digest = hashlib.new(hash_name, data).digest()
        if isinstance(self._public, rsa.RSAPublicKey):
            prefix = _DIGEST_INFO[hash_name]
            return self.token.sign(prefix + digest, p11.Mechanism.RSA_PKCS)
        raw = self.token.sign(digest, p11.Mechanism.ECDSA)
        half = len(raw) // 2
        return utils.encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )


_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
}
"""DER DigestInfo prefixes for PKCS#1 v1.5 (RFC 8017 section 9.2, note 1)."""


def _fixed_width(raw: bytes, width: int) -> bytes:
    """Token r‖s (each half as wide as the curve order) at the block's fixed width."""
    if len(raw) == 2 * width:
        return raw
    half = len(raw) // 2
    r, s = int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    return r.to_bytes(width, "big") + s.to_bytes(width, "big")
