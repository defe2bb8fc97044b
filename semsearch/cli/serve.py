"""`serve`: the index over HTTP for FAQ bots, with a search page for people."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from semsearch.cli.options import (
    ConfigOpt,
    DeviceOpt,
    ModeOpt,
    RerankOpt,
    ThresholdOpt,
    ranking_settings,
)

SERVE_PANEL = "Service"
LIMITS_PANEL = "Limits and batching"


def serve(
    index_path: Annotated[Path, typer.Argument(help="Index folder built by `semsearch index`.")],
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            help="Address to bind (default 127.0.0.1: this machine only).",
            rich_help_panel=SERVE_PANEL,
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            help="TCP port (default 8000; 0 picks a free one).",
            rich_help_panel=SERVE_PANEL,
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="SEMSEARCH_API_KEY",
            show_envvar=True,
            help="Require Authorization: Bearer KEY on every route but /health. "
            "Prefer the environment variable: options show up in process lists.",
            rich_help_panel=SERVE_PANEL,
        ),
    ] = None,
    k: Annotated[
        int | None, typer.Option("-k", "--k", help="Default answers per question (5).")
    ] = None,
    threshold: ThresholdOpt = None,
    mode: ModeOpt = None,
    rerank: RerankOpt = None,
    batching: Annotated[
        bool | None,
        typer.Option(
            "--batching/--no-batching",
            help="Gather concurrent requests into one encoder call (default on).",
            rich_help_panel=LIMITS_PANEL,
        ),
    ] = None,
    batch_wait_ms: Annotated[
        float | None,
        typer.Option(
            "--batch-wait-ms",
            help="Wait this long for a batch to fill (default 0: take what queued meanwhile).",
            rich_help_panel=LIMITS_PANEL,
        ),
    ] = None,
    max_batch: Annotated[
        int | None,
        typer.Option(
            "--max-batch",
            help="Most texts per encoder call (default 64).",
            rich_help_panel=LIMITS_PANEL,
        ),
    ] = None,
    max_batch_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-batch-tokens",
            help="Most tokens (estimated) per encoder call; bigger requests go in pieces "
            "between other requests (default 256).",
            rich_help_panel=LIMITS_PANEL,
        ),
    ] = None,
    piece_share: Annotated[
        float | None,
        typer.Option(
            "--piece-share",
            help="Part of the model's work that big requests' pieces get while other "
            "requests wait (default 0.25).",
            rich_help_panel=LIMITS_PANEL,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Batch worker threads, each encoding on its share of the cores "
            "(default 0: one per core).",
            rich_help_panel=LIMITS_PANEL,
        ),
    ] = None,
    max_connections: Annotated[
        int | None,
        typer.Option(
            "--max-connections",
            help="Open connections (or requests in flight) beyond which requests get 503 "
            "(default 512).",
            rich_help_panel=LIMITS_PANEL,
        ),
    ] = None,
    header_timeout: Annotated[
        float | None,
        typer.Option(
            "--header-timeout",
            help="Seconds for a request's headers to arrive, else 408 and close (default 10).",
            rich_help_panel=LIMITS_PANEL,
        ),
    ] = None,
    body_timeout: Annotated[
        float | None,
        typer.Option(
            "--body-timeout",
            help="Seconds for a request's body to arrive, else 408 and close (default 60).",
            rich_help_panel=LIMITS_PANEL,
        ),
    ] = None,
    keep_alive_timeout: Annotated[
        int | None,
        typer.Option(
            "--keep-alive-timeout",
            help="Seconds an idle keep-alive connection stays open (default 5).",
            rich_help_panel=LIMITS_PANEL,
        ),
    ] = None,
    reload_interval: Annotated[
        float | None,
        typer.Option(
            "--reload-interval",
            help="Seconds between index version checks (default 0.5).",
            rich_help_panel=LIMITS_PANEL,
        ),
    ] = None,
    access_log: Annotated[
        bool | None,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log one line per request (default on).",
            rich_help_panel=SERVE_PANEL,
        ),
    ] = None,
    config: ConfigOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Serve an index over HTTP: /search, /embed, /health, a search page at / and docs at /docs.

    Example: semsearch serve indexes/faq --port 8000

    Needs the optional "serve" extra of semsearch (FastAPI and uvicorn). After
    `semsearch add` or `delete` on the folder, the server switches to the new
    version by itself. Stop it with Ctrl-C or SIGTERM: in-flight requests finish.
    """
    from semsearch.service import require_serve_extra

    require_serve_extra()
    from semsearch.config import load_settings
    from semsearch.params import parse_k
    from semsearch.service.config import load_serve_config
    from semsearch.service.server import build_service
    from semsearch.service.server import serve as run

    search = ranking_settings(k=k, threshold=threshold, mode=mode, rerank=rerank)
    settings = load_settings(config, search=search)
    serve_config = load_serve_config(
        config,
        host=host,
        port=port,
        api_key=api_key,
        batching=batching,
        batch_wait_ms=batch_wait_ms,
        max_batch=max_batch,
        max_batch_tokens=max_batch_tokens,
        piece_share=piece_share,
        workers=workers,
        max_connections=max_connections,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        keep_alive_timeout=keep_alive_timeout,
        reload_interval=reload_interval,
        access_log=access_log,
    )
    parse_k(settings.search.k, most=serve_config.max_k)  # the default within the limit
    service = build_service(index_path, serve_config, settings.search, device=device or "auto")
    run(service, serve_config)


def register(app: typer.Typer) -> None:
    app.command()(serve)
