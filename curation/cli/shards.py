"""`curate shards from-folder` and `curate ingest`: getting data into shards."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from curation.cli.common import user_errors
from curation.errors import CurateError
from curation.storage import absolute


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
    shuffle: Annotated[
        bool,
        typer.Option(help="Write the samples in a seeded random order (not class by class)."),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of --shuffle.")] = 0,
) -> None:
    """Copy the images (bytes as they are) into shards 00000.tar, 00001.tar, ... in OUTPUT."""
    from shards.folder import from_folder

    if layout not in ("auto", "imagenet", "flat"):
        raise CurateError(f"--layout must be auto, imagenet or flat; got {layout!r}")
    report = from_folder(root, absolute(output), shard_size, layout, overwrite, shuffle, seed)
    table = Table(title="curate shards from-folder", show_header=False)
    table.add_row("layout", report["layout"])
    table.add_row("samples", str(report["samples"]))
    table.add_row("shards", str(len(report["shards"])))
    if report["layout"] == "imagenet":
        table.add_row("classes", f"{len(report['classes'])} (classes.json)")
    table.add_row("with caption", str(report["with_caption"]))
    table.add_row("files left out", str(report["files_left_out"]))
    table.add_row("output", absolute(output))
    Console().print(table)


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
            help="Remove the shards, parquets and stats a download wrote and download again "
            "(default: resume, skipping finished shards); other files stay."
        ),
    ] = False,
) -> None:
    """Download a URL list with img2dataset into webdataset shards for `curate prune`.

    Each shard's NNNNN.parquet records every sample's status and error (img2dataset's own)."""
    from shards.ingest import download

    report = download(
        url_list,
        absolute(output),
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
    table.add_row("output", absolute(output))
    Console(width=120).print(table)
    if report["unfinished_shards"]:
        raise CurateError(
            f"{len(report['unfinished_shards'])} shards did not finish (first: "
            f"{report['unfinished_shards'][0]}); run the same command again to "
            "retry them"
        )
