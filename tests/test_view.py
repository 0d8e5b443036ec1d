"""eval/view.py: the self-contained search-tree page (`cli.py view`), on records of
scripted searches; the headless-browser check of bench/view_screenshot.py when Chromium
is installed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from eval.view import page_html, tree_of, why_text, write_view
from search import SearchConfig
from search.runner import run_search
from search.testing import FakePolicy, FakeScorer, digit_scores

ROOT = Path(__file__).resolve().parent.parent
PROBS = [{"id": f"p{i}", "problem": f"Problem {i} <b>&</b>?", "answer": str(i % 2)} for i in range(3)]


def records(tmp_path, strategy: str, **kw) -> tuple[Path, list[dict]]:
    cfg = SearchConfig(strategy=strategy, n=4, agg="min", **kw)
    out = tmp_path / f"{strategy}.jsonl"
    run_search(PROBS, FakePolicy(), FakeScorer(digit_scores), cfg, out=out,
               identity={"search": cfg.as_dict(), "reward": {"kind": "prm"}})
    return out, [json.loads(x) for x in out.read_text().splitlines()]


def test_beam_page_holds_every_node_status_and_the_chosen_path(tmp_path):
    _, recs = records(tmp_path, "beam", beam_width=2)
    page = page_html(recs, "t")
    assert page.count('data-node="') == sum(len(r["tree"]) for r in recs)
    statuses = {n["status"] for r in recs for n in r["tree"]}
    assert {"pruned", "finished"} <= statuses
    for s in statuses:
        assert f'class="node st-{s}' in page
    # the chosen leaf and its ancestors carry "chosen"
    r = recs[0]
    leaf = r["candidates"][r["chosen"]]["node"]
    chosen_ids = {int(m) for m in re.findall(r'class="node st-\w+ chosen" data-node="(\d+)"', page.split("</section>")[0])}
    path, n = set(), leaf
    while n is not None:
        path.add(n)
        n = r["tree"][n]["parent"]
    assert chosen_ids == path
    assert "Problem 0 &lt;b&gt;&amp;&lt;/b&gt;?" in page  # escaped
    assert why_text(r).startswith("argmax: candidate")


def test_page_is_self_contained(tmp_path):
    _, recs = records(tmp_path, "beam", beam_width=2)
    page = page_html(recs, "t")
    assert not re.search(r"https?://|//[\w-]+\.\w+/|<link|\bsrc=|@import|url\(", page)


def test_voting_run_without_tree_draws_one_chain_per_candidate(tmp_path):
    _, recs = records(tmp_path, "weighted_majority")
    r = recs[0]
    assert r["tree"] is None
    nodes = tree_of(json.loads(json.dumps(r)))
    assert len(nodes) == 1 + sum(len(c["steps"]) for c in r["candidates"])
    assert why_text(r).startswith("weighted_vote: answer")
    page = page_html(recs, "t")
    assert "Runner-up" in page and page.count('data-node="') == sum(
        1 + sum(len(c["steps"]) for c in x["candidates"]) for x in recs)


def test_cli_view_writes_the_page_and_names_bad_ids(tmp_path):
    run, recs = records(tmp_path, "beam", beam_width=2)
    r = subprocess.run([sys.executable, "cli.py", "view", str(run), "--ids", "p1"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    page = run.with_suffix(".html").read_text()
    assert 'id="p-p1"' in page and 'id="p-p0"' not in page
    r = subprocess.run([sys.executable, "cli.py", "view", str(run), "--ids", "nope"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "nope not in" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "cli.py", "view", str(tmp_path / "missing.jsonl")], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no such file" in r.stderr


def test_headless_chromium_renders_every_node(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    import view_screenshot as vs

    browser = vs.find_chromium()
    if browser is None:
        pytest.skip("Chromium not installed (apt-get install -y chromium)")
    run = vs.toy_run(tmp_path)
    page = write_view([json.loads(x) for x in run.read_text().splitlines()], tmp_path / "v.html")
    assert vs.check_rendered(browser, page) == 13
    assert vs.screenshot(browser, page, tmp_path / "v.png").stat().st_size > 10_000
