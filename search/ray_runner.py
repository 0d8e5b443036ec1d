"""Run a search over a Ray cluster: problems sharded over actors, one JSONL.

    from functools import partial
    make_policy = partial(VLLMPolicy, engine=EngineConfig(seed=0), sampling=SamplingConfig(seed=0))
    summary = run_search_ray(problems, make_policy, None, config, out="runs/x.jsonl",
                             num_actors=2, address=None)       # None: a local cluster; "auto" or
                                                              # "ray://head:10001" / "head:6379": a cluster

`SearchPool` keeps the actors (and their engines) alive across runs, e.g. for a
sweep. Each actor builds its own policy (an in-process vLLM engine, or an `OpenAIPolicy`
client of a server) and scorer once, from the picklable factories, and runs the
strategy on chunks of `batch_problems` problems (blocks of the problem order, the same
on a resume: `search.runner.plan_batches`). The driver hands chunks to idle
actors (a work queue, so fast actors take more), grades nothing itself, and
appends each chunk's records to the run's JSONL as soon as it comes back, through
the same `RunFile` as `search.runner.run_search`: the file, its identity check,
resume and the summary are the same as a one-process run's. Per-request seeds
depend only on the run seed, the prompt and the sample index, so the records
(candidates, answers, verdicts) equal a one-process run's; only wall times and
prefix-cache hits differ.

An actor that dies (node lost, OOM, killed) has its chunk put back at the front
of the queue, for the next idle actor, and is replaced by a fresh one built from
the same factories. A chunk is tried at most `max_attempts` times. An exception raised by the search itself (a
bug, bad input) is not retried: it would fail the same way elsewhere.

Multi-node: start `ray start --head` on one node and `ray start --address=HEAD:6379`
on the others, with this repository installed (`pip install -e .`) at the same
path on every node; then pass address="auto" from a driver on the head node.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from collections.abc import Callable, Sequence

from search.config import SearchConfig
from search.types import Problem

log = logging.getLogger(__name__)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RayNotInstalledError(ImportError):
    pass


class RayConnectError(ConnectionError, ValueError):
    """The Ray cluster at the given address could not be joined (the message says why
    and what to try); a ValueError too, so the CLI reports it in one line."""


def _import_ray():
    try:
        import ray
    except ImportError as e:
        raise RayNotInstalledError(
            f"--backend ray needs Ray ({e}); install it with `pip install -e '.[ray]'` "
            "(or `pip install 'ray>=2.40'`)"
        ) from None
    return ray


class SearchWorker:
    """The actor body: one policy and one scorer; runs a strategy on chunks of problems.

    A plain class (Ray wraps it with `ray.remote` at run time), so it is testable
    without Ray. The config comes with each chunk, so one pool of workers (engines
    loaded once) serves many runs, e.g. a sweep.
    """

    def __init__(self, make_policy: Callable, make_scorer: Callable | None = None):
        self.policy = make_policy()
        self.scorer = make_scorer() if make_scorer is not None else None
        self.pid = os.getpid()

    def run(self, problems: list[Problem], config: SearchConfig, identity: dict, equal=None) -> list[dict]:
        from search import STRATEGIES, common
        from search.runner import cold_batch, grade_result, make_record

        delim = common.delimiter(self.policy)
        cold_batch(self.policy, self.scorer)  # as run_search does before every batch
        records: list[dict] = []

        def finish(res) -> None:
            grade_result(res, delim)
            records.append(make_record(res, identity, config.seed))

        STRATEGIES[config.strategy](problems, self.policy, self.scorer, config, on_done=finish, equal=equal)
        return records

    def warm(self, max_tokens: int = 4) -> int:
        """One tiny generation (engine start-up and compilation done); returns the pid."""
        self.policy.sample(["What is 1 + 1?"], 1, max_tokens=max_tokens, seed=0)
        return self.pid


class SearchPool:
    """Ray actors that each own a policy (an engine or an endpoint client) and a scorer.

        pool = SearchPool(make_policy, make_scorer, num_actors=2)
        pool.warm()                                   # optional: start every engine now
        run_search_ray(problems, None, None, config, out=..., pool=pool)   # as often as wanted
        pool.close()

    Args:
        make_policy / make_scorer: picklable zero-argument factories (a class, a
            functools.partial, a module-level function) run inside each actor;
            make_scorer None means no scorer.
        num_actors: actors that run at once.
        address: None starts (or reuses) a local cluster; else passed to `ray.init`.
        actor_options: `ray.remote` options of each actor, e.g. {"num_cpus": 1} or
            {"num_gpus": 1} (default {"num_cpus": 1}; on GPU give each engine its GPU).
    """

    def __init__(self, make_policy: Callable, make_scorer: Callable | None = None, *, num_actors: int = 2,
                 address: str | None = None, actor_options: dict | None = None) -> None:
        if num_actors < 1:
            raise ValueError(f"num_actors must be >= 1, got {num_actors}.")
        self.ray = connect(address)
        self.make_policy, self.make_scorer = make_policy, make_scorer
        self.num_actors = num_actors
        self._cls = self.ray.remote(max_restarts=0, max_task_retries=0,
                                    **(actor_options or {"num_cpus": 1}))(SearchWorker)
        self.started = 0
        self.actors = [self.spawn() for _ in range(num_actors)]

    def spawn(self):
        self.started += 1
        return self._cls.remote(self.make_policy, self.make_scorer)

    def replace(self, actor):
        """Kill a (dead) actor and put a fresh one in its place."""
        self.ray.kill(actor, no_restart=True)
        i = self.actors.index(actor)
        self.actors[i] = self.spawn()
        return self.actors[i]

    def warm(self) -> list[int]:
        return self.ray.get([a.warm.remote() for a in self.actors])

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a, no_restart=True)
        self.actors = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def connect(address: str | None = None, *, num_cpus: int | None = None, **init_kwargs):
    """`ray.init` once per process: a new local cluster (address None) or an existing one.

    On a local cluster the workers get this repository on their PYTHONPATH, so the
    project need not be installed; on a remote cluster it must be installed on every node.
    """
    ray = _import_ray()
    if ray.is_initialized():
        return ray
    kw = dict(include_dashboard=False, log_to_driver=True, **init_kwargs)
    if address is None:
        env = {"PYTHONPATH": os.pathsep.join(p for p in (REPO_ROOT, os.environ.get("PYTHONPATH")) if p)}
        kw.setdefault("runtime_env", {"env_vars": env})
        if num_cpus is not None:
            kw["num_cpus"] = num_cpus
    else:
        _check_reachable(address)
        kw["address"] = address
    try:
        ray.init(**kw)
    except ConnectionError as e:
        raise RayConnectError(_connect_hint(address, e)) from e
    return ray


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail at once on a HOST:PORT (or ray://HOST:PORT) where nothing listens; Ray
    itself retries such an address for minutes. "auto" and other forms are Ray's."""
    import socket

    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise RayConnectError(
            f"could not join the Ray cluster at {address!r}: nothing answers there ({e}); start it with "
            "`ray start --head --port PORT` on the head node and pass --ray-address HEAD_IP:PORT"
        ) from None


def _connect_hint(address: str | None, err: BaseException) -> str:
    chain, e = [], err
    while e is not None:
        chain.append(f"{type(e).__name__}: {e}")
        e = e.__cause__ or e.__context__
    text = " | ".join(chain)
    where = f"the Ray cluster at {address!r}" if address else "a Ray cluster"
    if "AuthenticationError" in text or "InvalidAuthToken" in text:
        # Ray >= 2.5x: `ray start` turns token authentication on when ~/.ray/auth_token
        # exists, and a driver given an explicit address sends its token only when asked to.
        return (f"could not join {where}: it requires token authentication. Set RAY_AUTH_MODE=token "
                "with the cluster's token in ~/.ray/auth_token (or RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH), "
                "or on a node of the cluster pass --ray-address auto")
    return (f"could not join {where} ({chain[-1][:300]}); is `ray start --head` running there, "
            "and is the address HEAD_IP:6379 (the GCS port)?")


def run_search_ray(
    problems: Sequence[Problem | dict | str],
    make_policy: Callable | None,
    make_scorer: Callable | None,
    config: SearchConfig,
    *,
    out: str | os.PathLike,
    identity: dict | None = None,
    num_actors: int = 2,
    address: str | None = None,
    batch_problems: int = 4,
    actor_options: dict | None = None,
    max_attempts: int = 3,
    on_record: Callable[[dict], None] | None = None,
    equal=None,
    run_file=None,
    pool: SearchPool | None = None,
) -> dict:
    """`run_search` with the problems spread over Ray actors; returns the summary.

    Either `pool` (a `SearchPool`, kept open afterwards) or `make_policy` /
    `make_scorer` / `num_actors` / `address` / `actor_options` (see `SearchPool`;
    a pool is built for this run and closed after it).
    batch_problems: problems per chunk (the unit of streaming and of retry).
    max_attempts: tries per chunk when actors die.
    """
    from search.runner import close_run, open_run, plan_batches

    if batch_problems < 1:
        raise ValueError(f"batch_problems must be >= 1, got {batch_problems}.")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}.")
    if pool is None and make_policy is None:
        raise ValueError("pass make_policy (a factory run in each actor) or pool=SearchPool(...).")
    identity, rf, ids, todo, searchable = open_run(problems, config, out, identity, run_file)
    chunks = plan_batches(searchable, {p.id for p in todo}, batch_problems)
    t0 = time.perf_counter()
    stats = {"chunks": 0, "retried_chunks": 0, "dead_actors": 0, "actors_started": 0,
             "rerun_for_batches": sum(len(c) for c in chunks) - len(todo)}
    if todo:
        own = pool is None
        if own:
            pool = SearchPool(make_policy, make_scorer, num_actors=num_actors, address=address,
                              actor_options=actor_options)
        started0 = pool.started - (pool.num_actors if own else 0)
        try:
            _drive(pool, todo, config, identity, rf, stats, batch_problems=batch_problems,
                   max_attempts=max_attempts, on_record=on_record, equal=equal, chunks=chunks)
        finally:
            stats["actors_started"] = pool.started - started0
            if own:
                pool.close()
    invocation = {
        "ran": len(todo),
        "skipped": len(ids) - len(todo),
        "wall_s": round(time.perf_counter() - t0, 3),
        "backend": "ray",
        "actors": pool.num_actors if pool is not None else num_actors,
        **stats,
    }
    return close_run(rf, ids, identity, invocation)


def _drive(pool: SearchPool, todo, config, identity, rf, stats, *,
           batch_problems, max_attempts, on_record, equal, chunks=None) -> None:
    """The driver's loop: give chunks to idle actors, append results, requeue on death.
    `chunks` (default: `todo` cut in blocks of batch_problems) may hold problems that are
    recorded already (`search.runner.plan_batches`); only the records of `todo` are written."""
    from ray.exceptions import (
        ActorDiedError,
        ActorUnavailableError,
        NodeDiedError,
        OutOfMemoryError,
        RayActorError,
        WorkerCrashedError,
    )

    # the actor's process or node is gone (killed, lost, or killed by Ray's memory monitor)
    lost = (ActorDiedError, ActorUnavailableError, RayActorError, OutOfMemoryError, NodeDiedError,
            WorkerCrashedError)

    ray = pool.ray
    if chunks is None:
        chunks = [todo[i : i + batch_problems] for i in range(0, len(todo), batch_problems)]
    wanted = {p.id for p in todo}
    queue = collections.deque((tuple(c), 1) for c in chunks)
    stats["chunks"] = len(queue)
    idle = list(pool.actors)
    running: dict = {}  # object ref -> (actor, chunk, attempt)
    while queue or running:
        while queue and idle:
            chunk, attempt = queue.popleft()
            actor = idle.pop(0)
            running[actor.run.remote(list(chunk), config, identity, equal)] = (actor, chunk, attempt)
        ready, _ = ray.wait(list(running), num_returns=1)
        ref = ready[0]
        actor, chunk, attempt = running.pop(ref)
        try:
            records = ray.get(ref)
        except lost as e:
            stats["dead_actors"] += 1
            ids = [p.id for p in chunk]
            if attempt >= max_attempts:
                raise RuntimeError(
                    f"problems {ids} failed on {attempt} actors (last: {type(e).__name__}); "
                    "see the Ray logs (/tmp/ray/session_latest/logs) or raise max_attempts"
                ) from e
            log.warning("actor died running %s (%s); retrying them elsewhere (attempt %d)",
                        ids, type(e).__name__, attempt + 1)
            stats["retried_chunks"] += 1
            queue.appendleft((chunk, attempt + 1))
            # a replacement joins at the back: the chunk goes to a live actor first if one is idle
            idle.append(pool.replace(actor))
            continue
        for rec in records:
            if str(rec["id"]) not in wanted:  # searched again only to re-form its chunk
                continue
            rf.append(rec)
            if on_record:
                on_record(rec)
        idle.append(actor)
