"""A scorer behind HTTP, and the client that makes it a local scorer again.

    python cli.py serve-scorer --reward prm --host 127.0.0.1 --port 8100
    scorer = RemoteScorer("http://127.0.0.1:8100")      # same score(...) as load_scorer()
    scores = scorer.score(["What is 2 + 3?"], [["2 + 3 = 5.", "The answer is 5."]])

Protocol (JSON, UTF-8):

    POST /score   {"problems": [str, ...], "solutions": [[step, ...], ...], "golds": [str, ...]?,
                   "references": [str, ...]?}
                  -> 200 {"scores": [[float, ...], ...], "stats": {<ScorerStats delta of this call>}}
                  -> 400 {"error": "<what is wrong and how to fix it>"}  malformed request (bad
                     UTF-8 or JSON, nesting too deep, a 5,000-digit number, wrong types)
                  -> 411 no Content-Length;  413 body over --max-body-mb;  500 {"error": ...} the scorer failed
    GET  /health  -> 200 {"status": "ok"}
    GET  /info    -> 200 {"kind", "name", "granularity", "num_parameters", "trained",
                          "needs_golds", "recommended_agg" (the card's, or null),
                          "stats": {<cumulative ScorerStats>}}

One problem per candidate, as in `Scorer.score` (repeat a problem for each of its
candidates). The server answers many clients at once (one thread per connection, up
to --max-workers; a listen backlog of --backlog holds the rest, so a burst of 200
clients gets no resets: rewards/jsonhttp.py, docs/scale-out.md) and runs their score
calls one at a time on the one model, so each response's `stats` is exactly that
call's work; a search already sends all candidates of a step in one request, which is
the batch the model wants.

Only argparse and the standard library are imported at module top, so `cli.py
--help` stays cheap; the scorer loads in `run()`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field

from rewards.jsonhttp import (
    DEFAULT_BACKLOG,
    DEFAULT_WORKERS,
    BadRequest,
    JSONHandler,
    JSONHTTPServer,
    ServedApp,
    parse_json,
)

log = logging.getLogger(__name__)

_FIELDS = ("problems", "solutions", "golds", "references")


def parse_request(body: bytes) -> dict:
    """Validate a /score body; returns {"problems", "solutions", "golds", "references"}.

    Every error names the field, the constraint and what was received.
    """
    data = parse_json(body)
    if not isinstance(data, dict):
        raise BadRequest(f"request body must be a JSON object with 'problems' and 'solutions', got {type(data).__name__}")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        hint = " ('steps' is called 'solutions': one list of step strings per candidate)" if "steps" in unknown else ""
        raise BadRequest(f"unknown field(s) {unknown}; allowed: {list(_FIELDS)}{hint}")
    for k in ("problems", "solutions"):
        if k not in data:
            raise BadRequest(f"missing field {k!r}; send {{\"problems\": [str], \"solutions\": [[str]]}}")
    problems, solutions = data["problems"], data["solutions"]
    if not isinstance(problems, list) or not all(isinstance(p, str) for p in problems):
        raise BadRequest("'problems' must be a list of strings (one per candidate)")
    if not isinstance(solutions, list):
        raise BadRequest("'solutions' must be a list of step lists, e.g. [[\"2 + 3 = 5.\", \"The answer is 5.\"]]")
    for i, s in enumerate(solutions):
        if not isinstance(s, list) or not all(isinstance(x, str) for x in s):
            raise BadRequest(f"solutions[{i}] must be a list of step strings, got {json.dumps(s)[:80]}")
    if len(problems) != len(solutions):
        raise BadRequest(
            f"got {len(problems)} problems and {len(solutions)} solutions; send one problem per "
            "candidate (repeat the problem for each of its candidates)"
        )
    out = {"problems": problems, "solutions": solutions}
    for k in ("golds", "references"):
        v = data.get(k)
        if v is not None and (not isinstance(v, list) or len(v) != len(problems)
                              or not all(isinstance(x, str) for x in v)):
            raise BadRequest(f"{k!r} must be a list of {len(problems)} strings (one per candidate) or absent")
        out[k] = v
    return out


class ScorerServer(ServedApp):
    """Serve one scorer over HTTP (see the module docstring for the protocol).

    Args:
        scorer: any object with `score(problems, solutions, *, golds=None, references=None)`
            (a `rewards.Scorer`); `stats`, `describe()` and `needs_golds` are used when present.
        host: address to bind; 127.0.0.1 (default) keeps it on this machine.
        port: 0 picks a free port (read `.port` after construction).
        max_body_mb: larger requests get 413.
        max_workers: connections served at once; backlog: connections the kernel queues
            beyond them (see rewards/jsonhttp.py).
    """

    thread_name = "scorer-server"

    def __init__(self, scorer, *, host: str = "127.0.0.1", port: int = 8100, max_body_mb: float = 64.0,
                 max_workers: int = DEFAULT_WORKERS, backlog: int = DEFAULT_BACKLOG) -> None:
        if not max_body_mb > 0:
            raise ValueError(f"max_body_mb must be > 0, got {max_body_mb!r}.")
        self.scorer = scorer
        self.max_body = int(max_body_mb * 2**20)
        self._score_lock = threading.Lock()  # one score() at a time on the one model
        self.requests = 0
        self.httpd = JSONHTTPServer((host, port), _make_handler(self), max_workers=max_workers,
                                    backlog=backlog, max_body=self.max_body)
        self.host, self.port = self.httpd.server_address[:2]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def info(self) -> dict:
        s = self.scorer
        d = s.describe() if hasattr(s, "describe") else {"kind": getattr(s, "kind", "?")}
        d["needs_golds"] = bool(getattr(s, "needs_golds", False))
        d.setdefault("num_parameters", int(getattr(s, "num_parameters", 0) or 0))
        d.setdefault("granularity", getattr(s, "granularity", "step"))
        d["recommended_agg"] = getattr(s, "recommended_agg", None)  # what a client's --agg auto uses
        d["stats"] = _stats_dict(s)
        return d

    def score(self, req: dict) -> dict:
        kwargs = {}
        if req["golds"] is not None:
            kwargs["golds"] = req["golds"]
        if req["references"] is not None:
            kwargs["references"] = req["references"]
        with self._score_lock:
            before = _stats_dict(self.scorer)
            scores = self.scorer.score(req["problems"], req["solutions"], **kwargs)
            after = _stats_dict(self.scorer)
            self.requests += 1
        delta = {k: after[k] - before.get(k, 0) for k in after if isinstance(after[k], int | float)}
        return {"scores": [[float(x) for x in s] for s in scores], "stats": delta}



def _stats_dict(scorer) -> dict:
    s = getattr(scorer, "stats", None)
    if s is None:
        return {}
    if hasattr(s, "as_dict"):
        return dict(s.as_dict())
    if isinstance(s, dict):
        return dict(s)
    return {k: v for k, v in vars(s).items() if not k.startswith("_")}


def _make_handler(server: ScorerServer):
    class Handler(JSONHandler):
        def get(self, path):
            if path == "/health":
                return 200, {"status": "ok"}
            if path == "/info":
                return 200, server.info()
            raise BadRequest(f"no such path {path!r}; use POST /score, GET /info or GET /health", 404)

        def post(self, path):
            if path != "/score":
                raise BadRequest(f"no such path {path!r}; POST to /score", 404)
            req = parse_request(self.read_body())
            try:
                return 200, server.score(req)
            except (TypeError, ValueError) as e:  # the scorer's own input checks (e.g. golds required)
                raise BadRequest(str(e)) from None
            except Exception as e:  # a scorer failure: report it, keep serving
                log.exception("score request failed")
                return 500, {"error": f"scorer failed: {type(e).__name__}: {e}"}

    return Handler


# ---- client ------------------------------------------------------------------------

class RemoteScorerError(RuntimeError):
    """The scorer server could not be reached or failed."""


@dataclass
class RemoteStats:
    """Counters of this client's calls, summed from the server's per-call deltas
    (the same names as `rewards.ScorerStats`, so the search ledger reads them)."""

    calls: int = 0
    candidates: int = 0
    steps: int = 0
    forward_passes: int = 0
    tokens_scored: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    seconds: float = 0.0  # wall time of the HTTP calls, as seen by the client
    retries: int = 0
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}
        d.update(self.extra)
        return d


class RemoteScorer:
    """A scorer served by `ScorerServer`, with the `Scorer.score` interface.

    Args:
        endpoint: "http://127.0.0.1:8100" (the server's base URL).
        timeout_s: read timeout of one call (scoring a large batch on CPU takes a while).
        retry_timeout_s: connection errors and 5xx other than a scorer failure are
            retried with backoff for this long (a server still starting or restarting).

    Requests go through the project's JSON client (policies/jsonclient.py), as the
    OpenAI-server policy's do; its loop thread starts on the first call.
    """

    def __init__(self, endpoint: str, *, timeout_s: float = 600.0, retry_timeout_s: float = 60.0) -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"scorer endpoint must be an http(s) URL such as http://127.0.0.1:8100, got {endpoint!r}.")
        self.endpoint = endpoint.rstrip("/")
        self.timeout_s = timeout_s
        self.retry_timeout_s = retry_timeout_s
        self.stats = RemoteStats()
        self._info: dict | None = None
        from policies.jsonclient import JSONClient, Retry

        self._http = JSONClient(
            [self.endpoint], timeout_s=timeout_s, connect_timeout_s=min(10.0, timeout_s),
            retry=Retry(timeout_s=retry_timeout_s, first_s=0.25, max_s=8.0),
            retry_status=_retried, on_retry=self._count_retry,
        )

    # ---- metadata (fetched once, on first use) ----
    def info(self, refresh: bool = False) -> dict:
        if self._info is None or refresh:
            self._info = self._call("GET", "/info", None)
        return self._info

    @property
    def kind(self) -> str:
        return self.info()["kind"]

    @property
    def granularity(self) -> str:
        return self.info().get("granularity", "step")

    @property
    def needs_golds(self) -> bool:
        return bool(self.info().get("needs_golds"))

    @property
    def num_parameters(self) -> int:
        return int(self.info().get("num_parameters") or 0)

    @property
    def name(self) -> str:
        return str(self.info().get("name", self.kind))

    def describe(self) -> dict:
        d = {k: v for k, v in self.info().items() if k != "stats"}
        d["endpoint"] = self.endpoint
        return d

    def score(self, problems, solutions, *, golds=None, references=None) -> list[list[float]]:
        """Raw per-step (or per-outcome) scores, one list per candidate, as `Scorer.score`."""
        body = {"problems": list(problems), "solutions": [list(s) for s in solutions]}
        if golds is not None:
            body["golds"] = list(golds)
        if references is not None:
            body["references"] = list(references)
        t0 = time.perf_counter()
        out = self._call("POST", "/score", body)
        self.stats.seconds += time.perf_counter() - t0
        scores = out["scores"]
        if len(scores) != len(body["solutions"]):
            raise RemoteScorerError(f"server returned {len(scores)} score lists for {len(body['solutions'])} candidates")
        d = out.get("stats") or {}
        for k in ("calls", "candidates", "steps", "forward_passes", "tokens_scored", "cache_hits", "cache_misses"):
            setattr(self.stats, k, getattr(self.stats, k) + int(d.get(k, 0)))
        for k, v in d.items():
            if k not in self.stats.__dataclass_fields__ and isinstance(v, int | float) and not math.isnan(v):
                self.stats.extra[k] = self.stats.extra.get(k, 0) + v
        return scores

    def close(self) -> None:
        """Close the connection and the client's loop thread (used again, it reconnects)."""
        self._http.close()

    def _count_retry(self) -> None:
        self.stats.retries += 1

    def _call(self, method: str, path: str, body: dict | None) -> dict:
        from policies.jsonclient import HTTPStatusError, RetryTimeout

        try:
            return self._http.call(method, path, body)
        except HTTPStatusError as e:
            if e.status == 400:
                raise ValueError(f"scorer server rejected the request: {e.message}") from None
            raise RemoteScorerError(f"{self.endpoint}{path}: HTTP {e.status}: {e.message}") from None
        except RetryTimeout as e:
            raise RemoteScorerError(
                f"scorer server {self.endpoint} did not answer within {self.retry_timeout_s}s "
                f"({e.attempts} attempts; last: {e.why}); is `cli.py serve-scorer` running there?"
            ) from None

    def __repr__(self) -> str:
        return f"RemoteScorer({self.endpoint!r})"


def _retried(status: int, message: str) -> bool:
    """A 5xx is retried (a server starting, restarting or overloaded), except the scorer's
    own failure, which would fail again."""
    return status >= 500 and not (status == 500 and message.startswith("scorer failed"))


# ---- `python cli.py serve-scorer` ----------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    from rewards.kinds import SCORER_KINDS, kinds_help  # plain data

    p.add_argument("--reward", choices=SCORER_KINDS, default="prm", help=f"scorer kind: {kinds_help()}")
    p.add_argument("--scorer-model", default=None, help="checkpoint of the scorer (default: the kind's default)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 serves other nodes)")
    p.add_argument("--port", type=int, default=8100)
    p.add_argument("--device", default=None, help="prm/orm/tinyrm: torch device (default: the scorer's own)")
    p.add_argument("--max-body-mb", type=float, default=64.0, help="larger requests are refused with 413")
    p.add_argument("--max-workers", type=int, default=DEFAULT_WORKERS,
                   help=f"connections served at once (default {DEFAULT_WORKERS}); more wait in the backlog")
    p.add_argument("--backlog", type=int, default=DEFAULT_BACKLOG,
                   help=f"listen backlog: connections queued by the kernel (default {DEFAULT_BACKLOG})")


def run(args: argparse.Namespace) -> int:
    from rewards import load_scorer
    from rewards.kinds import MODEL_KINDS

    options = {"device": args.device} if args.device and args.reward in MODEL_KINDS else {}
    for flag, v in (("--max-workers", args.max_workers), ("--backlog", args.backlog), ("--max-body-mb", args.max_body_mb)):
        if not v > 0:
            raise ValueError(f"{flag} must be > 0, got {v}")
    scorer = load_scorer(args.reward, model=args.scorer_model, **options)
    srv = ScorerServer(scorer, host=args.host, port=args.port, max_body_mb=args.max_body_mb,
                       max_workers=args.max_workers, backlog=args.backlog)
    print(f"serving {scorer!r} on {srv.url} (POST /score, GET /info, GET /health); Ctrl-C stops", flush=True)
    srv.serve_until_interrupted()
    return 0
