"""What every platform client shares about HTTP: base URLs in settings, network failures, and
how a failed answer becomes our error.

The platforms answer differently (each client says which statuses are worth retrying and how
to read its error bodies), but the rest means the same everywhere: a timeout or a dropped
connection is worth retrying, a redirect loop or an invalid URL is not; a retryable answer waits
for Retry-After, any other refusal is final and carries the platform's own explanation.
"""

from __future__ import annotations

import functools
import math
import os
import re
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.auth import HTTPBasicAuth
from requests.cookies import extract_cookies_to_jar
from requests.hooks import dispatch_hook
from requests.sessions import merge_setting
from requests.structures import CaseInsensitiveDict

from platforms.adapter import HostAdapter, sets_cookies
from platforms.base import RateLimitHeaders
from platforms.errors import (
    PlatformError,
    RejectedByPlatform,
    TransientPlatformError,
    parse_retry_after,
    wait_seconds,
)

# Connections kept open to one platform host. The worker may have up to `worker.concurrency` (at
# most 256) requests in flight; a session keeps 10 by default and drops the rest after use, each
# with a warning and a new TCP and TLS handshake next time. Unused room costs nothing.
KEEP_CONNECTIONS = 256


def keep_connections(session: requests.Session, size: int = KEEP_CONNECTIONS) -> requests.Session:
    """Let `session` keep up to `size` connections per host, its adapters' other settings unchanged.

    A plain HTTPAdapter (what the libraries mount) becomes a HostAdapter with the same settings: it
    remembers what does not change between requests to the platform (platforms/adapter.py)."""
    for prefix, adapter in list(session.adapters.items()):
        if type(adapter) is requests.adapters.HTTPAdapter:
            replacement = HostAdapter(
                pool_connections=adapter._pool_connections,
                pool_maxsize=size,
                max_retries=adapter.max_retries,
                pool_block=adapter._pool_block,
            )
            session.mount(prefix, replacement)
        elif isinstance(adapter, requests.adapters.HTTPAdapter):
            adapter.init_poolmanager(adapter._pool_connections, size, block=adapter._pool_block)
    return session


def environment_read_once(session: requests.Session, url: str) -> requests.Session:
    """Read the proxy and CA-bundle variables once, for the one host `url` names, not per request.

    With `trust_env` requests looks them up again on every request (no_proxy checks walk all of
    os.environ twice): that was ~40 % of the HTTP client's CPU per write. What it would find is
    settled here (HTTP(S)_PROXY / ALL_PROXY unless NO_PROXY names the host, REQUESTS_CA_BUNDLE or
    CURL_CA_BUNDLE), so the requests go out as before; a change to them needs a restart.
    """
    session.proxies.update(requests.utils.get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle and session.verify is True:
        session.verify = bundle
    session.trust_env = False
    return session


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    timeout: float,
    data: str | bytes | None = None,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
) -> requests.Response:
    """`session.request(method, url, data=…, json=…, headers=…, timeout=…)`, without its per-call
    merging of what does not change between our requests.

    `Session.request` builds a Request, merges the session's headers, params, auth, hooks and
    cookies into it (several runtime Protocol checks each, costly on Python 3.11), then merges
    the environment settings: about a third of the client's CPU per write. Here the session's
    headers merged with `headers` are validated once and copied per request, and the rest is done
    by the same PreparedRequest steps `Session.prepare_request` runs, in its order; the request
    then goes through `_send_prepared` (what `Session.send` does with it). The request that
    reaches the HTTPAdapter, the redirects it follows and the cookies kept from the answer are
    those `session.request` would have. A session that reads the environment or carries default
    params goes the ordinary way.
    """
    if session.trust_env or session.params:
        return session.request(method, url, data=data, json=json, headers=headers, timeout=timeout)
    prepared = requests.PreparedRequest()
    prepared.prepare_method(method)
    prepared.url = _prepared_url(url)
    prepared.headers = _merged_headers(session, headers).copy()
    jar = requests.cookies.RequestsCookieJar()
    if session.cookies:
        jar.update(session.cookies)
        prepared.prepare_cookies(jar)
    else:
        prepared._cookies = jar  # an empty jar adds no Cookie header (what prepare_cookies would find)
    prepared.prepare_body(data or {}, None, json)
    basic = _basic_authorization(session.auth)
    if basic is not None:  # what HTTPBasicAuth sets, worked out once per user and token
        prepared.headers["Authorization"] = basic
    else:
        prepared.prepare_auth(session.auth, url)
    prepared.prepare_hooks(session.hooks)
    proxies = {scheme: proxy for scheme, proxy in session.proxies.items() if proxy is not None}
    return _send_prepared(session, prepared, timeout, proxies)


def _send_prepared(
    session: requests.Session, prepared: requests.PreparedRequest, timeout: float, proxies: dict[str, str]
) -> requests.Response:
    """`session.send(prepared, timeout=…, allow_redirects=True, proxies=…)` for a session that does not
    read the environment, without the steps whose answer is known before the request goes out.

    `Session.send` gives every answer to the session's cookie jar (a mock request and answer, the
    answer's headers searched twice, the jar's lock) and starts the redirect generator, which
    first asks whether the answer is a redirect: ~10 % of the client's CPU per write. Here the
    jar is given the answers that set a cookie (an answer without Set-Cookie or Set-Cookie2 leaves
    any jar as it was), redirects are resolved by the session's own `resolve_redirects` when the
    answer is one, and the response hooks run when the session has any. The adapter's `send` is
    called as `Session.send` calls it (the `responses` test library patches it there).
    """
    kwargs: dict[str, Any] = {"stream": session.stream, "timeout": timeout, "verify": session.verify,
                              "cert": session.cert, "proxies": proxies}  # fmt: skip
    adapter = session.get_adapter(url=prepared.url)
    start = time.perf_counter()
    response = adapter.send(prepared, **kwargs)
    response.elapsed = timedelta(seconds=time.perf_counter() - start)
    if prepared.hooks.get("response"):
        response = dispatch_hook("response", prepared.hooks, response, **kwargs)
        for earlier in response.history:  # hooks that made history: their cookies are kept too
            extract_cookies_to_jar(session.cookies, earlier.request, earlier.raw)
    if sets_cookies(response.headers):
        extract_cookies_to_jar(session.cookies, prepared, response.raw)
    if response.is_redirect:
        history = [response, *session.resolve_redirects(response, prepared, **kwargs)]
        response = history.pop()
        response.history = history
    if not session.stream:
        response.content  # noqa: B018  # read now: the connection goes back to the pool
    return response


@functools.lru_cache(maxsize=64)
def _basic_header(username: str | bytes, password: str | bytes) -> str:
    blank = requests.PreparedRequest()
    blank.headers = CaseInsensitiveDict()
    return HTTPBasicAuth(username, password)(blank).headers["Authorization"]


def _basic_authorization(auth: Any) -> str | None:
    """The Authorization header `prepare_auth` would set for basic auth (a (user, password) pair or an
    HTTPBasicAuth); None for any other auth, which runs per request as before."""
    if isinstance(auth, tuple) and len(auth) == 2:
        user, password = auth
    elif type(auth) is HTTPBasicAuth:
        user, password = auth.username, auth.password
    else:
        return None
    try:
        return _basic_header(user, password)
    except TypeError:  # unhashable (never for strings): worked out per request
        return None


@functools.lru_cache(maxsize=4096)
def _prepared_url(url: str) -> str:
    """The URL as `PreparedRequest.prepare_url` makes it (without params): the same text gives the
    same URL, and a ticket's URL comes back with each of its changes."""
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    return prepared.url


# Per session: its headers (and a request's own) → those headers merged and validated, as
# `Session.prepare_request` makes them. Keyed by their values, so a header changed on the session
# afterwards makes a new entry.
_HEADERS: weakref.WeakKeyDictionary[requests.Session, dict[tuple, CaseInsensitiveDict]] = (
    weakref.WeakKeyDictionary()
)


def _merged_headers(session: requests.Session, extra: Mapping[str, str] | None) -> CaseInsensitiveDict:
    key = (tuple(session.headers.items()), tuple(extra.items()) if extra else ())
    known = _HEADERS.get(session)
    if known is None:
        known = _HEADERS.setdefault(session, {})
    merged = known.get(key)
    if merged is None:
        blank = requests.PreparedRequest()
        blank.prepare_headers(
            merge_setting(dict(extra or {}), session.headers, dict_class=CaseInsensitiveDict)
        )
        merged = known[key] = blank.headers
        if len(known) > 64:  # headers that keep changing: keep the newest only
            known.clear()
            known[key] = merged
    return merged


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


def retry_after_header(response: requests.Response) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"))


# The same three facts under each platform's names: the IETF draft's RateLimit-* (Zendesk's newer
# endpoints), Zendesk's X-Rate-Limit / X-Rate-Limit-Remaining, and X-RateLimit-* (Jira, ServiceNow).
_LIMIT = ("ratelimit-limit", "x-rate-limit", "x-ratelimit-limit")
_REMAINING = ("ratelimit-remaining", "x-rate-limit-remaining", "x-ratelimit-remaining")
_RESET = ("ratelimit-reset", "x-rate-limit-reset", "x-ratelimit-reset")
_FIELD = re.compile(r"(?:^|[;,\s])(limit|remaining|reset|r|t)=\"?(\d+(?:\.\d+)?)")


def rate_limit_headers(headers: Mapping[str, str], now: datetime | None = None) -> RateLimitHeaders | None:
    """What an answer's headers say of the rate limit; None when they say nothing.

    A reset is read as seconds (RateLimit-Reset), a Unix time (ServiceNow's X-RateLimit-Reset) or an
    ISO-8601 instant (Jira's); the structured `RateLimit: limit=100, remaining=9, reset=5` (or
    `"default";r=9;t=5`) is read too. Jira's `RateLimit-Reason: jira-per-issue-on-write` marks a
    ticket's own limit."""
    if isinstance(headers, CaseInsensitiveDict):  # an answer's: its lower-case names are kept
        lowered = dict(headers.lower_items())
    else:
        lowered = {k.lower(): v for k, v in headers.items()}
    found: dict[str, float] = {}
    for name, key in ((_LIMIT, "limit"), (_REMAINING, "remaining")):
        value = _number(next((lowered[n] for n in name if n in lowered), None))
        if value is not None:
            found[key] = value
    reset = next((lowered[n] for n in _RESET if n in lowered), None)
    if reset is not None and (seconds := _seconds_until(reset, now or datetime.now(UTC))) is not None:
        found["reset"] = seconds
    for field, value in _FIELD.findall(lowered.get("ratelimit", "")):
        key = {"r": "remaining", "t": "reset"}.get(field, field)
        found.setdefault(key, float(value))
    per_ticket = "per-issue" in lowered.get("ratelimit-reason", "")
    if not found and not per_ticket:
        return None
    limit, remaining = found.get("limit"), found.get("remaining")
    return RateLimitHeaders(
        limit=int(limit) if limit is not None else None,
        remaining=int(remaining) if remaining is not None else None,
        reset_seconds=found.get("reset"),
        per_ticket=per_ticket,
    )


def _number(value: str | None) -> float | None:
    """A header's number; None when absent, unreadable or not finite ("nan", "inf", "1e400")."""
    try:
        number = float(value.strip()) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _seconds_until(value: str, now: datetime) -> float | None:
    number = _number(value)
    if number is not None:
        # Seconds to wait, or a Unix time (no limit resets more than a year ahead).
        return wait_seconds(number - now.timestamp() if number > 31_536_000 else number)
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return wait_seconds((when - now).total_seconds())


def answer_error(
    platform: str,
    response: requests.Response,
    what: str,
    message: str,
    *,
    transient: frozenset[int],
    retry_after: Callable[[requests.Response], float | None] = retry_after_header,
    note: str = "",
) -> PlatformError:
    """Our error for one failed answer: transient (a status in `transient`, or any 5xx: retry
    later) or rejected (don't). `message` is the platform's own explanation of the failure;
    `note` adds what the platform said about a rate limit."""
    status = response.status_code
    if status in transient or status >= 500:
        text = f"{platform} answered {status} to {what}{note}" + (f": {message}" if message else "")
        return TransientPlatformError(
            text,
            status=status,
            retry_after=retry_after(response),
            limits=rate_limit_headers(response.headers),
        )
    return RejectedByPlatform(
        f"{platform} rejected {what} ({status}): {message or response.reason}", status=status
    )


def api_answer(platform: str, response: requests.Response, what: str, hint: str) -> requests.Response:
    """`response`, a success, when it is what the platform's API answers: JSON, or no body. A login page
    of single sign-on or a proxy in front of the site, or a URL that is not the API, answers 200 with
    HTML: nothing was written, so it must not count as done. TransientPlatformError (`hint` says
    what to look at): tried again later, as for a platform briefly away."""
    if response.content and "json" not in response.headers.get("Content-Type", "").lower():
        raise TransientPlatformError(
            f"{platform} answered {what} with {response.status_code} but "
            f"{response.headers.get('Content-Type') or 'no content type'}, not JSON ({hint})",
            status=response.status_code,
        )
    return response


def json_object(response: requests.Response) -> dict[str, Any] | None:
    """The answer's body as a JSON object; None when it is not one (an HTML error page, say)."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def body_text(response: requests.Response) -> str:
    """The answer's body as text, for a message: what is left when it explains nothing in JSON."""
    return response.text.strip()[:500]


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
