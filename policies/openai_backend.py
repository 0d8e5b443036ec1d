"""The policy on OpenAI-compatible servers (`vllm serve`, or any completions API).

    python -m vllm.entrypoints.openai.api_server --model "$(python cli.py models)" \\
        --host 127.0.0.1 --port 8000 --enable-prefix-caching --enable-prompt-tokens-details
    policy = OpenAIPolicy(endpoints=["http://127.0.0.1:8000/v1"])
    full = policy.sample(problems, n=8)                    # list[list[Completion]]
    nxt = policy.extend(problems, steps_so_far, k=4)

A drop-in for `VLLMPolicy`: both subclass `Policy` (policies/base.py), so prompts,
argument checks and per-request seeds are identical (a seeded run sends the same
requests); the same `Completion` records and the same `usage` ledger, read from each
response's `usage` fields (`prompt_tokens`, `prompt_tokens_details.cached_tokens`;
vLLM reports the latter only when started with `--enable-prompt-tokens-details`,
else cached is 0).
Prompts are chat-formatted locally with the model's tokenizer and sent as plain
strings to `/v1/completions`.

Transport: the project's JSON client (policies/jsonclient.py: async httpx on its own
event-loop thread), at most `concurrency` requests in flight per endpoint. Requests of
one problem go to one endpoint (its "home", assigned to the least-loaded endpoint when
the problem is first seen), and requests are issued grouped by prompt, so a server's
prefix cache holds each problem's prompt and steps. Connection errors, timeouts, 408,
425, 429 and 5xx are retried with exponential backoff, moving to the next endpoint on each
retry, until `retry_timeout_s` has passed; other 4xx answers raise at once with
the server's message. Only a successful response's usage is counted, so a retry
never counts twice. Generation with a seed is reproducible across retries and
server restarts (each request carries its own derived seed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

from policies.base import Policy, derive_seed, per_prompt_counts
from policies.config import SamplingConfig
from policies.jsonclient import JSONClient, Retry, RetryTimeout
from policies.types import Completion

log = logging.getLogger(__name__)


class EndpointError(RuntimeError):
    """No endpoint answered a request within the retry budget."""


def normalize_endpoint(url: str) -> str:
    """'http://host:8000' or 'http://host:8000/v1/' -> 'http://host:8000/v1'."""
    u = url.strip().rstrip("/")
    if not u.startswith(("http://", "https://")):
        raise ValueError(f"endpoint must be an http(s) URL such as http://127.0.0.1:8000/v1, got {url!r}.")
    host_and_path = u.split("://", 1)[1]
    if "/" not in host_and_path:  # no path: the OpenAI API lives under /v1
        u += "/v1"
    return u


class OpenAIPolicy(Policy):
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
        if retry_timeout_s < 0 or timeout_s <= 0:
            raise ValueError("timeout_s must be > 0 and retry_timeout_s >= 0.")
        super().__init__(model, sampling=sampling, prompt_style=prompt_style, system_prompt=system_prompt,
                         tokenizer=tokenizer)
        self.endpoints = [normalize_endpoint(e) for e in eps]
        self.served_model = served_model
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retry_timeout_s = retry_timeout_s
        self.max_backoff_s = max_backoff_s
        self.api_key = api_key
        self.usage.extra.update(retries=0, endpoint_requests={e: 0 for e in self.endpoints})
        self._home: dict[str, int] = {}  # problem prompt -> endpoint index (prefix-cache affinity)
        self._assigned = [0] * len(self.endpoints)
        self._http = JSONClient(
            self.endpoints, timeout_s=timeout_s, concurrency=concurrency,
            retry=Retry(timeout_s=retry_timeout_s, first_s=0.5, max_s=max_backoff_s, jitter=0.25),
            headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
            on_retry=self._count_retry, on_answer=self._count_answer,
        )

    @property
    def model_name(self) -> str:
        return self._served_model()

    def _served_model(self) -> str:
        if self.served_model is None:
            self.served_model = self._list_models()[0]
        return self.served_model

    def close(self) -> None:
        """Close connections and stop the loop thread (the policy can be used again after)."""
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):  # picklable (Ray): the tokenizer is reloaded, connections rebuilt on use
        d = self.__dict__.copy()
        d["_tokenizer"] = None
        return d

    # ---- requests ---------------------------------------------------------------
    def _count_retry(self) -> None:
        self.usage.extra["retries"] += 1

    def _count_answer(self, endpoint: str) -> None:
        self.usage.extra["endpoint_requests"][endpoint] += 1

    def _run(self, coro):
        """Run requests on the client's loop; EndpointError when one gets no answer in time."""
        try:
            return self._http.run(coro)
        except RetryTimeout as e:
            raise EndpointError(
                f"no endpoint answered within retry_timeout_s={self.retry_timeout_s}s "
                f"({e.attempts} attempts; last: {e.url}: {e.why}); check the servers "
                f"({', '.join(self.endpoints)}) or raise retry_timeout_s"
            ) from None

    def _list_models(self) -> list[str]:
        data = self._run(self._http.request("GET", "/models"))
        ids = [m["id"] for m in data.get("data", [])]
        if not ids:
            raise EndpointError(f"{self.endpoints[0]}/models lists no model; pass served_model=...")
        return ids

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
        """One Completion list per prompt (the contract of `Policy._generate`)."""
        if not prompts:
            return []
        ns = per_prompt_counts(n, len(prompts), "n")
        # Requests: one n-sample request per prompt, or with a seed n single-sample
        # requests with seeds derived exactly as VLLMPolicy derives them.
        reqs: list[tuple[int, int, dict]] = []  # (owner prompt, endpoint, body)
        order = sorted(range(len(prompts)), key=lambda i: prompts[i])  # shared prefixes adjacent
        for i in order:
            p = prompts[i]
            home = self._home_of(self.problem_prompt(p))
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

    async def _gather(self, reqs) -> list[dict]:
        return await asyncio.gather(*(self._http.request("POST", "/completions", body, home=home)
                                      for _, home, body in reqs))


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
