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

import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np


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
TERMS: dict[str, TermFn] = {}


def register_term(name: str) -> Callable[[TermFn], TermFn]:
    def deco(fn: TermFn) -> TermFn:
        if name in TERMS and TERMS[name] is not fn:
            raise ValueError(f"reward term {name!r} is already registered")
        TERMS[name] = fn
        return fn

    return deco


@register_term("outcome")
def outcome(batch: RolloutScores, *, correct: float = 1.0, incorrect: float = 0.0) -> np.ndarray:
    """The verifier's verdict: ``correct`` for a right final answer, else ``incorrect``."""
    return np.where(batch.correct, correct, incorrect).astype(float)


def _params(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k != "weight"}


def validate_terms(terms: dict) -> None:
    """Raise ValueError naming the problem if ``terms`` is not a valid term config."""
    if not isinstance(terms, dict) or not terms:
        raise ValueError("expected a non-empty mapping of term name -> {weight, ...params}")
    for name, spec in terms.items():
        if name not in TERMS:
            raise ValueError(f"unknown reward term {name!r}; known: {sorted(TERMS)}")
        spec = spec if spec is not None else {}
        if not isinstance(spec, dict):
            raise ValueError(f"{name}: expected a mapping like {{weight: 1.0}}, got {spec!r}")
        w = spec.get("weight", 1.0)
        if isinstance(w, bool) or not isinstance(w, (int, float)):
            raise ValueError(f"{name}.weight must be a number, got {w!r}")
        sig = inspect.signature(TERMS[name])
        accepted = [p for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY]
        unknown = sorted(set(_params(spec)) - {p.name for p in accepted})
        if unknown:
            raise ValueError(f"{name}: unknown parameter(s) {unknown}; accepted: {[p.name for p in accepted]}")


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
