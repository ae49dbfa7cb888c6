"""A URL `path`: downloaded whole or not at all, bounded in size and time, the token kept secret."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.common.errors import PipelineError
from pipeline.etl.core import run_etl
from pipeline.etl.download import redact
from tests.etl.messy import config, etl_config

BODY = ("x,y,t\n" + "".join(f"{i},{i % 2},note {i}\n" for i in range(300))).encode()
SECRET = "sig=SECRET-TOKEN"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/missing.csv":
            self.send_error(404)
            return
        self.send_response(200)
        if path != "/unsized.csv":
            self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        if path == "/cut.csv":
            self.wfile.write(BODY[:50])  # then the connection closes
        elif path == "/slow.csv":
            try:
                for i in range(0, len(BODY), 500):
                    self.wfile.write(BODY[i : i + 500])
                    self.wfile.flush()
                    time.sleep(0.1)
            except BrokenPipeError:
                pass  # the client gave up, as it should
        else:
            self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _run(url: str, tmp: Path, **limits: float) -> object:
    data = config(path=url, target="y", numeric=["x"], text="t")
    return run_etl(data, etl_config(tmp, **limits), 1, tmp / "p", tmp / "m.json")


def test_download_runs_and_keeps_the_token_secret(
    server: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        profile = _run(f"{server}/data.csv?{SECRET}", tmp_path)
    assert profile.rows_in == 300 and profile.source == f"{server}/data.csv"  # type: ignore[attr-defined]
    assert (
        "SECRET" not in caplog.text
        and "SECRET" not in (tmp_path / "p" / "profile.json").read_text()
    )
    assert not (tmp_path / "spill" / "run").exists()  # the download is removed after the run


@pytest.mark.parametrize(
    ("path", "limits", "expected"),
    [
        ("cut.csv", {}, f"the download ended after 50 of {len(BODY):,} bytes"),
        ("data.csv", {"max_download_bytes": 1_000}, "larger than etl.max_download_bytes"),
        ("unsized.csv", {"max_download_bytes": 1_000}, "larger than etl.max_download_bytes"),
        ("slow.csv", {"download_timeout_s": 0.3}, "the download took longer than 0.3 s"),
        ("missing.csv", {}, "cannot download the data: HTTP 404"),
    ],
)
def test_a_bad_download_fails_in_one_line(
    server: str, tmp_path: Path, path: str, limits: dict[str, float], expected: str
) -> None:
    with pytest.raises(PipelineError) as info:
        _run(f"{server}/{path}?{SECRET}", tmp_path, **limits)
    message = str(info.value)
    assert expected in message and "\n" not in message and "SECRET" not in message
    assert f"{server}/{path}" in message
    assert not any((tmp_path / "spill").rglob("*.part"))


def test_unreachable_host(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="cannot download the data"):
        _run("http://127.0.0.1:9/data.csv", tmp_path)


def test_redact_drops_credentials_query_and_fragment() -> None:
    url = "https://user:pw@host.example:8443/a/b.csv?sig=1#x"
    assert redact(url) == "https://host.example:8443/a/b.csv"
