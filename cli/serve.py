"""`tailor serve`: the personalization HTTP service (FastAPI on uvicorn), bound to loopback unless told otherwise."""

from __future__ import annotations

import ipaddress

import click

from cli.common import bind_problem, fail, load_settings


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes; each opens its own recommender, /metrics counts them all (docs/service.md).",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info"]),
    default="info",
    show_default=True,
    help="Least severe message the server logs (start-up, shutdown, errors; no line per request).",
)
def serve(host: str, port: int, workers: int, log_level: str) -> None:
    """Serve recommendations, event intake, /healthz, /readyz, /metrics and /openapi.json over HTTP.

    Limits, budgets and cache lifetimes come from TAILOR_SERVICE_* variables, the model path's budget from
    TAILOR_RECOMMEND_BUDGET_MS and the event stream from TAILOR_REDIS_URL (docs/configuration.md); the data from
    TAILOR_HOME. Binding an address other than loopback exposes the API to the network: put it behind a proxy
    or CDN that terminates TLS and authenticates callers.
    """
    from service.config import ServiceConfig, ServiceConfigError

    try:
        config = ServiceConfig.from_env()
    except ServiceConfigError as exc:
        fail(str(exc))
    settings = load_settings()
    from orchestration.lib.engine_support import serving_refusal

    # Else every request would fall back to popular pages, /readyz saying only "ValueError" (a trial).
    refused = serving_refusal(settings)
    if refused:
        fail(refused)
    problem = bind_problem(host, port)  # before the warning below, and before the workers load anything
    if problem:
        fail(problem)
    if not _is_loopback(host):
        click.echo(f"warning: binding {host}: the API is reachable from the network, without authentication", err=True)
    if not settings.home.exists():
        # Said, not refused: a service may start before the first run (it takes events from the start); but a
        # mistyped TAILOR_HOME would otherwise answer 503 "not ready" for ever with nothing saying why.
        click.echo(
            f"note: {settings.home} does not exist (TAILOR_HOME): recommendations answer 503 until `tailor run` builds "
            "a home there; events sent to /events start it",
            err=True,
        )
    address = f"[{host}]" if ":" in host else host  # an IPv6 address in a URL is bracketed (RFC 3986)
    click.echo(f"Tailor service on http://{address}:{port} (data in {settings.home}); Ctrl-C to stop", err=True)
    from service.metrics import worker_metrics_env
    from tailor.faces import HTTP_SERVICE, record_address

    if settings.home.exists():  # a home that does not exist yet is not made here (the note above)
        record_address(HTTP_SERVICE, settings.home, host, port)  # `tailor run`'s summary names where it listens

    with worker_metrics_env(workers):
        _run(host, port, workers, log_level, config.max_connections)


def _run(host: str, port: int, workers: int, log_level: str, max_connections: int) -> None:
    import uvicorn

    uvicorn.run(
        "service.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        # Back-pressure and slow clients: past max_connections a worker answers 503; idle keep-alives close
        # after 5 s; headers larger than 16 KiB are refused (h11's default, stated).
        limit_concurrency=max_connections,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
        h11_max_incomplete_event_size=16 * 1024,
        server_header=False,
        proxy_headers=False,
    )
