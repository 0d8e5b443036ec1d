"""The policy on OpenAI-compatible servers (`vllm serve`, or any completions API).

    python -m vllm.entrypoints.openai.api_server --model "$(python cli.py models)" \\
        --host 127.0.0.1 --port 8000 --enable-prefix-caching --enable-prompt-tokens-details
    policy = OpenAIPolicy(endpoints=["http://127.0.0.1:8000/v1"])
    full = policy.sample(problems, n=8)                    # list[list[Completion]]
    nxt = policy.extend(problems, steps_so_far, k=4)

A drop-in for `VLLMPolicy`: the same `sample` / `extend` / `format_prompt` /
`prefix` (borrowed from VLLMPolicy, so prompts, argument checks and per-request
seeds are identical: a seeded run sends the same requests), the same `Completion`
records and the same `usage` ledger, read from each response's `usage` fields
(`prompt_tokens`, `prompt_tokens_details.cached_tokens`; vLLM reports the latter
only when started with `--enable-prompt-tokens-details`, else cached is 0).
Prompts are chat-formatted locally with the model's tokenizer and sent as plain
strings to `/v1/completions`.

Transport: async HTTP (httpx) on a private event-loop thread, at most
`concurrency` requests in flight per endpoint. Requests of one problem go to one
endpoint (its "home", assigned to the least-loaded endpoint when the problem is
first seen), and requests are issued grouped by prompt, so a server's prefix
cache holds each problem's prompt and steps. Connection errors, timeouts, 429 and
5xx are retried with exponential backoff, moving to the next endpoint on each
retry, until `retry_timeout_s` has passed; other 4xx answers raise at once with
the server's message. Only a successful response's usage is counted, so a retry
never counts twice. Generation with a seed is reproducible across retries and
server restarts (each request carries its own derived seed).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from policies.config import SamplingConfig
from policies.models import resolve_model
from policies.types import Completion, TokenUsage
from policies.vllm_policy import (
    VLLMPolicy,
    _count_parameters,
    derive_seed,
    load_prompt_template,
    per_prompt_counts,
)

log = logging.getLogger(__name__)

_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class EndpointError(RuntimeError):
    """No endpoint answered a request within the retry budget."""


class HTTPNotInstalledError(ImportError):
    pass


def _import_httpx():
    try:
        import httpx
    except ImportError as e:
        raise HTTPNotInstalledError(
            f"the openai backend needs httpx ({e}); install it with `pip install httpx` "
            "(vLLM already depends on it)"
        ) from None
    return httpx


def normalize_endpoint(url: str) -> str:
    """'http://host:8000' or 'http://host:8000/v1/' -> 'http://host:8000/v1'."""
    u = url.strip().rstrip("/")
    if not u.startswith(("http://", "https://")):
        raise ValueError(f"endpoint must be an http(s) URL such as http://127.0.0.1:8000/v1, got {url!r}.")
    host_and_path = u.split("://", 1)[1]
    if "/" not in host_and_path:  # no path: the OpenAI API lives under /v1
        u += "/v1"
    return u


class OpenAIPolicy:
    """Generates solutions and next steps through OpenAI-compatible completion servers.

    Args:
        model: the model the servers run, for the tokenizer (chat template) and the
            parameter count: None is the embedded default; else a local HF dir or a
            hub id in the local cache (as for VLLMPolicy).
        endpoints: one base URL or several ("http://127.0.0.1:8000/v1"); load is spread
            over them and a failing one is skipped on retry.
        sampling: sampling settings shared by `sample` and `extend`.
        prompt_style / system_prompt: as for VLLMPolicy.
        served_model: the `model` field sent with each request; None asks the first
            endpoint's /v1/models and takes its first model.
        concurrency: requests in flight per endpoint (match the server's --max-num-seqs).
        timeout_s: read timeout of one request (a long generation on a busy server).
        retry_timeout_s: how long one request is retried (backoff 0.5 s doubling to
            `max_backoff_s`) before EndpointError; covers a server restart.
        api_key: sent as a Bearer token (servers started with --api-key).
        tokenizer: an already loaded tokenizer (tests share one).
    """

    # Borrowed, not re-implemented: prompt building, argument checks and seed derivation
    # are VLLMPolicy's own, so both backends send exactly the same requests.
    format_prompt = VLLMPolicy.format_prompt
    prefix = VLLMPolicy.prefix
    sample = VLLMPolicy.sample
    extend = VLLMPolicy.extend

    def __init__(
        self,
        model: str | None = None,
        *,
        endpoints: str | Sequence[str],
        sampling: SamplingConfig | None = None,
        prompt_style: str | Path = "gsm8k",
        system_prompt: str | None = None,
        served_model: str | None = None,
        concurrency: int = 64,
        timeout_s: float = 600.0,
        retry_timeout_s: float = 300.0,
        max_backoff_s: float = 8.0,
        api_key: str | None = None,
        tokenizer=None,
    ) -> None:
        eps = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        if not eps:
            raise ValueError("endpoints must name at least one server, e.g. http://127.0.0.1:8000/v1.")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}.")
        if retry_timeout_s < 0 or timeout_s <= 0:
            raise ValueError("timeout_s must be > 0 and retry_timeout_s >= 0.")
        self.endpoints = [normalize_endpoint(e) for e in eps]
        self.model = model
        self.sampling = sampling or SamplingConfig()
        self.template = load_prompt_template(prompt_style)
        self.prompt_style = str(prompt_style)
        self.system_prompt = system_prompt
        self.served_model = served_model
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retry_timeout_s = retry_timeout_s
        self.max_backoff_s = max_backoff_s
        self.api_key = api_key
        self.usage = TokenUsage()
        self.usage.extra.update(retries=0, endpoint_requests={e: 0 for e in self.endpoints})
        self._tokenizer = tokenizer
        self._prompt_cache: dict[str, str] = {}
        self._home: dict[str, int] = {}  # problem prompt -> endpoint index (prefix-cache affinity)
        self._assigned = [0] * len(self.endpoints)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client = None
        self._lock = threading.Lock()

    # ---- model ------------------------------------------------------------------
    @property
    def model_path(self) -> str:
        if not hasattr(self, "_model_path"):
            self._model_path = resolve_model(self.model)
        return self._model_path

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        return self._tokenizer

    @property
    def num_parameters(self) -> int:
        """Parameter count from the model's config (no weights loaded)."""
        if not hasattr(self, "_num_params"):
            from types import SimpleNamespace

            from transformers import AutoConfig

            cfg = AutoConfig.from_pretrained(self.model_path)
            fake = SimpleNamespace(llm_engine=SimpleNamespace(model_config=SimpleNamespace(hf_config=cfg)))
            self._num_params = _count_parameters(fake)
        return self._num_params

    @property
    def model_name(self) -> str:
        return self._served_model()

    def _served_model(self) -> str:
        if self.served_model is None:
            self.served_model = self._run(self._list_models())[0]
        return self.served_model

    # ---- event loop -------------------------------------------------------------
    def _run(self, coro):
        """Run a coroutine on the policy's own loop thread (works inside a running loop too)."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                t = threading.Thread(target=loop.run_forever, name="openai-policy-loop", daemon=True)
                t.start()
                self._loop, self._thread = loop, t
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _http(self):
        if self._client is None:
            httpx = _import_httpx()
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            limits = httpx.Limits(
                max_connections=self.concurrency * len(self.endpoints),
                max_keepalive_connections=self.concurrency * len(self.endpoints),
            )
            self._client = httpx.AsyncClient(
                headers=headers, limits=limits, trust_env=False,  # no proxies from the environment
                timeout=httpx.Timeout(self.timeout_s, connect=10.0),
            )
            self._sems = [asyncio.Semaphore(self.concurrency) for _ in self.endpoints]
        return self._client

    def close(self) -> None:
        """Close connections and stop the loop thread (the policy can be used again after)."""
        if self._loop is None:
            return
        if self._client is not None:
            self._run(self._client.aclose())
            self._client = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
        self._loop = self._thread = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):  # picklable (Ray): connections and threads are rebuilt on use
        d = self.__dict__.copy()
        d.update(_loop=None, _thread=None, _client=None, _lock=None, _tokenizer=None)
        d.pop("_sems", None)
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)
        self._lock = threading.Lock()

    # ---- requests ---------------------------------------------------------------
    async def _list_models(self) -> list[str]:
        data = await self._request(0, "GET", "/models", None)
        ids = [m["id"] for m in data.get("data", [])]
        if not ids:
            raise EndpointError(f"{self.endpoints[0]}/models lists no model; pass served_model=...")
        return ids

    async def _request(self, home: int, method: str, path: str, body: dict | None) -> dict:
        """One request with retries; attempt i goes to endpoint (home + i) mod E."""
        httpx = _import_httpx()
        client = self._http()
        deadline = time.monotonic() + self.retry_timeout_s
        attempt = 0
        while True:
            e_idx = (home + attempt) % len(self.endpoints)
            url = self.endpoints[e_idx] + path
            try:
                async with self._sems[e_idx]:
                    r = await client.request(method, url, json=body)
                if r.status_code == 200:
                    self.usage.extra["endpoint_requests"][self.endpoints[e_idx]] += 1
                    return r.json()
                msg = r.text[:500]
                if r.status_code not in _RETRY_STATUS:
                    raise ValueError(f"{url} answered {r.status_code}: {msg}")
                why = f"HTTP {r.status_code}: {msg}"
            except (httpx.TransportError, httpx.TimeoutException) as e:  # refused, reset, timed out
                why = f"{type(e).__name__}: {e}"
            attempt += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise EndpointError(
                    f"no endpoint answered within retry_timeout_s={self.retry_timeout_s}s "
                    f"({attempt} attempts; last: {url}: {why}); check the servers "
                    f"({', '.join(self.endpoints)}) or raise retry_timeout_s"
                )
            self.usage.extra["retries"] += 1
            delay = min(self.max_backoff_s, 0.5 * 2 ** min(attempt - 1, 10)) * (0.75 + 0.5 * random.random())
            log.warning("%s failed (%s); retry %d in %.1fs", url, why, attempt, min(delay, left))
            await asyncio.sleep(min(delay, left))

    def _home_of(self, prompt_key: str) -> int:
        """The endpoint that serves this problem: sticky, least-loaded on first sight."""
        if prompt_key not in self._home:
            i = min(range(len(self.endpoints)), key=lambda j: (self._assigned[j], j))
            self._home[prompt_key] = i
            self._assigned[i] += 1
        return self._home[prompt_key]

    def _body(self, prompt: str, n: int, max_tokens: int, stop, seed: int | None) -> dict:
        s = self.sampling
        body = {
            "model": self._served_model(),
            "prompt": prompt,
            "n": n,
            "max_tokens": max_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "logprobs": 0,  # the sampled tokens' log-probabilities (-> cumulative_logprob)
            "stream": False,
        }
        if stop:
            body["stop"] = list(stop)
        if seed is not None:
            body["seed"] = seed
        # vLLM extensions (other servers ignore or reject unknown fields; sent only when set)
        if s.top_k > 0:
            body["top_k"] = s.top_k
        if s.ignore_eos:
            body["ignore_eos"] = True
        return body

    def _generate(self, prompts, n, max_tokens, *, stop, seed, tag) -> list[list[Completion]]:
        """Same contract as VLLMPolicy._generate: one Completion list per prompt."""
        if not prompts:
            return []
        ns = per_prompt_counts(n, len(prompts), "n")
        # Requests: one n-sample request per prompt, or with a seed n single-sample
        # requests with seeds derived exactly as VLLMPolicy derives them.
        reqs: list[tuple[int, int, dict]] = []  # (owner prompt, endpoint, body)
        order = sorted(range(len(prompts)), key=lambda i: prompts[i])  # shared prefixes adjacent
        for i in order:
            p = prompts[i]
            home = self._home_of(self._problem_key(p))
            if seed is None:
                reqs.append((i, home, self._body(p, ns[i], max_tokens, stop, None)))
            else:
                for j in range(ns[i]):
                    reqs.append((i, home, self._body(p, 1, max_tokens, stop, derive_seed(seed, tag, p, j))))
        outs = self._run(self._gather(reqs))
        result: list[list[Completion]] = [[] for _ in prompts]
        per_owner: dict[int, list[tuple[int, dict]]] = {}
        for k, ((owner, _, _), resp) in enumerate(zip(reqs, outs, strict=True)):
            per_owner.setdefault(owner, []).append((k, resp))
        for owner in range(len(prompts)):
            for _, resp in sorted(per_owner[owner]):  # request order = sample index order
                result[owner].extend(_completions(resp, ns[owner] if seed is None else 1))
        self.usage.add(result)
        return result

    def _problem_key(self, prompt: str) -> str:
        """The formatted problem prompt this prompt starts with (affinity key)."""
        for formatted in self._prompt_cache.values():
            if prompt.startswith(formatted):
                return formatted
        return prompt

    async def _gather(self, reqs) -> list[dict]:
        return await asyncio.gather(*(self._request(home, "POST", "/completions", body) for _, home, body in reqs))


def _completions(resp: dict, n: int) -> list[Completion]:
    """The Completions of one response; prompt work is counted on the first one only."""
    usage = resp.get("usage") or {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0)
    choices = sorted(resp.get("choices") or [], key=lambda c: c.get("index", 0))
    if len(choices) != n:
        raise EndpointError(f"server returned {len(choices)} choices for n={n}")
    out = []
    for j, c in enumerate(choices):
        lp = c.get("logprobs") or {}
        token_lps = lp.get("token_logprobs")
        if token_lps is not None:
            generated = len(token_lps)
            cum = float(sum(x for x in token_lps if x is not None))
        else:  # a server without logprobs: the request's completion tokens (exact for n=1)
            generated = int(usage.get("completion_tokens") or 0) // max(n, 1)
            cum = None
        first = j == 0
        out.append(
            Completion(
                text=c.get("text") or "",
                generated_tokens=generated,
                prompt_tokens=prompt_tokens if first else 0,
                cached_tokens=cached if first else 0,
                finish_reason=c.get("finish_reason"),
                cumulative_logprob=cum,
                stop_reason=c.get("stop_reason"),
            )
        )
    return out
