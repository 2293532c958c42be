"""`curate ingest` against a real HTTP server on 127.0.0.1: real images, 404s, bytes that are
not images and a server slower than the timeout; every URL accounted for per sample, and the
shards go straight into `curate prune`."""

from __future__ import annotations

import json
import signal
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shards.ingest import columns, input_format
from tests.photos import real_images
from tests.runs import cli_prune, curate

SLOW_S = 3  # the ingest runs with --timeout 1


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        status, body, delay = self.server.routes.get(self.path, (404, b"not found", 0))
        if delay:
            self.server.stopping.wait(delay)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        """Quiet: the test reads statuses from img2dataset's records instead."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address):
        """A client that gave up (timeout) is expected here."""


@pytest.fixture
def image_server():
    """Serves `routes` (path -> (status, body, delay_s)); stops at teardown, slow handlers
    included."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.routes, server.stopping = {}, threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.stopping.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _url_list(server, base: str) -> list[dict]:
    rows = []
    for i, (ext, data) in enumerate(real_images(6)):
        server.routes[f"/img/{i}.{ext}"] = (200, data, 0)
        rows.append({"url": f"{base}/img/{i}.{ext}", "caption": f"photo {i}", "want": "success"})
    server.routes["/html/page.jpg"] = (200, b"<html><body>moved</body></html>", 0)
    server.routes["/slow/late.jpg"] = (200, real_images(1)[0][1], SLOW_S)
    rows += [
        {"url": f"{base}/missing/a.jpg", "caption": "gone", "want": "failed_to_download"},
        {"url": f"{base}/html/page.jpg", "caption": "html", "want": "failed_to_resize"},
        {"url": f"{base}/slow/late.jpg", "caption": "late", "want": "failed_to_download"},
        {"url": f"{base}/missing/b.png", "caption": "gone", "want": "failed_to_download"},
    ]
    return rows


def test_download_records_every_url_and_feeds_prune(tmp_path, image_server, tiny_clip):
    server, base = image_server
    rows = _url_list(server, base)
    url_list = tmp_path / "urls.parquet"
    pq.write_table(
        pa.Table.from_pylist([{k: r[k] for k in ("url", "caption")} for r in rows]), url_list
    )
    out = tmp_path / "shards"
    on_interrupt = signal.getsignal(signal.SIGINT)
    printed = curate(
        "ingest",
        str(url_list),
        "--output",
        str(out),
        "--timeout",
        "1",
        "--threads",
        "4",
        "--shard-size",
        "8",
    )
    assert "successes" in printed
    assert signal.getsignal(signal.SIGINT) is on_interrupt  # img2dataset's handler removed

    records = pq.read_table(sorted(out.glob("*.parquet"))).to_pylist()
    assert len(records) == len(rows)
    by_url = {r["url"]: r for r in records}
    for row in rows:
        assert by_url[row["url"]]["status"] == row["want"], by_url[row["url"]]
    assert "404" in by_url[f"{base}/missing/a.jpg"]["error_message"]
    assert "timed out" in by_url[f"{base}/slow/late.jpg"]["error_message"]

    stats = [json.loads(p.read_text()) for p in sorted(out.glob("*_stats.json"))]
    assert sum(s["count"] for s in stats) == len(rows)
    assert sum(s["successes"] for s in stats) == 6

    tars = sorted(out.glob("*.tar"))
    with tarfile.open(tars[0]) as tar:
        names = tar.getnames()
    assert {n.rsplit(".", 1)[1] for n in names} == {"jpg", "txt", "json"}

    summary = cli_prune(tars, tmp_path / "pruned", tiny_clip)
    assert summary["input_samples"] == 6
    assert summary["failed_samples"] == 0

    (out / "notes.txt").write_text("mine")
    curate("ingest", str(url_list), "--output", str(out), "--timeout", "1", "--shard-size", "8",
           "--overwrite")  # fmt: skip
    assert (out / "notes.txt").read_text() == "mine"  # --overwrite removes downloads only
    assert sum(json.loads(p.read_text())["count"] for p in out.glob("*_stats.json")) == len(rows)


def test_format_comes_from_the_suffix():
    assert input_format("a/urls.parquet") == "parquet"
    assert input_format("urls.CSV") == "csv"
    assert input_format("urls.tsv.gz") == "tsv.gz"
    assert input_format("urls.jsonl") == "jsonl"


def test_columns_are_read_from_the_header(tmp_path):
    (tmp_path / "u.csv").write_text("link,text\nhttp://x/1.jpg,one\n")
    assert columns(str(tmp_path / "u.csv"), "csv") == ["link", "text"]
    (tmp_path / "u.jsonl").write_text('{"url": "http://x/1.jpg", "caption": "c"}\n')
    assert columns(str(tmp_path / "u.jsonl"), "jsonl") == ["url", "caption"]


@pytest.mark.parametrize(
    "name, content, extra, message",
    [
        ("missing.csv", None, [], "URL list not found"),
        ("urls.csv", "link,caption\nhttp://x/1.jpg,c\n", [], "no URL column 'url'"),
        (
            "urls.csv",
            "url,text\nhttp://x/1.jpg,c\n",
            ["--caption-col", "caption"],
            "no caption column 'caption'",
        ),
        ("urls.xlsx", "", [], "cannot tell the format"),
        ("urls.csv", "url\nhttp://x/1.jpg\n", ["--shard-size", "0"], "--shard-size must be"),
    ],
)
def test_bad_url_lists_are_one_line_errors(tmp_path, name, content, extra, message):
    path = Path(tmp_path / name)
    if content is not None:
        path.write_text(content)
    printed = curate("ingest", str(path), "--output", str(tmp_path / "out"), *extra, expect=2)
    assert message in printed and "Traceback" not in printed
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_url_list_without_rows_is_an_error(tmp_path):
    (tmp_path / "urls.csv").write_text("url,caption\n")
    printed = curate(
        "ingest", str(tmp_path / "urls.csv"), "--output", str(tmp_path / "out"), expect=2
    )
    assert "has no rows" in printed
