"""Evaluation metrics over N responses per problem, with bootstrap confidence intervals.

Every metric is first computed per problem, then averaged over problems (in
percent); the confidence interval resamples problems with replacement.

* ``pass@k``: the unbiased estimator of Chen et al. (2021),
  ``1 - C(n-c, k) / C(n, k)`` for ``c`` correct of ``n``; every ``k <= n``.
* ``maj@k``: majority vote over ``k`` responses, answers grouped by the
  verifier's equivalence (``labels``), responses without an answer abstain; the
  problem counts as solved when the winning group is correct.
* ``bon@k``: best-of-k by a verifier score: the highest-scoring response
  (``bon``), or the answer group with the highest summed weight (``wbon``,
  weighted best-of-k; weights are the scores when they are probabilities,
  else their sigmoid, see :func:`vote_weights`).

For ``k < n`` the vote-based figures are expectations over size-``k`` subsets
of the ``n`` responses: exact when there are at most ``max_subsets`` subsets,
otherwise a seeded random sample of that many (seeded per problem, by its key).
Ties go to the group (or response) seen first, as the usual evaluation scripts'
``Counter.most_common`` does, so their published figures reproduce; with
``share_ties`` a tie earns the share of tied candidates that are correct instead.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rewards.self_correction import correction_metrics

AGGREGATIONS = ("last", "min", "product", "mean", "max")


def aggregate_score(x, how: str = "last") -> float:
    """One score from a response's score: a number, or a list of per-step scores
    (a process verifier's) reduced by ``how``: last / min / product / mean / max."""
    if isinstance(x, (int, float, np.floating, np.integer)) and not isinstance(x, bool):
        return float(x)
    if isinstance(x, (list, tuple, np.ndarray)):
        vals = [aggregate_score(v, "last") if isinstance(v, (list, tuple)) else float(v) for v in x]
        if not vals:
            return float("-inf")
        if how == "last":
            return vals[-1]
        if how == "min":
            return min(vals)
        if how == "max":
            return max(vals)
        if how == "product":
            return float(np.prod(vals))
        if how == "mean":
            return float(np.mean(vals))
        raise ValueError(f"unknown aggregation {how!r}; choose from {AGGREGATIONS}")
    raise TypeError(f"a score must be a number or a list of numbers, not {type(x).__name__}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of ``k`` draws (without replacement) from ``n``
    responses, ``c`` of them correct, is correct."""
    if k > n:
        raise ValueError(f"k={k} > n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def vote_ks(n: int) -> list[int]:
    """The k's reported for maj@k / bon@k: powers of two below n, and n."""
    ks = [1 << i for i in range(n.bit_length()) if (1 << i) < n]
    return ks + [n] if n else []


def subsets(n: int, k: int, max_subsets: int, rng: random.Random) -> list[tuple[int, ...]]:
    """All size-k index subsets of range(n) (in order), or ``max_subsets`` random ones."""
    if math.comb(n, k) <= max_subsets:
        return list(itertools.combinations(range(n), k))
    return [tuple(sorted(rng.sample(range(n), k))) for _ in range(max_subsets)]


def _tied_top(totals: dict[int, float]) -> list[int]:
    best = max(totals.values())
    return [g for g, t in totals.items() if math.isclose(t, best, rel_tol=1e-9, abs_tol=1e-12)]


def _vote_totals(labels: Sequence[int], weights: Sequence[float] | None, idx: Sequence[int]):
    """Each answer group's summed weight among responses ``idx`` and its first member; responses
    without an answer (label -1) abstain."""
    total: dict[int, float] = {}
    first: dict[int, int] = {}
    for i in idx:
        g = labels[i]
        if g < 0:
            continue
        total[g] = total.get(g, 0.0) + (1.0 if weights is None else weights[i])
        first.setdefault(g, i)
    return total, first


def vote_winner(labels: Sequence[int], weights: Sequence[float] | None, idx: Sequence[int]) -> int | None:
    """The response that answers for a (weighted) majority vote among ``idx``: the first member
    of the group with the largest total (a tie goes to the group seen first); None when no
    response has an answer."""
    total, first = _vote_totals(labels, weights, idx)
    return min(first[g] for g in _tied_top(total)) if total else None


def vote_credit(
    labels: Sequence[int],
    correct: Sequence[bool],
    weights: Sequence[float] | None,
    idx: Sequence[int],
    share_ties: bool = False,
) -> float:
    """Credit of a (weighted) majority vote among responses ``idx``: 1 if the
    winning answer group is correct, 0 if not. A tie between groups goes to the
    group seen first (as ``Counter.most_common`` in the usual evaluation
    scripts), or with ``share_ties`` earns the share of tied groups that are
    correct (order-free). No answer at all: 0. The first member of a group
    speaks for it (its members are equivalent answers)."""
    if not share_ties:
        winner = vote_winner(labels, weights, idx)
        return 0.0 if winner is None else float(bool(correct[winner]))
    total, first = _vote_totals(labels, weights, idx)
    if not total:
        return 0.0
    tied = _tied_top(total)
    return sum(bool(correct[first[g]]) for g in tied) / len(tied)


def argmax_credit(
    scores: Sequence[float], correct: Sequence[bool], idx: Sequence[int], share_ties: bool = False
) -> float:
    """Credit of picking the top-scored response among ``idx``; a tie goes to the
    earlier response, or with ``share_ties`` is shared."""
    tied = _tied_top({i: scores[i] for i in idx})
    if not share_ties:
        return float(bool(correct[min(tied)]))
    return sum(bool(correct[i]) for i in tied) / len(tied)


@dataclass
class ProblemResult:
    """One problem's N responses as the metrics see them."""

    correct: list[bool]
    labels: list[int] | None = None  # answer groups (see rewards.check.AnswerGroups)
    scores: list[float] | None = None  # verifier scores, already aggregated per response
    weights: list[float] | None = None  # weighted-vote weights (>= 0); default: the scores
    lengths: list[int] | None = None  # response lengths (tokens)
    correct_t2: list[bool] | None = None  # second attempt (self-correction), same order
    key: str = ""  # a stable name (benchmark/id): seeds its subset sample the same wherever it is summarised
    extra: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.correct)


def problem_metrics(
    p: ProblemResult, max_subsets: int = 256, seed: int = 0, share_ties: bool = False
) -> dict[str, float]:
    """Every metric for one problem, as fractions in [0, 1] (None-free)."""
    n, c = p.n, int(sum(p.correct))
    out: dict[str, float] = {}
    if n == 0:
        raise ValueError("a problem with no responses")
    if p.scores is not None and not all(math.isfinite(x) for x in p.scores):
        raise ValueError(f"non-finite verifier scores {p.scores}")
    if p.correct_t2 is not None and len(p.correct_t2) != n:
        raise ValueError(f"{len(p.correct_t2)} second attempts for {n} first attempts")
    for k in range(1, n + 1):
        out[f"pass@{k}"] = pass_at_k(n, c, k)
    rng = random.Random(seed)
    for k in vote_ks(n):
        subs = subsets(n, k, max_subsets, rng)
        if p.labels is not None:
            out[f"maj@{k}"] = float(np.mean([vote_credit(p.labels, p.correct, None, s, share_ties) for s in subs]))
        if p.scores is not None:
            out[f"bon@{k}"] = float(np.mean([argmax_credit(p.scores, p.correct, s, share_ties) for s in subs]))
            w = p.weights if p.weights is not None else p.scores
            if p.labels is not None and min(w) >= 0:  # summing needs non-negative weights
                out[f"wbon@{k}"] = float(np.mean([vote_credit(p.labels, p.correct, w, s, share_ties) for s in subs]))
    if p.correct_t2 is not None:
        out.update(correction_metrics(p.correct, p.correct_t2))
    return out


def bootstrap_ci(values: np.ndarray, resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> np.ndarray:
    """Percentile intervals of the mean of each column of ``values`` (problems x
    metrics), resampling problems with replacement: ``(metrics, 2)``."""
    values = np.asarray(values, float)
    if values.ndim == 1:
        values = values[:, None]
    P = values.shape[0]
    if P == 0 or resamples <= 0:
        return np.full((values.shape[1], 2), np.nan)
    rng = np.random.default_rng(seed)
    means = np.empty((resamples, values.shape[1]))
    for s in range(0, resamples, 256):  # bounded memory on large sets
        idx = rng.integers(0, P, size=(min(256, resamples - s), P))
        means[s : s + len(idx)] = values[idx].mean(axis=1)
    lo, hi = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    return np.quantile(means, [lo, hi], axis=0).T


def problem_table(
    problems: Sequence[ProblemResult], *, max_subsets: int = 256, seed: int = 0, share_ties: bool = False
) -> list[dict]:
    """:func:`problem_metrics` of each problem, its subset sample seeded by its key."""
    return [problem_metrics(p, max_subsets, _seed(seed, p.key or str(i)), share_ties) for i, p in enumerate(problems)]


def summarize(
    problems: Sequence[ProblemResult],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    max_subsets: int = 256,
    seed: int = 0,
    share_ties: bool = False,
    per: Sequence[dict] | None = None,
) -> dict:
    """Mean of every per-problem metric in percent, with bootstrap intervals:
    ``{"metrics": {name: value}, "ci": {name: [lo, hi]}, ...}`` plus length figures.
    ``per``: the problems' :func:`problem_table`, when already computed (a report
    summarises each problem overall and again in its benchmark)."""
    if per is None:
        per = problem_table(problems, max_subsets=max_subsets, seed=seed, share_ties=share_ties)
    names = _common_keys(per)
    values = np.array([[m[k] for k in names] for m in per], float) if per else np.zeros((0, len(names)))
    means = values.mean(axis=0) * 100 if len(values) else np.full(len(names), np.nan)
    ci = bootstrap_ci(values, resamples, confidence, seed) * 100
    dropped = sorted(set().union(*per) - set(names), key=_metric_order) if per else []
    out = {
        "problems": len(problems),
        "responses": int(sum(p.n for p in problems)),
        "metrics": {k: round(float(v), 4) for k, v in zip(names, means)},
        "ci": {k: None if np.isnan(a) else [round(float(a), 4), round(float(b), 4)] for k, (a, b) in zip(names, ci)},
        "confidence": confidence,
    }
    if dropped:  # e.g. problems with different n, or negative scores for the weighted vote
        out["not_reported"] = {
            "metrics": dropped,
            "why": "not defined for every problem (different n per "
            "problem, missing second attempts, or negative scores for the weighted vote)",
        }
    out.update(length_stats(problems))
    return out


def vote_weights(problems: Sequence[ProblemResult]) -> str:
    """Set each problem's weighted-vote weights from its scores: the scores as they
    are when every score of the run lies in [0, 1] (probabilities), else their
    sigmoid (reward-model logits, which can be negative and would not add up).
    Returns which it was: ``"scores"`` or ``"sigmoid"``."""
    scored = [p for p in problems if p.scores]
    raw = all(0.0 <= x <= 1.0 for p in scored for x in p.scores)
    for p in scored:
        p.weights = list(p.scores) if raw else [1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x)))) for x in p.scores]
    return "scores" if raw else "sigmoid"


def _seed(seed: int, key: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "little")


def _metric_order(k: str) -> tuple:
    order = {"pass": 0, "maj": 1, "bon": 2, "wbon": 3}
    head, _, tail = k.partition("@")
    return (order.get(head, 9), int(tail) if tail.isdigit() else 0, k)


def _common_keys(per: list[dict]) -> list[str]:
    """Metric names every problem has (problems with different N share pass@k for k
    up to the smallest N), in a stable, readable order."""
    if not per:
        return []
    keys = set(per[0])
    for m in per[1:]:
        keys &= set(m)
    return sorted(keys, key=_metric_order)


def length_stats(problems: Sequence[ProblemResult], bins: int = 5) -> dict:
    """Mean response length, correct answers per 1k tokens, and accuracy by length
    quantile bin (the data behind the accuracy-vs-length plot)."""
    pairs = [(L, c) for p in problems if p.lengths is not None for L, c in zip(p.lengths, p.correct)]
    if not pairs:
        return {}
    lengths = np.array([L for L, _ in pairs], float)
    correct = np.array([c for _, c in pairs], float)
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, bins + 1)))
    by_bin = []
    for i in range(max(1, len(edges) - 1)):
        lo, hi = (edges[i], edges[i + 1]) if len(edges) > 1 else (edges[0], edges[0])
        sel = (lengths >= lo) & ((lengths <= hi) if i == len(edges) - 2 or len(edges) == 1 else (lengths < hi))
        if sel.any():
            by_bin.append(
                {
                    "min_tokens": float(lo),
                    "max_tokens": float(hi),
                    "responses": int(sel.sum()),
                    "acc": round(float(correct[sel].mean() * 100), 4),
                }
            )
    return {
        "mean_tokens": round(float(lengths.mean()), 2),
        "correct_per_1k_tokens": round(float(correct.sum() / lengths.sum() * 1000), 4) if lengths.sum() else None,
        "acc_by_length": by_bin,
    }
