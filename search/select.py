"""Final selection over a problem's candidates: argmax, weighted vote, majority.

Answers are grouped into classes of verifier-equivalent answers: a candidate
joins the first class whose representative (its first member's answer) the
verifier judges equal (`verifiers.verify(rep, answer)`), after a cheap exact
string check. Candidates with no extracted answer belong to no class and get no
vote.

Rules (ties always go to the class / candidate that appeared first):
- "argmax": the candidate with the highest value; candidates whose value is None
  (no scores, e.g. no steps) never win while any candidate has a value. When no
  candidate has a value, argmax falls back to a majority vote.
- "weighted_vote": the class with the largest sum of member values (None counts
  0); its answer wins, represented by its best-valued member.
- "majority": the class with most members (self-consistency); ties broken by the
  summed values; represented by its best-valued member.
- "borda": Borda voting (Kang et al. 2025, with self-certainty values): candidates ranked
  by value, best first (ties to the earlier one), the r-th of n (r = 1..n) gives its class
  (n - r + 1) ** BORDA_POWER votes; a candidate without a value gives none. Then as
  "weighted_vote" on those votes. Only the order of values matters, so any scale works.
When no candidate has an answer, every rule returns the argmax candidate (or the
first one) with answer None.

Filtered rules ("topP_majority", "topP_weighted", P a percentage in (0, 100]): keep the
ceil(P% of n) candidates with the highest values (at least one; None ranks last, ties go
to the earlier candidate), then vote among them by "majority" or "weighted_vote". With
token-confidence values this is DeepConf's offline filtering (Fu et al. 2025):
top10_weighted is DeepConf-low, top90_weighted DeepConf-high. `RULES` and `PATTERNS`
are the one registry of rule names; `check_rule` validates a name, `rule_label` gives
its report label, and the CLIs build their choices from them.

Checked rules ("checked:RULE", RULE any of the above): candidates whose steps write a false
equation (`verifiers.arithmetic`: `3 * 4 = 13`) leave the vote first; where every candidate
does, all stay. On held-out GSM8K the shipped probe's weighted vote gains +0.035 this way
(README, bench/arithmetic_filter.py).

Values come from the strategy: `final_agg` of the candidate's per-step scores,
or, when the run has no scorer (`--reward none`), the policy's confidence
exp(mean token log-probability); a candidate without a log-probability then has
value None, so "argmax" falls back to majority and ties go to the first sample.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

from search.types import Candidate

# the one registry of selection rules: name -> report label (the literature's)
RULES = {"argmax": "RM@n", "weighted_vote": "weighted@n", "majority": "maj@n", "borda": "borda@n"}
BORDA_POWER = 0.5  # a-priori (the middle of the powers Kang et al. report); not tuned on any pool here
PATTERNS = ("topP_majority", "topP_weighted", "checked:RULE")  # keep the top P% by value, then vote
CHECKED = "checked:"  # drop candidates with a false equation, then RULE
_TOP = re.compile(r"^top(\d+(?:\.\d+)?)_(majority|weighted)$")


def parse_rule(rule: str) -> tuple[float | None, str]:
    """(kept percentage or None, base rule) of a rule name, the "checked:" prefix aside;
    unknown names list the valid ones."""
    if isinstance(rule, str) and rule.startswith(CHECKED) and not rule[len(CHECKED):].startswith(CHECKED):
        return parse_rule(rule[len(CHECKED):])
    if rule in RULES:
        return None, rule
    m = _TOP.match(rule or "") if isinstance(rule, str) else None
    if m and 0 < float(m.group(1)) <= 100:
        return float(m.group(1)), {"majority": "majority", "weighted": "weighted_vote"}[m.group(2)]
    raise ValueError(f"select rule must be one of {', '.join(RULES)} or {' / '.join(PATTERNS)} with "
                     f"0 < P <= 100 (e.g. top10_weighted), got {rule!r}.")


def check_rule(rule: str) -> str:
    parse_rule(rule)
    return rule


def rule_label(rule: str) -> str:
    keep, base = parse_rule(rule)
    label = RULES[base] if keep is None else f"top{keep:g}%+{RULES[base]}"
    return f"checked+{label}" if rule.startswith(CHECKED) else label


def arithmetic_ok(candidates: Sequence[Candidate]) -> list[int]:
    """Indices of the candidates none of whose steps writes a false equation; all of them
    when every candidate does (the "checked:" rules)."""
    from verifiers.arithmetic import first_false_step

    ok = [i for i, c in enumerate(candidates) if first_false_step([str(s) for s in c.steps]) is None]
    return ok or list(range(len(candidates)))


def keep_top(values: Sequence[float | None], keep: float) -> list[int]:
    """Indices (in pool order) of the ceil(keep% of n) highest values, at least one;
    None ranks last, ties go to the earlier index."""
    n = len(values)
    if n == 0:
        return []
    m = max(1, math.ceil(n * keep / 100.0 - 1e-9))
    order = sorted(range(n), key=lambda i: (values[i] is None, -(values[i] or 0.0), i))
    return sorted(order[:m])


def borda_votes(values: Sequence[float | None], power: float = BORDA_POWER) -> list[float | None]:
    """Votes per candidate under Borda ranking (see "borda"); None for a candidate without
    a value."""
    n = len(values)
    order = sorted((i for i, v in enumerate(values) if v is not None), key=lambda i: (-values[i], i))
    out: list[float | None] = [None] * n
    for r, i in enumerate(order, start=1):
        out[i] = float(n - r + 1) ** power
    return out


def _default_equal(a: str, b: str) -> bool:
    from verifiers import verify

    return verify(a, b)


def answer_classes(
    answers: Sequence[str | None],
    equal: Callable[[str, str], bool] | None = None,
) -> tuple[list[int | None], list[str], int]:
    """Class index per answer (None for no answer), class representatives, and
    the number of verifier calls made."""
    equal = equal or _default_equal
    reps: list[str] = []
    labels: list[int | None] = []
    calls = 0
    for a in answers:
        if a is None or not str(a).strip():
            labels.append(None)
            continue
        label = next((k for k, r in enumerate(reps) if r == a), None)
        if label is None:
            for k, r in enumerate(reps):
                calls += 1
                if equal(r, a):
                    label = k
                    break
        if label is None:
            reps.append(a)
            label = len(reps) - 1
        labels.append(label)
    return labels, reps, calls


def _argmax(candidates: Sequence[Candidate]) -> int | None:
    best, best_v = None, None
    for i, c in enumerate(candidates):
        if c.value is not None and (best_v is None or c.value > best_v):
            best, best_v = i, c.value
    return best


def select(
    candidates: Sequence[Candidate],
    rule: str,
    *,
    equal: Callable[[str, str], bool] | None = None,
) -> tuple[int | None, str | None, list[dict], int]:
    """(chosen index, chosen answer, vote table, verifier calls) under `rule`."""
    keep, base = parse_rule(rule)
    if not candidates:
        return None, None, [], 0
    if rule.startswith(CHECKED):
        kept = arithmetic_ok(candidates)
        i, answer, votes, calls = select([candidates[j] for j in kept], rule[len(CHECKED):], equal=equal)
        for t in votes:
            t["members"] = [kept[j] for j in t["members"]]
        return (None if i is None else kept[i]), answer, votes, calls
    if keep is not None:
        kept = keep_top([c.value for c in candidates], keep)
        i, answer, votes, calls = select([candidates[j] for j in kept], base, equal=equal)
        for t in votes:
            t["members"] = [kept[j] for j in t["members"]]
        return (None if i is None else kept[i]), answer, votes, calls
    if rule == "borda":
        from dataclasses import replace

        votes = borda_votes([c.value for c in candidates])
        return select([replace(c, value=v) for c, v in zip(candidates, votes, strict=True)], "weighted_vote",
                      equal=equal)
    labels, reps, calls = answer_classes([c.answer for c in candidates], equal)
    table = [{"answer": r, "count": 0, "weight": 0.0, "members": []} for r in reps]
    for i, (c, lab) in enumerate(zip(candidates, labels, strict=True)):
        if lab is not None:
            t = table[lab]
            t["count"] += 1
            t["weight"] += c.value or 0.0
            t["members"].append(i)

    def best_member(members: list[int]) -> int:
        scored = [i for i in members if candidates[i].value is not None]
        return max(scored, key=lambda i: (candidates[i].value, -i)) if scored else members[0]

    order = list(range(len(table)))  # classes in order of first appearance
    if rule == "argmax":
        i = _argmax(candidates)
        if i is not None:
            votes = sorted(table, key=lambda t: -t["weight"])
            return i, candidates[i].answer, votes, calls
        rule = "majority"  # nothing has a value: documented fallback
    if not table:
        i = _argmax(candidates)
        i = 0 if i is None else i
        return i, None, [], calls
    if rule == "weighted_vote":
        order.sort(key=lambda k: (-table[k]["weight"], -table[k]["count"], k))
    else:
        order.sort(key=lambda k: (-table[k]["count"], -table[k]["weight"], k))
    win = table[order[0]]
    i = best_member(win["members"])
    return i, candidates[i].answer, [table[k] for k in order], calls
