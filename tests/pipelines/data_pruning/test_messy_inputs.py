"""Messy shards in one `curate prune` run: every sample accounted for, nothing written where it
should not be, every case recorded in decisions.parquet or summary.json."""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.data_pruning.schema import shard_stem
from shards.tario import ShardFormatError, iter_samples
from tests.builders import add_member, image_bytes
from tests.runs import cli_prune, cli_prune_args, curate, decisions

RNG = np.random.default_rng(7)


def _tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members:
            add_member(tar, name, data)
    return buffer.getvalue()


def _samples(keys: list[str], label: int = 0) -> list[tuple[str, bytes]]:
    members = []
    for key in keys:
        members += [(f"{key}.jpg", image_bytes(RNG, label)), (f"{key}.cls", str(label).encode())]
    return members


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height`: what Pillow reads before decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _large_jpeg() -> bytes:
    """42 Mpixel: over the decode bound, but JPEG draft mode decodes it at 1/8 scale."""
    buffer = io.BytesIO()
    Image.new("L", (7000, 6000), 128).save(buffer, "JPEG", quality=50)
    return buffer.getvalue()


def _cut_inside(data: bytes, member: str) -> bytes:
    """A tar cut 100 bytes into the data of `member` (its header starts with its name)."""
    return data[: data.index(member.encode()) + 512 + 100]


def messy_shards(folder: Path) -> dict[str, Path]:
    """One shard per case, small; returns case name -> path (in the order the run takes them)."""
    truncated = _tar_bytes(_samples([f"t{i:03d}" for i in range(6)]))
    gz_truncated = gzip.compress(_tar_bytes(_samples([f"z{i:03d}" for i in range(6)])), mtime=0)
    cases = {
        "good": _tar_bytes(_samples([f"g{i:03d}" for i in range(8)])),
        "truncated": _cut_inside(truncated, "t004.jpg"),
        "not_image": _tar_bytes(
            [
                *_samples(["n000"]),
                ("n001.jpg", b"<html>404</html>"),
                ("n001.cls", b"1"),
                *_samples(["n002"]),
            ]
        ),
        "no_image": _tar_bytes(
            [*_samples(["m000"]), ("m001.cls", b"1"), ("m001.txt", b"hi"), *_samples(["m002"])]
        ),
        "dup_in_shard": _tar_bytes(_samples(["d0", "d1", "d0", "d2", "d2"])),
        "dup_across": _tar_bytes(_samples(["g000", "x1"])),
        "dotted": _tar_bytes(
            [
                ("photo.v2.jpg", image_bytes(RNG, 1)),
                ("photo.v2.cls", b"1"),
                ("scan.2024.01.png", image_bytes(RNG, 2, "PNG")),
                ("plain.jpg", image_bytes(RNG, 3)),
            ]
        ),
        "empty": _tar_bytes([]),
        "zero_bytes": b"",
        "unsafe": _tar_bytes(
            [
                *_samples(["u0"]),
                ("../evil.jpg", image_bytes(RNG, 1)),
                ("../evil.cls", b"1"),
                ("/etc/evil.jpg", image_bytes(RNG, 1)),
                ("u/../../escaped.jpg", image_bytes(RNG, 1)),
                *_samples(["u1"]),
            ]
        ),
        "gzip": gzip.compress(_tar_bytes(_samples([f"c{i:03d}" for i in range(5)])), mtime=0),
        "large": _tar_bytes(
            [
                ("huge.png", png_header_only(8000, 6000)),
                ("bomb.png", png_header_only(30000, 30000)),
                ("wide.jpg", _large_jpeg()),
                *_samples(["b0"]),
            ]
        ),
        "not_a_tar": RNG.bytes(3000),
        "gzip_truncated": gz_truncated[: len(gz_truncated) * 2 // 3],
    }
    folder.mkdir()
    paths = {}
    for i, (case, data) in enumerate(cases.items()):
        suffix = ".tar.gz" if case.startswith("gzip") else ".tar"
        paths[case] = folder / f"{i:02d}-{case}{suffix}"
        paths[case].write_bytes(data)
    return paths


@pytest.fixture(scope="module")
def messy_run(tmp_path_factory, tiny_clip):
    root = tmp_path_factory.mktemp("messy")
    paths = messy_shards(root / "in")
    summary = cli_prune(sorted(paths.values()), root / "out", tiny_clip)
    rows = decisions(root / "out").to_dict("records")
    by_shard = {case: [r for r in rows if r["shard"] == str(path)] for case, path in paths.items()}
    return {"root": root, "paths": paths, "summary": summary, "rows": rows, "by_shard": by_shard}


def _stem(path) -> str:
    """The output name of an input shard: its name, without the compression suffix."""
    return shard_stem(path.name)


def _status(rows: list[dict]) -> list[str]:
    return [r["status"] for r in rows]


def test_accounting_holds_overall_and_per_output_shard(messy_run):
    summary, rows = messy_run["summary"], messy_run["rows"]
    assert summary["input_samples"] == len(rows)
    assert summary["input_samples"] == (
        summary["kept_samples"] + summary["pruned_samples"] + summary["failed_samples"]
    )
    out = messy_run["root"] / "out"
    for path in sorted(messy_run["paths"].values()):
        stats = json.loads((out / f"{_stem(path)}_stats.json").read_text())
        shard_rows = [r for r in rows if r["shard"] == str(path)]
        assert stats["count"] == len(shard_rows)
        assert stats["count"] == stats["successes"] + stats["pruned"] + stats["failed"]


def test_truncated_tar_keeps_everything_before_the_cut(messy_run):
    rows = messy_run["by_shard"]["truncated"]
    assert [r["key"] for r in rows] == ["t000", "t001", "t002", "t003", "t004"]
    assert all(s != "failed" for s in _status(rows[:4]))
    assert rows[4]["status"] == "failed"
    assert "shard damaged" in rows[4]["detail"]
    assert (
        "truncated member 't004.jpg'"
        in messy_run["summary"]["shard_errors"][str(messy_run["paths"]["truncated"])]
    )


def test_bytes_that_are_not_an_image_fail_that_sample_only(messy_run):
    rows = messy_run["by_shard"]["not_image"]
    assert _status(rows).count("failed") == 1
    failed = next(r for r in rows if r["status"] == "failed")
    assert failed["key"] == "n001" and failed["reason"] == "failed"
    assert "cannot decode" in failed["detail"]


def test_sample_without_image_member_fails(messy_run):
    rows = messy_run["by_shard"]["no_image"]
    failed = [r for r in rows if r["status"] == "failed"]
    assert [r["key"] for r in failed] == ["m001"]
    assert failed[0]["detail"] == "no image member (has cls, txt)"


def test_a_key_repeated_within_a_shard_fails_and_is_noted(messy_run):
    """Written next to the first (whatever lay between them pruned), webdataset would merge
    the two samples or raise: the repeat fails; across shards both are processed."""
    rows = messy_run["by_shard"]["dup_in_shard"]
    assert [r["key"] for r in rows] == ["d0", "d1", "d0", "d2", "d2"]
    assert _status(rows).count("failed") == 2
    assert [r["status"] == "failed" for r in rows] == [False, False, True, False, True]
    assert "repeats the key of the sample at position 0" in rows[2]["detail"]
    assert "repeats the key of the sample at position 3" in rows[4]["detail"]
    noted = [r["position"] for r in rows if r["detail"] and "duplicate key" in r["detail"]]
    assert noted == [2, 4]
    across = messy_run["by_shard"]["dup_across"][0]
    assert across["key"] == "g000" and across["status"] != "failed"
    assert f"first seen in {messy_run['paths']['good']} at position 0" in across["detail"]
    assert messy_run["summary"]["duplicate_keys"] == 3


def test_keys_with_dots_find_their_image_by_last_suffix(messy_run):
    rows = messy_run["by_shard"]["dotted"]
    assert [r["key"] for r in rows] == ["photo", "scan", "plain"]
    assert all(s != "failed" for s in _status(rows))


def test_empty_shards_give_zero_samples_and_are_recorded(messy_run):
    summary = messy_run["summary"]
    for case in ("empty", "zero_bytes", "not_a_tar"):
        assert messy_run["by_shard"][case] == []
        assert str(messy_run["paths"][case]) in summary["empty_shards"]
    assert "invalid tar header" in summary["shard_errors"][str(messy_run["paths"]["not_a_tar"])]


def test_unsafe_member_names_fail_and_are_never_copied(messy_run):
    rows = messy_run["by_shard"]["unsafe"]
    failed = [r for r in rows if r["status"] == "failed"]
    assert [r["key"] for r in failed] == ["../evil", "/etc/evil", "u/../../escaped"]
    assert all(r["detail"].startswith("unsafe member name") for r in failed)
    assert [r["key"] for r in rows if r["status"] != "failed"] == ["u0", "u1"]
    for shard in sorted((messy_run["root"] / "out").glob("*.tar")):
        with tarfile.open(shard) as tar:
            names = tar.getnames()
        assert not [n for n in names if n.startswith("/") or ".." in n.split("/")]


def test_gzip_shard_is_read_and_written_as_plain_tar(messy_run):
    rows = messy_run["by_shard"]["gzip"]
    assert [r["key"] for r in rows] == [f"c{i:03d}" for i in range(5)]
    assert all(s != "failed" for s in _status(rows))
    output = messy_run["root"] / "out" / f"{_stem(messy_run['paths']['gzip'])}.tar"
    assert output.read_bytes()[:2] != b"\x1f\x8b"
    with tarfile.open(output, "r:") as tar:  # plain, uncompressed
        assert len(tar.getnames()) == 2 * _status(rows).count("kept")


def test_truncated_gzip_keeps_what_precedes_the_cut(messy_run):
    rows = messy_run["by_shard"]["gzip_truncated"]
    assert rows, "the first samples of a cut gzip stream are read"
    assert all(s != "failed" for s in _status(rows[:-1]))
    assert rows[-1]["status"] == "failed"
    assert str(messy_run["paths"]["gzip_truncated"]) in messy_run["summary"]["shard_errors"]


def test_large_images_are_bounded_and_the_bomb_guard_stays_on(messy_run):
    rows = {r["key"]: r for r in messy_run["by_shard"]["large"]}
    assert rows["huge"]["status"] == "failed"
    assert "image too large to decode: 8000x6000" in rows["huge"]["detail"]
    assert rows["bomb"]["status"] == "failed"
    assert "DecompressionBombError" in rows["bomb"]["detail"]
    assert rows["wide"]["status"] != "failed"  # decoded at 1/8 scale in draft mode
    assert rows["b0"]["status"] != "failed"
    assert Image.MAX_IMAGE_PIXELS is not None


def test_output_holds_exactly_the_kept_samples_byte_for_byte(messy_run):
    out = messy_run["root"] / "out"
    for path in sorted(messy_run["paths"].values()):
        kept = {
            r["position"]
            for r in messy_run["rows"]
            if r["shard"] == str(path) and r["status"] == "kept"
        }
        with open(path, "rb") as f:
            source = _read_all(f)
        with open(out / f"{_stem(path)}.tar", "rb") as f:
            written = _read_all(f)
        assert [s.members for s in written] == [s.members for s in source if s.position in kept]


def _read_all(stream) -> list:
    """The samples of a shard up to any damage (what precedes the damage is what counts)."""
    samples = []
    try:
        for sample in iter_samples(stream):
            samples.append(sample)
    except ShardFormatError:
        return samples
    return samples


def test_nothing_is_written_outside_the_output_folder(messy_run):
    root = messy_run["root"]
    assert sorted(p.name for p in root.iterdir()) == ["in", "out"]
    assert not [p for p in root.parent.rglob("*") if p.name in ("evil.jpg", "escaped.jpg")]
    assert not os.path.exists("/etc/evil.jpg")
    expected = {".curate-run.json", "_run", "decisions.parquet", "summary.json"}
    for path in messy_run["paths"].values():
        expected |= {f"{_stem(path)}.tar", f"{_stem(path)}_stats.json"}
    assert {p.name for p in (root / "out").iterdir()} == expected


def test_a_run_where_no_shard_has_a_sample_fails_cleanly(tmp_path, tiny_clip):
    (tmp_path / "in").mkdir()
    paths = [tmp_path / "in" / "empty.tar", tmp_path / "in" / "zero.tar"]
    paths[0].write_bytes(_tar_bytes([]))
    paths[1].write_bytes(b"")
    output = curate(
        *cli_prune_args(paths, tmp_path / "out", tiny_clip, "--clusters", "2"), expect=2
    )
    assert "no samples" in output
    assert not (tmp_path / "out").exists()
