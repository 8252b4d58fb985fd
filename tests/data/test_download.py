"""Downloads against a local HTTP server (127.0.0.1, ephemeral port) with Range support."""

from __future__ import annotations

import re
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from tgraph.data import load, registry
from tgraph.data.download import download, extract, fetch, file_sha256
from tgraph.data.registry import DatasetSpec, Resource
from tgraph.errors import DownloadError

# sha256 of the .gz files, from gowalla_mat/PROVENANCE.md and gowalla_lightgcn/PROVENANCE.md
MAT_TRAIN_GZ = "650e6250e4a7c475d8f7f29caca8dac89ed45506c3e8fa60ebbd449558f059f8"
MAT_TEST_GZ = "10820dc0dadb4248f2c6c12fee9ffb2dc8a210d1e20ab83cb396956b7fbad85f"
USER_LIST_GZ = "0a4f4f18838f0475d0567131b1e94c4cbd8df714749161e608885e56d1bb4fc8"


class Handler(BaseHTTPRequestHandler):
    """GET ``/<root>/<path>`` from ``server.roots[root]``; honours ``Range: bytes=N-``.

    ``server.cuts`` holds byte counts: the next responses send only that many body bytes and
    close the connection. HTTP/1.0, so each request closes its connection.
    """

    timeout = 10  # seconds a connection may stay idle

    def do_GET(self) -> None:
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        name, _, rest = unquote(self.path).lstrip("/").partition("/")
        path = server.roots.get(name, Path("/nonexistent")) / rest
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and not server.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cuts:
            body = body[: server.cuts.pop(0)]
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(root, tmp_path):
    """Serves ``/shared/`` from the real data root (read-only, no copy) and ``/tmp/`` from a
    fresh folder; stopped after the test."""
    (tmp_path / "served").mkdir()
    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    httpd.roots = {"shared": root, "tmp": tmp_path / "served"}
    httpd.requests, httpd.cuts, httpd.ignore_range = [], [], False
    httpd.url = f"http://127.0.0.1:{httpd.server_port}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_full_download_and_cache(server, root, tmp_path):
    source = root / "gowalla_lightgcn" / "user_list.txt.gz"
    dest = tmp_path / "out" / "user_list.txt.gz"
    url = f"{server.url}/shared/gowalla_lightgcn/user_list.txt.gz"
    assert download(url, dest, USER_LIST_GZ, progress=False) == dest
    assert dest.read_bytes() == source.read_bytes()
    assert not dest.with_name(dest.name + ".part").exists()
    assert server.requests == [("/shared/gowalla_lightgcn/user_list.txt.gz", None)]
    download(url, dest, USER_LIST_GZ, progress=False)  # already there: no request
    assert len(server.requests) == 1


def test_truncated_transfer_is_resumed(server, root, tmp_path):
    source = (root / "gowalla_mat" / "specific_test.csv.gz").read_bytes()
    dest = tmp_path / "test.csv.gz"
    part = tmp_path / "test.csv.gz.part"
    url = f"{server.url}/shared/gowalla_mat/specific_test.csv.gz"
    server.cuts = [100_000]
    with pytest.raises(DownloadError, match="stopped early") as info:
        download(url, dest, MAT_TEST_GZ, progress=False, retries=0)
    assert "resume" in str(info.value)
    assert part.read_bytes() == source[:100_000] and not dest.exists()
    download(url, dest, MAT_TEST_GZ, progress=False)
    assert server.requests[-1][1] == "bytes=100000-"
    assert dest.read_bytes() == source and not part.exists()


def test_retries_resume_within_one_call(server, root, tmp_path):
    source = (root / "gowalla_mat" / "specific_test.csv.gz").read_bytes()
    dest = tmp_path / "test.csv.gz"
    server.cuts = [1_000, 50_000]
    url = f"{server.url}/shared/gowalla_mat/specific_test.csv.gz"
    download(url, dest, MAT_TEST_GZ, progress=False, retries=2)
    assert [r for _, r in server.requests] == [None, "bytes=1000-", "bytes=51000-"]
    assert dest.read_bytes() == source


def test_server_ignoring_range_restarts(server, root, tmp_path):
    source = (root / "gowalla_lightgcn" / "user_list.txt.gz").read_bytes()
    dest = tmp_path / "u.gz"
    (tmp_path / "u.gz.part").write_bytes(b"stale bytes")
    server.ignore_range = True
    download(f"{server.url}/shared/gowalla_lightgcn/user_list.txt.gz", dest, progress=False)
    assert dest.read_bytes() == source


def test_complete_part_file_gets_416(server, root, tmp_path):
    source = (root / "gowalla_lightgcn" / "user_list.txt.gz").read_bytes()
    dest = tmp_path / "u.gz"
    (tmp_path / "u.gz.part").write_bytes(source)
    url = f"{server.url}/shared/gowalla_lightgcn/user_list.txt.gz"
    download(url, dest, USER_LIST_GZ, progress=False)
    assert dest.read_bytes() == source and server.requests[-1][1] == f"bytes={len(source)}-"


def test_bad_checksum_is_rejected(server, tmp_path):
    dest = tmp_path / "u.gz"
    url = f"{server.url}/shared/gowalla_lightgcn/user_list.txt.gz"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(url, dest, "0" * 64, progress=False)
    assert not dest.exists() and not (tmp_path / "u.gz.part").exists()


def test_corrupted_resume_is_rejected(server, root, tmp_path):
    """A .part whose bytes differ from the server's file is completed, then rejected."""
    source = (root / "gowalla_lightgcn" / "user_list.txt.gz").read_bytes()
    (tmp_path / "u.gz.part").write_bytes(b"x" * 100)
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(
            f"{server.url}/shared/gowalla_lightgcn/user_list.txt.gz",
            tmp_path / "u.gz",
            USER_LIST_GZ,
            progress=False,
        )
    assert server.requests[-1][1] == "bytes=100-" and len(source) > 100
    assert not (tmp_path / "u.gz.part").exists() and not (tmp_path / "u.gz").exists()


def test_existing_file_with_wrong_checksum(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    with pytest.raises(DownloadError, match="delete it"):
        download("http://127.0.0.1:9/f", tmp_path / "f", "0" * 64, progress=False)


def test_http_error_and_unreachable(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server.url}/shared/nope.txt", tmp_path / "n", progress=False)
    with pytest.raises(DownloadError, match="cannot reach"):
        download("http://127.0.0.1:9/x", tmp_path / "x", progress=False, timeout=2)


def test_extract_checks_members(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("inner/a.txt", "hello")
        zipped.writestr("__MACOSX/inner/._a.txt", "junk")
    good = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"  # sha256("hello")
    out = tmp_path / "out"
    out.mkdir()
    assert extract(archive, out, {"a.txt": good}) == [out / "a.txt"]
    assert (out / "a.txt").read_text() == "hello"
    with pytest.raises(DownloadError, match="does not match"):
        extract(archive, out, {"a.txt": "0" * 64})
    with pytest.raises(DownloadError, match="no file 'b.txt'"):
        extract(archive, out, {"b.txt": None})


def test_fetch_then_load(server, root, tmp_path, monkeypatch):
    """fetch() puts a registry dataset's files under the root; load(download=True) reads them."""
    base = f"{server.url}/shared/gowalla_mat/"
    spec = DatasetSpec(
        name="mat_copy",
        folder="gowalla_mat",
        files=("specific_train.csv", "specific_test.csv"),
        reader=registry.get_spec("gowalla_mat").reader,
        description="test copy",
        citation="",
        resources=(
            Resource(base + "specific_train.csv.gz", "specific_train.csv.gz", MAT_TRAIN_GZ),
            Resource(base + "specific_test.csv.gz", "specific_test.csv.gz", MAT_TEST_GZ),
        ),
    )
    monkeypatch.setitem(registry.DATASETS, "mat_copy", spec)
    data_root = tmp_path / "data"
    parts = load("mat_copy", root=data_root, download=True)
    assert len(parts["train"]) == 66_428 and len(parts["test"]) == 31_730
    assert file_sha256(data_root / "gowalla_mat" / "specific_train.csv.gz") == MAT_TRAIN_GZ
    count = len(server.requests)
    assert fetch("mat_copy", data_root, progress=False) == data_root / "gowalla_mat"
    assert len(server.requests) == count  # files present: nothing downloaded


def test_fetch_unpacks_zip(server, tmp_path, monkeypatch):
    with zipfile.ZipFile(tmp_path / "served" / "d.zip", "w") as zipped:
        zipped.writestr("d/one.txt", "1\n")
    spec = DatasetSpec(
        name="zipped",
        folder="zipped",
        files=("one.txt",),
        reader=lambda folder: (folder / "one.txt").read_text(),
        description="",
        citation="",
        resources=(Resource(f"{server.url}/tmp/d.zip", "d.zip", members={"one.txt": None}),),
    )
    monkeypatch.setitem(registry.DATASETS, "zipped", spec)
    assert load("zipped", root=tmp_path / "data", download=True) == "1\n"
    assert (tmp_path / "data" / "zipped" / "d.zip").is_file()


def test_fetch_without_download(tmp_path):
    with pytest.raises(DownloadError, match="no download"):
        fetch("synthetic", tmp_path)
