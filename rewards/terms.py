"""Reward terms: named pure functions over a scored rollout batch, composed by config.

Every term has one signature::

    term(batch: RolloutScores, **params) -> np.ndarray   # one value per response

and is registered under a name with :func:`register_term`. A config names the
terms and their weights (``{"outcome": {"weight": 1.0}, ...}``); :func:`compose`
sums ``weight * term(batch, **params)`` per response. Both training engines
call :func:`compose`, so a term exists once. Adding a reward idea is adding one
function here.

Group-level terms (solve rates, length penalties relative to the group) see the
whole batch: ``group`` says which prompt each response answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from data.registry import Registry


@dataclass
class RolloutScores:
    """What a reward term may look at, for B responses to B/K prompts."""

    correct: np.ndarray  # (B,) bool: the verifier's outcome
    response_length: np.ndarray  # (B,) int: generated tokens
    group: np.ndarray  # (B,) int: which prompt each response answers
    group_size: int  # K responses per prompt
    max_response_length: int  # the generation budget N
    truncated: np.ndarray | None = None  # (B,) bool: hit the budget without stopping

    def __post_init__(self) -> None:
        self.correct = np.asarray(self.correct, dtype=bool)
        self.response_length = np.asarray(self.response_length, dtype=np.int64)
        self.group = np.asarray(self.group)
        n = len(self.correct)
        if len(self.response_length) != n or len(self.group) != n:
            raise ValueError("correct, response_length and group must have one entry per response")
        self.truncated = np.zeros(n, dtype=bool) if self.truncated is None else np.asarray(self.truncated, dtype=bool)

    def group_mean(self, values: np.ndarray) -> np.ndarray:
        """Per response, the mean of ``values`` over its group."""
        _, inverse = np.unique(self.group, return_inverse=True)
        sums = np.bincount(inverse, weights=values.astype(float))
        counts = np.bincount(inverse)
        return (sums / counts)[inverse]


TermFn = Callable[..., np.ndarray]
TERMS = Registry("reward term", inputs=1)  # name -> fn(batch, *, **params) -> one value per response
register_term = TERMS.register


@register_term("outcome")
def outcome(batch: RolloutScores, *, correct: float = 1.0, incorrect: float = 0.0) -> np.ndarray:
    """The verifier's verdict: ``correct`` for a right final answer, else ``incorrect``."""
    return np.where(batch.correct, correct, incorrect).astype(float)


def outcome_scores(spec: dict | None) -> tuple[float, float]:
    """The weighted ``outcome`` term for a right and for a wrong answer, e.g. for a scorer that
    sees one response at a time (verl's reward function, a self-correction turn)."""
    spec = spec or {}
    right, wrong = outcome(SimpleNamespace(correct=np.array([True, False])), **_params(spec))
    weight = float(spec.get("weight", 1.0))
    return weight * float(right), weight * float(wrong)


def solve_rate(batch: RolloutScores) -> np.ndarray:
    """Per response, the share of its group's K responses that are correct: the
    online difficulty of its prompt under the current policy (ALP's p_solved)."""
    return batch.group_mean(batch.correct.astype(float))


@register_term("alp")
def adaptive_length_penalty(batch: RolloutScores, *, beta: float = 0.5, budget: int | None = None) -> np.ndarray:
    """ALP ("Just Enough Thinking", arXiv 2506.05256): ``-(beta / N) * max(p, 1/K) * |y|``.

    ``p`` is the prompt's online solve rate over its K responses, ``|y|`` the
    response's tokens and ``N`` the generation budget (``budget``, default the
    batch's). Easy prompts (p near 1) pay the full per-token price, prompts no
    response solved pay 1/K of it; correct and incorrect responses alike. With
    ``outcome`` at weight 1, a correct and an incorrect response of the same
    length differ by exactly 1. The paper's beta (1e-7) goes with another length
    normaliser; here ``beta`` is the price of a full-budget response at p = 1."""
    beta = _number("beta", beta)
    n = _number("budget", budget, 1) if budget is not None else float(batch.max_response_length)
    p = np.maximum(solve_rate(batch), 1.0 / batch.group_size)
    return -(beta / n) * p * batch.response_length


@register_term("overlong")
def soft_overlong_punishment(batch: RolloutScores, *, cache: int = 256, budget: int | None = None) -> np.ndarray:
    """DAPO's soft overlong punishment, the fixed-budget baseline: 0 up to
    ``N - cache`` tokens, then falling linearly to -1 at the budget ``N``; -1 for a
    response cut off by the budget (truncated)."""
    cache = _number("cache", cache, 1)
    n = _number("budget", budget, 1) if budget is not None else float(batch.max_response_length)
    start = n - cache
    length = batch.response_length.astype(float)
    pen = np.where(length <= start, 0.0, (start - length) / cache)
    pen = np.clip(pen, -1.0, 0.0)
    return np.where(batch.truncated | (length > n), -1.0, pen)


@register_term("length")
def uniform_length_penalty(
    batch: RolloutScores, *, alpha: float = 0.5, correct_only: bool = False, budget: int | None = None
) -> np.ndarray:
    """A uniform length penalty, the non-adaptive baseline: ``-alpha * |y| / N`` for
    every response (or only the correct ones), whatever the prompt's difficulty."""
    alpha = _number("alpha", alpha)
    n = _number("budget", budget, 1) if budget is not None else float(batch.max_response_length)
    pen = -alpha * batch.response_length / n
    return np.where(batch.correct, pen, 0.0) if correct_only else pen


_TRIAL = RolloutScores(
    correct=[True, False, True, True],
    response_length=[3, 8, 5, 8],
    group=[0, 0, 1, 1],
    group_size=2,
    max_response_length=8,
    truncated=[False, True, False, True],
)


def _number(name: str, value, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum:
        raise ValueError(f"{name} must be a number >= {minimum:g}, got {value!r}")
    return float(value)


def _params(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k != "weight"}


def validate_terms(terms: dict) -> None:
    """Raise ValueError naming the problem if ``terms`` is not a valid term config."""
    if not isinstance(terms, dict) or not terms:
        raise ValueError("expected a non-empty mapping of term name -> {weight, ...params}")
    for name, spec in terms.items():
        spec = spec if spec is not None else {}
        if not isinstance(spec, dict):
            raise ValueError(f"{name}: expected a mapping like {{weight: 1.0}}, got {spec!r}")
        TERMS.check(name, _params(spec))
        w = spec.get("weight", 1.0)
        if isinstance(w, bool) or not isinstance(w, (int, float)):
            raise ValueError(f"{name}.weight must be a number, got {w!r}")
        try:  # a trial run on a tiny batch: bad parameter values fail now, not at step 1
            out = np.asarray(TERMS[name](_TRIAL, **_params(spec)), dtype=float)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name}: {e}") from None
        if out.shape != _TRIAL.correct.shape or not np.all(np.isfinite(out)):
            raise ValueError(f"{name}: parameters {_params(spec)} give non-finite or misshapen rewards")


def compose(batch: RolloutScores, terms: dict) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(total, {name: weighted values})``: the summed reward per response and each term's share."""
    validate_terms(terms)
    parts: dict[str, np.ndarray] = {}
    for name, spec in terms.items():
        spec = spec or {}
        values = np.asarray(TERMS[name](batch, **_params(spec)), dtype=float)
        if values.shape != batch.correct.shape:
            raise ValueError(f"reward term {name!r} returned shape {values.shape}, expected {batch.correct.shape}")
        parts[name] = float(spec.get("weight", 1.0)) * values
    total = np.sum(list(parts.values()), axis=0)
    return total, parts
