"""The one HTTP client of the project's JSON services, with its one retry rule.

    client = JSONClient(["http://127.0.0.1:8100"], retry=Retry(timeout_s=60.0, first_s=0.25))
    info = client.call("GET", "/info")                       # blocking, from any thread
    outs = client.run(asyncio.gather(*(client.request("POST", "/score", body, home=i) ...)))

Used by the OpenAI-server policy (policies/openai_backend.py) and the scorer client
(rewards/server.py `RemoteScorer`); it sits in the bottom floor so that both can.

- Transport: httpx's async client on the client's own event-loop thread (started on first
  use), at most `concurrency` requests in flight per endpoint; `call` blocks the calling
  thread, `run` runs any coroutine of requests (many at once) there. Proxies from the
  environment are ignored: a server on 127.0.0.1 must not be routed through $http_proxy.
- Retries: attempt i of a request goes to endpoint (home + i) mod E. A connection error,
  a timeout, or an answer whose status `retry_status` accepts is retried after a backoff
  (`Retry`: doubling, capped, optionally jittered) until `retry.timeout_s` has passed, then
  `RetryTimeout`. Any other answer but 200 raises `HTTPStatusError` at once with the
  server's message. `on_retry()` is called before each retry and `on_answer(endpoint)` on
  each success, so a caller counts only answered requests.
- Picklable (Ray): connections and the loop thread are rebuilt on first use after.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class HTTPNotInstalledError(ImportError):
    pass


def _import_httpx():
    try:
        import httpx
    except ImportError as e:
        raise HTTPNotInstalledError(
            f"the HTTP clients need httpx ({e}); install it with `pip install httpx` (vLLM already depends on it)"
        ) from None
    return httpx


class HTTPStatusError(ValueError):
    """A server answered with a status that is not retried (its message says why)."""

    def __init__(self, url: str, status: int, message: str) -> None:
        super().__init__(f"{url} answered {status}: {message}")
        self.url, self.status, self.message = url, status, message


class RetryTimeout(RuntimeError):
    """No attempt of a request was answered within the retry budget."""

    def __init__(self, url: str, attempts: int, why: str, timeout_s: float) -> None:
        super().__init__(f"{url}: no answer within {timeout_s}s ({attempts} attempts; last: {why})")
        self.url, self.attempts, self.why, self.timeout_s = url, attempts, why, timeout_s


@dataclass(frozen=True)
class Retry:
    """How long one request is retried, and the wait between its attempts.

    The wait after failed attempt a (1, 2, ...) is min(max_s, first_s * 2**(a - 1)),
    times a uniform factor in [1 - jitter, 1 + jitter], and never past the deadline.
    """

    timeout_s: float = 60.0
    """Seconds from the first attempt after which a failure is final."""
    first_s: float = 0.5
    """Wait after the first failed attempt."""
    max_s: float = 8.0
    """Longest wait between two attempts."""
    jitter: float = 0.0
    """Relative spread of each wait (0.25: 0.75x to 1.25x), so clients do not retry in step."""

    def __post_init__(self) -> None:
        if not self.timeout_s >= 0:
            raise ValueError(f"retry timeout_s must be >= 0, got {self.timeout_s!r}.")
        for name in ("first_s", "max_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"retry {name} must be > 0, got {getattr(self, name)!r}.")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"retry jitter must be in [0, 1), got {self.jitter!r}.")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1, 2, ...)."""
        d = min(self.max_s, self.first_s * 2 ** min(attempt - 1, 30))
        return d * (1 - self.jitter + 2 * self.jitter * random.random()) if self.jitter else d


def default_retry_status(status: int, message: str) -> bool:
    """Retry 408, 425, 429 and the 5xx a server restart or overload gives."""
    return status in RETRY_STATUS


def error_message(text: str) -> str:
    """The message of an error body: JSON {"error": str}, {"error": {"message"}} (OpenAI) or
    {"message"}, else the first 500 characters of the text."""
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(data, dict):
        err = data.get("error", data.get("message"))
        if isinstance(err, dict):
            err = err.get("message")
        if isinstance(err, str):
            return err[:500]
    return text[:500]


class JSONClient:
    """JSON requests to one or more endpoints (base URLs) with retries and fail-over.

    Args:
        endpoints: base URLs; a request's path is appended ("http://h:8000/v1" + "/models").
        timeout_s: read timeout of one attempt (a long generation or a large batch).
        connect_timeout_s: connect timeout of one attempt.
        retry: the retry budget and backoff (`Retry`).
        concurrency: requests in flight per endpoint.
        headers: sent with every request (e.g. Authorization).
        retry_status: (status, message) -> whether that answer is retried.
        on_retry / on_answer: counters' hooks (see the module docstring).
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout_s: float = 600.0,
        connect_timeout_s: float = 10.0,
        retry: Retry | None = None,
        concurrency: int = 64,
        headers: dict | None = None,
        retry_status: Callable[[int, str], bool] = default_retry_status,
        on_retry: Callable[[], None] | None = None,
        on_answer: Callable[[str], None] | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("a JSONClient needs at least one endpoint URL.")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}.")
        if not timeout_s > 0 or not connect_timeout_s > 0:
            raise ValueError(f"timeout_s and connect_timeout_s must be > 0, got {timeout_s}, {connect_timeout_s}.")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.timeout_s, self.connect_timeout_s = timeout_s, connect_timeout_s
        self.retry = retry or Retry()
        self.concurrency = concurrency
        self.headers = dict(headers or {})
        self.retry_status = retry_status
        self.on_retry, self.on_answer = on_retry, on_answer
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._http = None
        self._sems: list[asyncio.Semaphore] = []

    # ---- the loop thread ------------------------------------------------------------
    def run(self, coro):
        """Run a coroutine on the client's loop thread and return its result (works from
        any thread, inside a running event loop too)."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                t = threading.Thread(target=loop.run_forever, name="json-client-loop", daemon=True)
                t.start()
                self._loop, self._thread = loop, t
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def call(self, method: str, path: str, body: dict | None = None, *, home: int = 0) -> dict:
        """One request with retries (see `request`), blocking until it is answered."""
        return self.run(self.request(method, path, body, home=home))

    def close(self) -> None:
        """Close connections and stop the loop thread (the client can be used again after)."""
        if self._loop is None:
            return
        if self._http is not None:
            self.run(self._http.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
        self._reset()

    def __getstate__(self):
        d = self.__dict__.copy()
        d.update(_loop=None, _thread=None, _http=None, _sems=[], _lock=None)
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)
        self._lock = threading.Lock()

    # ---- requests -------------------------------------------------------------------
    def _client(self):
        if self._http is None:
            httpx = _import_httpx()
            most = self.concurrency * len(self.endpoints)
            self._http = httpx.AsyncClient(
                headers=self.headers, trust_env=False,  # no proxies from the environment
                limits=httpx.Limits(max_connections=most, max_keepalive_connections=most),
                timeout=httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s),
            )
            self._sems = [asyncio.Semaphore(self.concurrency) for _ in self.endpoints]
        return self._http

    async def request(self, method: str, path: str, body: dict | None = None, *, home: int = 0) -> dict:
        """The JSON answer of one request; attempt i goes to endpoint (home + i) mod E."""
        httpx = _import_httpx()
        client = self._client()
        deadline = time.monotonic() + self.retry.timeout_s
        attempt = 0
        while True:
            e_idx = (home + attempt) % len(self.endpoints)
            url = self.endpoints[e_idx] + path
            try:
                async with self._sems[e_idx]:
                    r = await client.request(method, url, json=body)
                if r.status_code == 200:
                    if self.on_answer is not None:
                        self.on_answer(self.endpoints[e_idx])
                    return r.json()
                msg = error_message(r.text)
                if not self.retry_status(r.status_code, msg):
                    raise HTTPStatusError(url, r.status_code, msg)
                why = f"HTTP {r.status_code}: {msg}"
            except httpx.TransportError as e:  # refused, reset, timed out
                why = f"{type(e).__name__}: {e}"
            attempt += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise RetryTimeout(url, attempt, why, self.retry.timeout_s)
            if self.on_retry is not None:
                self.on_retry()
            delay = min(self.retry.delay(attempt), left)
            log.warning("%s failed (%s); retry %d in %.1fs", url, why, attempt, delay)
            await asyncio.sleep(delay)
