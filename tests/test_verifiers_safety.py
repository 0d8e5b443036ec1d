"""Safety: model text is never evaluated, expression bombs end quickly, timeouts work in threads.

Run: .venv/bin/python -m pytest -q tests/test_verifiers_safety.py
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import verifiers
from verifiers import VerifyConfig, grade, grade_many, judge, verify
from verifiers.pool import get_pool

PKG = Path(verifiers.__file__).resolve().parent
ROOT = PKG.parent


def _payloads(target: Path) -> list[str]:
    t = str(target)
    cmd = f"touch {t}"
    return [
        f"__import__('os').system('{cmd}')",
        f'__import__("os").system("{cmd}")',
        f"\\boxed{{__import__('os').system('{cmd}')}}",
        f"$__import__('os').system('{cmd}')$",
        f"\\text{{__import__('os').system('{cmd}')}}",
        f"\\mathrm{{__import__}}('os').system('{cmd}')",
        f"eval(\"__import__('os').system('{cmd}')\")",
        f"exec(\"import os; os.system('{cmd}')\")",
        f"(lambda: __import__('os').system('{cmd}'))()",
        f"().__class__.__bases__[0].__subclasses__()[0]('{cmd}')",
        f"Symbol('x') + __import__('os').system('{cmd}')",
        f"x = __import__('os').system('{cmd}')",
        f"(1, __import__('os').system('{cmd}'))",
        f"\\{{__import__('os').system('{cmd}')\\}}",
        f"\\frac{{__import__('os')}}{{system('{cmd}')}}",
        f"\\sqrt{{__import__('os').system('{cmd}')}}",
        f"os.system('{cmd}')",
        f"import os; os.system('{cmd}')",
        f"open('{t}', 'w').write('x')",
        f"__builtins__.open('{t}','w')",
        f"Function('f')(__import__('os').system('{cmd}'))",
        f"#### __import__('os').system('{cmd}')",
        f"The answer is __import__('os').system('{cmd}').",
        f"**__import__('os').system('{cmd}')**",
        f"\\begin{{pmatrix}} __import__('os').system('{cmd}') \\end{{pmatrix}}",
    ]


def test_injection_does_nothing(tmp_path):
    target = tmp_path / "pwned"
    payloads = _payloads(target) + _payloads(Path("/tmp/pwned"))
    pre_existing = Path("/tmp/pwned").exists()
    for p in payloads:
        # gold 31337: a digit of pytest's tmp path ("pytest-5/") may stand alone in the text
        for v in (grade("31337", p), judge("31337", p), judge(p, "31337")):
            assert not v.correct, (p, v)
        assert judge(p, p + " ").status in verifiers.STATUSES
    grade_many(["x"] * len(payloads), payloads)
    grade_many(payloads, payloads, extract=False)
    assert not target.exists()
    if not pre_existing:
        assert not Path("/tmp/pwned").exists()


def test_source_never_evaluates_strings():
    """No eval/exec/sympify/parse_expr/compile calls anywhere in the package."""
    banned = {"eval", "exec", "sympify", "parse_expr", "compile", "__import__", "S",
              "parse_latex", "latex2sympy", "simplify_string"}
    banned_attr = {"sympify", "parse_expr", "parse_latex", "eval", "exec", "system", "popen"}
    for path in PKG.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Name):
                    assert f.id not in banned, f"{path.name}:{node.lineno} calls {f.id}"
                elif isinstance(f, ast.Attribute):
                    assert f.attr not in banned_attr, f"{path.name}:{node.lineno} calls {f.attr}"


BOMBS = [
    "9^{9^{9^9}}",
    "1000000!",
    "(10^{100})!",
    "2^{2^{2^{2^{2^{2}}}}}",
    "10^{10^{10}}",
    "\\binom{10^{9}}{5}",
    "(" * 5000 + "1" + ")" * 5000,
    "{" * 5000 + "1" + "}" * 5000,
    "\\frac{" * 3000 + "1" + "}{2}" * 3000,
    "\\sqrt{" * 3000 + "2" + "}" * 3000,
    "1" * 1_000_000,
    "x+" * 500_000 + "1",
    "1e9999999",
    "\\sin(\\pi e^{e^{e^{3}}})",
    "e^{e^{e^{e^{e^{e^{10}}}}}}",
    "((2^{100})^{100})^{100}",
    "9!!!!!!",
]


@pytest.mark.parametrize("bomb", BOMBS, ids=lambda b: b[:25])
def test_expression_bombs_end_quickly(bomb):
    cfg = VerifyConfig(timeout_s=2.0)
    get_pool()  # exclude worker start-up from the measured time
    t0 = time.monotonic()
    v = judge("1", bomb, config=cfg)
    elapsed = time.monotonic() - t0
    assert elapsed < cfg.timeout_s + 3.0, (bomb[:40], elapsed, v)  # + one worker restart
    assert v.status in ("timeout", "unparsable", "wrong"), v
    assert not v.correct
    # the gold side too: a hostile gold cannot hang us either
    t0 = time.monotonic()
    g = judge(bomb, "1", config=cfg)
    assert time.monotonic() - t0 < cfg.timeout_s + 3.0
    assert not g.correct


def test_bombs_in_solutions_are_graded_quickly():
    sol = "we get " + "\\boxed{" * 2000 + "1" + "}" * 2000
    t0 = time.monotonic()
    v = grade("1", sol, config=VerifyConfig(timeout_s=2.0))
    assert time.monotonic() - t0 < 5.0
    assert v.status in ("unparsable", "timeout", "correct")
    t0 = time.monotonic()
    big = "a" * 1_000_000 + " \\boxed{" + "9" * 1_000_000 + "}"
    v = grade("1", big)
    assert time.monotonic() - t0 < 5.0 and v.status == "unparsable"


def test_slow_input_times_out_and_worker_is_replaced():
    pool = get_pool()
    cfg = VerifyConfig(timeout_s=1.0)
    killed = pool.killed
    t0 = time.monotonic()
    v = judge("1", "\\sin(\\pi e^{e^{e^{3}}})", config=cfg)
    assert v.status == "timeout" and not v.correct, v
    assert time.monotonic() - t0 < 4.0
    assert pool.killed == killed + 1
    # the pool still works afterwards (a fresh worker replaced the killed one)
    assert verify("x^2-1", "(x-1)(x+1)")
    # a timeout is not cached: the next call tries again
    assert judge("1", "\\sin(\\pi e^{e^{e^{3}}})", config=cfg).status == "timeout"


def test_timeouts_work_in_threads():
    """No SIGALRM: grading from worker threads (as in a server) honours each deadline."""
    slow, fast = VerifyConfig(timeout_s=1.0), VerifyConfig(timeout_s=30.0)
    jobs = [("1", "\\sin(\\pi e^{e^{e^{3}}})", slow), ("x^2+2x+1", "(x+1)^2", fast),
            ("5", "5.0", fast), ("\\frac{\\sqrt{2}}{2}", "1/\\sqrt{2}", fast),
            ("(1,2]", "(1, 2]", fast), ("3", "4", fast)] * 3
    results: list = [None] * len(jobs)
    took: list = [0.0] * len(jobs)

    def work(i):
        t0 = time.monotonic()
        results[i] = judge(jobs[i][0], jobs[i][1], config=jobs[i][2])
        took[i] = time.monotonic() - t0

    t0 = time.monotonic()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(not t.is_alive() for t in threads)
    assert time.monotonic() - t0 < 40
    expect = ["timeout", "correct", "correct", "correct", "correct", "wrong"] * 3
    assert [r.status for r in results] == expect
    assert all(took[i] < jobs[i][2].timeout_s + 1.0 for i in range(len(jobs))), took


def _payload(gold: str, answer: str, cfg: VerifyConfig) -> tuple:
    from verifiers.normalize import normalize

    return (normalize(gold), normalize(answer), cfg)


SLOW = "\\sin(\\pi e^{e^{e^{3}}})"


def _warm(pool) -> None:
    assert pool.run(_payload("x", "x+0", VerifyConfig()), 120.0)[0] == "correct"


def test_deadline_counts_the_wait_for_a_worker():
    """A call queued behind a slow one ends at its own deadline (it waited up to 39 s)."""
    from verifiers.pool import WorkerPool

    pool = WorkerPool(1, grow_to=1)
    try:
        _warm(pool)
        cfg_slow, cfg_fast = VerifyConfig(timeout_s=4.0), VerifyConfig(timeout_s=1.0)
        out = {}
        a = threading.Thread(target=lambda: out.setdefault("a", pool.run(
            _payload("1", SLOW, cfg_slow), cfg_slow.timeout_s)))
        a.start()
        time.sleep(0.3)  # the slow request holds the only worker
        t0 = time.monotonic()
        status, detail = pool.run(_payload("5", "5.0", cfg_fast), cfg_fast.timeout_s)
        waited = time.monotonic() - t0
        a.join(30)
        assert status == "timeout" and "no worker free" in detail, (status, detail)
        assert waited < cfg_fast.timeout_s + 1.0, waited
        assert out["a"][0] == "timeout"
    finally:
        pool.shutdown()


def test_pool_grows_for_threaded_callers():
    """A quick request from another thread gets a new worker instead of queueing."""
    from verifiers.pool import WorkerPool

    pool = WorkerPool(1, grow_to=3)
    try:
        _warm(pool)
        cfg = VerifyConfig(timeout_s=20.0)
        a = threading.Thread(target=pool.run, args=(_payload("1", SLOW, VerifyConfig(
            timeout_s=6.0)), 6.0))
        a.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        assert pool.run(_payload("x^2-1", "(x-1)(x+1)", cfg), cfg.timeout_s)[0] == "correct"
        assert time.monotonic() - t0 < 5.5  # did not wait for the slow one's deadline
        assert pool.peak >= 2
        a.join(30)
    finally:
        pool.shutdown()


def test_threads_are_served_first_come_first_served():
    """Threads that hand a worker back and ask again at once do not starve the others."""
    from verifiers.pool import WorkerPool

    pool = WorkerPool(1, grow_to=1)
    try:
        _warm(pool)
        cfg = VerifyConfig(timeout_s=10.0)

        def calls(k):
            return [pool.run(_payload(f"{k}", f"{k} + 0x", cfg), cfg.timeout_s)[0]
                    for _ in range(15)]

        with ThreadPoolExecutor(6) as ex:
            out = [s for r in ex.map(calls, range(6)) for s in r]
        assert out == ["correct"] * 90, out
    finally:
        pool.shutdown()


def test_thread_pool_executor_and_grade_many_from_thread():
    with ThreadPoolExecutor(4) as ex:
        out = list(ex.map(lambda a: verify("2\\sqrt{2}", a), ["\\sqrt{8}", "2.8284271", "3"] * 4))
    assert out == [True, True, False] * 4
    with ThreadPoolExecutor(1) as ex:
        vs = ex.submit(grade_many, ["x", "1"], ["\\boxed{x}", "\\boxed{2}"]).result(timeout=60)
    assert [v.correct for v in vs] == [True, False]


def test_import_is_cheap_and_starts_nothing():
    code = (
        "import sys, threading, verifiers, verifiers.pool as p\n"
        "assert 'sympy' not in sys.modules, 'sympy imported at import time'\n"
        "assert p._POOL is None, 'pool started at import'\n"
        "assert threading.active_count() == 1\n"
        "print(verifiers.verify('1,000', '1000'))\n"
        "assert 'sympy' not in sys.modules and p._POOL is None, 'fast path touched sympy'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_works_from_stdin_script_without_main_guard():
    """Workers never re-import the caller's __main__ (unlike multiprocessing 'spawn')."""
    code = "import verifiers\nprint(verifiers.verify('x^2', 'x*x'))\n"
    out = subprocess.run([sys.executable, "-"], input=code, cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
