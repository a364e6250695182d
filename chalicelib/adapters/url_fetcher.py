"""Downloads a dataset from a URL the user gave, with a size cap and a timeout."""
from __future__ import annotations


import urllib.error
import urllib.request
from typing import IO
from urllib.parse import urlparse

from chalicelib.errors import InvalidInput, PayloadTooLarge, Unprocessable

_CHUNK = 1024 * 1024


class UrlFetcher:
    def __init__(self, timeout_seconds: float = 30.0):
        self.timeout_seconds = timeout_seconds

    def fetch(self, url: str, out: IO[bytes], max_bytes: int) -> int:
        """Stream ``url`` into ``out``; returns the byte count."""
        if urlparse(url).scheme not in ("http", "https"):
            raise InvalidInput(f"dataset_url must be an http(s) URL, got {url!r}")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_seconds) as response:  # noqa: S310
                declared = response.headers.get("Content-Length")
                if declared and int(declared) > max_bytes:
                    raise PayloadTooLarge(f"{url} is {declared} bytes; the limit is {max_bytes}")
                total = 0
                while chunk := response.read(_CHUNK):
                    total += len(chunk)
                    if total > max_bytes:
                        raise PayloadTooLarge(f"{url} is larger than the limit of {max_bytes} bytes")
                    out.write(chunk)
                return total
        except urllib.error.HTTPError as e:
            raise Unprocessable(f"could not download {url}: HTTP {e.code}") from e
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            raise Unprocessable(f"could not download {url}: {getattr(e, 'reason', e)}") from e


__all__ = ["UrlFetcher"]
