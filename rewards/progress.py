"""Progress-based process rewards (PAV, "Rewarding Progress"; MRT): the pure part.

A response is cut into steps; a prover policy mu's probability of eventually
answering correctly is estimated before and after each step; a step's *progress*
is the change::

    progress_h = V_mu(x, a_1..a_h) - V_mu(x, a_1..a_{h-1})

and the training signal on step h's tokens is the outcome advantage plus
``alpha * progress_h`` (a per-token advantage). This module holds what needs no
model: step segmentation (lines, or MRT's episodes at "Wait"-style markers),
mapping character cuts onto tokens, the best-of-K prover transform, and laying
progress onto tokens. The Monte Carlo estimation of V (which samples from the
prover) is in :mod:`pipeline.models.prover`; a learned predictor of V (the PAV
model) in :mod:`pipeline.models.value_model`. Both engines use these functions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from math import comb

import numpy as np

# MRT's episode openers (a new episode starts at a paragraph beginning with one)
EPISODE_MARKERS = (
    "Wait",
    "But wait",
    "Alternatively",
    "Is there another way to think about this?",
    "But let me double-check",
    "But hold on",
)
SPLITS = ("lines", "episodes")
# MRT's meta-prover cue (analysis/code/pass_at_k_given_prefix.py, apply_stop_template):
# appended to a thinking prefix, it ends the think block and asks for the answer
MRT_STOP_TEMPLATE = (
    "Time is up.\n\nGiven the time I've spent and the approaches I've tried, I should stop thinking "
    "and formulate a final answer based on what I already have.\n</think>\n\n"
    "**Step-by-Step Explanation and Answer:**\n\n1. **"
)


def step_ends(
    text: str,
    split: str = "lines",
    *,
    markers: Sequence[str] = EPISODE_MARKERS,
    max_steps: int | None = None,
    min_gap: int = 2,
    episodes_per_step: int = 1,
) -> list[int]:
    """Character offsets where each step of ``text`` ends (the last is ``len(text)``).

    ``lines``: a step is a line; its newline belongs to it, and blank lines join
    the step before them. ``episodes`` (MRT): paragraphs split on blank lines, and
    a new episode starts at a paragraph opening with one of ``markers``, unless
    the previous cut is ``min_gap`` paragraphs back or fewer; ``episodes_per_step``
    consecutive episodes make one step (MRT's ``group_size``: 3 on AIME, 5 on
    Omni-MATH). With ``max_steps``, steps past the limit join the last one. Empty
    text has no steps.
    """
    if episodes_per_step < 1:
        raise ValueError("episodes_per_step must be >= 1")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if not text:
        return []
    if split == "lines":
        cuts = [m.end() for m in re.finditer(r"\n+", text)]
    else:
        paragraph_starts = [0] + [m.end() for m in re.finditer(r"\n\s*\n", text)]
        cuts, last_cut = [], 0
        opener = tuple(markers)
        for i, start in enumerate(paragraph_starts[1:], 1):
            if text[start:].lstrip().startswith(opener) and i - last_cut > min_gap:
                cuts.append(start)
                last_cut = i
        cuts = cuts[episodes_per_step - 1 :: episodes_per_step]
    cuts = [c for c in cuts if 0 < c < len(text)]
    if max_steps is not None and len(cuts) >= max_steps:
        cuts = cuts[: max(0, max_steps - 1)]
    return cuts + [len(text)]


def token_step_ends(pieces: Sequence[str], char_ends: Sequence[int]) -> list[int]:
    """Map character step ends onto token counts: step h is tokens
    ``[ends[h-1], ends[h])``. ``pieces`` are the tokens' texts, in order; a step
    ends after the token holding its last character. Steps that would be empty
    (two cuts inside one token) are merged."""
    offsets = np.cumsum([len(p) for p in pieces]) if len(pieces) else np.zeros(0, dtype=int)
    out: list[int] = []
    for c in char_ends:
        t = int(np.searchsorted(offsets, c, side="left")) + 1  # tokens needed to cover c characters
        t = min(t, len(pieces))
        if t > (out[-1] if out else 0):
            out.append(t)
    if out:
        out[-1] = len(pieces)  # trailing tokens with no text (EOS) join the last step
    return out


def best_of_k(success: np.ndarray | float, k: int) -> np.ndarray:
    """Success probability of the best-of-K prover (K draws, the verifier picks a
    correct one if any) from the single-draw success probability."""
    if k < 1:
        raise ValueError("k must be >= 1")
    return 1.0 - (1.0 - np.asarray(success, dtype=float)) ** k


def best_of_k_from_counts(successes: Sequence[float] | float, draws: Sequence[float] | float, k: int) -> np.ndarray:
    """The best-of-K prover's success from ``successes`` correct out of ``draws``
    Monte Carlo samples: ``1 - C(M-c, K) / C(M, K)``, the chance that K of the M
    samples drawn without replacement hold a correct one. Unlike
    ``best_of_k(c / M, K)``, which is biased low (``1 - (1 - q)^K`` is concave in
    q), its expectation is exactly ``1 - (1 - q)^K``. Needs ``M >= K``; with fewer
    samples it falls back to the plug-in value."""
    if k < 1:
        raise ValueError("k must be >= 1")
    c = np.atleast_1d(np.asarray(successes, dtype=float))
    m = np.broadcast_to(np.atleast_1d(np.asarray(draws, dtype=float)), c.shape)
    out = np.empty(c.shape, dtype=float)
    for i, (ci, mi) in enumerate(zip(c.round().astype(int), m.round().astype(int))):
        if mi <= 0:
            out[i] = 0.0
        elif mi >= k:
            out[i] = 1.0 - comb(mi - ci, k) / comb(mi, k)
        else:
            out[i] = 1.0 - (1.0 - ci / mi) ** k
    return out if np.ndim(successes) else out.reshape(())


def step_progress(values: Sequence[float]) -> np.ndarray:
    """``values`` = V before the first step, then after each step (H+1 numbers);
    returns the H per-step progress values."""
    v = np.asarray(values, dtype=float)
    return np.diff(v)


def progress_bonus(ends: Sequence[int], progress: Sequence[float], width: int, alpha: float = 1.0) -> np.ndarray:
    """Per-token bonus (``width`` wide): ``alpha * progress_h`` on step h's tokens."""
    out = np.zeros(width, dtype=np.float32)
    start = 0
    for end, p in zip(ends, progress):
        out[start : min(end, width)] = alpha * p
        start = end
    return out
