"""A data `path` that is an http(s) URL: downloaded whole, bounded in size and time, or not at all.

The query string (often a signed token) and any user:password never reach a log line, an error
or the profile (`redact`). The file lands in the spill directory named by its content hash and
is removed when the run ends (`core.run_etl`).
"""

from __future__ import annotations

import hashlib
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
CHUNK = 1 << 20


def is_url(path: str) -> bool:
    return re.match(r"^https?://", path, flags=re.IGNORECASE) is not None


def redact(url: str) -> str:
    """The URL without credentials, query string or fragment: safe for logs and files."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host  # IPv6
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def download(url: str, directory: Path, max_bytes: int, timeout_s: float) -> Path:
    """Fetch `url` into `directory`; fail in one line when it is too big, too slow or cut off."""
    shown = redact(url)
    fix = "check the URL and the network, or download the file and set `path` to it"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    directory.mkdir(parents=True, exist_ok=True)
    part = directory / f"{name or 'download'}.part"
    deadline = time.monotonic() + timeout_s
    digest, size = hashlib.sha256(), 0
    try:
        # The socket timeout bounds a stalled connection; the deadline bounds the whole transfer.
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(part, "wb") as out:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            if expected is not None and expected > max_bytes:
                raise _too_big(shown, expected, max_bytes)
            while chunk := response.read1(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise _too_big(shown, size, max_bytes)
                if time.monotonic() > deadline:
                    raise PipelineError(
                        f"the download took longer than {timeout_s:g} s ({size:,} bytes so far)",
                        where=shown,
                        fix="raise etl.download_timeout_s, or download the file yourself",
                    )
                digest.update(chunk)
                out.write(chunk)
        if expected is not None and size != expected:
            raise PipelineError(
                f"the download ended after {size:,} of {expected:,} bytes", where=shown, fix=fix
            )
    except PipelineError:
        part.unlink(missing_ok=True)
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or type(exc).__name__
        status = f"HTTP {exc.code} " if isinstance(exc, urllib.error.HTTPError) else ""
        reason = str(reason).replace(url, shown)
        raise PipelineError(
            f"cannot download the data: {status}{reason}", where=shown, fix=fix
        ) from None
    target = directory / f"{digest.hexdigest()[:16]}-{name or 'download'}"
    part.replace(target)
    log.info("downloaded %s (%d bytes)", shown, size)
    return target


def _too_big(shown: str, size: int, max_bytes: int) -> PipelineError:
    return PipelineError(
        f"the download is larger than etl.max_download_bytes ({size:,} > {max_bytes:,} bytes)",
        where=shown,
        fix="raise etl.max_download_bytes, or download the file and set `path` to it",
    )
