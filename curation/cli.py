"""The `curate` command line."""

from __future__ import annotations

import functools
import os
import sys
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from curation.config import DEFAULT_MODEL, DEFAULT_PRETRAINED, PruneConfig
from curation.errors import CurateError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Prune web-scale image datasets in webdataset shards.",
)


def user_errors(command):
    """One clear line and exit status 2 for a user error, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except CurateError as exc:
            print(f"curate: error: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper


def _config(**fields) -> PruneConfig:
    try:
        return PruneConfig(**fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        where = ".".join(str(p) for p in error["loc"])
        raise CurateError(message if message.startswith("--") else f"{where}: {message}") from None


def _absolute(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


@app.command()
@user_errors
def prune(
    shards: Annotated[
        list[str],
        typer.Argument(
            help="Input shards: paths, globs, brace ranges (data/{00000..00009}.tar) or URLs."
        ),
    ],
    output: Annotated[str, typer.Option("--output", "-o", help="Folder for the pruned shards.")],
    rate: Annotated[float, typer.Option(help="Fraction of samples to remove, in (0, 1).")],
    run_dir: Annotated[
        str | None, typer.Option(help="Run directory (default: OUTPUT/_run).")
    ] = None,
    metric: Annotated[
        str, typer.Option(help="prototypicality, random, dbp, semdedup, el2n or ccs.")
    ] = "prototypicality",
    keep: Annotated[str, typer.Option(help="hard (far from centroids) or easy.")] = "hard",
    model: Annotated[
        str, typer.Option(help="open_clip model name, open_clip model-config JSON, or timm:NAME.")
    ] = DEFAULT_MODEL,
    pretrained: Annotated[
        str, typer.Option(help="open_clip tag, local checkpoint file, or 'random'.")
    ] = DEFAULT_PRETRAINED,
    clusters: Annotated[int, typer.Option(help="k-means clusters.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Images per model forward.")] = 64,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    label_field: Annotated[
        str, typer.Option(help="json field holding the label when there is no .cls.")
    ] = "label",
    executor: Annotated[str, typer.Option(help="local or dask.")] = "local",
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address (default: a LocalCluster).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    filter: Annotated[
        str | None,
        typer.Option(help="Before the metric: clip-score:T (threshold) or clip-score-top:F."),
    ] = None,
    tau: Annotated[float, typer.Option(help="dbp: softmax temperature.")] = 0.5,
    neighbors: Annotated[int, typer.Option(help="dbp: nearest centroids in d_inter.")] = 20,
    balance: Annotated[
        float, typer.Option(help="dbp: per-cluster minimum, a share of the even split.")
    ] = 0.0,
    eps: Annotated[
        float | None,
        typer.Option(
            help="SemDeDup eps: dbp deduplicates at it (0.07 by default); "
            "semdedup never prunes below it."
        ),
    ] = None,
    el2n_models: Annotated[int, typer.Option(help="el2n: probes in the ensemble.")] = 10,
    el2n_epochs: Annotated[int, typer.Option(help="el2n: epochs per probe.")] = 5,
    el2n_hidden: Annotated[int, typer.Option(help="el2n: hidden units (0: linear probes).")] = 0,
    el2n_offset: Annotated[
        float, typer.Option(help="el2n: fraction of the hardest dropped first.")
    ] = 0.0,
    ccs_score: Annotated[
        str, typer.Option(help="ccs: the score to stratify, prototypicality or el2n.")
    ] = "prototypicality",
    ccs_cutoff: Annotated[
        float | None,
        typer.Option(help="ccs: fraction of the hardest cut first (default from the rate)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace what the output folder holds.")] = False,
) -> None:
    """Embed, cluster, score and select, then write pruned shards to OUTPUT."""
    from shards.paths import expand_shards

    output = _absolute(output)
    config = _config(
        shards=expand_shards(shards),
        output=output,
        rate=rate,
        run_dir=_absolute(run_dir) if run_dir else f"{output.rstrip('/')}/_run",
        metric=metric,
        keep=keep,
        model=model,
        pretrained=pretrained,
        clusters=clusters,
        seed=seed,
        batch_size=batch_size,
        device=device,
        label_field=label_field,
        filter=filter,
        tau=tau,
        neighbors=neighbors,
        balance=balance,
        eps=eps,
        el2n_models=el2n_models,
        el2n_epochs=el2n_epochs,
        el2n_hidden=el2n_hidden,
        el2n_offset=el2n_offset,
        ccs_score=ccs_score,
        ccs_cutoff=ccs_cutoff,
        executor=executor,
        scheduler=scheduler,
        workers=workers,
    )
    from pipelines.data_pruning.runner import prune as run_prune  # heavy: after validation

    summary = run_prune(config, overwrite=overwrite)
    _print_summary(summary, config)


def _print_summary(summary: dict, config: PruneConfig) -> None:
    console = Console()
    table = Table(title="curate prune", show_header=False)
    for label, key in (
        ("input samples", "input_samples"),
        ("kept", "kept_samples"),
        ("pruned", "pruned_samples"),
        ("failed", "failed_samples"),
        ("rate requested", "rate_requested"),
        ("rate achieved", "rate_achieved"),
    ):
        table.add_row(label, str(summary[key]))
    for reason, count in summary["reasons"].items():
        table.add_row(f"reason: {reason}", str(count))
    table.add_row("output", config.output)
    console.print(table)


@app.command()
@user_errors
def status(run_dir: Annotated[str, typer.Argument(help="A run directory.")]) -> None:
    """Print each stage's progress from the run directory."""
    from curation.status import read_status

    table = Table(title=f"curate run {run_dir}")
    for column in ("stage", "units", "samples", "seconds", "errors", "state"):
        table.add_column(column)
    for s in read_status(run_dir):
        units = "-" if s.units is None else f"{s.done}/{s.units}"
        table.add_row(s.name, units, f"{s.samples:,}", f"{s.seconds:.1f}", str(s.errors), s.state)
    Console(width=120).print(table)


shards_app = typer.Typer(no_args_is_help=True, help="Make webdataset shards.")
app.add_typer(shards_app, name="shards")


@shards_app.command("from-folder")
@user_errors
def shards_from_folder(
    root: Annotated[
        str,
        typer.Argument(
            help="An ImageNet-style tree (ROOT/class/image.jpg) or a flat folder of images with "
            "same-named .txt captions."
        ),
    ],
    output: Annotated[str, typer.Option("--output", "-o", help="Folder for the shards.")],
    shard_size: Annotated[int, typer.Option(help="Samples per shard.")] = 1000,
    layout: Annotated[
        str, typer.Option(help="auto (flat when images lie directly under ROOT), imagenet or flat.")
    ] = "auto",
    overwrite: Annotated[
        bool, typer.Option(help="Replace shards already in the output folder.")
    ] = False,
) -> None:
    """Copy the images (bytes as they are) into shards 00000.tar, 00001.tar, ... in OUTPUT."""
    from shards.folder import from_folder

    if layout not in ("auto", "imagenet", "flat"):
        raise CurateError(f"--layout must be auto, imagenet or flat; got {layout!r}")
    report = from_folder(root, _absolute(output), shard_size, layout, overwrite)
    table = Table(title="curate shards from-folder", show_header=False)
    table.add_row("layout", report["layout"])
    table.add_row("samples", str(report["samples"]))
    table.add_row("shards", str(len(report["shards"])))
    if report["layout"] == "imagenet":
        table.add_row("classes", f"{len(report['classes'])} (classes.json)")
    table.add_row("with caption", str(report["with_caption"]))
    table.add_row("files left out", str(report["files_left_out"]))
    table.add_row("output", _absolute(output))
    Console().print(table)


@app.command()
@user_errors
def ingest(
    url_list: Annotated[
        str,
        typer.Argument(
            help="URL list: .parquet, .csv, .tsv, .jsonl, .json or .txt (text formats may be .gz)."
        ),
    ],
    output: Annotated[str, typer.Option("--output", "-o", help="Folder for the shards.")],
    url_col: Annotated[str, typer.Option(help="Column holding the image URL.")] = "url",
    caption_col: Annotated[
        str | None,
        typer.Option(help="Column holding the caption (default: 'caption' when there is one)."),
    ] = None,
    shard_size: Annotated[int, typer.Option(help="Samples per shard.")] = 10_000,
    image_size: Annotated[
        int, typer.Option(help="Longest side above which images are shrunk (aspect ratio kept).")
    ] = 512,
    resize_mode: Annotated[
        str,
        typer.Option(
            help="img2dataset resize mode: keep_ratio_largest, keep_ratio, center_crop, border "
            "or no."
        ),
    ] = "keep_ratio_largest",
    processes: Annotated[int, typer.Option(help="Download processes.")] = 1,
    threads: Annotated[int, typer.Option(help="Download threads per process.")] = 16,
    timeout: Annotated[int, typer.Option(help="Seconds to wait for a server.")] = 10,
    retries: Annotated[int, typer.Option(help="Retries of a failed download.")] = 0,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Delete the output folder and download again (default: resume, skipping "
            "finished shards)."
        ),
    ] = False,
) -> None:
    """Download a URL list with img2dataset into webdataset shards for `curate prune`.

    Each shard's NNNNN.parquet records every sample's status and error (img2dataset's own)."""
    from shards.ingest import download

    report = download(
        url_list,
        _absolute(output),
        url_col=url_col,
        caption_col=caption_col,
        shard_size=shard_size,
        image_size=image_size,
        resize_mode=resize_mode,
        processes=processes,
        threads=threads,
        timeout=timeout,
        retries=retries,
        overwrite=overwrite,
    )
    table = Table(title="curate ingest", show_header=False)
    for field in ("count", "successes", "failed_to_download", "failed_to_resize"):
        table.add_row(field.replace("_", " "), str(report[field]))
    for status, count in list(report["status"].items())[:10]:
        table.add_row(f"status: {status}", str(count))
    table.add_row("shards", str(len(report["shards"])))
    table.add_row("output", _absolute(output))
    Console(width=120).print(table)
    if report["unfinished_shards"]:
        raise CurateError(
            f"{len(report['unfinished_shards'])} shards did not finish (first: "
            f"{report['unfinished_shards'][0]}); run the same command again to "
            "retry them"
        )
