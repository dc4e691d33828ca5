"""The HTTP API (FastAPI): pages, events, health, readiness and metrics. docs/service.md documents every route.

`create_app` builds an app for one Tailor home; `tailor serve` runs it on uvicorn. Nothing happens at import time:
the recommender is opened when the app starts (its lifespan), in a worker thread.
"""

# No `from __future__ import annotations` here: FastAPI reads the route functions' annotations at runtime, and
# they refer to this module's closure (the configured max_k).
import asyncio
import contextlib
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Annotated, Any, Literal

import anyio
from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Router

from ml.recommend import RecommendationInputError
from service import caching
from service.config import ServiceConfig
from service.events import BadBody, BatchRefused, EventIntake, LandingBusy, parse_body, rejection_dicts
from service.metrics import Metrics, mark_this_worker_dead
from service.pages import NotReady, RecommenderHost, utc_now
from service.schemas import ERROR_RESPONSES, EVENTS_REQUEST_BODY, INTAKE_SCHEMA, PAGE_SCHEMA, SEGMENT_SCHEMA
from service.segments import SEGMENT_PATTERN, shape_hint
from tailor.contract.spec import NON_BLANK
from tailor.environment import import_sqlglotrs_quietly
from tailor.settings import Settings, get_settings

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: A user id as the contract has it: 1-128 characters, not only blank ones (the contract's list of blank characters,
#: which counts U+200B, U+2060 and U+FEFF that Python's ``\S`` does not; found by a re-check trial).
USER_ID_PATTERN = NON_BLANK
JSON_TYPES = ("application/json",)
#: What to say when a path parameter does not match its pattern (Pydantic would print the regular expression).
PATTERN_MESSAGES = {
    "user_id": "user_id is empty or blank: pass the user's id, e.g. u0000042",  # as tailor.contract.ids says it
    "segment": "segment must be all, surface:<surface> (e.g. surface:home) or country:<code> (e.g. country:DE)",
}
#: Vary of the pages: the bytes depend on the URL alone (identity is in the path, never a cookie or token);
#: Accept-Encoding because a proxy or CDN in front may compress. CORS adds Origin when it is on.
VARY = "Accept-Encoding"
#: Set in a HEAD request's scope, which the routes see as a GET (see `RequestMetrics`).
HEAD_SCOPE_KEY = "tailor.head"


class RequestMetrics:
    """ASGI middleware: counts and times every request by route template and status; refuses oversized bodies
    by their Content-Length before a byte is read (413); answers HEAD on every GET route.

    HEAD (RFC 9110 9.3.2): the route runs as for a GET and the response keeps its status and headers (ETag,
    Content-Length, Cache-Control) without its body, which is what `curl -I` and a cache's revalidation expect.
    Done here once rather than as a second route per GET, so no route can miss it and the schema stays one
    operation per route. The metrics count it under its own method, HEAD.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int, router: Router) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]
        method = scope.get("method", "")
        head = method == "HEAD"
        inner = {**scope, "method": "GET", HEAD_SCOPE_KEY: True} if head else scope

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            elif head and message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        try:
            length = _content_length(scope)
            if length is not None and length > self.max_body_bytes:
                await _send_json(
                    sending,
                    413,
                    _error(
                        f"the body has {length:,} bytes; at most "
                        f"{self.max_body_bytes:,} are accepted: send smaller batches"
                    ),
                )
            else:
                await self.app(inner, receive, sending)
        finally:
            # A body refused here (413) is counted under the route it was sent to, like every other answer (it was
            # "unmatched", beside the unknown paths: a trial).
            template = self._template(inner)
            self.metrics.requests.labels(template, method, str(status[0])).inc()
            self.metrics.latency.labels(template, method).observe(time.perf_counter() - started)

    def _template(self, scope: Scope) -> str:
        """The route template a request reached: FastAPI's routes name themselves in the scope; the schema and
        docs routes (plain Starlette routes) do not, so they are matched here. Unknown paths: ``unmatched``."""
        route: BaseRoute | None = scope.get("route")
        if route is None:
            route = next((r for r in self.router.routes if r.matches(scope)[0] is Match.FULL), None)
        return getattr(route, "path", None) or "unmatched"


def _segment_hint(where: str, value: Any) -> str:
    """``; did you mean 'country:DE'?`` for a segment whose kind is only cased wrong (``Country:DE``, ``ALL``)."""
    guess = shape_hint(value) if where == "segment" and isinstance(value, str) else None
    return f"; did you mean {guess!r}?" if guess else ""


def _shown(value: Any, limit: int = 60) -> str:
    """A rejected input as an error message quotes it: its repr, or for a long string its start, its end and its
    length (a trial saw ``(got 'xxxx...xxx)`` cut mid-quote)."""
    if value is None or isinstance(value, dict):
        return ""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[: limit // 2]!r}...{value[-10:]!r}, {len(value):,} characters"
    return repr(value)


def _not_utf8_path(raw_path: bytes | None) -> str | None:
    """What is wrong with a request path whose percent-escapes are not UTF-8, or None.

    Starlette decodes a path's escapes with replacement characters, so ``/recommendations/u%FFx`` reached the route
    as the user ``'u\ufffdx'`` and got a cold-start page (a trial); a POST body with the same byte is a 400.
    """
    if not raw_path:
        return None
    try:
        urllib.parse.unquote_to_bytes(raw_path.decode("latin-1")).decode("utf-8")
    except UnicodeDecodeError as exc:
        return (
            f"the path is not UTF-8 once its %-escapes are decoded (byte {exc.start} is "
            f"0x{exc.object[exc.start]:02x}): percent-encode the id's UTF-8 bytes"
        )
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    response = JSONResponse(body, status_code=status, headers={"Cache-Control": caching.NO_STORE})
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:  # pragma: no cover - a response never reads the request
    return {"type": "http.disconnect"}


def _error(message: str, **extra: Any) -> dict[str, Any]:
    return {"error": message, **extra}


def _json_error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(
        _error(message, **extra), status_code=status, headers={"Cache-Control": caching.NO_STORE, **(headers or {})}
    )


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request body, refusing more than ``limit`` bytes (413) or a client slower than ``timeout_s`` (408)."""
    chunks: list[bytes] = []
    size = 0

    async def collect() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)

    await asyncio.wait_for(collect(), timeout_s)
    return b"".join(chunks)


class _TooLarge(Exception):
    pass


#: An unknown query parameter that users bring from the CLI, and what to tell them.
QUERY_HINTS = {"at": "pages are as of now: the service has no `at` (`tailor recommend --at` computes a page at "
               "another moment)"}  # fmt: skip


def _query_names(dependant: Any) -> set[str]:
    """The query parameters a route declares, its dependencies' included (FastAPI's `Dependant` tree)."""
    if dependant is None:
        return set()
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def known_query_only(request: Request) -> None:
    """Refuse (400) a query parameter the route does not declare: ignoring it would answer as if it applied
    (``?K=3`` would get the default k=10, ``?at=...`` a page for now). The message names it and the accepted ones.

    Every declared parameter is one value, so one given twice is refused too (``?k=3&k=4``: FastAPI would take the
    last, silently, while `POST /events` and the warehouse keep a repeated key's first).
    """
    accepted = sorted(_query_names(getattr(request.scope.get("route"), "dependant", None)))
    unknown = sorted(set(request.query_params) - set(accepted))
    if not unknown:
        for name in accepted:
            if len(values := request.query_params.getlist(name)) > 1:
                given = ", ".join(repr(v) for v in values)
                message = f"query parameter {name!r} is given {len(values)} times ({given}): give it once"
                raise HTTPException(400, message)
        return
    names = ", ".join(repr(name) for name in unknown)
    takes = f"this route takes {', '.join(accepted)}" if accepted else "this route takes no query parameters"
    hints = "".join(f"; {QUERY_HINTS[name]}" for name in unknown if name in QUERY_HINTS)
    raise HTTPException(400, f"unknown query parameter{'s' if len(unknown) > 1 else ''} {names}: {takes}{hints}")


def create_app(
    settings: Settings | None = None, config: ServiceConfig | None = None, host: RecommenderHost | None = None
) -> FastAPI:
    """The API for one Tailor home (default: TAILOR_HOME) with ``config`` (default: TAILOR_SERVICE_* variables)."""
    settings = settings or get_settings()
    config = config or ServiceConfig.from_env()
    metrics = host.metrics if host is not None else Metrics()
    host = host or RecommenderHost(settings, config, metrics)
    intake = EventIntake(settings, config, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(host.open)
        tasks = [asyncio.create_task(host.keep_fresh()), asyncio.create_task(host.watch_store())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            mark_this_worker_dead()

    app = FastAPI(
        title="Tailor personalization service",
        version="1",
        description="Recommendations within a latency budget, event intake into the landing zone and the stream, "
        "health, readiness and Prometheus metrics. See docs/service.md.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        dependencies=[Depends(known_query_only)],
    )
    app.state.host, app.state.intake, app.state.metrics, app.state.config = host, intake, metrics, config

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("path", "query", "header"))
            if error.get("type") == "string_pattern_mismatch" and where in PATTERN_MESSAGES:
                problems.append(PATTERN_MESSAGES[where] + _segment_hint(where, error.get("input")))
                continue
            shown = _shown(error.get("input"))
            problems.append(f"{where}: {error.get('msg', 'invalid')}" + (f" (got {shown})" if shown else ""))
        return _json_error(422, "; ".join(problems) or "invalid request", problems=problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.url.path}: see /openapi.json for the API"
        elif exc.status_code == 405:
            method = "HEAD" if request.scope.get(HEAD_SCOPE_KEY) else request.method
            message = f"{method} is not allowed on {request.url.path}: see /openapi.json"
        return _json_error(exc.status_code, message, headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return _json_error(500, f"internal error ({type(exc).__name__}); the service log has the details")

    def _not_ready(exc: NotReady) -> JSONResponse:
        return _json_error(503, f"not ready: {exc}", headers={"Retry-After": "5"})

    @app.get("/recommendations/segments", include_in_schema=False)
    async def no_segment() -> Response:
        # Reserved: without this route the path would read as the page of a user called "segments".
        try:
            known = ", ".join(host.segments()) or "none yet"
        except NotReady as exc:
            return _not_ready(exc)
        return _json_error(
            404,
            f"no segment given: ask /recommendations/segments/<segment>, one of {known} "
            "(`segments` is reserved here: it is not read as a user id)",
        )

    @app.get(
        "/recommendations/segments/{segment}",
        summary="A segment's page (not personalized; an edge cache may hold it)",
        responses={200: {"content": {"application/json": {"schema": SEGMENT_SCHEMA}}}, 304: {}, **ERROR_RESPONSES},
        response_class=JSONResponse,
    )
    async def segment_page(
        segment: Annotated[
            str,
            Path(
                pattern=SEGMENT_PATTERN,
                description="`all`, `surface:<surface>` (home, feed) or `country:<code>` (e.g. country:DE).",
            ),
        ],
        k: Annotated[int, Query(ge=1, le=config.max_k, description="Items on the page.")] = 10,
        if_none_match: Annotated[str | None, Header()] = None,
    ) -> Response:
        moment = caching.page_moment(utc_now(), config.public_s_maxage_s)
        try:
            page = host.segment_page(segment, k, moment).as_dict()
        except NotReady as exc:
            return _not_ready(exc)
        except LookupError as exc:
            return _json_error(404, str(exc))
        except RecommendationInputError as exc:
            return _json_error(422, str(exc))
        headers = {
            "ETag": caching.page_etag(page),
            "Cache-Control": caching.public_page(config.public_max_age_s, config.public_s_maxage_s),
            "Vary": VARY,
        }
        if caching.not_modified(if_none_match, headers["ETag"]):
            return Response(status_code=304, headers=headers)
        return JSONResponse(page, headers=headers)

    @app.get(
        "/recommendations/{user_id}",
        summary="A user's page: model, cached batch page or popular items, within the latency budget",
        responses={200: {"content": {"application/json": {"schema": PAGE_SCHEMA}}}, 304: {}, **ERROR_RESPONSES},
        response_class=JSONResponse,
    )
    async def user_page(
        request: Request,
        user_id: Annotated[
            str,
            Path(min_length=1, max_length=128, pattern=USER_ID_PATTERN, description="1-128 characters, not blank."),
        ],
        k: Annotated[int, Query(ge=1, le=config.max_k, description="Items on the page.")] = 10,
        surface: Annotated[Literal["home", "feed"], Query(description="Where the page is shown.")] = "home",
        if_none_match: Annotated[str | None, Header()] = None,
    ) -> Response:
        undecodable = _not_utf8_path(request.scope.get("raw_path"))
        if undecodable:
            return _json_error(422, undecodable)
        moment = caching.page_moment(utc_now(), config.page_window_s)
        try:
            result = await host.page(user_id, k, surface, moment)
        except NotReady as exc:
            return _not_ready(exc)
        except RecommendationInputError as exc:
            return _json_error(422, str(exc))
        page = result.as_dict()
        headers = {
            "ETag": caching.page_etag(page),
            "Cache-Control": caching.private_page(config.private_max_age_s),
            "Vary": VARY,
            "X-Served-By": result.served_by,
        }
        if caching.not_modified(if_none_match, headers["ETag"]):
            return Response(status_code=304, headers=headers)
        return JSONResponse(page, headers=headers)

    @app.post(
        "/events",
        status_code=202,
        summary="Land events (one, or a batch) and publish them to the stream",
        openapi_extra={"requestBody": EVENTS_REQUEST_BODY},
        responses={202: {"content": {"application/json": {"schema": INTAKE_SCHEMA}}}, **ERROR_RESPONSES},
        response_class=JSONResponse,
    )
    async def post_events(request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in JSON_TYPES:
            return _json_error(
                415, f"content type {media or 'none'!r} is not accepted: send the events as application/json"
            )
        try:
            body = await read_body(request, config.max_body_bytes, config.body_timeout_s)
        except _TooLarge:
            return _json_error(413, f"the body is over {config.max_body_bytes:,} bytes: send smaller batches")
        except TimeoutError:
            return _json_error(408, f"the body did not arrive within {config.body_timeout_s:g} s")
        try:
            events = parse_body(body, config.max_events)
            outcome = await anyio.to_thread.run_sync(intake.accept, events)
        except BadBody as exc:
            return _json_error(exc.status, str(exc))
        except BatchRefused as exc:
            return _json_error(422, str(exc), rejected=rejection_dicts(exc.rejections))
        except LandingBusy as exc:
            return _json_error(503, f"nothing was landed: {exc}; send the batch again", headers={"Retry-After": "5"})
        return JSONResponse(outcome.as_dict(), status_code=202, headers={"Cache-Control": caching.NO_STORE})

    @app.get("/healthz", summary="Liveness: the process answers", responses=ERROR_RESPONSES)
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"}, headers={"Cache-Control": caching.NO_STORE})

    @app.get("/readyz", summary="Readiness: recommender open, champion loaded, online store answering",
             responses=ERROR_RESPONSES)  # fmt: skip
    async def readyz() -> Response:
        checks = await anyio.to_thread.run_sync(host.readiness)
        ready = all(check["ok"] for check in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": checks},
            status_code=200 if ready else 503,
            headers={"Cache-Control": caching.NO_STORE},
        )

    @app.get("/metrics", summary="Prometheus metrics (text format)", response_class=Response,
             responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}})  # fmt: skip
    async def prometheus() -> Response:
        # In multiprocess mode the merge reads every worker's files: off the event loop.
        return Response(
            await anyio.to_thread.run_sync(metrics.render),
            media_type=CONTENT_TYPE_LATEST,
            headers={"Cache-Control": caching.NO_STORE},
        )

    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "If-None-Match"],
            expose_headers=["ETag", "X-Served-By"],
            max_age=600,
        )
    app.add_middleware(RequestMetrics, metrics=metrics, max_body_bytes=config.max_body_bytes, router=app.router)
    return app


def app_from_env() -> FastAPI:
    """The app for TAILOR_HOME and TAILOR_SERVICE_* (uvicorn's factory, used by `tailor serve --workers N`: each
    worker is a new process, which `tailor`'s own start-up did not quiet)."""
    import_sqlglotrs_quietly()
    return create_app()
