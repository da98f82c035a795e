"""The fleet's HTTP API on Starlette (served by uvicorn, see :mod:`espsec.fleet.server`).

Two applications, each on its own listener:

**Device API** (:func:`device_app`; mutual TLS: the client certificate names the device;
the messages are :mod:`espsec.ota.protocol`'s)::

    POST /api/v1/device/checkin      check-in JSON -> signed manifest envelope
    POST /api/v1/device/report       outcome JSON
    GET  /api/v1/firmware/<sha256>   payload bytes; Range / If-Range for resuming
    GET  /api/v1/manifest-key        the manifest public key (PEM), for provisioning
    GET  /api/v1/health

**Admin API** (:func:`admin_app`; ``Authorization: Bearer <token>``; by default on
127.0.0.1 only), and the dashboard (:mod:`espsec.fleet.dashboard`) under ``/dashboard/``::

    POST /api/v1/admin/releases              upload a release bundle (verified first)
    GET  /api/v1/admin/releases[?limit=&after=]
    PUT  /api/v1/admin/cohorts/<name>        {"release_id": "..." | null}
    GET  /api/v1/admin/cohorts
    PUT  /api/v1/admin/devices/<device_id>   {"cohort": "..."}
    GET  /api/v1/admin/devices[?limit=&after=&cohort=&weak=&chip=&flag=]
    GET  /api/v1/admin/devices/<device_id>
    GET  /api/v1/admin/reports[?device=&limit=&before=]
    GET  /api/v1/admin/posture
    POST /api/v1/admin/rollouts              {"release_id", "cohort", "steps", ...}
    GET  /api/v1/admin/rollouts
    GET  /api/v1/admin/rollouts/<id>
    POST /api/v1/admin/rollouts/<id>/<pause|resume|abort>
    GET  /api/v1/admin/stats
    GET  /api/v1/admin/health

Lists are pages: ``{"items": [...], "next": <cursor or null>}``. Every service call runs
in a thread pool, never on the event loop. Request bodies are read as a stream with a
limit (413 as soon as a declared or received length passes it). JSON bodies are parsed
strictly (duplicate keys, NaN and unknown members refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from espsec._text import printable
from espsec.errors import EspsecError, FormatError, UsageError, VerificationError
from espsec.fleet.db import AlreadyExists, ReportRefused
from espsec.fleet.service import (
    CheckInCall,
    Conflict,
    FleetService,
    Forbidden,
    NotFound,
    RateLimited,
    ReadOnly,
)
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

log = logging.getLogger("espsec.fleet")

MAX_DEVICE_BODY = 16 * 1024
MAX_ADMIN_JSON = 64 * 1024
MAX_RANGE_HEADER = 128
_RANGE_NUMBER = re.compile(r"\d{19,}")
_DECIMAL = re.compile(r"\d{1,3}(\.\d{1,9})?\Z")
TICK_S = 5.0
"""Seconds between evaluations of running rollouts."""


class HttpProblem(Exception):
    """An HTTP error answer (status and a one-line message)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": printable(message)[:1000]}, status_code=status, headers=headers)


def _retry_after(seconds: float) -> dict[str, str]:
    return {"retry-after": str(max(1, round(seconds)))}


def problem_response(service: FleetService, request: Request, exc: Exception) -> Response:
    """The answer to an exception: one place for every status the API gives."""
    if isinstance(exc, HttpProblem):
        return _error(exc.status, exc.message, exc.headers)
    if isinstance(exc, HTTPException):
        return _error(exc.status_code, str(exc.detail), dict(exc.headers or {}))
    if isinstance(exc, EspsecError):
        text = str(exc)
        if isinstance(exc, NotFound):
            return _error(404, text)
        if isinstance(exc, Forbidden | ReportRefused):
            service.stats.count("device_requests_forbidden")
            return _error(403, text)
        if isinstance(exc, ReadOnly):
            return _error(503, text, _retry_after(exc.retry_after))
        if isinstance(exc, RateLimited):
            return _error(429, text, _retry_after(exc.retry_after))
        if isinstance(exc, VerificationError):
            return _error(422, text)
        if isinstance(exc, AlreadyExists | Conflict):
            return _error(409, text)
        return _error(400, text)
    log.error(
        "internal error on %s %s: %s",
        request.method,
        printable(request.url.path)[:200],
        type(exc).__name__,
        exc_info=exc,
    )
    return _error(500, "internal error")


def _handlers(service: FleetService) -> dict[Any, Callable[..., Any]]:
    """Starlette's exception handlers: :func:`problem_response` for every exception."""

    def handle(request: Request, exc: Exception) -> Response:
        return problem_response(service, request, exc)

    return {HttpProblem: handle, HTTPException: handle, EspsecError: handle, Exception: handle}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to pass ``limit`` bytes."""
    return await receive_body(request.scope, request.receive, limit)


async def receive_body(scope: Any, receive: Any, limit: int) -> bytes:
    """:func:`read_body` of a bare ASGI request (``scope``, ``receive``)."""
    for name, declared in scope["headers"]:
        if name == b"content-length":
            if not declared.isdigit() or len(declared) > 18:
                raise HttpProblem(400, "malformed Content-Length")
            if int(declared) > limit:
                raise HttpProblem(413, f"request body larger than {limit} bytes")
            break
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HttpProblem(413, f"request body larger than {limit} bytes")
        parts.append(chunk)
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


def _client(request: Request) -> tuple[str, str | None]:
    """The device id (and certificate SHA-256) the verified TLS client certificate names.

    The server's TLS layer has checked the chain to the fleet's device CA and read the
    device id the certificate binds (:mod:`espsec.fleet.server`), once per connection.
    """
    return _client_of(request.scope)


def _client_of(scope: Any) -> tuple[str, str | None]:
    tls = scope.get("extensions", {}).get("tls", {})
    if not tls.get("client_cert_chain"):
        raise HttpProblem(401, "a client certificate from the fleet's device CA is required")
    device_id = tls.get("device_id")
    if device_id is None or not DEVICE_ID.match(device_id):
        raise HttpProblem(403, "the client certificate names no single valid device id")
    return device_id, tls.get("cert_sha256")


def _query_int(request: Request, name: str, default: int | None) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return default
    if not value.isdigit() or len(value) > 12:
        raise HttpProblem(400, f"query parameter {name} must be a number")
    return int(value)


def _query_bool(request: Request, name: str) -> bool | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if value not in ("0", "1", "true", "false"):
        raise HttpProblem(400, f"query parameter {name} must be 1 or 0")
    return value in ("1", "true")


def _bounded_range(request: Request) -> None:
    """Refuse a Range header no real client sends (overlong, or numbers of 19+ digits):
    Python's ``int()`` of thousands of digits is slow, or an error."""
    header = request.headers.get("range")
    if header is not None and (len(header) > MAX_RANGE_HEADER or _RANGE_NUMBER.search(header)):
        raise HttpProblem(416, "range not satisfiable")


# -- the device API ---------------------------------------------------------------------


CHECK_IN_LINGER_S = 0.005
"""How long a check-in waits for others to share its batch (at 4000 check-ins a second
on two cores, 5 ms gave the lowest p99; it is also the latency it adds when idle)."""


class CheckInBatcher:
    """Check-ins from the event loop to the service in batches (group commit).

    The check-ins that arrive while a batch is being written form the next one, and a
    check-in that finds no batch running waits ``linger`` seconds for others: one thread
    hop and one database transaction (one commit) for all of them
    (:meth:`FleetService.check_in_batch`). Under load this makes batches of tens of
    check-ins, and the event loop and the batch thread hand the interpreter lock to each
    other far less often. A device's answer is sent only after the transaction that
    records its check-in has committed, so nothing acknowledged is lost to a crash.
    """

    def __init__(
        self,
        service: FleetService,
        *,
        max_batch: int = 256,
        parallel: int = 1,
        linger: float = CHECK_IN_LINGER_S,
    ):
        self.service = service
        self.max_batch = max_batch
        self.parallel = parallel
        """Batches in flight at once (each in its own thread and database connection)."""
        self._pending: list[tuple[CheckInCall, asyncio.Future[bytes]]] = []
        self._running = 0
        self._executor = ThreadPoolExecutor(parallel, thread_name_prefix="fleet-check-in")
        self.linger = linger
        """Seconds a check-in that finds no batch running waits for others to join it."""
        self._timer: asyncio.TimerHandle | None = None

    async def check_in(self, call: CheckInCall) -> bytes:
        """Record ``call`` (in the next batch) and return its signed manifest."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        self._pending.append((call, future))
        if self._running < self.parallel and self._timer is None:
            if self.linger <= 0 or len(self._pending) >= self.max_batch:
                self._launch(loop)
            else:
                self._timer = loop.call_later(self.linger, self._fire, loop)
        return await future

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if self._pending and self._running < self.parallel:
            self._launch(loop)

    def _launch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = self._pending[: self.max_batch]
        del self._pending[: self.max_batch]
        self._running += 1
        done = loop.run_in_executor(
            self._executor, self.service.check_in_batch, [call for call, _ in batch]
        )
        done.add_done_callback(lambda d: self._answer(loop, batch, d))

    def _answer(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[tuple[CheckInCall, asyncio.Future[bytes]]],
        done: asyncio.Future[list[bytes | Exception]],
    ) -> None:
        self._running -= 1
        if done.cancelled():  # the server is stopping
            failed: BaseException | None = ReadOnly("the fleet server is stopping; check in later")
        else:
            failed = done.exception()
        answers = [failed] * len(batch) if failed is not None else done.result()
        for (_, future), answer in zip(batch, answers, strict=True):
            if future.done():  # the request was cancelled
                continue
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)
        if self._pending and self._running < self.parallel:
            self._launch(loop)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)


def device_routes(service: FleetService) -> list[BaseRoute]:
    """Every device request but the check-in (:class:`DeviceApp` answers that one)."""
    svc = service

    async def report(request: Request) -> Response:
        client, _ = _client(request)
        body = await read_body(request, MAX_DEVICE_BODY)
        await run_in_threadpool(svc.report, body, client_id=client)
        return JSONResponse({"ok": True})

    async def firmware(request: Request) -> Response:
        client, _ = _client(request)
        _bounded_range(request)
        sha256 = request.path_params["sha256"]
        path, _ = await run_in_threadpool(svc.blob, sha256, client_id=client)
        partial = request.headers.get("range") is not None
        svc.stats.count("downloads_partial" if partial else "downloads_full")
        return FileResponse(
            path,
            media_type="application/octet-stream",
            headers={"etag": f'"{sha256}"', "cache-control": "no-store"},
        )

    async def manifest_key(_: Request) -> Response:
        return Response(svc.manifest_public_pem(), media_type="application/x-pem-file")

    async def health(_: Request) -> Response:
        return JSONResponse(svc.health())

    return [
        Route(REPORT_PATH, report, methods=["POST"]),
        Route(FIRMWARE_PATH + "{sha256}", firmware, methods=["GET", "HEAD"]),
        Route(MANIFEST_KEY_PATH, manifest_key, methods=["GET"]),
        Route(f"{API}/health", health, methods=["GET"]),
    ]


_CHECK_IN_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


class DeviceApp:
    """The device listener's application (mutual TLS).

    The check-in path, the one request every device sends every interval, goes straight
    to the :class:`CheckInBatcher` (the same checks, limits and error answers as the
    Starlette routes, without routing and middleware); everything else is the Starlette
    application of :func:`device_routes`.
    """

    def __init__(self, service: FleetService, *, parallel: int = 1) -> None:
        self.service = service
        self.batcher = CheckInBatcher(service, parallel=parallel)

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            try:
                yield
            finally:
                self.batcher.close()

        self.starlette = Starlette(
            routes=device_routes(service),
            exception_handlers=_handlers(service),
            lifespan=lifespan,
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == CHECK_IN_PATH:
            await self._check_in(scope, receive, send)
        else:
            await self.starlette(scope, receive, send)

    async def _check_in(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            if scope["method"] != "POST":
                raise HTTPException(405, headers={"allow": "POST"})
            client, cert_sha256 = _client_of(scope)
            body = await receive_body(scope, receive, MAX_DEVICE_BODY)
            manifest = await self.batcher.check_in(CheckInCall(body, client, cert_sha256))
        except ClientDisconnect:
            return
        except Exception as exc:
            answer = problem_response(self.service, Request(scope, receive), exc)
            await answer(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(manifest)), *_CHECK_IN_HEADERS],
            }
        )
        await send({"type": "http.response.body", "body": manifest})


def device_app(service: FleetService, *, parallel: int = 1) -> DeviceApp:
    """The device listener's application (mutual TLS); ``parallel``: check-in batches
    written at once (1 suits SQLite's single writer)."""
    return DeviceApp(service, parallel=parallel)


# -- the admin API ----------------------------------------------------------------------


def authorise(service: FleetService, request: Request) -> None:
    """The bearer token, or (for the dashboard) a session cookie made from it."""
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token and service.token_ok(token.strip()):
        return
    service.stats.count("admin_auth_failures")
    raise HttpProblem(
        401, "admin token missing or wrong", {"www-authenticate": 'Bearer realm="fleet"'}
    )


def _page(items: list[Any], limit: int, cursor: Callable[[Any], Any]) -> dict[str, Any]:
    return {"items": items, "next": cursor(items[-1]) if len(items) == limit else None}


async def _json_body(request: Request, what: str) -> dict[str, Any]:
    return strict_loads(await read_body(request, MAX_ADMIN_JSON), what=what)


def admin_routes(service: FleetService) -> list[BaseRoute]:
    svc = service
    call = run_in_threadpool

    def admin(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            authorise(svc, request)
            return await handler(request)

        return guarded

    async def releases(request: Request) -> Response:
        if request.method == "POST":
            body = await read_body(request, svc.config.max_upload)
            row = await call(svc.upload_release, body)
            return JSONResponse(row.to_json(), status_code=201)
        limit = _query_int(request, "limit", 100) or 100
        rows = await call(svc.releases, limit=limit, after=request.query_params.get("after"))
        return JSONResponse(_page([r.to_json() for r in rows], limit, lambda r: r["id"]))

    async def cohorts(_: Request) -> Response:
        return JSONResponse(await call(svc.cohorts))

    async def cohort(request: Request) -> Response:
        obj = await _json_body(request, "cohort assignment")
        if set(obj) - {"release_id"}:
            raise FormatError("cohort assignment: unknown field", field=sorted(set(obj))[0][:64])
        release_id = obj.get("release_id")
        if release_id is not None and not isinstance(release_id, str):
            raise FormatError("release_id must be a string or null", field="release_id")
        name = request.path_params["name"]
        await call(svc.assign_cohort, name, release_id)
        return JSONResponse({"cohort": name, "release_id": release_id})

    async def devices(request: Request) -> Response:
        limit = _query_int(request, "limit", 100) or 100
        q = request.query_params
        rows = await call(
            lambda: svc.devices(
                limit=limit,
                after=q.get("after"),
                cohort=q.get("cohort") or None,
                weak=_query_bool(request, "weak"),
                chip=q.get("chip") or None,
                flag=q.get("flag") or None,
            )
        )
        return JSONResponse(_page([d.to_json() for d in rows], limit, lambda d: d["device_id"]))

    async def device(request: Request) -> Response:
        device_id = request.path_params["device_id"]
        if request.method == "GET":
            return JSONResponse((await call(svc.device, device_id)).to_json())
        obj = await _json_body(request, "device assignment")
        if set(obj) - {"cohort"}:
            raise FormatError("device assignment: unknown field", field=sorted(set(obj))[0][:64])
        target = obj.get("cohort")
        if not isinstance(target, str):
            raise FormatError("cohort must be a string", field="cohort")
        await call(svc.set_device_cohort, device_id, target)
        return JSONResponse({"device_id": device_id, "cohort": target})

    async def reports(request: Request) -> Response:
        limit = _query_int(request, "limit", 100) or 100
        rows = await call(
            lambda: svc.reports(
                request.query_params.get("device") or None,
                limit=limit,
                before=_query_int(request, "before", None),
            )
        )
        return JSONResponse(_page(rows, limit, lambda r: r["id"]))

    async def posture(_: Request) -> Response:
        return JSONResponse(await call(svc.posture))

    async def rollouts(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(await call(svc.rollouts))
        obj = await _json_body(request, "rollout")
        known = {
            "release_id",
            "cohort",
            "steps",
            "halt_on_failure_rate",
            "window_s",
            "step_interval_s",
            "min_reports",
        }
        unknown = set(obj) - known
        if unknown:
            raise FormatError("rollout: unknown field", field=sorted(unknown)[0][:64])
        release_id, cohort_name = obj.get("release_id"), obj.get("cohort", "default")
        if not isinstance(release_id, str) or not isinstance(cohort_name, str):
            raise FormatError("rollout: release_id and cohort must be strings", field="release_id")
        options: dict[str, Any] = {}
        rate = obj.get("halt_on_failure_rate")
        if rate is not None:  # a decimal string: the strict JSON carries no floats
            if not isinstance(rate, str) or not _DECIMAL.match(rate):
                raise FormatError(
                    'rollout: halt_on_failure_rate must be a decimal string such as "0.05"',
                    field="halt_on_failure_rate",
                )
            options["halt_on_failure_rate"] = float(rate)
        for key, kind in (
            ("steps", str),
            ("window_s", int),
            ("step_interval_s", int),
            ("min_reports", int),
        ):
            value = obj.get(key)
            if value is None:
                continue
            if not isinstance(value, kind) or isinstance(value, bool):
                raise FormatError(f"rollout: {key} must be a {kind.__name__}", field=key)
            options[key] = value
        status = await call(lambda: svc.start_rollout(release_id, cohort_name, **options))
        return JSONResponse(status, status_code=201)

    async def rollout(request: Request) -> Response:
        return JSONResponse(await call(svc.rollout_status, _rollout_id(request)))

    async def rollout_action(request: Request) -> Response:
        action = request.path_params["action"]
        if action not in ("pause", "resume", "abort"):
            raise HttpProblem(404, "no such rollout action (pause, resume, abort)")
        return JSONResponse(await call(svc.rollout_action, _rollout_id(request), action))

    async def stats(_: Request) -> Response:
        return JSONResponse(svc.stats.to_json())

    async def health(_: Request) -> Response:
        return JSONResponse(svc.health())

    base = ADMIN_PATH.rstrip("/")
    return [
        Route(f"{base}/releases", admin(releases), methods=["GET", "POST"]),
        Route(f"{base}/cohorts", admin(cohorts), methods=["GET"]),
        Route(f"{base}/cohorts/{{name}}", admin(cohort), methods=["PUT"]),
        Route(f"{base}/devices", admin(devices), methods=["GET"]),
        Route(f"{base}/devices/{{device_id}}", admin(device), methods=["GET", "PUT"]),
        Route(f"{base}/reports", admin(reports), methods=["GET"]),
        Route(f"{base}/posture", admin(posture), methods=["GET"]),
        Route(f"{base}/rollouts", admin(rollouts), methods=["GET", "POST"]),
        Route(f"{base}/rollouts/{{rollout_id}}", admin(rollout), methods=["GET"]),
        Route(
            f"{base}/rollouts/{{rollout_id}}/{{action}}", admin(rollout_action), methods=["POST"]
        ),
        Route(f"{base}/stats", admin(stats), methods=["GET"]),
        Route(f"{base}/health", admin(health), methods=["GET"]),
    ]


def _rollout_id(request: Request) -> int:
    value = request.path_params["rollout_id"]
    if not value.isdigit() or len(value) > 12:
        raise HttpProblem(404, "no such rollout")
    return int(value)


def admin_app(service: FleetService, *, tick: float | None = TICK_S) -> Starlette:
    """The admin listener's application: the admin API and the dashboard.

    ``tick``: seconds between evaluations of running rollouts (``None``: never, for tests
    that drive the clock themselves).
    """
    from espsec.fleet.dashboard import dashboard_routes

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(_ticker(service, tick)) if tick else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def root(_: Request) -> Response:
        return RedirectResponse("/dashboard/", status_code=303)

    routes: list[BaseRoute] = [
        *admin_routes(service),
        Mount("/dashboard", routes=dashboard_routes(service)),
        Route("/", root, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers=_handlers(service), lifespan=lifespan)


async def _ticker(service: FleetService, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await run_in_threadpool(service.tick)
        except Exception:  # never let the ticker die: log and go on
            log.exception("rollout evaluation failed")


__all__ = [
    "CHECK_IN_LINGER_S",
    "MAX_ADMIN_JSON",
    "MAX_DEVICE_BODY",
    "CheckInBatcher",
    "DeviceApp",
    "HttpProblem",
    "UsageError",
    "admin_app",
    "device_app",
    "read_body",
]
