"""The rating page's server: a Starlette app over one `RatingDesk`.

    GET  /?token=T[&rater=NAME]   the page (an invitation link; sets the rater cookie)
    GET  /api/next[?showing=ID&shown_for=S]   the rater's current item, or "wait" / "done" (token header)
    POST /api/answer              {"id": ..., "value": ..., "shown_for": seconds} or {"id": ..., "timeout": true}
    GET  /static/rate.js, rate.css

Every /api call carries the study's token (`X-Arena-Token`); the rater is the
`arena_rater` cookie the page set (a random id, or the `rater=` of a named link).
A refused request (no token, too big, malformed, unknown route) is answered with a
short plain status and logged as ONE line through `say`; an unexpected error is one line
too, never a traceback in the page or the log. The page is served with a Content Security
Policy that runs no inline script: model text, written with `textContent`, stays text.
"""
from __future__ import annotations

import json
import math
import re
import secrets
from pathlib import Path
from typing import Any, Awaitable, Callable

from arena.spaces import MAX_TEXT
from arena.web.desk import RatingDesk, Refused

ASSETS = Path(__file__).parent / "assets"
COOKIE = "arena_rater"
RATER_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class BadRequest(Exception):
    """A request refused with `status`; its message is the one log line (and the short reply)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def build_app(desk: RatingDesk, token: str, say: Callable[[str], None], *, max_body: int = 65536,
              heading: str = "alignment arena"):
    """The ASGI app serving `desk` to raters holding `token`; refusals go to `say` as one line."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    page = (ASSETS / "rate.html").read_text(encoding="utf-8")
    static = {"rate.js": ("text/javascript", (ASSETS / "rate.js").read_bytes()),
              "rate.css": ("text/css", (ASSETS / "rate.css").read_bytes())}

    def refuse(request: Request, err: BadRequest) -> Response:
        client = request.client.host if request.client else "?"
        say(f"refused {request.method} {request.url.path[:80]} from {client}: {err} ({err.status})")
        return PlainTextResponse(f"{err}\n", status_code=err.status, headers=SECURITY_HEADERS)

    def guarded(fn: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await fn(request)
            except BadRequest as err:
                return refuse(request, err)
            except Exception as err:  # noqa: BLE001 (a bug or a full disk): one line in the log, a plain 500 in the page
                say(f"error in {request.method} {request.url.path[:80]}: {type(err).__name__}: "
                    f"{' '.join(str(err).split())[:200]}")
                return PlainTextResponse("internal error\n", status_code=500, headers=SECURITY_HEADERS)
        return endpoint

    def check_token(given: str | None) -> None:
        if not given or not secrets.compare_digest(given.encode(), token.encode()):
            raise BadRequest(403, "missing or wrong token")

    def rater_of(request: Request) -> str:
        rater = request.cookies.get(COOKIE, "")
        if not RATER_RE.match(rater):
            raise BadRequest(400, "no rater cookie (open the invitation link again)")
        return rater

    async def index(request: Request) -> Response:
        check_token(request.query_params.get("token"))
        named = request.query_params.get("rater")
        if named is not None and not RATER_RE.match(named):
            raise BadRequest(400, "rater names are 1-40 letters, digits, '.', '_' or '-'")
        current = request.cookies.get(COOKIE, "")
        rater = named or (current if RATER_RE.match(current) else f"r-{secrets.token_hex(4)}")
        html = page.replace("{{TOKEN}}", token).replace("{{HEADING}}", _escape(heading))
        resp = Response(html, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)
        resp.set_cookie(COOKIE, rater, max_age=30 * 86400, httponly=True, samesite="strict")
        return resp

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in static:
            raise BadRequest(404, "no such file")
        media, data = static[name]
        return Response(data, media_type=media, headers=SECURITY_HEADERS)

    async def next_item(request: Request) -> Response:
        check_token(request.headers.get("x-arena-token"))
        rater = rater_of(request)
        state, item, remaining = desk.next_for(rater, showing_of(request.query_params))
        body: dict[str, Any] = {"state": state, "rater": rater, "answered": desk.answered_by(rater),
                                "notes": desk.notes(rater)}
        if item is not None:
            body["item"] = item.public(remaining)
        return JSONResponse(body, headers=SECURITY_HEADERS)

    async def answer(request: Request) -> Response:
        check_token(request.headers.get("x-arena-token"))
        rater = rater_of(request)
        data = await read_json(request, max_body)
        item_id = data.get("id")
        if not isinstance(item_id, str) or len(item_id) > 200:
            raise BadRequest(400, "malformed answer: no item id")
        timed_out = data.get("timeout") is True
        shown_for = seconds_or_none(data.get("shown_for"))  # only used if the server restarted meanwhile
        held = desk.holding(rater)
        item = held if held is not None and held.id == item_id else desk.item(item_id)
        if item is None:
            raise BadRequest(409, "that item is not the one you hold (answered already, or its time ran out)")
        value = None if timed_out else parse_value(item.kind, data.get("value"))
        try:
            ans = desk.answer(rater, item_id, value, timed_out=timed_out, shown_for=shown_for)
        except Refused as err:
            raise BadRequest(409, str(err)) from None
        return JSONResponse({"ok": True, "timed_out": ans.timed_out, "answered": desk.answered_by(rater)},
                            headers=SECURITY_HEADERS)

    async def favicon(request: Request) -> Response:
        return Response(status_code=204, headers=SECURITY_HEADERS)  # browsers ask; not worth a log line

    async def not_found(request: Request) -> Response:
        raise BadRequest(404, "no such page")

    routes = [Route("/", guarded(index)), Route("/static/{name}", guarded(asset)),
              Route("/api/next", guarded(next_item)), Route("/favicon.ico", favicon),
              Route("/api/answer", guarded(answer), methods=["POST"]),
              Route("/{rest:path}", guarded(not_found), methods=["GET", "POST", "PUT", "DELETE", "PATCH"])]
    return Starlette(routes=routes)


async def read_json(request: Any, max_body: int) -> dict[str, Any]:
    """The request's JSON object, read no further than `max_body` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_body):
        raise BadRequest(413, f"body over {max_body} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_body:
            raise BadRequest(413, f"body over {max_body} bytes")
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(400, "malformed answer: not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest(400, "malformed answer: not a JSON object")
    return data


def seconds_or_none(x: Any) -> float | None:
    """A page's count of seconds (0 to a day), else None: it is only a hint, never refused."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if 0 <= v < 86400 else None


def showing_of(query: Any) -> tuple[str, float] | None:
    """`?showing=<item id>&shown_for=<s>`: what the page shows (after a restart it may keep it)."""
    item, seconds = query.get("showing"), seconds_or_none(query.get("shown_for"))
    return (item[:200], seconds) if item and seconds is not None else None


def parse_value(kind: str, value: Any) -> Any:
    """An answer's value checked against what the item asks: text (at most MAX_TEXT characters),
    a verdict (+1 / -1) or, for a score item, any finite number."""
    if kind == "text":
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise BadRequest(400, f"malformed answer: text of at most {MAX_TEXT} characters expected")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(400, "malformed answer: a finite number expected")
    if kind == "verdict" and value not in (1, -1):
        raise BadRequest(400, "malformed answer: a verdict is +1 or -1")
    return float(value)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)
