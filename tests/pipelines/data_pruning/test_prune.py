"""End to end: `curate prune` on generated shards with a tiny open_clip model."""

import tarfile

import numpy as np
import pytest
import webdataset as wds

from tests.builders import add_member, image_bytes, write_shards
from tests.runs import (
    assert_one_line_error,
    cli,
    cli_prune_args,
    decisions,
    output_files,
    run_prune,
    samples_by_key,
    summary,
)


def test_kept_samples_are_copied_byte_for_byte(shards, tmp_path, tiny_clip):
    out = tmp_path / "out"
    result = run_prune(shards, out, tiny_clip, rate=0.3)
    assert result["input_samples"] == 120
    assert result["kept_samples"] == round(0.7 * 120)
    assert result["input_samples"] == (
        result["kept_samples"] + result["pruned_samples"] + result["failed_samples"]
    )
    table = decisions(out)
    assert len(table) == 120 and table["key"].is_unique
    for shard in shards:
        source = samples_by_key(shard)
        written = samples_by_key(out / shard.name)
        rows = table[table["shard"] == str(shard)]
        kept = rows[rows["kept"]]["key"].tolist()
        assert list(written) == kept  # input order kept
        for key in kept:
            assert written[key] == source[key]  # every member, same bytes, same order
    stats = (out / "00000_stats.json").read_text()
    assert '"successes"' in stats and '"count": 40' in stats
    loaded = list(wds.WebDataset(str(out / "{00000..00002}.tar"), shardshuffle=False))
    assert len(loaded) == result["kept_samples"]


def test_img2dataset_layout_with_captions(tmp_path, tiny_clip):
    shards = write_shards(tmp_path / "in", shards=2, per_shard=30, layout="img2dataset")
    out = tmp_path / "out"
    result = run_prune(shards, out, tiny_clip, rate=0.5, metric="random")
    assert result["kept_samples"] == 30 and result["reasons"] == {"random_draw": 60}
    written = samples_by_key(out / "00001.tar")
    for members in written.values():
        extensions = [n.split(".", 1)[1] for n, _ in members]
        assert extensions[0] in {"jpg", "png", "webp"} and extensions[1:] == ["txt", "json"]


@pytest.mark.parametrize("keep", ["hard", "easy"])
def test_prototypicality_keeps_the_requested_end(shards, tmp_path, tiny_clip, keep):
    out = tmp_path / keep
    run_prune(shards, out, tiny_clip, rate=0.5, keep=keep)
    table = decisions(out)
    kept, pruned = table[table["kept"]]["score"], table[~table["kept"]]["score"]
    if keep == "hard":
        assert kept.min() >= pruned.max()
    else:
        assert kept.max() <= pruned.min()


def test_same_command_twice_gives_identical_bytes(shards, tmp_path, tiny_clip):
    run_prune(shards, tmp_path / "a", tiny_clip)
    run_prune(shards, tmp_path / "b", tiny_clip)
    first, second = output_files(tmp_path / "a"), output_files(tmp_path / "b")
    assert first.keys() == second.keys() and first == second


def test_rerun_resumes_and_changed_rate_redoes_only_selection(shards, tmp_path, tiny_clip):
    out = tmp_path / "out"
    run_prune(shards, out, tiny_clip, rate=0.5)
    markers = {p: p.stat().st_mtime_ns for p in (out / "_run").rglob("done/*")}
    run_prune(shards, out, tiny_clip, rate=0.5)
    assert {p: p.stat().st_mtime_ns for p in markers} == markers
    run_prune(shards, out, tiny_clip, rate=0.25)
    for stage in ("embed", "cluster", "assign"):
        for path in (out / "_run" / stage / "done").iterdir():
            assert path.stat().st_mtime_ns == markers[path], path
    select_done = out / "_run/select/done/all"
    assert select_done.stat().st_mtime_ns != markers[select_done]
    run_prune(shards, tmp_path / "fresh", tiny_clip, rate=0.25)
    assert output_files(out) == output_files(tmp_path / "fresh")


def test_undecodable_image_fails_that_sample_only(tmp_path, tiny_clip, shards):
    broken = tmp_path / "in" / "broken.tar"
    with tarfile.open(broken, "w") as tar:
        add_member(tar, "bad.jpg", b"\xff\xd8 this is not a jpeg")
        add_member(tar, "bad.cls", b"1")
        add_member(tar, "caption-only.txt", b"no image here")
    out = tmp_path / "out"
    result = run_prune([*shards, broken], out, tiny_clip, rate=0.5)
    assert result["failed_samples"] == 2
    assert result["kept_samples"] == 60
    table = decisions(out).set_index("key")
    assert table.loc["bad", "status"] == "failed"
    assert "cannot decode bad.jpg" in table.loc["bad", "detail"]
    assert "no image member" in table.loc["caption-only", "detail"]
    assert samples_by_key(out / "broken.tar") == {}


@pytest.mark.parametrize("given", ["run directory", "output folder"])
def test_status_reads_the_run_directory(given, shards, tmp_path, tiny_clip):
    out = tmp_path / "out"
    run_prune(shards, out, tiny_clip, run_dir=str(tmp_path / "elsewhere"))
    result = cli("status", str(tmp_path / "elsewhere" if given == "run directory" else out))
    assert result.returncode == 0, result.stderr
    for stage in ("embed", "cluster", "assign", "select", "reshard", "summary"):
        assert stage in result.stdout
    assert "3/3" in result.stdout and "done" in result.stdout


def _empty_tar(path):
    with tarfile.open(path, "w"):
        pass
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing shard", "shard not found"),
        ("no match", "no shards match"),
        ("rate 0", "--rate: must be in (0, 1)"),
        ("rate 1.5", "--rate: must be in (0, 1)"),
        ("no samples", "no samples"),
        ("too many clusters", "more than the 120 valid samples"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(case, message, shards, tmp_path, tiny_clip):
    out = tmp_path / "out"
    inputs, extra = list(shards), []
    if case == "missing shard":
        inputs.append(tmp_path / "in" / "missing.tar")
    elif case == "no match":
        inputs = [tmp_path / "in" / "*.tgz"]
    elif case.startswith("rate"):
        extra = ["--rate", case.split()[1]]
    elif case == "no samples":
        inputs = [_empty_tar(tmp_path / "in" / "empty.tar")]
    else:
        extra = ["--clusters", "500"]
    assert_one_line_error(cli(*cli_prune_args(inputs, out, tiny_clip, *extra)), message)
    assert not out.exists()


def test_a_folder_curate_did_not_write_is_never_touched(shards, tmp_path, tiny_clip):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("mine")
    for extra in ((), ("--overwrite",)):
        assert_one_line_error(cli(*cli_prune_args(shards, out, tiny_clip, *extra)), "is not empty")
        assert [p.name for p in out.iterdir()] == ["precious.txt"]


def test_overwrite_replaces_only_what_a_curate_run_wrote(shards, tmp_path, tiny_clip):
    out = tmp_path / "out"
    run_prune(shards, out, tiny_clip, rate=0.3)
    (out / "notes.txt").write_text("mine")
    (out / "_run" / "extra").mkdir()
    result = cli(*cli_prune_args(shards, out, tiny_clip, "--overwrite", "--rate", "0.7"))
    assert result.returncode == 0, result.stderr
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / "_run" / "extra").exists()  # the previous run directory went, whole
    assert summary(out)["rate_requested"] == 0.7 and "input samples" in result.stdout


def test_fsspec_urls_give_the_same_output_as_paths(shards, tmp_path, tiny_clip):
    run_prune(shards, tmp_path / "paths", tiny_clip)
    run_prune([f"file://{s}" for s in shards], tmp_path / "urls", tiny_clip)
    assert output_files(tmp_path / "paths").keys() == output_files(tmp_path / "urls").keys()
    for name, data in output_files(tmp_path / "paths").items():
        if name.endswith(".tar"):
            assert output_files(tmp_path / "urls")[name] == data


def test_every_image_format_webdataset_decodes_is_embedded(tmp_path, tiny_clip):
    rng = np.random.default_rng(0)
    path = tmp_path / "in" / "00000.tar"
    path.parent.mkdir()
    formats = [("gif", "GIF"), ("bmp", "BMP"), ("tiff", "TIFF"), ("ppm", "PPM"), ("png", "PNG"),
               ("jpg", "JPEG"), ("webp", "WEBP"), ("tga", "TGA")]  # fmt: skip
    with tarfile.open(path, "w") as tar:
        for ext, fmt in formats * 2:
            add_member(tar, f"{ext}{rng.integers(1e9)}.{ext}", image_bytes(rng, 1, fmt))
        add_member(tar, "odd.heic", b"\0" * 64)
    run_prune([path], tmp_path / "out", tiny_clip, clusters=2)
    table = decisions(tmp_path / "out").set_index("key")
    assert (table.drop("odd")["status"] != "failed").all()
    assert "no image member (has heic)" in table.loc["odd", "detail"]
