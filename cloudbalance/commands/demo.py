"""``cloudbalance demo``: the bundled multi-cloud sample, end to end, in a folder of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cloudbalance.commands._common import console, emit_frame, progress


def demo(
    folder: Annotated[
        Path, typer.Argument(help="Working directory to create (reused when it exists).")
    ] = Path("cloudbalance-demo"),
) -> None:
    """Run the whole loop on the bundled sample in FOLDER, then say what to look at."""
    from cloudbalance.demo.run import run_demo

    with progress() as bar:
        task = bar.add_task("demo", total=None)
        result = run_demo(folder, progress=lambda m: bar.update(task, description=m))
    console.print(
        f"ingested [bold]{result.ingest.rows:,}[/] FOCUS cost lines from "
        f"{len(result.exports)} files (AWS Parquet, Azure CSV, GCP CSV.gz) "
        f"in {result.ingest.seconds:.1f}s"
    )
    emit_frame(result.by_cloud, "table", title="Two years of cost by cloud")
    emit_frame(result.by_workload, "table", title="Two years of cost by workload")
    console.print(f"\nworking directory: {result.folder}")
    console.print(f"  config   {result.config}")
    console.print(f"  store    {result.store}")
    console.print(
        f"next: cd {result.folder} && cloudbalance costs --by workload,month --format csv"
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(demo)
