"""`semsearch index`'s engine options: where the encoding runs (this process, or Ray)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from semsearch.cli.options import help_safe
from semsearch.errors import install_line

ENGINE_PANEL = "Engine"
EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        help="local (default: encode in this process) or ray (Ray workers read, encode and "
        "write shards, assembled beside the output; "
        f"{help_safe(install_line('ray'))}).",
        rich_help_panel=ENGINE_PANEL,
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Ray: auto (the running cluster), HOST:PORT or ray://HOST:PORT (default: "
        "RAY_ADDRESS, else a local Ray on this machine's cores). A cluster from `ray start` "
        "needs RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN or ~/.ray/auth_token.",
        rich_help_panel=ENGINE_PANEL,
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        help="Ray: encoder actors (default: one per CPU, or per --gpus-per-worker GPUs); "
        "each uses the cluster's CPUs divided by the workers unless --threads is given.",
        rich_help_panel=ENGINE_PANEL,
    ),
]
GpusOpt = Annotated[
    float | None,
    typer.Option(
        "--gpus-per-worker",
        min=0,
        help="Ray: GPUs per encoder actor (default 0: encode on CPUs).",
        rich_help_panel=ENGINE_PANEL,
    ),
]


def ray_settings_of(
    engine: str, address: str | None, workers: int | None, gpus: float | None
) -> Any:
    """The Ray engine's settings; None for the local engine, which takes none of them."""
    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"unknown engine {engine!r}: choose local or ray")
    given = [
        flag
        for flag, value in (
            ("--address", address),
            ("--workers", workers),
            ("--gpus-per-worker", gpus),
        )
        if value is not None
    ]
    if engine == "local":
        if given:
            raise typer.BadParameter(f"{', '.join(given)} apply to --engine ray only")
        return None
    from semsearch.distributed.cluster import RaySettings, import_ray

    import_ray()  # a missing Ray fails before any reading
    return RaySettings(address, workers, gpus or 0.0)
