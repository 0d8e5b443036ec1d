"""Seeded adversarial fuzzing of `grade`: no crash, no call past its deadline + 1 s.

    nice -n 19 .venv/bin/python bench/verifier_fuzz.py                 # 10,000 cases, 8 threads
    .venv/bin/python bench/verifier_fuzz.py --n 500 --threads 4 --timeout 1.0

`fuzz_cases(n, seed)` is the generator (tests/test_verifiers_fuzz.py runs a few hundred
of its cases): each case is (gold, solution), drawn from eight families, so every run
with the same seed grades the same inputs:
  bombs      power towers, huge factorials/binomials, e-towers, sin(pi e^e^e^k);
  nesting    thousands of nested (, {, \\frac{, \\sqrt{, \\boxed{;
  long       20 KB - 1 MB texts built from one adversarial piece (open boxes, `$`,
             "answer is", digit runs, letters, `\\(`), some past max_solution_chars;
  soup       random LaTeX / plain tokens (commands, brackets, operators, digits);
  unicode    random code points, NUL, line and paragraph separators, RTL marks;
  injection  Python/shell payloads in every wrapper;
  boxed      a well-formed solution whose boxed answer is a mutated gold;
  golds      any of the above as the gold, against a well-formed solution.
A call is "over" when it returns later than `timeout` + 1 s after it was made (the
time queued for a worker counts: calls come from `--threads` threads at once). A
crash is any exception out of `grade`.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from verifiers import VerifyConfig, grade  # noqa: E402
from verifiers.extract import extract_gold  # noqa: E402
from verifiers.normalize import normalize  # noqa: E402

GOLDS = ["5", "-3", "\\frac{1}{2}", "0.25", "x^2+1", "(1,2]", "\\{1,2,3\\}", "2\\sqrt{2}",
         "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\text{(C)}", "Evelyn", "10^{30}",
         "e^{60}", "50\\%", "1000", "x = 5", "3, 5, 7", "\\pi", "52_8", "(-\\infty, 0]"]
TOKENS = ["\\frac", "\\dfrac", "\\sqrt", "\\boxed{", "\\fbox{", "{", "}", "(", ")", "[", "]",
          "\\{", "\\}", "^", "_", "!", "\\pi", "\\infty", "e", "i", "x", "y", "\\cdot",
          "\\times", "+", "-", "*", "/", ",", "=", "<", "\\le", "\\pm", "%", "\\%", "$", "$$",
          "\\$", "\\(", "\\)", "\\[", "\\]", "\\text{", "\\left(", "\\right)", "\\begin{pmatrix}",
          "\\end{pmatrix}", "&", "\\\\", "0", "1", "9", "99", ".5", "1,000", "1 000", "\\,",
          "\\!", "~", "\\sin", "\\log_", "\\binom", "\\cup", "\\in", " ", "\n", "#### ", "A: ",
          "The answer is ", "**", "^\\circ", "<<", ">>", "'", '"', "\\", "é", "°", "\u2028"]
PIECES = ["\\boxed{", "$", "$$", "answer is ", "1,", "9", "a", "\\(", "{", "**", "1 ",
          "\\frac{", "x^", "A: ", "#### ", "<<1+1=2>>", "$5 and ", "\\left(", "e^{"]
INJECT = ["__import__('os').system('touch /tmp/verifier_fuzz_pwned')",
          "eval('1+1')", "exec('import os')", "().__class__.__bases__[0].__subclasses__()",
          "$(touch /tmp/verifier_fuzz_pwned)", "`rm -rf /`", "open('/etc/passwd').read()"]


def _bomb(rng: random.Random) -> str:
    k = rng.randint(2, 12)
    return rng.choice([
        f"{k}^{{{k}^{{{k}^{{{k}}}}}}}", f"{10 ** rng.randint(3, 9)}!", f"(10^{{{k * 10}}})!",
        f"\\binom{{10^{{{k + 6}}}}}{{{k}}}", f"e^{{e^{{e^{{e^{{e^{{{k}}}}}}}}}}}",
        f"\\sin(\\pi e^{{e^{{e^{{{k}}}}}}})", f"((2^{{{100 * k}}})^{{100}})^{{100}}",
        f"{k}!!!!!!!", f"1e{rng.randint(5000, 99999999)}", f"\\sqrt[{k}]{{10^{{10^{{{k}}}}}}}",
        f"\\frac{{1}}{{\\sin(10^{{{k * 10}}})}}", f"x^{{{10 ** k}}}+1"])


def _nest(rng: random.Random) -> str:
    n = rng.choice([200, 1000, 3000, 8000])
    o, c = rng.choice([("(", ")"), ("{", "}"), ("\\frac{", "}{2}"), ("\\sqrt{", "}"),
                       ("\\boxed{", "}"), ("[", "]"), ("\\left(", "\\right)")])
    return o * n + "1" + c * n


def _long(rng: random.Random) -> str:
    size = rng.choice([20_000, 40_000, 100_000, 400_000, 1_000_000, 1_200_000])
    piece = rng.choice(PIECES)
    return piece * (size // len(piece)) + rng.choice(["", " \\boxed{5}", " 5", "$x$"])


def _soup(rng: random.Random) -> str:
    return "".join(rng.choice(TOKENS) for _ in range(rng.randint(1, 80)))


def _unicode(rng: random.Random) -> str:
    pool = [chr(rng.randint(0, 0x2FFF)) for _ in range(40)] + ["\x00", "\u2028", "\u2029",
                                                               "\u200f", "\ufeff"]
    return "".join(rng.choice(pool) for _ in range(rng.randint(1, 200)))


def _mutate(rng: random.Random, s: str) -> str:
    if not s:
        return s
    i = rng.randrange(len(s))
    return s[:i] + rng.choice(TOKENS) + s[i + rng.randint(0, 2):]


def _case(rng: random.Random) -> tuple[str, str]:
    family = rng.choice(["bombs", "nesting", "long", "soup", "unicode", "injection", "boxed",
                         "golds"])
    gold = rng.choice(GOLDS)
    if family == "bombs":
        text = rng.choice(["", "so \\boxed{", "The answer is $"]) + _bomb(rng)
        return gold, text + ("}" if text.startswith("so") else "$" if "$" in text else "")
    if family == "nesting":
        return gold, _nest(rng)
    if family == "long":
        return gold, _long(rng)
    if family == "soup":
        return gold, _soup(rng)
    if family == "unicode":
        return gold, _unicode(rng)
    if family == "injection":
        p = rng.choice(INJECT)
        return gold, rng.choice([p, f"\\boxed{{{p}}}", f"${p}$", f"#### {p}", f"A: {p}"])
    if family == "boxed":
        return gold, f"We compute it.\nSo the answer is $\\boxed{{{_mutate(rng, gold)}}}$."
    bad_gold = rng.choice([_bomb, _nest, _soup, _unicode])(rng)
    if not normalize(extract_gold(bad_gold)[:2000]).strip():
        bad_gold = "1" + bad_gold  # a gold that normalises to nothing is another issue's case
    return bad_gold, f"The answer is $\\boxed{{{rng.choice(GOLDS)}}}$."


def fuzz_cases(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """`n` seeded adversarial (gold, solution) pairs (see the module docstring)."""
    rng = random.Random(seed)
    return [_case(rng) for _ in range(n)]


def run(cases, timeout: float, threads: int):
    """Grade every case from `threads` threads; (statuses, crashes, over, worst seconds)."""
    cfg = VerifyConfig(timeout_s=timeout)
    statuses: Counter = Counter()
    crashes: list = []
    over: list = []
    worst = [0.0]
    lock = threading.Lock()

    def one(i_case):
        i, (gold, sol) = i_case
        t0 = time.monotonic()
        try:
            v = grade(gold, sol, config=cfg)
        except Exception as e:  # noqa: BLE001 - a crash is what we count
            with lock:
                crashes.append((i, f"{type(e).__name__}: {e}"[:200], gold[:60], sol[:60]))
            return
        dt = time.monotonic() - t0
        with lock:
            statuses[v.status] += 1
            worst[0] = max(worst[0], dt)
            if dt > timeout + 1.0:
                over.append((i, round(dt, 2), v.status, gold[:40], sol[:60]))

    with ThreadPoolExecutor(threads, thread_name_prefix="fuzz") as ex:
        list(ex.map(one, enumerate(cases)))
    return statuses, crashes, over, worst[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=1.0, help="VerifyConfig.timeout_s")
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()
    cases = fuzz_cases(args.n, args.seed)
    t0 = time.monotonic()
    statuses, crashes, over, worst = run(cases, args.timeout, args.threads)
    wall = time.monotonic() - t0
    from verifiers.pool import get_pool

    pool = get_pool()
    print(f"{args.n} cases (seed {args.seed}), timeout_s={args.timeout}, {args.threads} threads: "
          f"{wall:.0f}s wall; crashes {len(crashes)}; calls over deadline+1s {len(over)}; "
          f"slowest call {worst:.2f}s; workers killed {pool.killed}, peak workers {pool.peak}")
    print("statuses:", dict(statuses))
    for c in crashes[:20]:
        print("  CRASH", c)
    for o in over[:20]:
        print("  OVER", o)
    if Path("/tmp/verifier_fuzz_pwned").exists():
        print("  INJECTION: /tmp/verifier_fuzz_pwned exists")


if __name__ == "__main__":
    main()
