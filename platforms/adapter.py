"""The HTTPAdapter our platform sessions send through: `requests`' own, minus the per-request work
whose answer cannot change between requests to the same platform host.

Every request, HTTPAdapter parses the URL twice (the connection pool's key, the path to send),
looks the proxy up twice, rebuilds the pool key and asks the pool manager for the pool, and hands
each answer to the cookie jar through mock request and answer objects: ~13 % of the HTTP client's
CPU per platform request, all told. Here the pool is remembered per origin and TLS/proxy settings,
a request without a proxy sends its path directly, and an answer that sets no cookie skips the
answer's jar (the session's jar is still given every answer, by `Session.send`). `send` itself is
HTTPAdapter's, untouched: the `responses` test library patches it at class level; and TLS
verification (`cert_verify`, which looks for the CA bundle) still runs on each request.
"""

from __future__ import annotations

import functools
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3.connectionpool import HTTPConnectionPool

# Origins × TLS and proxy settings one adapter remembers pools for; ours talk to one host.
_KNOWN_POOLS = 64


class HostAdapter(HTTPAdapter):
    """HTTPAdapter, remembering per origin what its pool lookup found."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """A new pool manager (made by `__init__`, unpickling, or to resize it): no pool is known yet."""
        self._pools: dict[tuple, HTTPConnectionPool] = {}
        super().init_poolmanager(*args, **kwargs)

    def close(self) -> None:
        """The pool managers forget their pools: so does this adapter."""
        self._pools.clear()
        super().close()

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str,
        proxies: dict[str, str] | None = None,
        cert: Any = None,
    ) -> HTTPConnectionPool:
        """The pool HTTPAdapter would pick, remembered until `close` or a new pool manager.

        The pool depends only on the URL's scheme and host (the text before its path), `verify`,
        `cert` and `proxies`. (A manager keeps up to `pool_connections` hosts' pools and forgets the
        least recently used one beyond: a pool remembered here then still serves, open, as it did.)"""
        try:
            key = (_origin(request.url), verify, cert, tuple(proxies.items()) if proxies else ())
            pool = self._pools.get(key)
        except TypeError:  # unhashable settings (a list for `cert`, say): look it up each time
            return super().get_connection_with_tls_context(request, verify, proxies, cert)
        if pool is None:
            pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
            if len(self._pools) >= _KNOWN_POOLS:
                self._pools.clear()
            self._pools[key] = pool
        return pool

    def request_url(self, request: requests.PreparedRequest, proxies: dict[str, str] | None) -> str:
        """Without a proxy HTTPAdapter sends the path and query (its proxy look-up finds none)."""
        if not proxies:
            return _path_url(request.url)
        return super().request_url(request, proxies)

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        """HTTPAdapter's `build_response`, handing the answer to the cookie jar only when it sets one.

        Without a Set-Cookie (or Set-Cookie2) header `CookieJar.extract_cookies` finds no cookie and
        changes nothing; a Jira Server's JSESSIONID is still taken, as is any other."""
        response = requests.Response()
        response.status_code = getattr(resp, "status", None)
        response.headers = CaseInsensitiveDict(getattr(resp, "headers", {}))
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = resp
        response.reason = resp.reason
        response.url = req.url.decode("utf-8") if isinstance(req.url, bytes) else req.url
        if sets_cookies(response.headers):
            extract_cookies_to_jar(response.cookies, req, resp)
        response.request = req
        response.connection = self
        return response


def sets_cookies(headers: CaseInsensitiveDict) -> bool:
    """Whether an answer's headers carry a cookie for the jar (the only headers it reads)."""
    return "set-cookie" in headers or "set-cookie2" in headers


def _origin(url: str) -> str:
    """`scheme://host:port` of a prepared URL: everything before its path."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


@functools.lru_cache(maxsize=4096)
def _path_url(url: str) -> str:
    """`PreparedRequest.path_url` of `url`: the same text gives the same path."""
    prepared = requests.PreparedRequest()
    prepared.url = url
    return prepared.path_url
