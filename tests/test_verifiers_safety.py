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
    """No SIGALRM: grading from worker threads (as in a server) honours the deadline."""
    cfg = VerifyConfig(timeout_s=1.0)
    jobs = [("1", "\\sin(\\pi e^{e^{e^{3}}})"), ("x^2+2x+1", "(x+1)^2"), ("5", "5.0"),
            ("\\frac{\\sqrt{2}}{2}", "1/\\sqrt{2}"), ("(1,2]", "(1, 2]"), ("3", "4")] * 3
    results: list = [None] * len(jobs)

    def work(i):
        results[i] = judge(*jobs[i], config=cfg)

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
