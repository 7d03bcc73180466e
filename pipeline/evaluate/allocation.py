"""Compute-optimal allocation of test-time compute (Snell et al. 2024, arXiv 2408.03314):
estimate each question's difficulty without the answer, bin the questions by it, and give
each bin the search strategy that a held-out split showed best at the same budget.

    edges = bin_edges(difficulty_on_heldout, bins=3)
    table = fit_allocation(correct_on_heldout, tokens_on_heldout, assign(difficulty_on_heldout, edges))
    acc, tokens = apply_allocation(table, assign(difficulty_on_test, edges), correct_on_test, tokens_on_test)

``correct`` and ``tokens`` map a strategy name to per-question arrays (the pick's verdict,
the tokens generated for the question). Difficulty is verifier-free: here the process
verifier's value of the bare question (:func:`question_values`: its predicted chance that
the policy solves it), so estimating it costs one forward pass per question.

From finished search runs (``evaluate --search ... --budget ...`` on the same problems),
:func:`compare_runs` gives every run's accuracy and tokens, overall and on the hardest
bin, and per budget the adaptive choice, each half of the problems allocated by the other
half (so no problem picks its own strategy); ``rl-pipeline allocate`` writes it as a
report with the accuracy-vs-tokens plot.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from data.io import InputError


def bin_edges(difficulty: Sequence[float], bins: int) -> np.ndarray:
    """Quantile edges that cut ``difficulty`` into ``bins`` groups of about equal size."""
    if bins < 1:
        raise ValueError("bins must be >= 1")
    d = np.asarray(difficulty, dtype=float)
    if not d.size:
        raise ValueError("no difficulty values to bin")
    return np.quantile(d, np.linspace(0, 1, bins + 1)[1:-1])


def assign(difficulty: Sequence[float], edges: Sequence[float]) -> np.ndarray:
    """Bin index (0 = easiest ... len(edges) = hardest) of each difficulty value."""
    return np.searchsorted(np.asarray(edges, dtype=float), np.asarray(difficulty, dtype=float), side="right")


def fit_allocation(
    correct: Mapping[str, Sequence[bool]], tokens: Mapping[str, Sequence[float]], bins: Sequence[int]
) -> dict[int, str]:
    """Per bin, the strategy with the highest accuracy on these questions; a tie goes to the one
    that spent fewer tokens, then to the first named. Bins without questions are left out."""
    if not correct:
        raise ValueError("no strategies to choose from")
    b = np.asarray(bins)
    n = len(b)
    for name in correct:
        if len(correct[name]) != n or len(tokens[name]) != n:
            raise ValueError(f"strategy {name!r}: expected {n} questions")
    table: dict[int, str] = {}
    for k in sorted(set(b.tolist())):
        rows = b == k
        ranked = sorted(
            correct,
            key=lambda s: (-float(np.mean(np.asarray(correct[s])[rows])), float(np.mean(np.asarray(tokens[s])[rows]))),
        )
        table[int(k)] = ranked[0]
    return table


def apply_allocation(
    table: Mapping[int, str],
    bins: Sequence[int],
    correct: Mapping[str, Sequence[bool]],
    tokens: Mapping[str, Sequence[float]],
    *,
    fallback: str | None = None,
) -> tuple[float, float]:
    """(accuracy, mean tokens per question) when each question gets its bin's strategy (a bin
    the table lacks gets ``fallback``, else the strategy the table uses most)."""
    if not table and fallback is None:
        raise ValueError("an empty allocation needs a fallback strategy")
    default = fallback or max(set(table.values()), key=list(table.values()).count)
    picks = [table.get(int(k), default) for k in bins]
    acc = [bool(correct[s][i]) for i, s in enumerate(picks)]
    spent = [float(tokens[s][i]) for i, s in enumerate(picks)]
    return float(np.mean(acc)) if acc else 0.0, float(np.mean(spent)) if spent else 0.0


def question_values(scorer, prompts: Sequence[Sequence[int]]) -> np.ndarray:
    """A process verifier's value of each bare question (before any step): the predicted
    chance of solving it. ``scorer``: a :class:`pipeline.evaluate.scoring.PAVStepScorer`; its
    process verifier's values (``mu``) are read, as ``rl-pipeline allocate`` reads them."""
    from pipeline.models.value_model import predict_values

    values = predict_values(scorer.mu, scorer.pad, prompts, [[] for _ in prompts], [[] for _ in prompts])
    return np.asarray([float(v[0]) for v in values])


def run_picks(run: Path) -> dict:
    """One finished search run: its name (``beam@16/M4``: strategy, budget, beam width; a step
    scorer other than the default pav is named after it: ``beam@16/M4:likelihood``), and per
    problem (in the run's order) its id, whether the search's pick is right and the tokens the
    search generated."""
    run = Path(run)
    try:
        report = json.loads((run / "report.json").read_text())
        graded = [json.loads(x) for x in (run / "graded.jsonl").read_text().splitlines()]
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{run}: not a finished evaluate run ({e})") from None
    search = report.get("search")
    if not search:
        raise InputError(f"{run}: not a search run (evaluate --search ...)")
    spent, questions = {}, {}
    for f in sorted((run / "generations").glob("*.jsonl")):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            spent[(r["benchmark"], str(r["id"]))] = r["search"]["generated_tokens"]
            questions[(r["benchmark"], str(r["id"]))] = r["question"]
    from pipeline.evaluate.metrics import ProblemResult, argmax_credit, vote_credit, vote_weights

    results = [ProblemResult(correct=g["correct"], labels=g["group"], scores=g["scores"]) for g in graded]
    vote_weights(results)  # the weighted vote's weights, as the report's wbon took them
    right, tokens, ids = [], [], []
    for g, res in zip(graded, results):
        every = range(res.n)
        if search["strategy"] == "weighted_bon":
            right.append(vote_credit(res.labels, res.correct, res.weights, every) == 1.0)
        else:
            right.append(argmax_credit(res.scores, res.correct, every) == 1.0)
        key = (g["benchmark"], str(g["id"]))
        ids.append(key)
        tokens.append(spent[key])
    settings = report.get("settings", {})
    width, scorer = search.get("beam_width"), search.get("scorer", "pav")
    return {
        "name": f"{search['strategy']}@{search['budget']}"
        + (f"/M{width}" if width else "")
        + (f":{scorer}" if scorer != "pav" else ""),
        "beam_width": width,
        "scorer": scorer,
        "strategy": search["strategy"],
        "budget": search["budget"],
        "ids": ids,
        "correct": np.asarray(right, dtype=bool),
        "tokens": np.asarray(tokens, dtype=float),
        "questions": [questions[k] for k in ids],
        "instruction": settings.get("instruction", ""),
        "system_prompt": settings.get("system_prompt"),
    }


def compare_runs(runs: Sequence[dict], difficulty: Sequence[float], bins: int = 3) -> dict:
    """Every run's accuracy and mean tokens (overall and on the hardest bin), and per budget
    the cross-fitted adaptive allocation over that budget's strategies. ``runs``: from
    :func:`run_picks`, all on the same problems in the same order; ``difficulty`` per problem."""
    if not runs:
        raise InputError("no runs to compare")
    ids = runs[0]["ids"]
    names = [r["name"] for r in runs]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise InputError(
            f"two runs share a strategy, budget, width and step scorer ({', '.join(twice)}): give each setting once"
        )
    for r in runs[1:]:
        if r["ids"] != ids:
            raise InputError(f"{r['name']} was run on other problems than {runs[0]['name']}: compare runs of one split")
    hard = np.asarray(difficulty, dtype=float)
    if len(hard) != len(ids):
        raise ValueError(f"{len(hard)} difficulty values for {len(ids)} problems")
    hardest = assign(hard, bin_edges(hard, bins)) == bins - 1
    out: dict = {"problems": len(ids), "bins": bins, "runs": {}, "adaptive": {}}
    for r in runs:
        out["runs"][r["name"]] = {
            "strategy": r["strategy"],
            "budget": r["budget"],
            "scorer": r.get("scorer", "pav"),
            "acc": float(r["correct"].mean()),
            "tokens": float(r["tokens"].mean()),
            "acc_hardest": float(r["correct"][hardest].mean()) if hardest.any() else None,
            "tokens_hardest": float(r["tokens"][hardest].mean()) if hardest.any() else None,
        }
    for budget in sorted({r["budget"] for r in runs}):
        mine = {r["name"]: r for r in runs if r["budget"] == budget}  # a strategy at several widths competes too
        if len(mine) < 2 or len(ids) < 2 * bins:
            continue
        correct, tokens = {s: r["correct"] for s, r in mine.items()}, {s: r["tokens"] for s, r in mine.items()}
        out["adaptive"][str(budget)] = _cross_fit(correct, tokens, hard, bins)
        edges = bin_edges(hard, bins)  # the table to apply to new problems: fitted on all of these
        table = fit_allocation(correct, tokens, assign(hard, edges))
        out["adaptive"][str(budget)]["apply"] = {
            "edges": [float(e) for e in edges],
            "choices": {
                str(k): {
                    "run": name,
                    "strategy": mine[name]["strategy"],
                    "beam_width": mine[name].get("beam_width"),
                    "scorer": mine[name].get("scorer", "pav"),
                }
                for k, name in table.items()
            },
        }
    return out


def load_allocation(path: str | Path, budget: int) -> dict:
    """The allocation ``rl-pipeline allocate`` fitted at ``budget`` (its ``comparison.json``):
    ``{"edges": [...], "choices": {bin: {"run", "strategy", "beam_width"}}}``."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(
            f"search.allocation {path}: cannot read it ({e}); write it with rl-pipeline allocate"
        ) from None
    fitted = (result.get("adaptive") or {}) if isinstance(result, dict) else {}
    if str(budget) not in fitted or "apply" not in fitted[str(budget)]:
        have = ", ".join(sorted(fitted, key=int)) or "none"
        raise InputError(f"search.allocation {path} has no allocation at budget {budget} (budgets: {have})")
    return fitted[str(budget)]["apply"]


def _cross_fit(correct: dict, tokens: dict, hard: np.ndarray, bins: int) -> dict:
    """Two folds (even / odd problems): each fold allocated by the table fitted on the other."""
    idx = np.arange(len(hard))
    right, spent, tables = 0.0, 0.0, []
    for fit_fold in (0, 1):
        fit, test = idx % 2 == fit_fold, idx % 2 != fit_fold
        edges = bin_edges(hard[fit], bins)
        table = fit_allocation(
            {s: c[fit] for s, c in correct.items()}, {s: t[fit] for s, t in tokens.items()}, assign(hard[fit], edges)
        )
        acc, mean_tokens = apply_allocation(
            table,
            assign(hard[test], edges),
            {s: c[test] for s, c in correct.items()},
            {s: t[test] for s, t in tokens.items()},
        )
        right += acc * test.sum()
        spent += mean_tokens * test.sum()
        tables.append({"edges": [float(e) for e in edges], "strategies": {str(k): v for k, v in table.items()}})
    return {"acc": right / len(hard), "tokens": spent / len(hard), "folds": tables}


def run_difficulty(run: dict, process_verifier: str, *, device: str = "auto") -> np.ndarray:
    """1 - the process verifier's value of each bare question of ``run`` (from :func:`run_picks`),
    put to it as generation put it to the policy (the run's instruction and system prompt)."""
    from data.formats import prompt_messages
    from pipeline.evaluate.scoring import PAVStepScorer
    from pipeline.models.policy import encode_prompt

    scorer = PAVStepScorer(process_verifier, device=device)
    tok = scorer.tokenizer
    prompts = [
        encode_prompt(tok, prompt_messages(q, run["instruction"] or "", run["system_prompt"])) for q in run["questions"]
    ]
    return 1.0 - question_values(scorer, prompts)


def budget_curves(result: dict) -> dict[str, list[tuple[float, float]]]:
    """Accuracy (%) against tokens, one curve per setting across budgets: a run's name without
    its budget (``beam/M4:likelihood``), and the adaptive choice."""
    curves: dict[str, list[tuple[float, float]]] = {}
    for name, r in result["runs"].items():
        curves.setdefault(re.sub(r"@\d+", "", name, count=1), []).append((r["tokens"], 100 * r["acc"]))
    if result["adaptive"]:
        curves["adaptive"] = [(a["tokens"], 100 * a["acc"]) for a in result["adaptive"].values()]
    return {name: sorted(pts) for name, pts in curves.items()}


def write_comparison(result: dict, out: Path, *, plots: bool = True) -> None:
    """``out/comparison.json``, ``out/report.md`` (one row per run and per adaptive budget) and
    ``out/accuracy_vs_tokens.png`` (one curve per strategy, one for the adaptive choice)."""
    from data.io import atomic_writer, write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "comparison.json", result)
    pct = lambda x: "n/a" if x is None else f"{100 * x:.1f}"  # noqa: E731
    lines = [
        "# Test-time search: accuracy vs generated tokens",
        "",
        f"{result['problems']} problems. Accuracy of each run's pick and the tokens it generated per problem "
        f"(pruned continuations included); 'hardest' is the hardest of {result['bins']} difficulty bins (by the "
        "process verifier's value of the bare question).",
        "",
        "| run | accuracy | tokens | accuracy (hardest) | tokens (hardest) |",
        "|---|---:|---:|---:|---:|",
    ]
    runs = sorted(result["runs"].items(), key=lambda kv: (kv[1]["budget"], kv[1]["strategy"]))
    for name, r in runs:
        hardest = "n/a" if r["tokens_hardest"] is None else f"{r['tokens_hardest']:.0f}"
        lines.append(f"| {name} | {pct(r['acc'])} | {r['tokens']:.0f} | {pct(r['acc_hardest'])} | {hardest} |")
    if result["adaptive"]:
        lines += [
            "",
            "## Adaptive allocation",
            "",
            "Per budget, each half of the problems gets, per difficulty bin (easiest first), the strategy the "
            "other half showed best.",
            "",
            "| budget | accuracy | tokens | strategies per bin (fold 1; fold 2) |",
            "|---:|---:|---:|---|",
        ]
        for budget, a in result["adaptive"].items():
            folds = "; ".join(
                ", ".join(f["strategies"][k] for k in sorted(f["strategies"], key=int)) for f in a["folds"]
            )
            lines.append(f"| {budget} | {pct(a['acc'])} | {a['tokens']:.0f} | {folds} |")
    with atomic_writer(out / "report.md") as f:
        f.write("\n".join(lines) + "\n")
    if plots:
        from pipeline.evaluate.report import plot_curves

        plot_curves(
            budget_curves(result),
            out / "accuracy_vs_tokens.png",
            xlabel="generated tokens per problem",
            ylabel="accuracy of the pick (%)",
            log2_x=True,
        )
