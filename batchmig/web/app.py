"""The dashboard's HTTP application (aiohttp): pages, a JSON API, live updates, cutover.

=====================================  =====================================================
``GET /``                              the runs, with their state and counts
``GET /runs/{run}``                    the dashboard of one run: the report's views, live
``GET /api/runs``                      the runs as JSON
``GET /api/runs/{run}/view``           the run's view document (``batchmig.report.view``)
``GET /api/runs/{run}/events``         server-sent events: a ``view`` event whenever the run changes
``GET /api/runs/{run}/instances/{id}`` one instance's remote ids and journaled calls
``POST /api/runs/{run}/cutover``       ``{"instances": [...]}`` or ``{"wave": "..."}``: release
                                       the cutover of instances that wait for it
``GET /metrics``                       Prometheus metrics of every run shown
=====================================  =====================================================

Reports are built in a worker thread (journal reads are blocking) and cached per run
until the run's fingerprint changes, so many open dashboards cost one build per change.
Every response forbids framing, sniffing, caching and referrers; pages carry a
Content-Security-Policy that lets them run their own inline script and talk to this
server only. Errors are one line of JSON, never a traceback.
"""

from __future__ import annotations

import asyncio
import getpass
import html
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict

import structlog
from aiohttp import web

from batchmig.errors import BatchmigError, UsageError
from batchmig.journal import AWAITING_CUTOVER, Requester
from batchmig.metrics import metrics_of_report, render_metrics
from batchmig.report.html import asset, render_page, script_json
from batchmig.report.model import RunReport
from batchmig.report.view import view_data
from batchmig.runsource import CutoverRefused, RunSource
from batchmig.web.security import COOKIE, CSRF_HEADER, Guard

log = structlog.get_logger("batchmig.web")

SOURCE = web.AppKey("source", RunSource)
GUARD = web.AppKey("guard", Guard)
CACHE = web.AppKey("cache", dict)
POLL_SECONDS = web.AppKey("poll_seconds", float)
LIVE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
MAX_SELECTION = 100_000
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    guard = request.app[GUARD]
    if not guard.host_allowed(request.headers.get("Host")):
        return _problem(421, "this dashboard answers to its loopback address only")
    if guard.query(request.query.get("token")):  # the printed URL: trade the token for a cookie
        target = request.rel_url.with_query({k: v for k, v in request.query.items() if k != "token"})
        response = web.HTTPSeeOther(str(target))
        response.set_cookie(COOKIE, guard.token, httponly=True, samesite="Strict", path="/")
        raise response
    by_header = guard.bearer(request.headers.get("Authorization"))
    if not (by_header or guard.cookie(request.cookies.get(COOKIE))):
        if request.method == "GET" and not request.path.startswith(("/api/", "/metrics")):
            return _login_page()
        return _problem(401, "an access token is needed (Authorization: Bearer TOKEN, or the printed URL)")
    if request.method not in ("GET", "HEAD"):
        own_origin = f"{request.scheme}://{request.host}"
        if not by_header and not guard.csrf(request.headers.get(CSRF_HEADER), request.headers.get("Origin"),
                                            own_origin):
            return _problem(403, "the CSRF check failed: reload the page and try again")
        if request.content_type != "application/json":
            return _problem(415, "send JSON (Content-Type: application/json)")
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except CutoverRefused as exc:
        return _problem(409, str(exc))
    except UsageError as exc:
        return _problem(404, str(exc))
    except BatchmigError as exc:
        return _problem(503, str(exc))


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers.setdefault("Content-Security-Policy", LIVE_CSP)
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    if isinstance(response, web.HTTPException):
        raise response
    return response


def _login_page() -> web.Response:
    body = (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>batchmig dashboard</title>"
            f"<style>{asset('report.css')}</style></head><body><div id=app><h1>batchmig dashboard</h1>"
            "<p>This dashboard needs its access token. Open the URL <code>batchmig serve</code> printed, or paste "
            "the token (from the token file it named):</p><form method=get action=''>"
            "<input name=token type=password size=50 autocomplete=off autofocus> <button>open</button></form></div>"
            "</body></html>")
    return web.Response(text=body, content_type="text/html", status=401)


async def _report(request: web.Request, run: str) -> tuple[RunReport, str]:
    """The run's report and view JSON, rebuilt only when the run changed."""
    source = request.app[SOURCE]
    cache = request.app[CACHE]
    fingerprint = await asyncio.to_thread(source.fingerprint, run)
    cached = cache.get(run)
    if cached is None or cached[0] != fingerprint:
        report = await asyncio.to_thread(source.report, run)
        view = await asyncio.to_thread(lambda: json.dumps(view_data(report), separators=(",", ":")))
        cached = cache[run] = (fingerprint, report, view)
    return cached[1], cached[2]


async def runs_page(request: web.Request) -> web.Response:
    entries = await asyncio.to_thread(request.app[SOURCE].runs)
    rows = "".join(
        f"<tr><td><a class=inst href='/runs/{html.escape(e.run)}'>{html.escape(e.run)}</a></td>"
        f"<td><span class='badge st-{html.escape(e.state)}'>{html.escape(e.state)}</span></td>"
        f"<td>{html.escape(e.created)}</td><td>{html.escape(e.plan)}</td>"
        f"<td>{html.escape(', '.join(f'{n} {s}' for s, n in e.counts.items()))}</td>"
        f"<td>{'sandbox' if e.sandbox else 'cloud'}</td></tr>"
        for e in entries
    )
    body = (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>batchmig runs</title>"
            f"<style>{asset('report.css')}</style></head><body><div id=app><h1>batchmig runs</h1>"
            "<table id=runs><tr><th>run</th><th>state</th><th>created</th><th>plan</th><th>instances</th>"
            f"<th>where</th></tr>{rows}</table>"
            + ("" if entries else "<p class=muted>No run yet.</p>") + "</div></body></html>")
    return web.Response(text=body, content_type="text/html")


async def run_page(request: web.Request) -> web.Response:
    run = request.match_info["run"]
    report, view = await _report(request, run)
    guard = request.app[GUARD]
    head = f'<meta name="csrf-token" content="{guard.csrf_token}">\n'
    page = render_page(json.loads(view), title=f"batchmig run {report.run} (live)", mode="live",
                       scripts=("report.js", "dashboard.js"), head=head,
                       csp=LIVE_CSP.replace("frame-ancestors 'none'; ", ""))  # a header-only directive
    return web.Response(text=page, content_type="text/html")


async def runs_api(request: web.Request) -> web.Response:
    entries = await asyncio.to_thread(request.app[SOURCE].runs)
    return web.json_response([e.as_json() for e in entries])


async def view_api(request: web.Request) -> web.Response:
    _, view = await _report(request, request.match_info["run"])
    return web.Response(text=view, content_type="application/json")


async def events_api(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the view whenever the run changes, a comment every 15 s to keep it open."""
    run = request.match_info["run"]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    sent = None
    quiet = 0.0
    poll = request.app[POLL_SECONDS]
    try:
        while True:
            _, view = await _report(request, run)
            if view is not sent:
                await response.write(f"event: view\ndata: {view}\n\n".encode())
                sent, quiet = view, 0.0
            elif quiet >= 15:
                await response.write(b": still here\n\n")
                quiet = 0.0
            await asyncio.sleep(poll)
            quiet += poll
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return response


async def instance_api(request: web.Request) -> web.Response:
    run, instance = request.match_info["run"], request.match_info["instance"]
    report, _ = await _report(request, run)
    found = next((i for i in report.instances if i.id == instance), None)
    if found is None:
        return _problem(404, f"no instance {instance} in run {run}")
    calls = await asyncio.to_thread(request.app[SOURCE].calls, run, instance)
    return web.Response(text=script_json({"remote_ids": found.remote_ids, "calls": [asdict(c) for c in calls]}),
                        content_type="application/json")


async def cutover_api(request: web.Request) -> web.Response:
    run = request.match_info["run"]
    try:
        body = await request.json()
    except ValueError:
        return _problem(400, "the body is not JSON")
    if not isinstance(body, dict):
        return _problem(400, 'send {"instances": [ids]} or {"wave": name}')
    report, _ = await _report(request, run)
    if isinstance(body.get("wave"), str):
        wave = body["wave"]
        released = {c.instance for c in report.cutovers}
        chosen = [i.id for i in report.instances
                  if i.wave == wave and i.status == AWAITING_CUTOVER and i.id not in released]
        selection = f"dashboard: wave {wave}"
    elif isinstance(body.get("instances"), list) and all(isinstance(i, str) for i in body["instances"]):
        chosen = list(dict.fromkeys(body["instances"]))[:MAX_SELECTION]
        selection = "dashboard: " + " ".join(chosen[:20]) + (" …" if len(chosen) > 20 else "")
    else:
        return _problem(400, 'send {"instances": [ids]} or {"wave": name}')
    if not chosen:
        return _problem(409, "no instance of that selection awaits a cutover")
    requester = Requester(f"{_os_user()} via dashboard", request.remote or "unknown")
    request_id = await asyncio.to_thread(request.app[SOURCE].release_cutover, run, chosen, requester, selection)
    request.app[CACHE].pop(run, None)
    log.info("dashboard.cutover", run=run, instances=len(chosen), request=request_id, client=request.remote)
    note = ("the runner picks it up within a second" if report.state == "running"
            else f"no runner works on the run: `batchmig resume {report.run}` continues it")
    return web.json_response({"request": request_id, "released": chosen,
                              "message": f"released the cutover of {len(chosen)} instance(s); {note}"})


async def metrics_api(request: web.Request) -> web.Response:
    source = request.app[SOURCE]
    entries = await asyncio.to_thread(source.runs)
    runs = [metrics_of_report((await _report(request, entry.run))[0]) for entry in entries]
    return web.Response(body=render_metrics(runs), content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def make_app(source: RunSource, guard: Guard, *, poll_seconds: float = 1.0) -> web.Application:
    app = web.Application(middlewares=[headers_middleware, guard_middleware], client_max_size=1024 * 1024)
    app[SOURCE] = source
    app[GUARD] = guard
    app[CACHE] = {}
    app[POLL_SECONDS] = poll_seconds
    app.add_routes([
        web.get("/", runs_page),
        web.get("/runs/{run}", run_page),
        web.get("/api/runs", runs_api),
        web.get("/api/runs/{run}/view", view_api),
        web.get("/api/runs/{run}/events", events_api),
        web.get("/api/runs/{run}/instances/{instance}", instance_api),
        web.post("/api/runs/{run}/cutover", cutover_api),
        web.get("/metrics", metrics_api),
    ])
    return app
