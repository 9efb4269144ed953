"""What every platform client shares about HTTP: base URLs in settings, and network failures.

The platforms answer differently (each client maps its own status codes and error bodies), but a
request that never got an answer means the same everywhere: a timeout or a dropped connection
is worth retrying, a redirect loop or an invalid URL is not.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import requests

from platforms.errors import PlatformError, TransientPlatformError


@contextmanager
def network_errors(platform: str, what: str, timeout: float) -> Iterator[None]:
    """Turn `requests`' failures inside the block into our errors, naming `platform` and `what`."""
    try:
        yield
    except requests.Timeout as exc:
        raise TransientPlatformError(f"{platform} did not answer {what} within {timeout:g}s") from exc
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        raise TransientPlatformError(f"could not reach {platform} for {what}: {exc}") from exc
    except requests.RequestException as exc:
        # e.g. too many redirects or an invalid URL: neither retryable nor the platform's answer.
        raise PlatformError(f"request {what} failed: {exc}") from exc


def base_url(value: str, example: str) -> str:
    """A settings `url`: an http(s) base URL (a proxy, a sandbox or a local fake server will do),
    without a trailing slash, query or fragment. ValueError names `example` when it is not one."""
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http(s) base URL such as {example}, got {value!r}")
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query or fragment")
    return value


def blank_is_absent(value: Any) -> Any:
    """`${VAR:-}` in the config substitutes "" for an unset variable: that means not set."""
    if isinstance(value, str) and not value.strip():
        return None
    return value
