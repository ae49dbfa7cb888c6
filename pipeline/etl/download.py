"""A URL `path`: downloaded whole into the run's spill directory, bounded in size and time, or not
at all. Credentials and the query string (often a signed token) are `redact`ed everywhere."""

from __future__ import annotations

import http.client
import logging
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from pipeline.common.errors import PipelineError

log = logging.getLogger(__name__)


def is_url(path: str) -> bool:
    return re.match(r"^https?://", path, flags=re.IGNORECASE) is not None


def redact(url: str) -> str:
    """The URL without credentials, query string or fragment: safe for logs and files."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2].lower()  # host[:port] without user:password
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def download(url: str, directory: Path, max_bytes: int, timeout_s: float) -> Path:
    """Fetch `url` into `directory`; fail in one line when it is too big, too slow or cut off."""
    shown = redact(url)

    def fail(message: str, fix: str) -> PipelineError:
        return PipelineError(message, where=shown, fix=fix)

    fix = "check the URL and the network, or download the file and set `path` to it"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    target = directory / (name or "download")
    deadline = time.monotonic() + timeout_s
    size = 0
    try:
        # The socket timeout bounds a stalled connection; the deadline bounds the whole transfer.
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(target, "wb") as out:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            while chunk := response.read1(1 << 20):
                size += len(chunk)
                if (larger := max(size, expected or 0)) > max_bytes:  # at the first chunk if sized
                    raise fail(
                        f"the download is larger than etl.max_download_bytes ({larger:,} > "
                        f"{max_bytes:,} bytes)",
                        "raise etl.max_download_bytes, or download the file and set `path` to it",
                    )
                if time.monotonic() > deadline:
                    raise fail(
                        f"the download took longer than {timeout_s:g} s ({size:,} bytes so far)",
                        "raise etl.download_timeout_s, or download the file yourself",
                    )
                out.write(chunk)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = str(getattr(exc, "reason", None) or type(exc).__name__).replace(url, shown)
        status = f"HTTP {exc.code} " if isinstance(exc, urllib.error.HTTPError) else ""
        raise fail(f"cannot download the data: {status}{reason}", fix) from None
    if expected is not None and size != expected:
        raise fail(f"the download ended after {size:,} of {expected:,} bytes", fix)
    log.info("downloaded %s (%d bytes)", shown, size)
    return target
