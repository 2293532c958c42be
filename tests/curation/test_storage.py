"""Folder on local disk and on a real S3 server: atomic writes, one PUT per object, options that
travel with the folder, and one-line errors for what a user must install or set."""

import pickle
import socket
import sys
import time

import fsspec
import pytest

from curation.errors import CurateError
from curation.storage import (
    TMP_MARK,
    Folder,
    check_access,
    public_options,
    storage_options,
)
from tests.services import moto_server, s3_environment


def _s3_calls(folder: Folder) -> list[str]:
    """Names of the S3 API calls the folder's client makes from now on."""
    calls: list[str] = []
    folder.fs.connect()
    folder.fs.s3.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    return calls


def test_local_writes_go_through_a_temporary_and_a_failed_one_leaves_nothing(tmp_path):
    folder = Folder(str(tmp_path / "run"))
    with folder.open_atomic("a", "b.bin") as f:
        f.write(b"partial")
        assert not (tmp_path / "run" / "a" / "b.bin").exists()
    assert (tmp_path / "run" / "a" / "b.bin").read_bytes() == b"partial"
    with pytest.raises(RuntimeError), folder.open_atomic("a", "c.bin") as f:
        f.write(b"half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in (tmp_path / "run" / "a").iterdir()) == ["b.bin"]


def test_an_s3_write_is_one_put(s3):
    folder = Folder(s3.url("run"))
    assert folder.object_store
    calls = _s3_calls(folder)
    folder.write_json({"units": 3}, "embed", "stats", "a.json")
    assert calls == ["PutObject"]
    assert folder.read_json("embed", "stats", "a.json") == {"units": 3}
    assert folder.listdir("embed", "stats") == ["a.json"]


@pytest.mark.parametrize("size", [1024, 6 * 2**20], ids=["one-put", "multipart"])
def test_a_failed_s3_write_publishes_nothing(s3, size):
    folder = Folder(s3.url("run"), {"default_block_size": 5 * 2**20})
    calls = _s3_calls(folder)
    with pytest.raises(RuntimeError), folder.open_atomic("shard.tar") as f:
        f.write(b"x" * size)
        raise RuntimeError("killed halfway")
    assert not folder.exists("shard.tar")
    assert "CopyObject" not in calls and "DeleteObject" not in calls
    with folder.open_atomic("shard.tar") as f:
        f.write(b"y" * size)
    assert folder.read_bytes("shard.tar") == b"y" * size


def test_storage_options_travel_with_a_pickled_folder(s3, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    options = {"endpoint_url": s3.endpoint, "key": "test", "secret": "test"}
    folder = pickle.loads(pickle.dumps(Folder(s3.url("run"), options)))
    assert folder.storage_options == options
    folder.write_bytes(b"done", "embed", "done", "00000")
    assert Folder(s3.url("run"), options).read_bytes("embed", "done", "00000") == b"done"


def test_local_paths_ignore_remote_storage_options(tmp_path):
    folder = Folder(str(tmp_path), {"endpoint_url": "http://127.0.0.1:1", "anon": True})
    folder.write_bytes(b"1", "x")
    assert (tmp_path / "x").read_bytes() == b"1"


def test_a_missing_s3_backend_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "s3fs", None)
    monkeypatch.delitem(sys.modules["fsspec.registry"]._registry, "s3", raising=False)
    with pytest.raises(
        CurateError, match=r"^s3:// paths need the s3 extra: pip install 'curate\[s3\]'$"
    ):
        Folder("s3://bucket/run")
    with pytest.raises(CurateError, match="need the s3 extra"):
        check_access("s3://bucket/run", writable=True)


def test_check_access_accepts_a_bucket_and_leaves_nothing_behind(s3):
    check_access(s3.url("out", "_run"), writable=True)
    check_access(s3.url(), writable=False)
    assert fsspec.filesystem("s3").ls(s3.bucket) == []


def test_a_missing_bucket_is_named_and_never_created(s3):
    with pytest.raises(
        CurateError, match=r"s3://no-such-bucket-x/out: bucket no-such-bucket-x does not"
    ):
        check_access("s3://no-such-bucket-x/out", writable=True)
    Folder("s3://no-such-bucket-x/out").makedirs("embed")
    assert not fsspec.filesystem("s3").exists("no-such-bucket-x")


def test_check_access_without_credentials_says_what_to_set(s3, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(CurateError, match=r"no credentials for s3://.*AWS_ACCESS_KEY_ID"):
        check_access(s3.url("out"), writable=True)


def test_check_access_with_wrong_credentials_says_what_to_set(monkeypatch):
    with moto_server(INITIAL_NO_AUTH_ACTION_COUNT="0") as server:
        s3_environment(monkeypatch, server.endpoint)
        with pytest.raises(CurateError) as caught:
            check_access(
                "s3://bucket/out", writable=True, storage_options={"skip_instance_cache": True}
            )
    message = str(caught.value)
    assert message.startswith("access denied to s3://bucket/out")
    assert "AWS_SECRET_ACCESS_KEY" in message and "\n" not in message


def test_check_access_to_an_unreachable_endpoint_is_fast(s3, monkeypatch):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(CurateError, match=r"cannot reach the storage endpoint .*AWS_ENDPOINT_URL"):
        check_access(s3.url("out"), writable=True)
    assert time.monotonic() - start < 5


def test_check_access_to_a_silent_endpoint_is_bounded(s3):
    """A server that accepts connections but never answers: bounded by the read timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        options = {"endpoint_url": endpoint, "config_kwargs": {"read_timeout": 1}}
        start = time.monotonic()
        with pytest.raises(CurateError, match="cannot reach the storage endpoint"):
            check_access(s3.url("out"), writable=True, storage_options=options)
        assert time.monotonic() - start < 5


def test_check_access_on_local_paths(tmp_path, monkeypatch):
    check_access(str(tmp_path / "new" / "out"), writable=True)
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(CurateError, match="is a file, not a folder"):
        check_access(str(tmp_path / "file" / "out"), writable=True)
    with pytest.raises(CurateError, match="not found"):
        check_access(str(tmp_path / "missing"), writable=False)
    monkeypatch.setattr("curation.storage.os.access", lambda path, mode: False)
    with pytest.raises(CurateError, match="is not writable"):
        check_access(str(tmp_path / "out"), writable=True)


def test_unknown_storage_options_are_named(s3):
    with pytest.raises(CurateError, match=r"storage options not accepted for s3://.*bogus"):
        check_access(s3.url("out"), writable=True, storage_options={"bogus": 1})


def test_storage_options_parse_and_mask_secrets():
    options = storage_options('{"key": "AK", "secret": "S", "client_kwargs": {"region_name": "x"}}')
    assert options["client_kwargs"] == {"region_name": "x"}
    assert public_options(options) == {
        "key": "***",
        "secret": "***",
        "client_kwargs": {"region_name": "x"},
    }
    assert storage_options(None) == {}
    with pytest.raises(CurateError, match="not valid JSON"):
        storage_options("{endpoint")
    with pytest.raises(CurateError, match="must be a JSON object"):
        storage_options("[1]")


def test_leftovers_of_killed_writes_go_from_every_folder_below(tmp_path):
    """A unit killed while writing its stats leaves `stats/00002.json.tmp-…` inside the stage
    folder; the stage's next start drops it, and nothing without the mark."""
    folder = Folder(str(tmp_path))
    with pytest.raises(KeyboardInterrupt), folder.open_atomic("reshard", "stats", "1.json") as f:
        f.write(b"{}")
        raise KeyboardInterrupt  # open_atomic removes its own temporary
    stats = tmp_path / "reshard" / "stats"
    (stats / f"00002.json{TMP_MARK}d1e6f896bc6a").write_bytes(b"{")  # as SIGKILL leaves it
    (stats / "00001.json").write_bytes(b"{}")
    (tmp_path / "reshard" / f"top{TMP_MARK}0123456789ab").write_bytes(b"")
    folder.remove_temporaries("reshard")
    assert [p.name for p in (tmp_path / "reshard").rglob("*")] == ["stats", "00001.json"]
