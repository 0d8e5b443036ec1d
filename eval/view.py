"""`python cli.py view RUN.jsonl`: one self-contained HTML page of a run's search trees.

    python cli.py view runs/gsm8k-beam-prm-min-n8-m2-seed0.jsonl            # -> runs/...-seed0.html
    python cli.py view RUN.jsonl --out run.html --ids 12,40 --limit 20

Per problem: the problem, the chosen answer against the gold, why that answer won (the
selection rule and the runner-up), the votes, every candidate with its step scores,
value and verdict, and the search tree: each step with its own score, the aggregated
value of its path, and its status (live, expanded, pruned, duplicate, finished,
rollout); the chosen path is drawn in bold green. Best-of-n and voting runs keep no tree:
their candidates are drawn as one chain of steps ("step") each under the root. The page has
inline CSS and a few lines of inline JS (filters, folding); it loads nothing from the
network. Only argparse is imported at the top.
"""

from __future__ import annotations

import argparse
import html
import json
import math
from pathlib import Path

STATUSES = ("root", "live", "open", "expanded", "pruned", "duplicate", "finished", "rollout", "step")
"""Node statuses of search/types.py's Node, and "step": a step of a full sample (no tree)."""
_TEXT_CAP = 240  # characters of a step shown before "more"


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _num(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _search_cfg(rec: dict) -> dict:
    cfg = rec.get("config") or {}
    return cfg.get("search", cfg) if isinstance(cfg, dict) else {}


# ---- the tree ----------------------------------------------------------------------

def tree_of(rec: dict) -> list[dict]:
    """The record's tree (nodes with id, parent, step, scores, value, status), or for a
    run without one (best-of-n, voting) a root with one chain of steps per candidate."""
    if rec.get("tree"):
        return rec["tree"]
    nodes = [{"id": 0, "parent": None, "depth": 0, "step": None, "scores": None, "value": None, "status": "root"}]
    for c in rec.get("candidates", []):
        parent = 0
        steps = c.get("steps") or []
        for d, step in enumerate(steps, 1):
            scores = c["scores"][:d] if c.get("scores") and len(c["scores"]) >= d else None
            last = d == len(steps)
            nodes.append({"id": len(nodes), "parent": parent, "depth": d, "step": step, "scores": scores,
                          "value": c.get("value") if last else None,
                          "status": "finished" if last else "step",
                          "finish_reason": c.get("finish_reason") if last else None})
            parent = len(nodes) - 1
        c["node"] = parent if steps else None
    return nodes


def chosen_path(nodes: list[dict], leaf: int | None) -> set[int]:
    by_id = {n["id"]: n for n in nodes}
    path = set()
    while leaf is not None and leaf in by_id and leaf not in path:
        path.add(leaf)
        leaf = by_id[leaf].get("parent")
    return path


def _node_html(n: dict, kids: dict, on_path: set[int], leaves: dict, agg: str) -> str:
    status = n.get("status") or "open"
    cls = f"node st-{_e(status)}" + (" chosen" if n["id"] in on_path else "")
    parts = [f'<span class="nid">#{n["id"]}</span>', f'<span class="badge st-{_e(status)}">{_e(status)}</span>']
    scores = n.get("scores")
    if scores:
        parts.append(f'<span class="kv" title="the scorer\'s score of this step">step {_num(scores[-1])}</span>')
    if n.get("value") is not None:
        parts.append(f'<span class="kv" title="{_e(agg)} over the path\'s step scores">value {_num(n["value"])}</span>')
    if n.get("visits"):
        parts.append(f'<span class="kv">visits {n["visits"]}</span>')
    if n.get("finish_reason"):
        parts.append(f'<span class="kv">{_e(n["finish_reason"])}</span>')
    for k in leaves.get(n["id"], []):
        parts.append(k)
    step = n.get("step")
    if step is None:
        body = '<span class="rootlabel">problem</span>'
    elif len(step) <= _TEXT_CAP:
        body = f'<span class="step">{_e(step)}</span>'
    else:
        body = (f'<details class="step"><summary>{_e(step[:_TEXT_CAP])}…</summary>'
                f'<span>{_e(step)}</span></details>')
    inner = f'<div class="{cls}" data-node="{n["id"]}"><div class="meta">{"".join(parts)}</div>{body}</div>'
    children = kids.get(n["id"], [])
    if not children:
        return f"<li>{inner}</li>"
    sub = "".join(_node_html(c, kids, on_path, leaves, agg) for c in children)
    return f"<li>{inner}<ul>{sub}</ul></li>"


def tree_html(rec: dict) -> str:
    nodes = tree_of(rec)
    cands = rec.get("candidates", [])
    chosen = rec.get("chosen")
    leaf = cands[chosen].get("node") if chosen is not None and chosen < len(cands) else None
    on_path = chosen_path(nodes, leaf)
    leaves: dict[int, list[str]] = {}
    for i, c in enumerate(cands):
        if c.get("node") is None:
            continue
        mark = "chosen " if i == chosen else ""
        v = _verdict(c)
        leaves.setdefault(c["node"], []).append(
            f'<span class="cand {mark}{v[0]}">{mark}candidate {i}: {_e(c.get("answer"))} {v[1]}</span>')
    kids: dict = {}
    for n in nodes:
        kids.setdefault(n.get("parent"), []).append(n)
    roots = kids.get(None, [])
    agg = _search_cfg(rec).get("agg", "agg")
    return '<ul class="tree">' + "".join(_node_html(r, kids, on_path, leaves, agg) for r in roots) + "</ul>"


# ---- votes, candidates, why -----------------------------------------------------------

def _verdict(c: dict) -> tuple[str, str]:
    v = c.get("verdict") or {}
    if v.get("correct") is True:
        return "ok", "✓"
    if v.get("correct") is False:
        return "bad", "✗"
    return "", ""


def why_text(rec: dict) -> str:
    """Why the chosen answer won, in one or two sentences."""
    cfg = _search_cfg(rec)
    rule, fagg = cfg.get("select", "argmax"), cfg.get("final_agg") or cfg.get("agg", "min")
    cands, chosen, votes = rec.get("candidates", []), rec.get("chosen"), rec.get("votes") or []
    if chosen is None:
        return "No candidate: the search produced nothing to choose from."
    if rec.get("answer") is None:
        return f"No candidate has an extractable answer; candidate {chosen} is shown (the best by value)."
    c = cands[chosen]
    scorer = (rec.get("config") or {}).get("reward", {}).get("kind") if isinstance(rec.get("config"), dict) else None
    value_is = ("the policy's confidence (no scorer)" if scorer in (None, "none")
                else f"{fagg} of the step scores")
    if rule == "argmax" and any(x.get("value") is not None for x in cands):
        others = sorted((x for i, x in enumerate(cands) if i != chosen and x.get("value") is not None
                         and x.get("answer") != c.get("answer")), key=lambda x: -x["value"])
        s = (f"argmax: candidate {chosen} has the highest value, {_num(c.get('value'))} ({value_is}), "
             f"answer {c.get('answer')!r}.")
        tied = [i for i, x in enumerate(cands) if i > chosen and x.get("value") == c.get("value")]
        if tied:
            s += f" Tied with candidate {', '.join(map(str, tied))}: a tie goes to the first."
        if others:
            s += f" Best other answer: {others[0].get('answer')!r} at {_num(others[0]['value'])}."
        return s
    if not votes:
        return f"{rule}: answer {rec['answer']!r}."
    top = votes[0]
    what = "summed value" if rule == "weighted_vote" else "number of votes"
    if rule == "argmax":
        rule, what = "argmax (no candidate has a value: majority vote)", "number of votes"
    key = "weight" if rule == "weighted_vote" else "count"
    s = (f"{rule}: answer {top['answer']!r} has the largest {what}, {_num(top.get(key))} "
         f"({top.get('count')} of {len(cands)} candidates); candidate {chosen} represents it.")
    if len(votes) > 1:
        r2 = votes[1]
        s += f" Runner-up: {r2['answer']!r} with {_num(r2.get(key))} ({r2.get('count')} candidates)."
    return s


def votes_html(rec: dict) -> str:
    votes = rec.get("votes") or []
    if not votes:
        return '<p class="muted">no votes (no candidate has an answer)</p>'
    rows = "".join(
        f'<tr class="{"win" if i == 0 else ""}"><td>{_e(v.get("answer"))}</td><td>{v.get("count")}</td>'
        f'<td>{_num(v.get("weight"))}</td><td>{_e(", ".join(map(str, v.get("members", []))))}</td></tr>'
        for i, v in enumerate(votes))
    return ('<table class="votes"><tr><th>answer</th><th>votes</th><th>summed value</th><th>candidates</th></tr>'
            f"{rows}</table>")


def _score_cells(scores) -> str:
    if not scores:
        return '<span class="muted">–</span>'
    return "".join(f'<span class="sc" style="background:{_heat(s)}" title="step {i + 1}">{_num(s, 2)}</span>'
                   for i, s in enumerate(scores))


def _heat(s) -> str:
    """Red (0) to green (1) for a score; grey when not in [0, 1]."""
    if not isinstance(s, int | float) or not 0 <= s <= 1:
        return "#ddd"
    return f"hsl({int(120 * s)}, 70%, 82%)"


def candidates_html(rec: dict) -> str:
    rows = []
    for i, c in enumerate(rec.get("candidates", [])):
        v = _verdict(c)
        cls = "win" if i == rec.get("chosen") else ""
        rows.append(f'<tr class="{cls}"><td>{i}</td><td>{_e(c.get("answer"))}</td><td class="{v[0]}">{v[1]}</td>'
                    f'<td>{_num(c.get("value"))}</td><td class="scores">{_score_cells(c.get("scores"))}</td>'
                    f'<td>{_e(c.get("finish_reason"))}</td><td>{c.get("generated_tokens", 0)}</td></tr>')
    return ('<table class="cands"><tr><th>#</th><th>answer</th><th></th><th>value</th><th>step scores</th>'
            f'<th>finish</th><th>tokens</th></tr>{"".join(rows)}</table>')


def problem_html(rec: dict) -> str:
    pid = str(rec.get("id"))
    ok = rec.get("correct")
    verdict = {True: ("ok", "correct"), False: ("bad", "wrong")}.get(ok, ("", "ungraded"))
    led = rec.get("ledger") or {}
    text = rec.get("problem") or ""
    return (
        f'<section class="problem" id="p-{_e(pid)}" data-correct="{_e(ok)}">'
        f'<h2>{_e(pid)} <span class="{verdict[0]}">{verdict[1]}</span></h2>'
        f'<details class="ptext" open><summary>problem</summary><pre>{_e(text)}</pre></details>'
        f'<p><b>chosen answer</b> {_e(rec.get("answer"))} · <b>gold</b> {_e(rec.get("gold"))} · '
        f'{led.get("generated_tokens", 0)} generated tokens · {_num(led.get("wall_s"), 1)} s</p>'
        f'<p class="why">{_e(why_text(rec))}</p>'
        f'<div class="cols"><div><h3>votes</h3>{votes_html(rec)}</div>'
        f'<div><h3>candidates</h3>{candidates_html(rec)}</div></div>'
        f'<h3>search tree</h3>{tree_html(rec)}</section>'
    )


# ---- the page ------------------------------------------------------------------------

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 1.5em 3em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:.8em 0 .2em}h2{font-size:1.15em;margin:0 0 .4em}h3{font-size:1em;margin:.8em 0 .3em}
.problem{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8em 1em;margin:1em 0}
pre{white-space:pre-wrap;margin:.3em 0;font:13px/1.35 ui-monospace,monospace}
.ok{color:#137333;font-weight:600}.bad{color:#c5221f;font-weight:600}.muted{color:#888}
.why{background:#eef5ff;border-left:4px solid #4a7fd0;padding:.4em .7em}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
tr.win{background:#e7f6e9;font-weight:600}.cols{display:flex;gap:2em;flex-wrap:wrap}
.sc{display:inline-block;padding:0 3px;margin:0 1px;border-radius:3px;font-size:12px}
ul.tree,ul.tree ul{list-style:none;margin:0;padding-left:1.4em}ul.tree{padding-left:0}
ul.tree li{position:relative;border-left:1px solid #bbb;padding:2px 0 2px .9em}
ul.tree li:last-child{border-left-color:transparent}
ul.tree li::before{content:"";position:absolute;left:-1px;top:0;width:.8em;height:1.05em;border-left:1px solid #bbb;border-bottom:1px solid #bbb}
.node{display:inline-block;border:1px solid #ccc;border-radius:5px;padding:2px 6px;background:#fff;max-width:70em}
.node .meta{font-size:12px;color:#555}.node .meta span{margin-right:.5em}
.node .step{white-space:pre-wrap;font:12.5px/1.35 ui-monospace,monospace;display:block}
.node.chosen{border:2px solid #137333;background:#f1fbf2}
.node.st-pruned,.node.st-duplicate{opacity:.55}
.badge{border-radius:3px;padding:0 4px;font-size:11px;color:#fff;background:#888}
.badge.st-root{background:#555}.badge.st-live,.badge.st-open{background:#1a73e8}.badge.st-expanded{background:#80868b}
.badge.st-pruned{background:#c5221f}.badge.st-duplicate{background:#e37400}.badge.st-finished{background:#137333}
.badge.st-rollout{background:#8430ce}.badge.st-step{background:#9aa0a6}.cand{font-weight:600;color:#444}.cand.chosen{color:#137333}
.nid{color:#999}.kv{font-variant-numeric:tabular-nums}
nav{position:sticky;top:0;background:#fafafa;padding:.4em 0;border-bottom:1px solid #ddd;z-index:1}
nav button{margin-right:.4em}nav a{margin-right:.5em;text-decoration:none}
nav .links{display:inline-block;max-height:3.2em;overflow:auto;vertical-align:top;max-width:70%}
body.hide-pruned .node.st-pruned,body.hide-pruned .node.st-duplicate{display:none}
"""

JS = """
function show(which){document.querySelectorAll('section.problem').forEach(function(s){
  var c=s.dataset.correct;s.style.display=(which==='all'||(which==='wrong'&&c==='False')||(which==='correct'&&c==='True'))?'':'none';});}
document.body.dataset.rendered=document.querySelectorAll('.node').length;
"""


def page_html(records: list[dict], title: str) -> str:
    from search import strategies

    first = records[0]
    cfg = _search_cfg(first)
    ident = first.get("config") or {}
    reward = (ident.get("reward") or {}).get("kind", "?") if isinstance(ident, dict) else "?"
    graded = [r for r in records if r.get("correct") is not None]
    acc = (f"{sum(bool(r['correct']) for r in graded)}/{len(graded)} correct" if graded else "ungraded")
    keys = ["strategy", "n", "beam_width", "max_steps", "agg", "final_agg", "select", "seed"]
    if not strategies.uses(cfg.get("strategy"), "max_steps"):  # not step-level
        keys = [k for k in keys if k not in ("beam_width", "max_steps")]
    settings = ", ".join(f"{k}={cfg[k]}" for k in keys if k in cfg)
    legend = " ".join(f'<span class="badge st-{s}">{s}</span>' for s in STATUSES if s != "open")
    links = " ".join(
        f'<a href="#p-{_e(r.get("id"))}" class="{ {True: "ok", False: "bad"}.get(r.get("correct"), "")}">'
        f'{_e(r.get("id"))}</a>' for r in records)
    nav = ('<nav><button onclick="show(\'all\')">all</button><button onclick="show(\'wrong\')">wrong</button>'
           '<button onclick="show(\'correct\')">correct</button>'
           '<label><input type="checkbox" onchange="document.body.classList.toggle(\'hide-pruned\',this.checked)">'
           f' hide pruned</label> · <span class="links">{links}</span></nav>')
    head = (f"<h1>{_e(title)}</h1><p>{_e(settings)}; reward {_e(reward)} · {len(records)} problems · {acc}</p>"
            f"<p>node status: {legend} · <b>bold green</b>: the chosen path · step: the scorer's score of that "
            "step · value: the aggregator over the path's step scores</p>")
    body = "".join(problem_html(r) for r in records)
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_e(title)}</title>"
            f"<style>{CSS}</style></head><body>{head}{nav}{body}<script>{JS}</script></body></html>\n")


def write_view(records: list[dict], out: str | Path, title: str = "search trees") -> Path:
    """Write the page of these search records to `out`; returns its path."""
    if not records:
        raise ValueError("no records to view; pass a run file with finished problems")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page_html([json.loads(json.dumps(r)) for r in records], title), encoding="utf-8")
    return out


# ---- `python cli.py view` -----------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a JSONL run file written by `cli.py search`")
    p.add_argument("--out", default=None, help="HTML file to write (default: the run file with .html)")
    p.add_argument("--ids", default=None, help="comma-separated problem ids to show (default: all)")
    p.add_argument("--limit", type=int, default=None, help="show the first N problems")


def run(args: argparse.Namespace) -> int:
    from eval.sweep import read_records
    from policies.paths import check_out_file

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit} (omit it to show every problem)")
    out = Path(args.out) if args.out else Path(args.run).with_suffix(".html")
    check_out_file("--out", out)
    records = list({str(r["id"]): r for r in read_records(args.run)}.values())  # last record per id
    if args.ids:
        want = [x.strip() for x in args.ids.split(",") if x.strip()]
        missing = [x for x in want if x not in {str(r["id"]) for r in records}]
        if missing:
            raise ValueError(f"--ids: {', '.join(missing)} not in {args.run}; e.g. --ids {records[0]['id']}")
        records = [r for r in records if str(r["id"]) in want]
    if args.limit:
        records = records[: args.limit]
    path = write_view(records, out, title=f"search trees: {Path(args.run).name}")
    print(f"wrote {path} ({len(records)} problems); open it in a browser (no network needed)")
    return 0
