"""The openai backend's sampling requests: one JSON POST over a pooled aiohttp session.

At a local server's speed the client's own CPU is the limit (issue 17). The SDK's
`client.post` (typed request options, a deep copy of the body, an idempotency key, its
response machinery, then httpx) costs about 1.1 ms of CPU per request on a laptop core;
this costs about 0.2 ms, for the same POST (URL, key, JSON body, timeout). Failures come
back as three exceptions that `OpenAIClient._attempt` maps exactly as it maps the SDK's:
`TransportTimeout`, `TransportError` (no HTTP answer: refused, reset, cut off) and
`StatusError` (4xx/5xx, with the headers for Retry-After and the SDK's message text). A
body that is not JSON raises ValueError (the caller's "malformed body").

The reachability check (GET /models) goes this way too, so a generation never imports
the SDK (0.7 s of start-up); it still serves the label-scoring calls.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import time
import weakref
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp


def proxy_for(url: str) -> str | None:
    """The HTTP proxy the environment names for `url` (HTTP(S)_PROXY, ALL_PROXY, less
    NO_PROXY), as httpx and the SDK would use it; None for none."""
    parts = urlsplit(url)
    if parts.hostname and proxy_bypass(parts.hostname):
        return None
    proxies = getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    return proxy if proxy and proxy.startswith(("http://", "https://")) else None


class TransportTimeout(Exception):
    """No answer within `timeout_s` (connecting or reading)."""


class TransportError(Exception):
    """No HTTP answer at all; the cause is chained."""


class StatusError(Exception):
    """An HTTP error status; str() is the SDK's text ("Error code: 400 - message")."""

    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        message = f"Error code: {status}"
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        error = data.get("error", data) if isinstance(data, dict) else None
        detail = error.get("message") if isinstance(error, dict) else None
        if isinstance(detail, str) and detail:
            message += f" - {detail}"
        super().__init__(message)
        self.status_code = status
        self.headers = headers


class Transport:
    """POSTs to one base_url with one key: an aiohttp session per event loop (its
    connections belong to the loop that opened them)."""

    def __init__(self, base_url: str, api_key: str, timeout_s: float) -> None:
        self.base = base_url.rstrip("/")
        self.headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "synthkd",
        }
        for name, variable in (
            ("OpenAI-Organization", "OPENAI_ORG_ID"),  # what the SDK would send
            ("OpenAI-Project", "OPENAI_PROJECT_ID"),
        ):
            if os.environ.get(variable):
                self.headers[name] = os.environ[variable]
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=timeout_s, sock_read=timeout_s
        )
        self.proxy = proxy_for(self.base)
        self._sessions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                headers=self.headers,
                timeout=self.timeout,
                # the proxy is looked up once (proxy_for): aiohttp's trust_env would look
                # it and ~/.netrc up again in a thread on every request
                trust_env=False,
                connector=aiohttp.TCPConnector(limit=0),  # the caller paces
            )
            self._sessions[loop] = session
        return session

    async def post_json(self, path: str, body: dict[str, Any]) -> Any:
        """The decoded JSON answer of POST base_url + path with `body`."""
        return await self._call("POST", path, json.dumps(body).encode("utf-8"))

    async def get_json(self, path: str, timeout_s: float) -> Any:
        """The decoded JSON answer of GET base_url + path (the /models listing)."""
        return await self._call("GET", path, None, aiohttp.ClientTimeout(total=timeout_s))

    async def _call(self, method: str, path: str, data: bytes | None, timeout=None) -> Any:
        options: dict[str, Any] = {"data": data, "proxy": self.proxy}
        if timeout is not None:
            options["timeout"] = timeout
        try:
            async with self._session().request(method, self.base + path, **options) as response:
                status, content = response.status, await response.read()
                headers = response.headers
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise TransportTimeout("timed out") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError("connection failed") from exc
        if status >= 400:
            raise StatusError(status, headers, content)
        return json.loads(content)

    async def aclose(self) -> None:
        """Close this event loop's session."""
        loop = asyncio.get_running_loop()
        session = self._sessions.pop(loop, None)
        if session is not None:
            await session.close()


def retry_after(headers) -> float | None:
    """Seconds the server asks to wait (its answer's headers), or None (then exponential
    backoff) when it names none or something that is neither a number nor an HTTP date."""
    if "retry-after-ms" in headers:
        try:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())
