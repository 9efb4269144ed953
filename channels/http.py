"""One POST for the channels that speak plain HTTPS (Teams workflows, signed webhooks), with the
channel errors every such answer maps to."""

from __future__ import annotations

import requests

from .errors import TRANSIENT_STATUSES, RejectedByChannel, TransientChannelError, retry_after_seconds, shorten

_SESSION = requests.Session()


def post(name: str, url: str, body: bytes, headers: dict[str, str], timeout: float) -> requests.Response:
    """POST `body`; a 2xx answer is returned, anything else raised as a channel error."""
    try:
        response = _SESSION.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.Timeout as exc:
        raise TransientChannelError(f"{name}: no answer within {timeout:g}s") from exc
    except requests.RequestException as exc:
        raise TransientChannelError(f"{name}: cannot reach the channel: {type(exc).__name__}") from exc
    if 200 <= response.status_code < 300:
        return response
    answer = shorten(f"{response.status_code} {response.text}")
    if response.status_code in TRANSIENT_STATUSES:
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        raise TransientChannelError(
            f"{name}: {answer}", status=response.status_code, answer=answer, retry_after=retry_after
        )
    raise RejectedByChannel(f"{name}: {answer}", status=response.status_code, answer=answer)
