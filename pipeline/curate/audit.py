"""How well the filters decide: against hand labels, and the answer keys they keep.

Hand labels (``tests/fixtures/curate_labels*.jsonl``) give each raw row ``keep`` or the
filter that should drop it (``a|b`` when several apply; any of them is right).
:func:`label_scores` compares the decisions of a filter run (the first filter that
dropped each row, as the stage runs them) with those labels, overall and per
filter. :func:`key_audit` counts kept rows whose answer key is suspect: the
verifier reads it only as a string, or the source's own arithmetic contradicts it.
"""

from __future__ import annotations

import json
from pathlib import Path

KEEP = "keep"
# filters that look at the whole set (duplicates, evaluation overlap, model solve rates), not one row
SET_LEVEL = frozenset({"exact_dedup", "near_dedup", "decontaminate", "solve_rate"})


# a label's name for what a filter decides (the labelling guide's words)
LABEL_NAMES = {"wrong_key": "answer_key"}


def read_labels(path: str | Path) -> dict[str, str]:
    """uid -> label, from a JSONL file of ``{"uid": ..., "expect": ...}`` lines,
    each name as the filter that decides it is called (``wrong_key`` -> ``answer_key``)."""
    rows = [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]
    return {r["uid"]: "|".join(LABEL_NAMES.get(n, n) for n in r["expect"].split("|")) for r in rows}


def row_outcomes(cfg, verifier, uids: set[str] | None = None) -> tuple[dict[str, str], list]:
    """uid -> ``keep`` or the name of the first filter that dropped the row, for the
    row-level filters of a curate config (the set-level ones depend on what else is
    in the set), and the kept Records as the filters left them. ``uids``: only
    those rows."""
    from pipeline.curate import dedup  # noqa: F401 - registers the set-level filters
    from pipeline.curate.filters import Context
    from pipeline.curate.run import filter_plan, run_filters
    from pipeline.curate.sources import read_source

    records = [r for s in cfg.sources for r in read_source(s) if uids is None or r.uid in uids]
    plan = [(n, p) for n, p in filter_plan(cfg.filters) if n not in SET_LEVEL]
    kept, dropped, _ = run_filters(records, plan, Context(verifier=verifier))
    return {r.uid: KEEP for r in kept} | {r.uid: f for r, f, _ in dropped}, kept


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 3) if b else None


def label_scores(outcome: dict[str, str], labels: dict[str, str]) -> dict:
    """Decisions against labels. Overall: ``accuracy`` (the right decision for a
    right reason), keep precision/recall. Per filter F (``keep`` included):
    precision = rows F decided whose label names F / rows F decided; recall = rows
    labelled F that F decided / rows labelled F that reached F undropped or were
    decided wrongly (a row an earlier filter rightly dropped for another listed
    reason is F's neither hit nor miss)."""
    missing = sorted(set(labels) - set(outcome))
    if missing:
        raise ValueError(f"{len(missing)} labelled rows have no outcome, e.g. {missing[:3]}")
    names = lambda u: labels[u].split("|")  # noqa: E731
    right = {u: outcome[u] in names(u) for u in labels}
    per: dict[str, dict] = {}
    for f in sorted({outcome[u] for u in labels} | {n for u in labels for n in names(u)}):
        decided = [u for u in labels if outcome[u] == f]
        hits = sum(f in names(u) for u in decided)
        # labelled f, and not rightly decided by another filter it also names
        owed = [u for u in labels if f in names(u) and not (right[u] and outcome[u] != f)]
        per[f] = {
            "decided": len(decided),
            "labelled": len(owed),
            "precision": _ratio(hits, len(decided)),
            "recall": _ratio(sum(outcome[u] == f for u in owed), len(owed)),
        }
    keeps = [u for u in labels if outcome[u] == KEEP]
    should_keep = [u for u in labels if labels[u] == KEEP]
    return {
        "rows": len(labels),
        "accuracy": _ratio(sum(right.values()), len(labels)),
        "keep_precision": _ratio(sum(labels[u] == KEEP for u in keeps), len(keeps)),
        "keep_recall": _ratio(sum(outcome[u] == KEEP for u in should_keep), len(should_keep)),
        "drop_precision": _ratio(
            sum(labels[u] != KEEP for u in labels if outcome[u] != KEEP), sum(outcome[u] != KEEP for u in labels)
        ),
        "per_filter": per,
        "wrong": {u: (outcome[u], labels[u]) for u in labels if not right[u]},
    }


def key_audit(kept: list) -> dict:
    """Kept Records whose answer key is suspect: ``string_only``, the verifier
    parses it neither as a number nor as math (only the same string matches it);
    ``contradicted``, the source's own arithmetic (``solution:``) gives another
    value (the ``answer_key`` filter's rule, :func:`key_contradiction`)."""
    from pipeline.curate.filters import formula_value, key_contradiction
    from rewards.equivalence import _plain_value, parse_latex
    from rewards.normalize import normalize

    string_only, contradicted, with_formula = [], [], 0
    for r in kept:
        text = normalize(r.answer).text  # as the verifier reads a reference: 50\\% -> 50 (percent noted)
        if _plain_value(text) is None and parse_latex(text) is None:
            string_only.append(r.uid)
        with_formula += bool(r.solution) and formula_value(r.solution) is not None
        if key_contradiction(r):
            contradicted.append(r.uid)
    return {"kept": len(kept), "with_formula": with_formula, "string_only": string_only, "contradicted": contradicted}
