"""Monte Carlo progress estimation: the prover's success before and after each step.

For every response, :class:`ProgressEstimator` cuts it into steps
(:func:`rewards.progress.step_ends`), then estimates the prover's value at each
step boundary by sampling ``mc_rollouts`` prover continuations from the prefix
and verifying them:

* ``continue`` (PAV): the prover completes the solution from the prefix;
* ``answer_now`` (MRT): ``answer_now_text`` is appended and the prover must
  answer within ``answer_tokens``.

The value before the first step and after the last need no sampling when they
are known: the policy's group solve rate (when the prover is the policy) and the
response's own outcome. Identical prefixes (responses that begin alike) are
sampled once. A best-of-K prover's value is estimated without bias from the
counts, ``1 - C(M-c, K) / C(M, K)`` (:func:`rewards.progress.best_of_k_from_counts`);
the start value taken from the policy's own group leaves the response itself out.

The same estimator labels data for the PAV model (:mod:`pipeline.train.pav`),
which then predicts the values in one forward pass instead.

The verl engine's ``progress`` agent loop (:mod:`pipeline.train.verl_agent_loop`)
estimates one rollout at a time through verl's rollout servers with the same
pieces: :class:`StepSegmenter`, :func:`prefix_cuts`, :func:`prover_input`,
:func:`prover_room`, :func:`prover_text` and :func:`step_values`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pipeline.config import ConfigError, ProgressConfig
from pipeline.models.rollout import HFRollout, Sampling
from rewards.progress import best_of_k_from_counts, progress_bonus, step_ends, step_progress, token_step_ends


@dataclass
class ProgressResult:
    """Per response: token step ends, the H+1 prover values, the H progress values."""

    ends: list[list[int]]
    values: list[np.ndarray]
    mc_rollouts: int = 0  # prover continuations sampled
    mc_tokens: int = 0  # tokens they generated
    prefixes: int = 0  # distinct prefixes sampled from
    seconds: float = 0.0
    progress: list[np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        self.progress = [step_progress(v) for v in self.values]

    def bonus(self, width: int, alpha: float) -> np.ndarray:
        """(B, width) per-token bonus: ``alpha * progress_h`` on step h's tokens."""
        return (
            np.stack([progress_bonus(e, p, width, alpha) for e, p in zip(self.ends, self.progress)])
            if self.ends
            else np.zeros((0, width), dtype=np.float32)
        )

    def summary(self) -> dict:
        flat = np.concatenate(self.progress) if self.progress else np.zeros(0)
        return {
            "progress/mean": float(flat.mean()) if flat.size else 0.0,
            "progress/negative": float((flat < 0).mean()) if flat.size else 0.0,
            "progress/steps": float(np.mean([len(e) for e in self.ends])) if self.ends else 0.0,
            "progress/mc_rollouts": self.mc_rollouts,
            "progress/mc_tokens": self.mc_tokens,
            "progress/time": self.seconds,
        }


class TokenPieces:
    """Each token id's text as it reads inside a sequence, cached: character offsets
    of a token sequence.

    A token is decoded after a fixed anchor token and the anchor's own text cut
    off: SentencePiece tokenizers drop a word's leading space when the word
    decodes on its own (``"▁Wait"`` reads ``"Wait"``), which would glue words
    together ("But wait" would read "Butwait") and hide episode markers."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self._cache: dict[int, tuple[str, str]] = {}  # id -> (text on its own, text inside a sequence)
        ids = tokenizer("a", add_special_tokens=False)["input_ids"]
        self._anchor = ids[-1:] if ids else []
        self._anchor_text = self._decode([self._anchor])[0] if ids else ""

    def _decode(self, seqs):
        return self.tok.batch_decode(seqs, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def __call__(self, ids: Sequence[int]) -> list[str]:
        missing = sorted({int(i) for i in ids} - self._cache.keys())
        if missing:
            alone = self._decode([[i] for i in missing])
            after = self._decode([self._anchor + [i] for i in missing])
            for i, a, b in zip(missing, alone, after):
                inside = b[len(self._anchor_text) :] if self._anchor and b.startswith(self._anchor_text) else a
                self._cache[i] = (a, inside)
        # the first token reads as it does at the start of a decoded sequence
        return [self._cache[int(i)][k > 0] for k, i in enumerate(ids)]


class StepSegmenter:
    """Token step ends of a response, by the config's split rule."""

    def __init__(self, cfg: ProgressConfig, tokenizer):
        self.cfg = cfg
        self.pieces = TokenPieces(tokenizer)

    def __call__(self, response: Sequence[int]) -> list[int]:
        pieces = self.pieces(response)
        c = self.cfg
        chars = step_ends(
            "".join(pieces), c.split, markers=c.markers, max_steps=c.max_steps, episodes_per_step=c.episodes_per_step
        )
        return token_step_ends(pieces, chars)


def prefix_cuts(ends: Sequence[int]) -> list[int]:
    """Token counts of the prefixes the prover is sampled from: before each step (after
    the last step the response's own verdict is the value)."""
    return [0, *ends][:-1]


def forced_ids(cfg: ProgressConfig, tokenizer) -> list[int]:
    """Tokens appended to a prefix before the prover continues (``answer_now``: the answer cue)."""
    return tokenizer(cfg.answer_now_text, add_special_tokens=False)["input_ids"] if cfg.mode == "answer_now" else []


def prover_input(prompt: Sequence[int], prefix: Sequence[int], forced: Sequence[int]) -> list[int]:
    """What the prover continues: the prompt, the response prefix, the forced tokens."""
    return list(prompt) + list(prefix) + list(forced)


def prover_room(cfg: ProgressConfig, budget: int, cut: int) -> int:
    """The prover's generation budget after a prefix of ``cut`` tokens: ``answer_tokens``
    (answer_now), else what is left of the policy's own budget."""
    return cfg.answer_tokens if cfg.mode == "answer_now" else max(1, budget - cut)


def prover_text(tokenizer, prefix: Sequence[int], forced: Sequence[int], continuation: Sequence[int]) -> str:
    """The solution the verifier judges: the prefix, the forced tokens and the prover's continuation."""
    return tokenizer.decode(list(prefix) + list(forced) + list(continuation), skip_special_tokens=True)


def step_values(successes: Sequence[float], draws: Sequence[float] | float, outcome: float, k: int) -> np.ndarray:
    """The H+1 values of a best-of-``k`` prover: before each of the H steps, its success
    estimated from ``successes`` correct of ``draws`` samples (unbiased, see
    :func:`rewards.progress.best_of_k_from_counts`), then the response's own outcome
    after the last step (exact: the response is what it is)."""
    before = best_of_k_from_counts(np.asarray(successes, dtype=float), draws, k) if len(successes) else np.zeros(0)
    return np.asarray([*before, float(outcome)], dtype=float)


def leave_one_out(correct: Sequence[bool], group: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per response, (correct, drawn) among the *other* responses of its group: the
    policy's solve counts on the bare prompt without the response being scored,
    whose own outcome would otherwise leak into its start value."""
    c = np.asarray(correct, dtype=float)
    g = np.asarray(group)
    _, inverse, sizes = np.unique(g, return_inverse=True, return_counts=True)
    totals = np.bincount(inverse, weights=c)
    return totals[inverse] - c, sizes[inverse] - 1.0


class ProgressEstimator:
    """Monte Carlo estimates of a prover's success at every step boundary."""

    def __init__(
        self, cfg: ProgressConfig, tokenizer, prover_rollout, verifier, *, max_new_tokens: int, top_p: float = 1.0
    ):
        self.cfg = cfg
        self.tok = tokenizer
        self.rollout = prover_rollout
        self.verifier = verifier
        self.budget = max_new_tokens
        self.top_p = top_p
        self.segment = StepSegmenter(cfg, tokenizer)
        self.forced = forced_ids(cfg, tokenizer)

    def estimate(
        self,
        prompts: Sequence[Sequence[int]],
        responses: Sequence[Sequence[int]],
        gold: Sequence[str],
        *,
        outcomes: Sequence[bool] | None = None,
        start_success: tuple[Sequence[float], Sequence[float]] | None = None,
    ) -> ProgressResult:
        """Values at every step boundary of every response.

        ``outcomes``: the responses' verdicts, used as the value after the last
        step (``continue`` mode). ``start_success``: (correct, drawn) counts of the
        prover on the bare prompt when already known (:func:`leave_one_out` of the
        group when the prover is the sampled policy); otherwise it is sampled too.
        """
        t0 = time.perf_counter()
        c = self.cfg
        ends = [self.segment(r) for r in responses]
        if outcomes is None:
            texts = self.tok.batch_decode([list(r) for r in responses], skip_special_tokens=True)
            outcomes = [v.correct for v in self.verifier.verify_batch(texts, list(gold))]
        # boundaries to sample, keyed by prefix: responses that begin alike share the estimate
        need: dict[tuple, list[tuple[int, int]]] = {}
        for i, e in enumerate(ends):
            for h, cut in enumerate(prefix_cuts(e)):  # after the last step the outcome is known
                if h == 0 and start_success is not None and c.mode == "continue":
                    continue
                need.setdefault((tuple(prompts[i]), tuple(responses[i][:cut]), gold[i]), []).append((i, h))
        success: dict[tuple[int, int], tuple[float, float]] = {}
        mc_tokens = 0
        if need:
            order = list(need)
            room = [prover_room(c, self.budget, len(r)) for _, r, _ in order]  # the policy's own budget each
            hits, mc_tokens = prefix_successes(
                self.rollout,
                self.tok,
                self.verifier,
                order,
                self.forced,
                c.mc_rollouts,
                Sampling(c.temperature, self.top_p, max(room)),
                room,
            )
            for key, h in zip(order, hits):
                for ih in need[key]:
                    success[ih] = (float(h), float(c.mc_rollouts))
        values = []
        for i, e in enumerate(ends):
            if not e:
                values.append(np.zeros(1))
                continue
            counts = [success.get((i, h)) or (start_success[0][i], start_success[1][i]) for h in range(len(e))]
            values.append(step_values([x for x, _ in counts], [m for _, m in counts], outcomes[i], c.prover_k))
        return ProgressResult(
            ends,
            values,
            mc_rollouts=len(need) * c.mc_rollouts,
            mc_tokens=mc_tokens,
            prefixes=len(need),
            seconds=time.perf_counter() - t0,
        )


def prefix_successes(rollout, tokenizer, verifier, keys, forced, m: int, sampling, limits) -> tuple[list[int], int]:
    """The one Monte Carlo loop of progress rewards (step values, PAV labels, MRT's termination
    baseline): for each ``(prompt, response prefix, gold)`` in ``keys``, ``m`` prover
    continuations from the prefix (after the ``forced`` tokens, when answering at once),
    each cut to its ``limits`` entry and verified. Returns (right continuations per key,
    continuation tokens sampled)."""
    groups = rollout.generate([prover_input(p, r, forced) for p, r, _ in keys], m, sampling)
    texts, golds, tokens = [], [], 0
    for (_, r, g), conts, limit in zip(keys, groups, limits, strict=True):
        for cont in conts:
            cont = list(cont)[:limit]
            tokens += len(cont)
            texts.append(prover_text(tokenizer, r, forced, cont))
            golds.append(g)
    verdicts = verifier.verify_batch(texts, golds)
    return [sum(v.correct for v in verdicts[j * m : (j + 1) * m]) for j in range(len(keys))], tokens


@dataclass
class TerminationResult:
    """Per response: where it was cut (tokens) and the policy's success answering at once there."""

    cuts: np.ndarray  # (B,) prefix length in tokens
    success: np.ndarray  # (B,) share of the answer-now completions that were right
    rollouts: int = 0
    seconds: float = 0.0

    def summary(self) -> dict:
        return {
            "termination/success": float(self.success.mean()) if len(self.success) else 0.0,
            "termination/cut_tokens": float(self.cuts.mean()) if len(self.cuts) else 0.0,
            "termination/rollouts": self.rollouts,
            "termination/time": self.seconds,
        }


class TerminationBaseline:
    """MRT's termination baseline: each response is cut after a random number of its
    steps (episodes with ``split: episodes``; 0 to H-1, so the cut leaves at least
    one step), the policy itself is made to answer at once from that prefix
    (``answer_now_text``, ``answer_tokens``; ``mc_rollouts`` samples) and their
    success rate is what "terminate here" is worth. The tokens after the cut are then
    trained on ``R - R_termination`` (:func:`termination_advantages`): continuing vs
    terminating at the same prefix, a baseline that depends only on tokens before
    the ones it scores."""

    def __init__(self, cfg: ProgressConfig, tokenizer, policy_rollout, verifier, *, top_p: float = 1.0, seed: int = 0):
        self.cfg, self.tok, self.rollout, self.verifier, self.top_p = cfg, tokenizer, policy_rollout, verifier, top_p
        self.segment = StepSegmenter(cfg, tokenizer)
        self.forced = tokenizer(cfg.answer_now_text, add_special_tokens=False)["input_ids"]
        self.rng = np.random.default_rng(seed)

    def estimate(self, prompts, responses, gold) -> TerminationResult:
        t0 = time.perf_counter()
        c = self.cfg
        cuts = np.asarray(
            [int(self.rng.choice(prefix_cuts(e))) if e else 0 for e in (self.segment(r) for r in responses)],
            dtype=np.int64,
        )
        need: dict[tuple, list[int]] = {}
        for i, cut in enumerate(cuts):
            need.setdefault((tuple(prompts[i]), tuple(responses[i][:cut]), gold[i]), []).append(i)
        order = list(need)
        hits, _ = prefix_successes(
            self.rollout,
            self.tok,
            self.verifier,
            order,
            self.forced,
            c.mc_rollouts,
            Sampling(c.temperature, self.top_p, c.answer_tokens),
            [c.answer_tokens] * len(order),
        )
        success = np.zeros(len(responses))
        for key, h in zip(order, hits):
            success[need[key]] = h / c.mc_rollouts
        return TerminationResult(cuts, success, rollouts=len(order) * c.mc_rollouts, seconds=time.perf_counter() - t0)


def load_prover(
    path: str, policy_tokenizer, *, device: str = "auto", dtype: str = "float32", max_batch: int = 256
) -> HFRollout:
    """A fixed prover model (``progress.prover_model``) behind the rollout interface;
    it must share the policy's tokenizer, since prefixes are token ids."""
    from pipeline.models.policy import load_policy

    model, tok = load_policy(path, device=device, dtype=dtype)
    if tok.get_vocab() != policy_tokenizer.get_vocab():
        raise ConfigError(f"progress.prover_model {path!r} has another tokenizer than the policy")
    return HFRollout(model.eval().requires_grad_(False), tok, max_batch)
