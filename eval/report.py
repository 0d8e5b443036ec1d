"""Write a sweep result (eval.sweep.sweep) as a report folder.

    paths = write_report(result, "reports/x", command="python cli.py sweep ...")

    reports/x/report.md      tables: aggregator x selection at full n (best cell marked,
                             95% intervals), accuracy vs n', compute per problem
    reports/x/report.html    the same, self-contained (plots embedded as base64 PNG)
    reports/x/plots/*.png    accuracy vs n' per aggregator (CI bands); accuracy vs
                             generated tokens and vs FLOPs per run
    reports/x/summary.json   the whole result, the settings and the command

Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import base64
import html
import logging
import math
import re
from pathlib import Path

from policies.paths import write_json

log = logging.getLogger(__name__)

BEST, NEAR = "★", "†"
LEGEND = (f"{BEST} best cell at full n (exact ties all marked); {NEAR} not separable from it (paired bootstrap 95% interval of "
          "the difference contains 0). Cells: accuracy [95% bootstrap interval over problems]; "
          "with several seeds also mean ± sd over seeds.")


def _f(x, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def fmt_cell(c: dict, mark: bool = True) -> str:
    s = f"{_f(c['acc'])} [{_f(c['ci'][0])}, {_f(c['ci'][1])}]"
    if c.get("seed_sd") is not None:
        s += f" ({_f(c['seed_mean'])} ± {_f(c['seed_sd'])})"
    if mark and c.get("best"):
        s += f" {BEST}"
    elif mark and c.get("near_best"):
        s += f" {NEAR}"
    return s


def _num(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1e6:
        return f"{x:.3g}"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:80] or "run"


def tables(run: dict) -> list[dict]:
    """The run's tables as {"title", "header", "rows", "bold"} with string cells
    (bold: (row, col) pairs of best cells)."""
    out = []
    kmax = run["ks"][-1]
    by = {(c["agg"], c["rule"], c["k"]): c for c in run["cells"]}
    base = {(b["metric"], b["k"]): b for b in run["baselines"]}
    from eval.metrics import rule_label

    header = ["aggregator", *[f"{rule_label(r)} ({r})" for r in run["rules"]]]
    rows, bold = [], []
    for i, a in enumerate(run["aggs"]):
        row = [a]
        for j, r in enumerate(run["rules"]):
            c = by[(a, r, kmax)]
            row.append(fmt_cell(c))
            if c.get("best"):
                bold.append((i, j + 1))
        rows.append(row)
    for metric in ("pass@n", "maj@n"):
        b = base[(metric, kmax)]
        label = "pass@n (oracle: any correct)" if metric == "pass@n" else "maj@n (plain vote, no scores)"
        rows.append([label, fmt_cell(b, mark=False), *[""] * (len(run["rules"]) - 1)])
    out.append({"title": f"Accuracy at n = {kmax}: aggregator x selection", "header": header, "rows": rows, "bold": bold})

    if len(run["ks"]) > 1:
        header = ["aggregator", "selection", *[f"n={k}" for k in run["ks"]]]
        rows, bold = [], []
        for a in run["aggs"]:
            for r in run["rules"]:
                rows.append([a, rule_label(r), *[fmt_cell(by[(a, r, k)], mark=(k == kmax)) for k in run["ks"]]])
                if by[(a, r, kmax)].get("best"):
                    bold.append((len(rows) - 1, len(header) - 1))
        for metric in ("pass@n", "maj@n"):
            rows.append(["–", metric, *[fmt_cell(base[(metric, k)], mark=False) for k in run["ks"]]])
        out.append({"title": "Accuracy vs n (subsets of the pool)", "header": header, "rows": rows, "bold": bold})

    header = ["n", "generated tokens", "computed prompt tokens", "scorer tokens", "FLOPs", "wall s"]
    rows = [[str(c["k"]), _num(c["generated_tokens"]), _num(c["computed_prompt_tokens"]),
             _num(c["scorer_tokens"]), f"{c['flops']:.3g}", f"{c['wall_s']:.2f}"] for c in run["compute"]]
    out.append({"title": "Compute per problem (from the ledger)", "header": header, "rows": rows, "bold": []})
    return out


# ---------------------------------------------------------------- plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_acc_vs_n(run: dict, path: Path) -> Path:
    """One panel per selection rule, one line per aggregator with its 95% band;
    pass@n and maj@n dashed."""
    plt = _plt()
    from eval.metrics import rule_label

    ks = run["ks"]
    by = {(c["agg"], c["rule"], c["k"]): c for c in run["cells"]}
    base = {(b["metric"], b["k"]): b for b in run["baselines"]}
    rules = run["rules"]
    fig, axes = plt.subplots(1, len(rules), figsize=(4.2 * len(rules), 3.6), sharey=True, squeeze=False)
    for ax, rule in zip(axes[0], rules, strict=True):
        for a in run["aggs"]:
            cs = [by[(a, rule, k)] for k in ks]
            line, = ax.plot(ks, [c["acc"] for c in cs], marker="o", ms=3, label=a)
            ax.fill_between(ks, [c["ci"][0] for c in cs], [c["ci"][1] for c in cs], color=line.get_color(), alpha=0.15)
        for metric, style in (("pass@n", ":"), ("maj@n", "--")):
            bs = [base[(metric, k)] for k in ks]
            ax.plot(ks, [b["acc"] for b in bs], color="gray" if metric == "maj@n" else "black", ls=style, label=metric)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_title(f"{rule_label(rule)} ({rule})", fontsize=10)
        ax.set_xlabel("n (candidates)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (95% CI band)")
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.suptitle(run["label"], fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_acc_vs_compute(result: dict, key: str, path: Path) -> Path:
    """Per run, the accuracy of its best (aggregator, selection) at full n, at every
    n', against mean per-problem `key` (generated_tokens or flops); 95% bands."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for run in result["runs"]:
        best = next((c for c in run["cells"] if c.get("best")), None)
        if best is None:
            continue
        cs = [next(c for c in run["cells"] if c["agg"] == best["agg"] and c["rule"] == best["rule"] and c["k"] == k)
              for k in run["ks"]]
        xs = [next(c[key] for c in run["compute"] if c["k"] == k) for k in run["ks"]]
        label = f"{run['label']} [{best['agg']}, {best['metric']}]"
        if len(xs) > 1:
            line, = ax.plot(xs, [c["acc"] for c in cs], marker="o", ms=3, label=label)
            ax.fill_between(xs, [c["ci"][0] for c in cs], [c["ci"][1] for c in cs], color=line.get_color(), alpha=0.15)
            maj = [next(b for b in run["baselines"] if b["metric"] == "maj@n" and b["k"] == k) for k in run["ks"]]
            ax.plot(xs, [b["acc"] for b in maj], ls="--", color=line.get_color(), alpha=0.7, label=f"{run['label']} [maj@n]")
        else:
            c = cs[0]
            ax.errorbar(xs, [c["acc"]], yerr=[[c["acc"] - c["ci"][0]], [c["ci"][1] - c["acc"]]], fmt="s", capsize=3, label=label)
    if any(x > 0 for run in result["runs"] for x in (c[key] for c in run["compute"])):
        ax.set_xscale("log")
    ax.set_xlabel({"generated_tokens": "generated tokens per problem", "flops": "FLOPs per problem"}.get(key, key))
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title(f"accuracy vs {'generated tokens' if key == 'generated_tokens' else 'FLOPs'} (best cell per run)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- writers


def _md_table(t: dict) -> str:
    bold = set(t["bold"])
    lines = ["| " + " | ".join(t["header"]) + " |", "|" + "|".join(["---"] * len(t["header"])) + "|"]
    for i, row in enumerate(t["rows"]):
        cells = [f"**{c}**" if (i, j) in bold and c else c for j, c in enumerate(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _html_table(t: dict) -> str:
    bold = set(t["bold"])
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t["header"])
    body = []
    for i, row in enumerate(t["rows"]):
        tds = "".join(
            f"<td class=best>{html.escape(c)}</td>" if (i, j) in bold else f"<td>{html.escape(c)}</td>"
            for j, c in enumerate(row)
        )
        body.append(f"<tr>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _run_meta(run: dict) -> list[str]:
    seeds = ", ".join(str(s) for s in run["seeds"])
    lines = [f"{run['problems']} graded problems, seeds {seeds}; files: {', '.join(run['files'])}"]
    if run["ungraded"]:
        lines.append(f"{run['ungraded']} records without a gold answer left out")
    return lines + list(run["notes"])


def write_report(result: dict, out_dir: str | Path, *, command: str | None = None, title: str = "Sweep report") -> dict:
    """Write report.md, report.html, plots/*.png and summary.json; return their paths."""
    out = Path(out_dir)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    written: dict = {"plots": []}
    run_plots: dict[int, list[Path]] = {}
    for i, run in enumerate(result["runs"]):
        run_plots[i] = []
        if len(run["ks"]) > 1 and run["problems"]:
            p = plot_acc_vs_n(run, plots / f"acc_vs_n_{i}_{slug(run['label'])}.png")
            run_plots[i].append(p)
    compute_plots = []
    if any(run["problems"] for run in result["runs"]):
        for key, name in (("generated_tokens", "acc_vs_tokens.png"), ("flops", "acc_vs_flops.png")):
            compute_plots.append(plot_acc_vs_compute(result, key, plots / name))
    written["plots"] = [str(p) for ps in run_plots.values() for p in ps] + [str(p) for p in compute_plots]

    s = result["settings"]
    intro = [
        f"Aggregators: {', '.join(s['aggs'])}; selection: {', '.join(s['rules'])}; "
        f"{s['n_boot']} bootstrap resamples over problems, {int(s['level'] * 100)}% intervals, seed {s['seed']}; "
        f"at most {s['max_subsets']} subsets per n'.",
        LEGEND,
    ]
    md = [f"# {title}", ""]
    if command:
        md += ["```", command, "```", ""]
    md += [*intro, ""]
    hb = [f"<h1>{html.escape(title)}</h1>"]
    if command:
        hb.append(f"<pre>{html.escape(command)}</pre>")
    hb += [f"<p>{html.escape(x)}</p>" for x in intro]

    overview = {"title": "Overview", "header": ["run", "problems", "best cell (full n)", "pass@n", "maj@n",
                                                  "generated tok/problem", "FLOPs/problem"], "rows": [], "bold": []}
    for run in result["runs"]:
        best = next((c for c in run["cells"] if c.get("best")), None)
        kmax = run["ks"][-1]
        base = {(b["metric"], b["k"]): b for b in run["baselines"]}
        comp = next(c for c in run["compute"] if c["k"] == kmax)
        overview["rows"].append([
            run["label"], str(run["problems"]),
            f"{best['agg']} {best['metric']}: {fmt_cell(best, mark=False)}" if best else "–",
            fmt_cell(base[("pass@n", kmax)], mark=False), fmt_cell(base[("maj@n", kmax)], mark=False),
            _num(comp["generated_tokens"]), f"{comp['flops']:.3g}",
        ])
    md += ["## Overview", "", _md_table(overview), ""]
    hb += ["<h2>Overview</h2>", _html_table(overview)]
    for p in compute_plots:
        md += [f"![{p.stem}](plots/{p.name})", ""]
        hb.append(_img(p))

    for i, run in enumerate(result["runs"]):
        md += [f"## {run['label']}", ""] + [f"- {x}" for x in _run_meta(run)] + [""]
        hb += [f"<h2>{html.escape(run['label'])}</h2>", "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in _run_meta(run)) + "</ul>"]
        for t in tables(run):
            md += [f"### {t['title']}", "", _md_table(t), ""]
            hb += [f"<h3>{html.escape(t['title'])}</h3>", _html_table(t)]
        for p in run_plots[i]:
            md += [f"![{p.stem}](plots/{p.name})", ""]
            hb.append(_img(p))

    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
             "td.best{font-weight:bold;background:#eef7ee}img{max-width:100%}pre{background:#f4f4f4;padding:.5em}")
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(hb)}</body></html>\n")
    (out / "report.html").write_text(page, encoding="utf-8")
    summary = {"command": command, **result, "plots": [str(Path(p).relative_to(out)) for p in written["plots"]]}
    write_json(out / "summary.json", summary, default=_json_default)
    written.update(md=str(out / "report.md"), html=str(out / "report.html"), summary=str(out / "summary.json"))
    log.info("report written to %s", out)
    return written


def _json_default(x):
    if isinstance(x, float | int):
        return x
    if hasattr(x, "item"):
        return x.item()
    return str(x)


def _img(p: Path) -> str:
    data = base64.b64encode(p.read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(p.stem)}" src="data:image/png;base64,{data}"></p>'
