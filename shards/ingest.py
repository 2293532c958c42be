"""`curate ingest`: download a URL list into webdataset shards with img2dataset.

img2dataset does the work (threads, retries, resizing, per-shard `NNNNN.parquet` with every
sample's `status` and `error_message`, `NNNNN_stats.json`); this module checks the input before
a download starts, so that a wrong path or column is one clear error rather than a traceback in
a worker process, and sums the shard stats into one report.
"""

from __future__ import annotations

import json
import os
import re
import signal

import fsspec
import pyarrow.csv as pa_csv

from curation import parquet
from curation.errors import CurateError
from curation.safety import check_write_location
from curation.storage import Folder

FORMATS = ("parquet", "csv", "tsv", "jsonl", "json", "txt")
RESIZE_MODES = ("keep_ratio_largest", "keep_ratio", "center_crop", "border", "no")
STAT_FIELDS = ("count", "successes", "failed_to_download", "failed_to_resize")


def input_format(url_list: str) -> str:
    """img2dataset's `input_format` from the file suffix (`.csv`, `.csv.gz`, `.parquet`...)."""
    name = url_list.lower().rstrip("/")
    compressed = name.endswith(".gz")
    base = name.removesuffix(".gz")
    fmt = base.rsplit(".", 1)[-1] if "." in base.rsplit("/", 1)[-1] else ""
    if fmt not in FORMATS or (compressed and fmt == "parquet"):
        raise CurateError(
            f"cannot tell the format of {url_list} from its suffix: use one of "
            + ", ".join(f".{f}" for f in FORMATS)
            + " (or .gz of a text format)"
        )
    return f"{fmt}.gz" if compressed else fmt


def columns(url_list: str, fmt: str) -> list[str]:
    """The column names of the URL list, read from its header only where the format allows."""
    if fmt == "parquet":
        return parquet.read_schema(*fsspec.core.url_to_fs(url_list)).names
    with fsspec.open(url_list, "rb", compression="infer") as f:
        if fmt.startswith(("csv", "tsv")):
            delimiter = "\t" if fmt.startswith("tsv") else ","
            return _csv_header(f.readline(), delimiter)
        if fmt.startswith("jsonl"):
            first = f.readline()
            return list(json.loads(first)) if first.strip() else []
        if fmt.startswith("json"):
            rows = json.load(f)
            return list(rows[0]) if isinstance(rows, list) and rows else []
    return ["url"]  # txt: one URL a line


def _csv_header(line: bytes, delimiter: str) -> list[str]:
    """The column names in a CSV header line, parsed by Arrow from bytes it owns (see
    `curation.parquet`: Arrow's threads reading a Python file can abort the exit)."""
    options = pa_csv.ParseOptions(delimiter=delimiter)
    table = pa_csv.read_csv(parquet.arrow_buffer(line), parse_options=options,
                            read_options=pa_csv.ReadOptions(use_threads=False))  # fmt: skip
    return table.schema.names


def resolve_columns(url_list: str, fmt: str, url_col: str, caption_col: str | None) -> str | None:
    """Check the URL column exists; returns the caption column to use (None: no captions).

    With no caption column named, `caption` is used when the list has one."""
    try:
        found = columns(url_list, fmt)
    except FileNotFoundError:
        raise CurateError(f"URL list not found: {url_list}") from None
    except (OSError, ValueError) as exc:  # pyarrow and json parse errors are ValueErrors
        raise CurateError(f"cannot read the URL list {url_list}: {exc}") from None
    if fmt.startswith("txt"):
        if caption_col:
            raise CurateError(f"{url_list} is a plain list of URLs: it has no caption column")
        return None
    if url_col not in found:
        raise CurateError(
            f"{url_list} has no URL column {url_col!r} (columns: "
            f"{', '.join(found) or 'none'}); name it with --url-col"
        )
    if caption_col is None:
        return "caption" if "caption" in found else None
    if caption_col not in found:
        raise CurateError(
            f"{url_list} has no caption column {caption_col!r} (columns: {', '.join(found)})"
        )
    return caption_col


def _check_options(resize_mode: str, **at_least_one: int) -> None:
    for option, value in at_least_one.items():
        if value < 1:
            raise CurateError(f"--{option.replace('_', '-')} must be at least 1, got {value}")
    if resize_mode not in RESIZE_MODES:
        raise CurateError(f"--resize-mode must be one of {', '.join(RESIZE_MODES)}")


def download(
    url_list: str,
    output: str,
    *,
    url_col: str = "url",
    caption_col: str | None = None,
    shard_size: int = 10_000,
    image_size: int = 512,
    resize_mode: str = "keep_ratio_largest",
    processes: int = 1,
    threads: int = 16,
    timeout: int = 10,
    retries: int = 0,
    overwrite: bool = False,
) -> dict:
    """Download into webdataset shards `OUTPUT/NNNNN.tar` (image, caption `.txt`, `.json`);
    returns the report. A rerun resumes: shards with a `_stats.json` are not fetched again;
    `overwrite` first removes the files a download writes (`NNNNN.tar`, `NNNNN.parquet`,
    `NNNNN_stats.json`) and nothing else (img2dataset's own "overwrite" mode would delete the
    whole folder).

    Images larger than `image_size` are shrunk keeping their aspect ratio (as DataComp
    downloads); smaller JPEGs keep their original bytes."""
    _check_options(
        resize_mode,
        shard_size=shard_size,
        image_size=image_size,
        processes=processes,
        threads=threads,
        timeout=timeout,
    )
    fmt = input_format(url_list)
    caption_col = resolve_columns(url_list, fmt, url_col, caption_col)
    check_write_location(output, "--output", [])
    if overwrite:
        remove_downloads(Folder(output))
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no update check over the network
    from img2dataset import download as img2dataset_download

    on_interrupt = signal.getsignal(signal.SIGINT)  # img2dataset installs its own handler
    try:
        img2dataset_download(
            url_list=url_list,
            output_folder=output,
            input_format=fmt,
            url_col=url_col,
            caption_col=caption_col,
            output_format="webdataset",
            encode_format="jpg",
            image_size=image_size,
            resize_mode=resize_mode,
            resize_only_if_bigger=True,
            skip_reencode=True,
            number_sample_per_shard=shard_size,
            processes_count=processes,
            thread_count=threads,
            timeout=timeout,
            retries=retries,
            distributor="multiprocessing",
            enable_wandb=False,
            incremental_mode="incremental",
        )
    finally:
        signal.signal(signal.SIGINT, on_interrupt)
    report = ingest_report(output)
    if not report["shards"]:
        raise CurateError(f"the URL list {url_list} has no rows")
    return report


DOWNLOADED = re.compile(r"^\d+(\.tar|\.parquet|_stats\.json)$")


def remove_downloads(out: Folder) -> None:
    """The files a download writes, only those."""
    for name in out.listdir():
        if DOWNLOADED.match(name):
            out.remove(name)


def ingest_report(output: str) -> dict:
    """Totals of img2dataset's per-shard stats; a shard with a tar but no stats did not
    finish (a rerun retries it)."""
    out = Folder(output)
    names = out.listdir()
    shards = sorted(n.removesuffix(".tar") for n in names if n.endswith(".tar"))
    stats = [out.read_json(f"{s}_stats.json") for s in shards if f"{s}_stats.json" in names]
    report: dict = {field: sum(s[field] for s in stats) for field in STAT_FIELDS}
    statuses: dict[str, int] = {}
    for s in stats:
        for status, n in s.get("status_dict", {}).items():
            statuses[status] = statuses.get(status, 0) + n
    report["status"] = dict(sorted(statuses.items(), key=lambda item: -item[1]))
    report["shards"] = [f"{s}.tar" for s in shards]
    report["unfinished_shards"] = [f"{s}.tar" for s in shards if f"{s}_stats.json" not in names]
    return report
