"""`python cli.py serve`: test-time search served as an OpenAI-compatible model.

    python cli.py serve --strategy beam --reward prm --agg min --n 8 --port 8000
    curl -s http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \\
      -d '{"model": "beam-prm-min-n8", "messages": [{"role": "user", "content": "What is 2 + 3?"}]}'

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    r = client.chat.completions.create(model="weighted_majority-none-n8", messages=[...])
    r.choices[0].message.content          # the chosen solution
    r.model_extra["search"]               # answer, votes, candidates with scores, ledger

Endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models,
GET /v1/models/{name}, GET /health.

- The model name names the search: `STRATEGY[-REWARD][-AGG][-nN][-mM][-SELECT]...`, e.g.
  `beam-prm-min-n8`, `best_of_n-orm-last-n16`, `weighted_majority-none-n8`; tokens in any
  order after the strategy (see `parse_model`). `tts-math` (or `default`) is the server's
  defaults. A request's `search` object (`extra_body={"search": {...}}` in the openai
  client) sets any SearchConfig field and `reward` too, over the name; `"tree": true`
  returns the search tree. The request's `seed` is the search seed.
- The problem is the last user message (chat) or each prompt (completions); other turns
  and system messages are not read, and sampling fields (temperature, max_tokens, ...)
  are the server's: both are listed in the reply's `search.ignored`.
- The reply's message is the chosen solution; `search` (top level; a list aligned with
  `choices` for completions) carries the answer, votes, every candidate with its scores
  and value, and the ledger. `usage` counts every token the search spent: prompt tokens
  submitted over all its policy requests (cached ones in `prompt_tokens_details`),
  generated tokens (kept or discarded), and `scorer_tokens`.
- Concurrent requests share one engine: a batching thread gathers the requests that
  arrive within `--batch-window-ms` and runs those with the same search settings as one
  strategy call (one policy call per search step for all of them). Per-request seeds
  depend on (seed, prompt, index) only, so a reply does not depend on its batch mates.
- `--api-key` (or TTS_MATH_API_KEY): requests need `Authorization: Bearer KEY`.
- Errors are OpenAI-shaped: {"error": {"message", "type", "param", "code"}} with 400
  (bad field), 401 (key), 404 (unknown model or path), 413 (too large), 504 (timeout).
- `stream: true` is answered as server-sent events: the whole answer in one chunk,
  then the finish reason, the usage (with stream_options.include_usage) and [DONE].

The HTTP layer is rewards/jsonhttp.py (listen backlog, worker cap, body limit, JSON 4xx
for malformed bodies), as for the scorer server. Only argparse and the standard library
are imported at the top, so `--help` works without vLLM.
"""

from __future__ import annotations

import argparse
import hmac
import itertools
import json
import logging
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from rewards.checkpoint import AUTO_AGG, FALLBACK_AGG  # no torch
from rewards.jsonhttp import (
    DEFAULT_BACKLOG,
    DEFAULT_WORKERS,
    BadRequest,
    JSONHandler,
    JSONHTTPServer,
    RawBody,
    ServedApp,
)
from rewards.kinds import SCORER_KINDS
from search import strategies
from search.select import RULES
from search.strategies import NAMES as STRATEGY_NAMES

log = logging.getLogger(__name__)

# "verifier" needs a gold, which a request does not carry
REWARDS = tuple(k for k, v in SCORER_KINDS.items() if not v.needs_golds)
DEFAULT_NAMES = ("tts-math", "default")
SEARCH_FIELDS = ("strategy", "n", "beam_width", "max_steps", "agg", "final_agg", "select", "beam_rule",
                 "node_budget", "c_puct", "rollouts", "seed")
# request fields read by the server; any other one is listed in the reply's search.ignored
_CHAT_FIELDS = {"model", "messages", "stream", "stream_options", "n", "seed", "search", "user"}
_COMPLETION_FIELDS = {"model", "prompt", "stream", "stream_options", "n", "seed", "search", "user"}


class APIError(BadRequest):
    """A request refused with an OpenAI-shaped error (`param`: the request field at fault)."""

    def __init__(self, message: str, status: int = 400, *, param: str | None = None, code: str | None = None,
                 type: str | None = None) -> None:  # noqa: A002 (OpenAI's field name)
        super().__init__(message, status)
        self.param, self.code = param, code
        self.type = type or ("invalid_request_error" if status < 500 else "server_error")


# ---- model names ------------------------------------------------------------------

# "-" separates a name's parts, so names with "_" are also read with "-" (best-of-n)
_ALIASES = {name.replace("_", "-"): name for name in (*STRATEGY_NAMES, *RULES) if "_" in name}
_NUMBERS = {"n": "n", "m": "beam_width", "steps": "max_steps", "b": "node_budget", "seed": "seed"}
NAME_GRAMMAR = ("STRATEGY[-REWARD][-AGG][-nN][-mM][-stepsS][-bB][-seedS][-SELECT][-final_AGG], e.g. "
                "beam-prm-min-n8; STRATEGY: " + ", ".join(STRATEGY_NAMES) + "; REWARD: " + ", ".join(REWARDS)
                + "; SELECT: " + ", ".join(RULES) + "; AGG: auto (the scorer card's) or rewards.aggregators names (min, last, prod, ...)")


def parse_model(name: str) -> dict:
    """The search options a model name asks for: {"strategy", "reward", "agg", "n", ...}
    ({} for the server's default name). Raises APIError (404 model_not_found) naming the
    token it does not understand.

    Tokens are separated by "-": a strategy, a reward kind, an aggregator, a selection
    rule, `nN` (width), `mM` (beam width), `stepsS`, `bB` (MCTS node budget), `seedS`,
    `final_AGG` (final aggregator). "majority" after a strategy is the selection rule."""
    if not isinstance(name, str) or not name.strip():
        raise APIError("'model' must be a non-empty string, e.g. \"beam-prm-min-n8\"", param="model")
    key = name.strip().lower()
    if key in DEFAULT_NAMES:
        return {}
    for a, b in _ALIASES.items():
        key = key.replace(a, b)
    out: dict = {}
    for tok in key.split("-"):
        field, value = _classify(tok, out, name)
        if field in out:
            raise APIError(f"model {name!r} sets {field} twice ({out[field]!r} and {value!r}); "
                           f"model names read {NAME_GRAMMAR}", 404, param="model", code="model_not_found")
        out[field] = value
    return out


def _classify(tok: str, seen: dict, name: str) -> tuple[str, object]:
    from rewards.aggregators import get as get_agg  # pure Python

    def agg_ok(a: str) -> bool:
        try:
            get_agg(a)
            return True
        except (TypeError, ValueError):
            return False

    if tok in STRATEGY_NAMES and not (tok == "majority" and "strategy" in seen):
        return "strategy", tok
    if tok in RULES:
        return "select", tok
    if tok in REWARDS:
        return "reward", tok
    m = re.fullmatch(r"(n|m|steps|b|seed)(\d+)", tok)
    if m:
        return _NUMBERS[m.group(1)], int(m.group(2))
    if tok.startswith("final_") and (agg_ok(tok[6:]) or tok[6:] == AUTO_AGG):
        return "final_agg", tok[6:]
    if agg_ok(tok) or tok == AUTO_AGG:  # auto: the served scorer's recommended aggregator
        return "agg", tok
    hint = " ('verifier' needs the gold answer, which a request does not carry)" if tok == "verifier" else ""
    raise APIError(f"model {name!r}: unknown part {tok!r}{hint}; model names read {NAME_GRAMMAR}",
                   404, param="model", code="model_not_found")


def model_name(options: dict) -> str:
    """The canonical model name of search options (the inverse of `parse_model`)."""
    parts = [options["strategy"], options["reward"], options["agg"], f"n{options['n']}"]
    if strategies.uses(options["strategy"], "beam_width"):
        parts.append(f"m{options['beam_width']}")
    return "-".join(parts)


def resolve_options(model: str, overrides, defaults: dict, served: Sequence[str]):
    """(SearchConfig, reward kind, want tree) of a request: the server's defaults, then
    the model name, then the request's `search` object. Raises APIError naming the field."""
    from search.config import SearchConfig

    opts = dict(defaults)
    opts.update(parse_model(model))
    want_tree = False
    if overrides is not None:
        if not isinstance(overrides, dict):
            raise APIError(f"'search' must be an object of search options, got {type(overrides).__name__}",
                           param="search")
        allowed = (*SEARCH_FIELDS, "reward", "tree")
        unknown = sorted(set(overrides) - set(allowed))
        if unknown:
            raise APIError(f"search: unknown field(s) {unknown}; allowed: {list(allowed)}", param="search")
        want_tree = bool(overrides.get("tree", False))
        opts.update({k: v for k, v in overrides.items() if k != "tree"})
    reward = opts.pop("reward")
    auto = opts.pop("auto_aggs", None) or {}
    for name in ("agg", "final_agg"):  # auto: what the scorer's card recommends (serve_defaults), else min
        if opts.get(name) == AUTO_AGG:
            opts[name] = auto.get(reward) or FALLBACK_AGG
    if reward not in served:
        by_body = overrides is not None and "reward" in overrides
        raise APIError(f"reward {reward!r} is not served here; this server serves {', '.join(served)} "
                       "(start it with --rewards to add kinds)", 400 if by_body else 404,
                       param="search" if by_body else "model", code=None if by_body else "model_not_found")
    try:
        config = SearchConfig(**{k: v for k, v in opts.items() if k in SEARCH_FIELDS})
    except (TypeError, ValueError) as e:
        raise APIError(f"search options of model {model!r}: {e}", param="search") from None
    return config, reward, want_tree


# ---- request parsing -----------------------------------------------------------------

def _text_of(content, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise APIError(f"{where}[{j}] must be a text part {{\"type\": \"text\", \"text\": \"...\"}}; "
                               "only text is read", param=where)
            parts.append(part["text"])
        return "\n".join(parts)
    raise APIError(f"{where} must be a string or a list of text parts, got {type(content).__name__}", param=where)


def chat_problem(messages) -> tuple[str, list[str]]:
    """(problem text, messages not read) of a chat request: the last user message."""
    if not isinstance(messages, list) or not messages:
        raise APIError("'messages' must be a non-empty list, e.g. [{\"role\": \"user\", \"content\": \"What is 2+3?\"}]",
                       param="messages")
    last = None
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise APIError(f"messages[{i}] must be an object with a 'role' and a 'content'", param=f"messages[{i}]")
        if m["role"] == "user":
            last = i
    if last is None:
        raise APIError("messages hold no user message; the problem to solve is the last user message",
                       param="messages")
    text = _text_of(messages[last].get("content"), f"messages[{last}].content")
    if not text.strip():
        raise APIError(f"messages[{last}].content is empty; send the problem to solve", param=f"messages[{last}].content")
    skipped = [f"messages[{i}] ({m['role']})" for i, m in enumerate(messages) if i != last]
    return text, skipped


def completion_prompts(prompt) -> list[str]:
    if isinstance(prompt, str):
        prompt = [prompt]
    if not isinstance(prompt, list) or not prompt or not all(isinstance(p, str) and p.strip() for p in prompt):
        raise APIError("'prompt' must be a non-empty string or a list of them (token-id prompts are not "
                       "supported)", param="prompt")
    return prompt


def _common_fields(body: dict, known: set[str]) -> tuple[int | None, list[str]]:
    """(seed, ignored fields) of a request; checks n and seed."""
    n = body.get("n", 1)
    if n not in (1, None):
        raise APIError(f"n must be 1, got {n!r}: the search returns its one chosen solution (the other "
                       "candidates are in the reply's `search` field); widen the search with the model name, "
                       "e.g. beam-prm-min-n8", param="n")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise APIError(f"seed must be an integer, got {seed!r}", param="seed")
    return seed, sorted(set(body) - known)


# ---- batching ------------------------------------------------------------------------

@dataclass
class _Job:
    texts: list[str]
    config: object  # SearchConfig (hashable: frozen)
    reward: str
    future: Future


class Batcher:
    """One thread runs every search: requests that arrive within `window_s` of the first
    waiting one (up to `max_problems` problems) are taken together, and those with the
    same (config, reward) run as one `run(problems, config, reward)` call.

    Args:
        run: (list[Problem], SearchConfig, reward) -> (records, step delimiter); records
            are `SearchResult.as_dict()`s with the problem ids given.
    """

    def __init__(self, run: Callable, *, window_s: float = 0.02, max_problems: int = 64) -> None:
        if not window_s >= 0:
            raise ValueError(f"window_s must be >= 0, got {window_s!r}.")
        if not isinstance(max_problems, int) or max_problems < 1:
            raise ValueError(f"max_problems must be an int >= 1, got {max_problems!r}.")
        self.run, self.window_s, self.max_problems = run, window_s, max_problems
        self.calls = 0  # search calls made (tests read it)
        self._q: queue.Queue = queue.Queue()
        self._ids = itertools.count()
        self._thread = threading.Thread(target=self._loop, name="search-batcher", daemon=True)
        self._thread.start()

    def submit(self, texts: list[str], config, reward: str) -> Future:
        """A future of (records, delimiter) for these problems, in this order."""
        fut: Future = Future()
        self._q.put(_Job(list(texts), config, reward, fut))
        return fut

    def close(self) -> None:
        self._q.put(None)
        self._thread.join(timeout=5)

    def _collect(self) -> list[_Job] | None:
        first = self._q.get()
        if first is None:
            return None
        jobs, size = [first], len(first.texts)
        deadline = time.monotonic() + self.window_s
        while size < self.max_problems:
            left = deadline - time.monotonic()
            try:
                job = self._q.get(timeout=left) if left > 0 else self._q.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._q.put(None)  # close after this batch
                break
            jobs.append(job)
            size += len(job.texts)
        return jobs

    def _loop(self) -> None:
        while True:
            jobs = self._collect()
            if jobs is None:
                return
            groups: dict = {}
            for j in jobs:
                groups.setdefault((j.config, j.reward), []).append(j)
            for (config, reward), group in groups.items():
                self._run_group(group, config, reward)

    def _run_group(self, jobs: list[_Job], config, reward: str) -> None:
        from search.types import Problem

        live = [j for j in jobs if j.future.set_running_or_notify_cancel()]
        ids = [[f"r{next(self._ids)}" for _ in j.texts] for j in live]
        problems = [Problem(id=i, text=t) for j, js in zip(live, ids, strict=True) for i, t in zip(js, j.texts, strict=True)]
        if not problems:
            return
        try:
            self.calls += 1
            records, delim = self.run(problems, config, reward)
            by_id = {str(r["id"]): r for r in records}
            for j, js in zip(live, ids, strict=True):
                j.future.set_result(([by_id[i] for i in js], delim))
        except BaseException as e:  # the requests get the error; the thread keeps serving
            log.exception("search of %d problems failed", len(problems))
            for j in live:
                if not j.future.done():
                    j.future.set_exception(e)


# ---- where searches run -------------------------------------------------------------

class LocalSearch:
    """Searches in this process: one policy (the in-process engine, or an OpenAI-backend
    client) and one scorer per reward kind, each built on first use (`warm` builds the
    policy and the first kind's scorer at start-up).

    Args:
        make_policy: zero-argument factory of the policy.
        make_scorers: {reward kind: zero-argument factory, or None for no scorer}.
    """

    def __init__(self, make_policy: Callable, make_scorers: dict[str, Callable | None]) -> None:
        if not make_scorers:
            raise ValueError("make_scorers must name at least one reward kind, e.g. {'none': None}.")
        self.make_policy, self.make_scorers = make_policy, dict(make_scorers)
        self.rewards = tuple(self.make_scorers)
        self._policy = None
        self._scorers: dict = {}

    def warm(self) -> None:
        self.policy()
        self.scorer(self.rewards[0])

    def policy(self):
        if self._policy is None:
            self._policy = self.make_policy()
        return self._policy

    def scorer(self, reward: str):
        if reward not in self._scorers:
            make = self.make_scorers[reward]
            self._scorers[reward] = make() if make is not None else None
        return self._scorers[reward]

    def run(self, problems, config, reward: str):
        from search import STRATEGIES, common

        policy, scorer = self.policy(), self.scorer(reward)
        records: list[dict] = []
        STRATEGIES[config.strategy](problems, policy, scorer, config, on_done=lambda r: records.append(r.as_dict()))
        return records, common.delimiter(policy)


class RaySearch:
    """Searches on Ray actors (search/ray_runner.py's `SearchWorker`s, engines loaded
    once): one call's problems are split in blocks over the actors. One reward kind."""

    def __init__(self, make_policy: Callable, make_scorer: Callable | None, reward: str, *, num_actors: int,
                 address: str | None, actor_options: dict | None) -> None:
        from search.ray_runner import SearchPool

        self.pool = SearchPool(make_policy, make_scorer, num_actors=num_actors, address=address,
                               actor_options=actor_options)
        self.rewards = (reward,)

    def warm(self) -> None:
        self.pool.warm()

    def run(self, problems, config, reward: str):
        actors = self.pool.actors
        size = -(-len(problems) // len(actors))
        refs = [a.run.remote(list(problems[i * size:(i + 1) * size]), config, {})
                for i, a in enumerate(actors) if problems[i * size:(i + 1) * size]]
        records = [r for chunk in self.pool.ray.get(refs) for r in chunk]
        return records, "\n\n"  # the prompt templates' step delimiter


# ---- replies -------------------------------------------------------------------------

_FINISH = {"eos": "stop", "length": "length", "step_limit": "length"}


def _chosen_text(rec: dict, delim: str) -> tuple[str, str]:
    """(text, OpenAI finish reason) of the chosen candidate ("" when there is none)."""
    if rec.get("chosen") is None:
        return "", "stop"
    c = rec["candidates"][rec["chosen"]]
    return delim.join(c["steps"]), _FINISH.get(c.get("finish_reason"), "stop")


def usage_of(records: Sequence[dict]) -> dict:
    """OpenAI `usage` over every token the searches spent (discarded candidates included)."""
    led = [r["ledger"] for r in records]
    prompt = sum(x["prompt_tokens"] for x in led)
    gen = sum(x["generated_tokens"] for x in led)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": gen,
        "total_tokens": prompt + gen,
        "prompt_tokens_details": {"cached_tokens": sum(x["cached_tokens"] for x in led)},
        "scorer_tokens": round(sum(x["scorer_tokens"] for x in led), 1),
    }


def extension(rec: dict, delim: str, config, reward: str, ignored: list[str], tree: bool) -> dict:
    """The reply's `search` field for one problem."""
    out = {
        "strategy": config.strategy,
        "reward": reward,
        "config": config.as_dict(),
        "answer": rec["answer"],
        "chosen": rec["chosen"],
        "votes": rec["votes"],
        "candidates": [
            {"answer": c["answer"], "value": c["value"], "scores": c["scores"], "finish_reason": c["finish_reason"],
             "generated_tokens": c["generated_tokens"], "text": delim.join(c["steps"])}
            for c in rec["candidates"]
        ],
        "ledger": rec["ledger"],
        "ignored": ignored,
    }
    if tree:
        out["tree"] = rec["tree"]
    return out


def chat_reply(model: str, rec: dict, delim: str, ext: dict) -> dict:
    text, finish = _chosen_text(rec, delim)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
        "model": model, "system_fingerprint": None,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                     "finish_reason": finish}],
        "usage": usage_of([rec]),
        "search": ext,
    }


def completion_reply(model: str, recs: list[dict], delim: str, exts: list[dict]) -> dict:
    choices = []
    for i, rec in enumerate(recs):
        text, finish = _chosen_text(rec, delim)
        choices.append({"index": i, "text": text, "logprobs": None, "finish_reason": finish})
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": model, "system_fingerprint": None, "choices": choices, "usage": usage_of(recs),
            "search": exts}


def as_stream(reply: dict, include_usage: bool) -> RawBody:
    """A finished reply as server-sent events: the whole text in one chunk, then the
    finish reasons, the usage (if asked) and [DONE]."""
    chat = reply["object"] == "chat.completion"
    head = {k: reply[k] for k in ("id", "created", "model", "system_fingerprint")}
    head["object"] = "chat.completion.chunk" if chat else "text_completion"
    events = []
    for c in reply["choices"]:
        if chat:
            delta = {"role": "assistant", "content": c["message"]["content"]}
            events.append({**head, "choices": [{"index": c["index"], "delta": delta, "logprobs": None,
                                                "finish_reason": None}], "search": reply["search"]})
            events.append({**head, "choices": [{"index": c["index"], "delta": {}, "logprobs": None,
                                                "finish_reason": c["finish_reason"]}]})
        else:
            events.append({**head, "choices": [{"index": c["index"], "text": c["text"], "logprobs": None,
                                                "finish_reason": c["finish_reason"]}],
                           "search": reply["search"][c["index"]]})
    if include_usage:
        events.append({**head, "choices": [], "usage": reply["usage"]})
    data = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return RawBody(data.encode(), "text/event-stream; charset=utf-8")


# ---- the server ------------------------------------------------------------------------

class SearchServer(ServedApp):
    """Serve test-time search behind the OpenAI API (see the module docstring).

    Args:
        runner: where searches run: `LocalSearch`, `RaySearch`, or any object with
            `rewards` (the kinds it serves) and `run(problems, config, reward)` ->
            (records, delimiter). Tests pass a LocalSearch of scripted fakes.
        defaults: search options of a request that names none: SearchConfig fields and
            "reward" (e.g. {"strategy": "best_of_n", "n": 4, "reward": "none", ...}).
        host, port: address to bind (port 0 picks a free one; read `.port`).
        api_key: when set, requests need `Authorization: Bearer <api_key>`.
        batch_window_s / max_batch_problems: see `Batcher`.
        request_timeout_s: a request waiting longer for its search gets 504.
        max_workers, backlog, max_body_mb: see rewards/jsonhttp.py.
    """

    thread_name = "search-server"

    def __init__(self, runner, *, defaults: dict, host: str = "127.0.0.1", port: int = 8000,
                 api_key: str | None = None, batch_window_s: float = 0.02, max_batch_problems: int = 64,
                 request_timeout_s: float = 3600.0, max_workers: int = DEFAULT_WORKERS,
                 backlog: int = DEFAULT_BACKLOG, max_body_mb: float = 8.0) -> None:
        if not max_body_mb > 0:
            raise ValueError(f"max_body_mb must be > 0, got {max_body_mb!r}.")
        if not request_timeout_s > 0:
            raise ValueError(f"request_timeout_s must be > 0, got {request_timeout_s!r}.")
        self.runner = runner
        self.defaults = dict(defaults)
        resolve_options("tts-math", None, self.defaults, runner.rewards)  # the defaults must make a search
        self.api_key = api_key or None
        self.request_timeout_s = request_timeout_s
        self.batcher = Batcher(runner.run, window_s=batch_window_s, max_problems=max_batch_problems)
        self.httpd = JSONHTTPServer((host, port), _make_handler(self), max_workers=max_workers, backlog=backlog,
                                    max_body=int(max_body_mb * 2**20))
        self.host, self.port = self.httpd.server_address[:2]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def model_ids(self) -> list[str]:
        """The default name, the defaults' canonical name, and one name per strategy."""
        ids = [DEFAULT_NAMES[0], model_name(self.defaults)]
        for s in STRATEGY_NAMES:
            opts = dict(self.defaults, strategy=s)
            if strategies.get(s).width_multiple and opts["n"] % opts["beam_width"]:
                continue
            ids.append(model_name(opts))
        return list(dict.fromkeys(ids))

    def models(self) -> dict:
        return {"object": "list", "data": [self.model_card(m) for m in self.model_ids()]}

    def model_card(self, name: str) -> dict:
        resolve_options(name, None, self.defaults, self.runner.rewards)  # 404 unless it names a search
        return {"id": name, "object": "model", "created": 0, "owned_by": "tts-math"}

    def search(self, texts: list[str], body: dict, known: set[str], skipped: list[str]):
        """(records, delimiter, extensions) of the request's problems."""
        model = body.get("model")
        seed, ignored = _common_fields(body, known)
        config, reward, tree = resolve_options(model, body.get("search"), self.defaults, self.runner.rewards)
        if seed is not None:
            import dataclasses

            config = dataclasses.replace(config, seed=seed)
        fut = self.batcher.submit(texts, config, reward)
        try:
            records, delim = fut.result(timeout=self.request_timeout_s)
        except FutureTimeout:
            raise APIError(f"the search did not finish within {self.request_timeout_s:g}s; ask for a smaller "
                           "search (a lower nN in the model name) or start the server with a longer "
                           "--request-timeout", 504, code="timeout") from None
        ignored = ignored + skipped
        exts = [extension(r, delim, config, reward, ignored, tree) for r in records]
        return records, delim, exts

    def chat(self, body) -> dict | RawBody:
        body = _object(body)
        text, skipped = chat_problem(body.get("messages"))
        records, delim, exts = self.search([text], body, _CHAT_FIELDS, skipped)
        reply = chat_reply(body["model"], records[0], delim, exts[0])
        return _maybe_stream(reply, body)

    def completions(self, body) -> dict | RawBody:
        body = _object(body)
        texts = completion_prompts(body.get("prompt"))
        records, delim, exts = self.search(texts, body, _COMPLETION_FIELDS, [])
        return _maybe_stream(completion_reply(body["model"], records, delim, exts), body)

    def close_resources(self) -> None:
        self.batcher.close()


def _object(body) -> dict:
    if not isinstance(body, dict):
        raise APIError(f"request body must be a JSON object, got {type(body).__name__}")
    if "model" not in body:
        raise APIError("missing field 'model' (e.g. \"beam-prm-min-n8\", or \"tts-math\" for the server's "
                       "defaults)", param="model")
    return body


def _maybe_stream(reply: dict, body: dict):
    if not body.get("stream"):
        return reply
    opts = body.get("stream_options") or {}
    return as_stream(reply, bool(isinstance(opts, dict) and opts.get("include_usage")))


def _make_handler(server: SearchServer):
    class Handler(JSONHandler):
        def error_body(self, code, message, exc=None):
            default_type = "invalid_request_error" if code < 500 else "server_error"
            return {"error": {"message": message, "type": getattr(exc, "type", default_type),
                              "param": getattr(exc, "param", None), "code": getattr(exc, "code", None)}}

        def _authorize(self) -> None:
            if server.api_key is None:
                return
            got = self.headers.get("Authorization", "")
            if not hmac.compare_digest(got.encode(), f"Bearer {server.api_key}".encode()):
                what = "no Authorization header" if not got else "a wrong key"
                raise APIError(f"this server needs an API key: send 'Authorization: Bearer KEY' (got {what})",
                               401, code="invalid_api_key")

        def get(self, path):
            path = path.split("?", 1)[0].rstrip("/")
            if path == "/health":
                return 200, {"status": "ok"}
            self._authorize()
            if path == "/v1/models":
                return 200, server.models()
            if path.startswith("/v1/models/"):
                return 200, server.model_card(path[len("/v1/models/"):])
            raise APIError(f"no such path {path!r}; GET /v1/models or /health", 404, code="not_found")

        def post(self, path):
            path = path.split("?", 1)[0].rstrip("/")
            if path not in ("/v1/chat/completions", "/v1/completions"):
                raise APIError(f"no such path {path!r}; POST to /v1/chat/completions or /v1/completions",
                               404, code="not_found")
            self._authorize()
            body = self.read_json()
            if path == "/v1/chat/completions":
                return 200, server.chat(body)
            return 200, server.completions(body)

    return Handler


# ---- `python cli.py serve` ----------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    from rewards.aggregators import names as agg_names
    from search.cli import BACKENDS  # argparse-only module

    g = p.add_argument_group("default search (a request's model name and `search` object override it)")
    g.add_argument("--strategy", choices=STRATEGY_NAMES, default="best_of_n")
    g.add_argument("--n", type=int, default=4, help="search width (as `search --n`)")
    g.add_argument("--beam-width", type=int, default=2, help="M (beam, DVTS, MCTS)")
    g.add_argument("--max-steps", type=int, default=8)
    g.add_argument("--agg", default=AUTO_AGG,
                   help="aggregator during search: auto (default: the one the scorer's card recommends, min when "
                        f"it names none; per served kind), or {', '.join(agg_names())}")
    g.add_argument("--final-agg", default=None, help="aggregator for the final selection (default: --agg)")
    g.add_argument("--select", choices=tuple(RULES), default=None, help="final selection (default: the strategy's)")
    g.add_argument("--seed", type=int, default=0, help="search seed of a request without `seed`")
    g = p.add_argument_group("rewards")
    g.add_argument("--reward", choices=REWARDS, default="none", help="the default scorer kind")
    g.add_argument("--rewards", default=None,
                   help="comma-separated kinds requests may ask for (each scorer loads on first use); "
                        "default: --reward and none")
    g.add_argument("--scorer-model", default=None, help="checkpoint of the --reward scorer (default: the kind's)")
    g.add_argument("--scorer-endpoint", default=None,
                   help="a scorer server (cli.py serve-scorer) used for --reward instead of a local scorer")
    g = p.add_argument_group("policy")
    g.add_argument("--model", default=None, help="policy model (default: embedded SmolLM2-135M)")
    g.add_argument("--prompt-style", default="math", help="gsm8k, math, plain or a template path (default math)")
    g.add_argument("--temperature", type=float, default=0.8)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--max-tokens", type=int, default=384, help="cap on one full solution")
    g.add_argument("--max-step-tokens", type=int, default=128, help="cap on one step")
    g.add_argument("--gpu-memory-utilization", type=float, default=None)
    g.add_argument("--kv-cache-gib", type=float, default=None, help="KV cache size in GiB (CPU default 2)")
    g.add_argument("--tensor-parallel-size", type=int, default=1)
    g.add_argument("--data-parallel-size", type=int, default=1)
    g = p.add_argument_group("backend (docs/scale-out.md)")
    g.add_argument("--backend", choices=BACKENDS, default="inprocess")
    g.add_argument("--endpoint", action="append", default=None, help="completions server URL (repeat for several)")
    g.add_argument("--concurrency", type=int, default=64, help="open requests per endpoint (openai)")
    g.add_argument("--ray-address", default=None)
    g.add_argument("--ray-actors", type=int, default=2)
    g.add_argument("--ray-gpus-per-actor", type=float, default=0.0)
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 serves other machines)")
    g.add_argument("--port", type=int, default=8000)
    g.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' (or set TTS_MATH_API_KEY)")
    g.add_argument("--batch-window-ms", type=float, default=20.0,
                   help="requests arriving within this window run as one search call")
    g.add_argument("--max-batch-problems", type=int, default=64, help="problems in one search call at most")
    g.add_argument("--request-timeout", type=float, default=3600.0, help="seconds a request waits for its search")
    g.add_argument("--max-workers", type=int, default=DEFAULT_WORKERS, help="connections served at once")
    g.add_argument("--backlog", type=int, default=DEFAULT_BACKLOG, help="listen backlog")
    g.add_argument("--max-body-mb", type=float, default=8.0)


def serve_defaults(args) -> dict:
    return {"strategy": args.strategy, "n": args.n, "beam_width": args.beam_width, "max_steps": args.max_steps,
            "agg": args.agg, "final_agg": args.final_agg, "select": args.select, "seed": args.seed,
            "reward": args.reward, "auto_aggs": auto_aggs(args)}


def auto_aggs(args) -> dict:
    """What `auto` means per served reward kind: the recommended aggregator of the scorer
    each kind loads (`search.cli.recommended_for`), None for none (then min)."""
    from search.cli import recommended_for  # argparse-only module

    return {k: recommended_for(args, k) for k in served_rewards(args) if k != "none"}


def served_rewards(args) -> list[str]:
    kinds = [args.reward] + (args.rewards.split(",") if args.rewards else ["none"])
    kinds = list(dict.fromkeys(k.strip() for k in kinds if k.strip()))
    for k in kinds:
        if k not in REWARDS:
            hint = " (the verifier needs a gold answer, which a request does not carry)" if k == "verifier" else ""
            raise ValueError(f"--rewards: unknown kind {k!r}{hint}; choose from {', '.join(REWARDS)}")
    if args.scorer_endpoint and len([k for k in kinds if k != "none"]) > 1:
        raise ValueError("--scorer-endpoint serves one kind (--reward); drop the other --rewards kinds")
    return kinds


def check_args(args) -> None:
    """Every option checked before anything loads: one ValueError naming the flag."""
    from search.cli import check_backend_args  # argparse-only module

    check_backend_args(args)
    for flag, v, low in (("--port", args.port, 0), ("--max-workers", args.max_workers, 1),
                         ("--backlog", args.backlog, 1), ("--max-batch-problems", args.max_batch_problems, 1),
                         ("--ray-actors", args.ray_actors, 1), ("--concurrency", args.concurrency, 1)):
        if v < low:
            raise ValueError(f"{flag} must be >= {low}, got {v}")
    for flag, v in (("--batch-window-ms", args.batch_window_ms), ("--request-timeout", args.request_timeout),
                    ("--max-body-mb", args.max_body_mb)):
        if not v >= 0 or (flag != "--batch-window-ms" and v == 0):
            raise ValueError(f"{flag} must be > 0, got {v}")
    kinds = served_rewards(args)
    if args.backend == "ray" and args.rewards:
        raise ValueError("--backend ray serves one reward kind (--reward: each actor loads its scorer); "
                         "drop --rewards")
    if args.scorer_model and args.reward == "none":
        raise ValueError("--scorer-model needs --reward prm / orm / tinyrm")
    try:
        resolve_options("tts-math", None, serve_defaults(args), kinds)
    except APIError as e:
        raise ValueError(str(e).replace("search options of model 'tts-math'", "the default search")) from None
    from policies.vllm_policy import load_prompt_template  # no vLLM import

    load_prompt_template(args.prompt_style)


def build_runner(args):
    import functools

    from search.cli import backends, load_scorer

    kinds = served_rewards(args)
    make_policy, make_scorer = backends(args)  # factories of --reward's scorer
    if args.backend == "ray":
        return RaySearch(make_policy, make_scorer, args.reward, num_actors=args.ray_actors, address=args.ray_address,
                         actor_options={"num_cpus": 1, "num_gpus": args.ray_gpus_per_actor})
    scorers = {args.reward: make_scorer}
    for k in kinds:
        if k not in scorers:
            scorers[k] = None if k == "none" else functools.partial(load_scorer, k, None)
    return LocalSearch(make_policy, scorers)


def run(args: argparse.Namespace) -> int:
    from policies.settings import api_key

    check_args(args)
    runner = build_runner(args)
    print(f"loading the policy and the {args.reward} scorer ...", flush=True)
    runner.warm()
    srv = SearchServer(runner, defaults=serve_defaults(args), host=args.host, port=args.port,
                       api_key=args.api_key or api_key(), batch_window_s=args.batch_window_ms / 1000,
                       max_batch_problems=args.max_batch_problems, request_timeout_s=args.request_timeout,
                       max_workers=args.max_workers, backlog=args.backlog, max_body_mb=args.max_body_mb)
    key = "; needs an API key" if srv.api_key else ""
    print(f"serving test-time search on {srv.url} (POST /chat/completions, /completions; GET /models){key}; "
          f"models such as {', '.join(srv.model_ids()[:3])}; Ctrl-C stops", flush=True)
    srv.serve_until_interrupted()
    return 0
