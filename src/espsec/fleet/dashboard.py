"""The fleet dashboard: releases, rollouts (progress and failure-rate chart), devices with
their posture and filters, and reports, as plain server-rendered pages.

Served on the admin listener under ``/dashboard/`` behind the admin token: the login
form exchanges the token for a session cookie (``HttpOnly``, ``Secure``,
``SameSite=Strict``, 8 hours) signed with a key derived from the token's digest, so it
is valid on every server process and dies with the token. Pages carry no script and a
strict Content-Security-Policy; everything a device or an admin wrote is escaped and
stripped of control characters.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from espsec._text import printable
from espsec.fleet import posture as posture_rules
from espsec.fleet.service import FleetService

COOKIE = "espsec_fleet_session"
SESSION_S = 8 * 3600
MAX_LOGIN_BODY = 4096
PAGE = 50
HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f5f6f8; }
header { background: #1d2330; color: #fff; padding: 10px 24px; display: flex; gap: 24px;
         align-items: center; }
header a { color: #cfd6e4; text-decoration: none; } header a.on { color: #fff; font-weight: 600; }
header form { margin-left: auto; }
main { padding: 16px 24px; }
h1 { font-size: 20px; margin: 8px 0 16px; } h2 { font-size: 16px; margin: 20px 0 8px; }
table { border-collapse: collapse; background: #fff; width: 100%; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e3e6ec;
         vertical-align: top; }
th { background: #eef0f4; font-weight: 600; }
.cards { display: flex; gap: 16px; flex-wrap: wrap; }
.card { background: #fff; padding: 12px 16px; border-radius: 6px; min-width: 140px;
        border: 1px solid #e3e6ec; }
.card b { display: block; font-size: 22px; }
.state { padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
.running { background: #d8f0dd; color: #155724; } .halted { background: #f8d7da; color: #842029; }
.paused { background: #fff3cd; color: #664d03; } .completed { background: #dbe7ff; color: #143d8f; }
.aborted { background: #e2e3e5; color: #41464b; }
.flag { background: #f8d7da; color: #842029; border-radius: 4px; padding: 0 6px; margin-right: 4px;
        font-size: 12px; white-space: nowrap; }
.ok { color: #155724; } .warn { color: #842029; font-weight: 600; }
.rollout { background: #fff; border: 1px solid #e3e6ec; border-radius: 6px; padding: 12px 16px;
           margin-bottom: 16px; }
.halt { color: #842029; font-weight: 600; }
form.filters { display: flex; gap: 12px; margin-bottom: 12px; align-items: end; }
label { display: flex; flex-direction: column; font-size: 12px; gap: 2px; }
input, select, button { font: inherit; padding: 4px 8px; }
.login { max-width: 360px; margin: 80px auto; background: #fff; padding: 24px;
         border: 1px solid #e3e6ec; border-radius: 6px; }
.login input { width: 100%; box-sizing: border-box; margin: 8px 0; }
.error { color: #842029; }
svg text { font: 11px system-ui, sans-serif; fill: #4a5160; }
svg text.legend-failure { fill: #c0392b; } svg text.legend-rollback { fill: #e08e0b; }
svg text.legend-step { fill: #5b7fc7; }
.next { margin-top: 12px; display: inline-block; }
"""


def _e(value: object) -> str:
    """Escaped, printable text for HTML."""
    return html.escape(printable("" if value is None else value))


def _utc(ts: object) -> str:
    if not isinstance(ts, int | float):
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _session_key(service: FleetService) -> bytes:
    return hmac.new(
        service.config.admin_token_sha256, b"espsec dashboard session", "sha256"
    ).digest()


def make_session(service: FleetService, now: float) -> str:
    expiry = str(int(now) + SESSION_S)
    mac = hmac.new(_session_key(service), expiry.encode(), hashlib.sha256).hexdigest()
    return f"{expiry}.{mac}"


def session_ok(service: FleetService, cookie: str | None, now: float) -> bool:
    if not cookie or "." not in cookie or len(cookie) > 200:
        return False
    expiry, _, mac = cookie.partition(".")
    if not expiry.isdigit() or int(expiry) < now:
        return False
    good = hmac.new(_session_key(service), expiry.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(good, mac)


def _page(title: str, active: str, body: str, status: int = 200) -> HTMLResponse:
    nav = "".join(
        f'<a href="{href}"{" class=on" if key == active else ""}>{name}</a>'
        for key, href, name in (
            ("overview", "/dashboard/", "Overview"),
            ("releases", "/dashboard/releases", "Releases"),
            ("rollouts", "/dashboard/rollouts", "Rollouts"),
            ("devices", "/dashboard/devices", "Devices"),
            ("reports", "/dashboard/reports", "Reports"),
        )
    )
    logout = '<form method="post" action="/dashboard/logout"><button>Log out</button></form>'
    doc = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{_e(title)} · espsec fleet</title>"
        '<link rel="stylesheet" href="/dashboard/static/style.css"></head><body>'
        f"<header><strong>espsec fleet</strong>{nav}{logout}</header>"
        f"<main><h1>{_e(title)}</h1>{body}</main></body></html>"
    )
    return HTMLResponse(doc, status_code=status, headers=HEADERS)


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]], empty: str) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return f"<p>{empty}</p>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _state(state: str) -> str:
    return f'<span class="state {_e(state)}">{_e(state)}</span>'


def progress_bar(percent: float, offered: int, updated: int, devices: int) -> str:
    """The rollout's step as a bar, with how many devices were offered and updated."""
    width = 400
    step_w = round(width * min(max(percent, 0.0), 100.0) / 100)
    upd_w = round(width * updated / devices) if devices else 0
    return (
        f'<svg class="progress" width="{width}" height="18" role="img" '
        f'aria-label="step {percent:g}%, {updated} of {devices} updated">'
        f'<rect width="{width}" height="18" fill="#e3e6ec"/>'
        f'<rect width="{step_w}" height="18" fill="#a9c4f5"/>'
        f'<rect width="{upd_w}" height="18" fill="#3b7d4f"/></svg>'
        f" step {percent:g}% · offered {offered} · updated {updated} of {devices}"
    )


def rate_chart(samples: list[dict[str, Any]], threshold: float) -> str:
    """Failure and rollback rates (and the step) over time, with the halting threshold."""
    w, h, pad = 640, 200, 36
    if not samples:
        return "<p>No samples yet.</p>"
    t0, t1 = int(samples[0]["at"]), int(samples[-1]["at"])
    span = max(1, t1 - t0)
    top: float = max(
        0.1,
        threshold * 1.5,
        *(max(s["failures"], s["rollbacks"]) / s["outcomes"] for s in samples if s["outcomes"]),
    )

    def x(at: int) -> float:
        return pad + (w - 2 * pad) * (at - t0) / span

    def y(rate: float) -> float:
        return h - pad + (2 * pad - h) * min(rate, top) / top

    def line(values: list[tuple[int, float]], colour: str, cls: str) -> str:
        points = " ".join(f"{x(a):.1f},{y(v):.1f}" for a, v in values)
        if len(values) == 1:
            a, v = values[0]
            return f'<circle class="{cls}" cx="{x(a):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>'
        return (
            f'<polyline class="{cls}" points="{points}" fill="none" stroke="{colour}" '
            'stroke-width="2"/>'
        )

    def rate(s: dict[str, Any], key: str) -> float:
        return float(s[key] / s["outcomes"]) if s["outcomes"] else 0.0

    failure = [(s["at"], rate(s, "failures")) for s in samples]
    rollback = [(s["at"], rate(s, "rollbacks")) for s in samples]
    step = [(s["at"], float(s["percent"]) / 100 * top) for s in samples]
    ty = y(threshold)
    return (
        f'<svg class="chart" width="{w}" height="{h}" role="img" '
        f'aria-label="failure and rollback rate over time">'
        f'<rect x="{pad}" y="{pad}" width="{w - 2 * pad}" height="{h - 2 * pad}" fill="#fff" '
        f'stroke="#e3e6ec"/>'
        f'<line class="threshold" x1="{pad}" x2="{w - pad}" y1="{ty:.1f}" y2="{ty:.1f}" '
        f'stroke="#842029" stroke-dasharray="4 3"/>'
        f'<text x="{w - pad - 110}" y="{ty - 4:.1f}">halt above {threshold:.1%}</text>'
        + line(step, "#a9c4f5", "step")
        + line(failure, "#c0392b", "failure-rate")
        + line(rollback, "#e08e0b", "rollback-rate")
        + f'<text x="{pad}" y="{h - 10}">{_utc(t0)}</text>'
        f'<text x="{w - pad - 120}" y="{h - 10}">{_utc(t1)}</text>'
        f'<text x="4" y="{pad + 4}">{top:.0%}</text><text x="4" y="{h - pad}">0%</text>'
        f'<text class="legend-failure" x="{pad}" y="14">— failure rate</text>'
        f'<text class="legend-rollback" x="{pad + 110}" y="14">— rollback rate</text>'
        f'<text class="legend-step" x="{pad + 230}" y="14">— step (of 100%)</text>'
        "</svg>"
    )


def dashboard_routes(service: FleetService) -> list[BaseRoute]:
    svc = service
    call = run_in_threadpool

    def guarded(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def page(request: Request) -> Response:
            if not session_ok(svc, request.cookies.get(COOKIE), time.time()):
                auth = request.headers.get("authorization", "")
                scheme, _, token = auth.partition(" ")
                if not (scheme.lower() == "bearer" and token and svc.token_ok(token.strip())):
                    return RedirectResponse("/dashboard/login", status_code=303, headers=HEADERS)
            return await handler(request)

        return page

    async def login(request: Request) -> Response:
        error = ""
        status = 200
        if request.method == "POST":
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_LOGIN_BODY:
                    return _login_page("request too large", 413)
            token = parse_qs(body.decode("latin-1")).get("token", [""])[0].strip()
            if token and svc.token_ok(token):
                response = RedirectResponse("/dashboard/", status_code=303, headers=HEADERS)
                response.set_cookie(
                    COOKIE,
                    make_session(svc, time.time()),
                    max_age=SESSION_S,
                    path="/dashboard",
                    secure=True,
                    httponly=True,
                    samesite="strict",
                )
                return response
            svc.stats.count("admin_auth_failures")
            error, status = "wrong admin token", 401
        return _login_page(error, status)

    async def logout(_: Request) -> Response:
        response = RedirectResponse("/dashboard/login", status_code=303, headers=HEADERS)
        response.delete_cookie(COOKIE, path="/dashboard", secure=True, httponly=True)
        return response

    async def style(_: Request) -> Response:
        return Response(CSS, media_type="text/css", headers={"cache-control": "max-age=300"})

    async def overview(_: Request) -> Response:
        summary = await call(svc.summary)
        rollouts = await call(svc.rollouts)
        active = [r for r in rollouts if r["state"] in ("running", "paused", "halted")]
        health = (
            '<span class="ok">taking writes</span>'
            if not summary["read_only"]
            else f'<span class="warn">read-only: {_e(summary["reason"])}</span>'
        )
        cards = "".join(
            f'<div class="card">{name}<b>{value}</b></div>'
            for name, value in (
                ("Devices", summary["devices"]),
                ("Releases", summary["releases"]),
                ("Active rollouts", summary["active_rollouts"]),
                ("Reports", summary["reports"]),
            )
        )
        rows = [
            (
                f'<a href="/dashboard/rollouts#rollout-{r["id"]}">#{r["id"]}</a>',
                _e(r["release_id"]),
                _e(r["cohort"]),
                _state(r["state"]),
                f"{r['percent']:g}%",
                f"{r['window']['failure_rate']:.1%}",
                f'<span class="halt">{_e(r["halt_reason"])}</span>' if r["halt_reason"] else "",
            )
            for r in active
        ]
        body = (
            f'<div class="cards">{cards}</div><p>Storage ({_e(summary["database"])}): {health}</p>'
            "<h2>Active rollouts</h2>"
            + _table(
                ("Rollout", "Release", "Cohort", "State", "Step", "Failure rate", "Halt"),
                rows,
                "No rollout in progress.",
            )
        )
        return _page("Overview", "overview", body)

    async def releases(_: Request) -> Response:
        rows = await call(lambda: svc.releases(limit=1000))
        cohorts = await call(svc.cohorts)
        assigned: dict[str, list[str]] = {}
        for c in cohorts:
            if c["release_id"]:
                assigned.setdefault(c["release_id"], []).append(c["name"])
        table = _table(
            ("Release", "Project", "Version", "secure_version", "Chip", "Image", "Cohorts",
             "Uploaded"),
            (
                (
                    f"<code>{_e(r.id)}</code>",
                    _e(r.project_name),
                    _e(r.version),
                    str(r.secure_version),
                    _e(r.chip),
                    f"{r.image_length:,} B",
                    _e(", ".join(assigned.get(r.id, [])) or "-"),
                    _utc(r.created_at),
                )
                for r in reversed(rows)
            ),
            "No release uploaded yet.",
        )  # fmt: skip
        return _page("Releases", "releases", table)

    async def rollouts(_: Request) -> Response:
        rows = await call(svc.rollouts)
        parts = []
        for r in rows:
            w, p = r["window"], r["progress"]
            halt = f'<p class="halt">Halted: {_e(r["halt_reason"])}</p>' if r["halt_reason"] else ""
            steps = ", ".join(f"{s:g}%" for s in r["steps"])
            parts.append(
                f'<section class="rollout" id="rollout-{r["id"]}">'
                f"<h2>Rollout #{r['id']}: {_e(r['release_id'])} → cohort {_e(r['cohort'])} "
                f"{_state(r['state'])}</h2>{halt}"
                f"<p>{progress_bar(r['percent'], p['offered'], p['updated'], p['devices'])}</p>"
                f"<p>Steps {steps}; window {r['window_s']} s; halts above "
                f"{r['halt_on_failure_rate']:.1%}. In the window: {w['outcomes']} outcome(s), "
                f"failure rate <b>{w['failure_rate']:.1%}</b>, rollback rate "
                f"<b>{w['rollback_rate']:.1%}</b>.</p>"
                f"{rate_chart(r['samples'], r['halt_on_failure_rate'])}</section>"
            )
        return _page("Rollouts", "rollouts", "".join(parts) or "<p>No rollouts yet.</p>")

    async def devices(request: Request) -> Response:
        q = request.query_params
        cohort = q.get("cohort") or None
        weak = q.get("weak") == "1"
        flag = q.get("flag") or None
        after = q.get("after") or None
        rows = await call(
            lambda: svc.devices(
                limit=PAGE, after=after, cohort=cohort, weak=True if weak else None, flag=flag
            )
        )
        cohorts = [c["name"] for c in await call(svc.cohorts)]
        options = "".join(
            f'<option value="{_e(c)}"{" selected" if c == cohort else ""}>{_e(c)}</option>'
            for c in ["", *cohorts]
        )
        titles = {r["code"]: r["title"] for r in svc.posture_audit.rules()}
        flags = [("", ""), *((code, f"{code} {title}") for code, title in titles.items())]
        flag_options = "".join(
            f'<option value="{_e(f)}"{" selected" if f == flag else ""}>{_e(text)}</option>'
            for f, text in flags
        )
        filters = (
            '<form class="filters" method="get" action="/dashboard/devices">'
            f'<label>Cohort<select name="cohort">{options}</select></label>'
            f'<label>Weakness<select name="flag">{flag_options}</select></label>'
            f'<label><span>Weak only</span><input type="checkbox" name="weak" value="1"'
            f"{' checked' if weak else ''}></label><button>Filter</button></form>"
        )

        def posture_cells(d: Any) -> tuple[str, str]:
            p = d.to_json()["posture"]
            if not p:
                summary = "-"
            else:
                summary = (
                    f"SB {'on' if p['secure_boot'] else 'off'} · FE {_e(p['flash_encryption'])} · "
                    f"JTAG {_e(p['jtag'])} · DL {_e(p['download_mode'])} · "
                    f"sv {p['secure_version']} · IDF {_e(p.get('idf_version') or '-')}"
                )
            found = posture_rules.weak_codes(d.posture_flags)
            flags_html = "".join(
                f'<span class="flag" title="{_e(titles.get(f, f))}">{_e(f)}</span>' for f in found
            ) or ('<span class="ok">ok</span>')
            return summary, flags_html

        table = _table(
            ("Device", "Cohort", "Chip", "Version", "Posture", "Weaknesses", "Last outcome",
             "Last seen"),
            (
                (
                    f"<code>{_e(d.device_id)}</code>",
                    _e(d.cohort),
                    _e(d.chip or "-"),
                    _e(d.version or "-"),
                    *posture_cells(d),
                    _e(d.last_outcome or "-"),
                    _utc(d.last_seen),
                )
                for d in rows
            ),
            "No device matches.",
        )  # fmt: skip
        more = ""
        if len(rows) == PAGE:
            params = {k: v for k, v in q.items() if k != "after"}
            params["after"] = rows[-1].device_id
            more = (
                f'<a class="next" href="/dashboard/devices?{_e(urlencode(params))}">Next page</a>'
            )
        return _page("Devices", "devices", filters + table + more)

    async def reports(request: Request) -> Response:
        q = request.query_params
        device = q.get("device") or None
        before_text = q.get("before") or ""
        before = int(before_text) if before_text.isdigit() and len(before_text) < 13 else None
        rows = await call(lambda: svc.reports(device, limit=PAGE, before=before))
        table = _table(
            ("Time", "Device", "Release", "Outcome", "Reason"),
            (
                (
                    _utc(r["at"]),
                    f'<a href="/dashboard/reports?{_e(urlencode({"device": r["device_id"]}))}">'
                    f"<code>{_e(r['device_id'])}</code></a>",
                    _e(r["release_id"] or "-"),
                    _e(r["outcome"]),
                    _e(r["reason"]),
                )
                for r in rows
            ),
            "No reports.",
        )
        more = ""
        if len(rows) == PAGE:
            params = {"before": str(rows[-1]["id"]), **({"device": device} if device else {})}
            more = f'<a class="next" href="/dashboard/reports?{_e(urlencode(params))}">Older</a>'
        return _page("Reports", "reports", table + more)

    return [
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/static/style.css", style, methods=["GET"]),
        Route("/", guarded(overview), methods=["GET"]),
        Route("/releases", guarded(releases), methods=["GET"]),
        Route("/rollouts", guarded(rollouts), methods=["GET"]),
        Route("/devices", guarded(devices), methods=["GET"]),
        Route("/reports", guarded(reports), methods=["GET"]),
    ]


def _login_page(error: str, status: int) -> HTMLResponse:
    message = f'<p class="error">{_e(error)}</p>' if error else ""
    doc = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>espsec fleet: log in"
        '</title><link rel="stylesheet" href="/dashboard/static/style.css"></head><body>'
        '<form class="login" method="post" action="/dashboard/login">'
        "<h1>espsec fleet</h1><p>The admin token (from <code>espsec fleet init</code>):</p>"
        f'<input type="password" name="token" autocomplete="current-password" autofocus>'
        f"{message}<button>Log in</button></form></body></html>"
    )
    return HTMLResponse(doc, status_code=status, headers=HEADERS)
