"""The fleet's HTTP API as a plain ASGI application (served by uvicorn).

Device API (no token; devices are named by ``device_id``; the messages are
:mod:`espsec.ota.protocol`'s)::

    POST /api/v1/device/checkin      check-in JSON -> signed manifest envelope
    POST /api/v1/device/report       outcome JSON
    GET  /api/v1/firmware/<sha256>   payload bytes; Range / If-Range for resuming
    GET  /api/v1/manifest-key        the manifest public key (PEM), for provisioning

Admin API (``Authorization: Bearer <token>``)::

    POST /api/v1/admin/releases              upload a release bundle (verified first)
    GET  /api/v1/admin/releases
    PUT  /api/v1/admin/cohorts/<name>        {"release_id": "..." | null}
    GET  /api/v1/admin/cohorts
    PUT  /api/v1/admin/devices/<device_id>   {"cohort": "..."}
    GET  /api/v1/admin/devices
    GET  /api/v1/admin/reports[?device=<id>]
    GET  /api/v1/admin/stats
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, unquote

from espsec import _pem
from espsec.errors import EspsecError, FormatError, UsageError, VerificationError
from espsec.fleet.db import AlreadyExists, ReportRefused
from espsec.fleet.service import FleetService, Forbidden, NotFound
from espsec.identity.tls import device_id_of
from espsec.ota._json import strict_loads
from espsec.ota.protocol import (
    ADMIN_PATH,
    API,
    CHECK_IN_PATH,
    DEVICE_ID,
    FIRMWARE_PATH,
    MANIFEST_KEY_PATH,
    REPORT_PATH,
)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("espsec.fleet")

MAX_DEVICE_BODY = 16 * 1024
MAX_ADMIN_JSON = 64 * 1024
SEND_CHUNK = 64 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)\Z")


class HttpProblem(Exception):
    """An HTTP error answer (status and a one-line message)."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


def parse_range(header: str | None, length: int) -> tuple[int, int] | None:
    """``(first, last)`` inclusive for a single satisfiable byte range; ``None`` to send all.

    Raises :class:`HttpProblem` 416 for a range that starts past the end. Multiple
    ranges and malformed headers are ignored (a full answer), as RFC 9110 allows.
    """
    if header is None:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m[1] and not m[2]):
        return None
    if m[1]:
        first = int(m[1])
        last = int(m[2]) if m[2] else length - 1
        if m[2] and last < first:
            return None
    else:
        suffix = int(m[2])
        if suffix == 0:
            raise HttpProblem(
                416, "empty suffix range", [(b"content-range", f"bytes */{length}".encode())]
            )
        first, last = max(0, length - suffix), length - 1
    if first >= length:
        raise HttpProblem(
            416, "range not satisfiable", [(b"content-range", f"bytes */{length}".encode())]
        )
    return first, min(last, length - 1)


class FleetApp:
    """ASGI 3 application over a :class:`FleetService`."""

    def __init__(self, service: FleetService) -> None:
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        try:
            await self._route(scope, headers, receive, send)
        except HttpProblem as exc:
            await _json(send, exc.status, {"error": exc.message}, exc.headers)
        except NotFound as exc:
            await _json(send, 404, {"error": exc.message})
        except (Forbidden, ReportRefused) as exc:
            self.service.stats.count("device_requests_forbidden")
            await _json(send, 403, {"error": exc.message})
        except VerificationError as exc:
            await _json(send, 422, {"error": str(exc)})
        except AlreadyExists as exc:
            await _json(send, 409, {"error": str(exc)})
        except (FormatError, UsageError) as exc:
            await _json(send, 400, {"error": str(exc)})
        except EspsecError as exc:
            await _json(send, 400, {"error": str(exc)})
        except Exception:
            log.exception("internal error on %s %s", scope.get("method"), scope.get("path"))
            await _json(send, 500, {"error": "internal error"})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(
        self, scope: Scope, headers: dict[str, str], receive: Receive, send: Send
    ) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        svc = self.service
        if path == CHECK_IN_PATH:
            _allow(method, "POST")
            client = _client_id(scope)
            body = await _body(receive, MAX_DEVICE_BODY)
            manifest = svc.check_in(body, client_id=client)
            await _respond(
                send, 200, manifest, b"application/json", [(b"cache-control", b"no-store")]
            )
            return
        if path == REPORT_PATH:
            _allow(method, "POST")
            client = _client_id(scope)
            svc.report(await _body(receive, MAX_DEVICE_BODY), client_id=client)
            await _json(send, 200, {"ok": True})
            return
        if path.startswith(FIRMWARE_PATH):
            _allow(method, "GET", "HEAD")
            client = _client_id(scope)
            await self._firmware(path[len(FIRMWARE_PATH) :], method, headers, send, client)
            return
        if path == MANIFEST_KEY_PATH:
            _allow(method, "GET")
            await _respond(send, 200, svc.manifest_public_pem(), b"application/x-pem-file")
            return
        if path == f"{API}/health":
            await _json(send, 200, {"ok": True})
            return
        if path.startswith(ADMIN_PATH):
            self._authorise(headers)
            await self._admin(method, path[len(ADMIN_PATH) :], scope, receive, send)
            return
        raise HttpProblem(404, "no such endpoint")

    def _authorise(self, headers: dict[str, str]) -> None:
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token or not self.service.token_ok(token.strip()):
            self.service.stats.count("admin_auth_failures")
            raise HttpProblem(
                401,
                "admin token missing or wrong",
                [(b"www-authenticate", b'Bearer realm="fleet"')],
            )

    async def _admin(
        self, method: str, rest: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        svc = self.service
        if rest == "releases":
            _allow(method, "GET", "POST")
            if method == "POST":
                row = svc.upload_release(await _body(receive, svc.config.max_upload))
                await _json(send, 201, row.to_json())
            else:
                await _json(send, 200, [r.to_json() for r in svc.releases()])
            return
        if rest == "cohorts":
            _allow(method, "GET")
            await _json(send, 200, svc.cohorts())
            return
        if rest.startswith("cohorts/"):
            _allow(method, "PUT")
            obj = strict_loads(await _body(receive, MAX_ADMIN_JSON), what="cohort assignment")
            release_id = obj.get("release_id")
            if release_id is not None and not isinstance(release_id, str):
                raise FormatError("release_id must be a string or null", field="release_id")
            cohort = unquote(rest[len("cohorts/") :])
            svc.assign_cohort(cohort, release_id)
            await _json(send, 200, {"cohort": cohort, "release_id": release_id})
            return
        if rest == "devices":
            _allow(method, "GET")
            await _json(send, 200, [d.to_json() for d in svc.devices()])
            return
        if rest.startswith("devices/"):
            _allow(method, "PUT")
            obj = strict_loads(await _body(receive, MAX_ADMIN_JSON), what="device assignment")
            target = obj.get("cohort")
            if not isinstance(target, str):
                raise FormatError("cohort must be a string", field="cohort")
            device_id = unquote(rest[len("devices/") :])
            svc.set_device_cohort(device_id, target)
            await _json(send, 200, {"device_id": device_id, "cohort": target})
            return
        if rest == "reports":
            _allow(method, "GET")
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            devices = query.get("device")
            await _json(send, 200, svc.reports(devices[0] if devices else None))
            return
        if rest == "stats":
            _allow(method, "GET")
            await _json(send, 200, svc.stats.to_json())
            return
        raise HttpProblem(404, "no such endpoint")

    async def _firmware(
        self, sha256: str, method: str, headers: dict[str, str], send: Send, client: str
    ) -> None:
        path, length = self.service.blob(sha256, client_id=client)
        etag = f'"{sha256}"'
        rng = headers.get("range")
        if_range = headers.get("if-range")
        if if_range is not None and if_range.strip() != etag:
            rng = None  # the client's partial copy is of another file: send it all
        span = parse_range(rng, length)
        first, last = span if span is not None else (0, length - 1)
        status = 206 if span is not None else 200
        extra = [
            (b"accept-ranges", b"bytes"),
            (b"etag", etag.encode()),
            (b"content-length", str(last - first + 1).encode()),
            (b"content-type", b"application/octet-stream"),
        ]
        if span is not None:
            extra.append((b"content-range", f"bytes {first}-{last}/{length}".encode()))
        self.service.stats.count("downloads_partial" if span is not None else "downloads_full")
        await send({"type": "http.response.start", "status": status, "headers": extra})
        if method == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        remaining = last - first + 1
        with path.open("rb") as fh:
            fh.seek(first)
            while remaining:
                chunk = fh.read(min(SEND_CHUNK, remaining))
                if not chunk:
                    break  # file shrank under us: the client sees a short body
                remaining -= len(chunk)
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": remaining > 0}
                )
        self.service.stats.count("bytes_served", last - first + 1 - remaining)
        if remaining:
            await send({"type": "http.response.body", "body": b""})


def _client_id(scope: Scope) -> str:
    """The device id the verified TLS client certificate names (mutual TLS).

    The server's TLS layer has already checked the certificate chains to the fleet's
    device CA and is valid now; this reads the device id it binds (``identity.tls``).
    """
    tls = scope.get("extensions", {}).get("tls", {})
    chain = tls.get("client_cert_chain") or []
    if not chain:
        raise HttpProblem(401, "a client certificate from the fleet's device CA is required")
    try:
        cert = _pem.load_certificate(chain[0].encode("ascii"))
    except (_pem.PemError, UnicodeEncodeError):
        raise HttpProblem(401, "unreadable client certificate") from None
    device_id = device_id_of(cert)
    if device_id is None or not DEVICE_ID.match(device_id):
        raise HttpProblem(403, "the client certificate names no single valid device id")
    return device_id


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise HttpProblem(
            405, f"method {method} not allowed", [(b"allow", ", ".join(allowed).encode())]
        )


async def _body(receive: Receive, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpProblem(400, "client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HttpProblem(413, f"request body larger than {limit} bytes")
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _json(
    send: Send, status: int, obj: object, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await _respond(send, status, json.dumps(obj).encode(), b"application/json", headers)
