"""Check the search-tree viewer in a real headless browser and save a screenshot.

    python bench/view_screenshot.py                          # scripted toy beam search -> docs/img/view-beam.png
    python bench/view_screenshot.py --run runs/X.jsonl --ids 7 --png docs/img/view-real.png

Writes the page (`eval/view.py`), loads it in headless Chromium (Debian: `apt-get install
chromium`) twice: once dumping the DOM after its script ran, to check that every node of
the tree was rendered (the page's script counts them into body[data-rendered]) and that
nothing was fetched from the network, once to save the screenshot. Without --run the
page shows a scripted beam search (search/testing.py's FakePolicy with arithmetic steps,
a scorer that checks each step's arithmetic), so it runs without an engine.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROBLEM = "A baker makes 3 trays of 12 muffins and sells 20 of them. How many muffins are left?"


def toy_script(problem, steps, j, seed):
    """Steps of a scripted policy: right and wrong ways to the answer (16)."""
    d = len(steps)
    if d == 0:
        return ["There are 3 trays of 12 muffins, so 3 * 12 = 36 muffins.",
                "The baker has 3 + 12 = 15 muffins.",
                "Each tray holds 12, and 3 * 12 = 36 muffins in all.",
                "3 trays of 12 muffins make 3 * 12 = 32 muffins."][j % 4], "step"
    total = re.findall(r"= (-?\d+)", steps[0])[-1]
    if d == 1:
        left = {0: int(total) - 20, 1: int(total) - 22}[j % 2]
        return f"After selling 20, {total} - 20 = {left} muffins are left.", "step"
    last = re.findall(r"= (-?\d+)", steps[-1])[-1]
    return f"The answer is \\boxed{{{last}}}.", "eos"


def toy_scores(problem, steps):
    """A PRM stand-in: a step whose arithmetic holds scores high, a wrong sum or a
    negative count low (it is fooled by "3 + 12 = 15": true, but the wrong sum)."""
    out = []
    for s in steps:
        m = re.search(r"(\d+) ([-+*]) (\d+) = (-?\d+)", s)
        jitter = 0.03 * (len(s) % 3)
        if "-" in re.sub(r" - ", "", s):  # a negative number of muffins
            out.append(0.18 + jitter)
        elif m:
            a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
            ok = {"+": a + b, "-": a - b, "*": a * b}[op] == c
            out.append((0.95 if op == "+" else 0.91) - jitter if ok else 0.12 + jitter)
        else:
            out.append(0.84 - jitter)
    return out


def toy_run(folder: Path) -> Path:
    from search import SearchConfig
    from search.runner import run_search
    from search.testing import FakePolicy, FakeScorer

    cfg = SearchConfig(strategy="beam", n=4, beam_width=2, agg="min", max_steps=4)
    out = folder / "toy-beam-prm-min-n4-m2.jsonl"
    ident = {"search": cfg.as_dict(), "reward": {"kind": "prm"}, "data": {"dataset": "toy"}}
    run_search([{"id": "muffins", "problem": PROBLEM, "answer": "16"}], FakePolicy(toy_script, tokens_per_step=14),
               FakeScorer(toy_scores), cfg, out=out, identity=ident)
    return out


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _chromium(browser: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", "--disable-extensions", "--disable-background-networking", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def check_rendered(browser: str, page: Path) -> int:
    """Nodes the page's script counted after load (body[data-rendered]); raises if the
    browser saw fewer than the HTML holds."""
    r = _chromium(browser, "--virtual-time-budget=2000", "--dump-dom", page.resolve().as_uri())
    m = re.search(r'<body[^>]*data-rendered="(\d+)"', r.stdout)
    if not m:
        raise RuntimeError(f"the page's script did not run in {browser} (no data-rendered); stderr: {r.stderr[-500:]}")
    expected = page.read_text(encoding="utf-8").count('data-node="')
    if int(m[1]) != expected or expected == 0:
        raise RuntimeError(f"{browser} rendered {m[1]} nodes, the page holds {expected}")
    return expected


def screenshot(browser: str, page: Path, png: Path, width: int = 1200, height: int = 1150) -> Path:
    png.parent.mkdir(parents=True, exist_ok=True)
    r = _chromium(browser, f"--window-size={width},{height}", f"--screenshot={png.resolve()}", page.resolve().as_uri())
    if not png.is_file():
        raise RuntimeError(f"{browser} wrote no screenshot; stderr: {r.stderr[-500:]}")
    return png


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=None, help="a run file (default: a scripted toy beam search)")
    ap.add_argument("--ids", default=None, help="problem ids to show (as `cli.py view --ids`)")
    ap.add_argument("--png", default=str(ROOT / "docs/img/view-beam.png"))
    ap.add_argument("--height", type=int, default=1150)
    args = ap.parse_args(argv)
    browser = find_chromium()
    if browser is None:
        print("no Chromium found; install it with `apt-get install -y chromium`", file=sys.stderr)
        return 2
    from eval.sweep import read_records
    from eval.view import write_view

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else toy_run(Path(tmp))
        records = read_records(run)
        if args.ids:
            records = [r for r in records if str(r["id"]) in args.ids.split(",")]
        page = write_view(records, Path(tmp) / "view.html", title=f"search trees: {run.name}")
        html = page.read_text(encoding="utf-8")
        external = re.findall(r"(?:https?:)?//[\w.-]+\.\w+/", html)
        if external:
            raise RuntimeError(f"the page names external URLs: {external[:3]}")
        nodes = check_rendered(browser, page)
        png = screenshot(browser, page, Path(args.png), height=args.height)
    print(f"{browser}: {nodes} nodes rendered, no external URLs; screenshot {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
