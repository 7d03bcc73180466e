"""Verifier scores for best-of-N and step scores for test-time search.

Any Hugging Face sequence-classification model with one output (a reward
model) scores each (question, response) pair: the chat with the response as the
assistant's turn, through the model's chat template when it has one. The score
is the first logit. Process verifiers (per-step scores, aggregated by
last/min/product) plug in beside it.

Step scorers (for :mod:`pipeline.evaluate.search`) rate each step of a partial or
complete response: ``scorer(prompts, responses, ends) -> per response, one score per
step`` (token ids; ``ends`` the token step ends). :class:`PAVStepScorer` is PAV's
``Q^pi + alpha * A^mu`` from trained value models; :class:`PrefixScorer` rates each
step by a function of the response up to its end, cached, which gives an ORM at each
step (:func:`reward_model_rater`) and the Monte Carlo prover's success from the prefix
(:class:`MonteCarloRater`, an oracle bound: it checks continuations against the
reference answer). :class:`LikelihoodStepScorer` needs no verifier at all: the policy's own
probability of the path's least likely step.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import torch

from pipeline.models.policy import PolicyLoadError, pick_device


def _load(name_or_path: str, device: str):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name_or_path)
        model = AutoModelForSequenceClassification.from_pretrained(name_or_path)
    except Exception as e:
        raise PolicyLoadError(f"cannot load reward model {name_or_path!r}: {type(e).__name__}: {e}") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model.config.pad_token_id = tok.pad_token_id
    return model.to(pick_device(device)).eval(), tok


_SLOT = "\u2063RESPONSE\u2063"  # stands in for the response while the chat template is rendered


def encode(tok, question: str, response: str, max_tokens: int) -> tuple[list[int], bool]:
    """Token ids of (question, response) as the reward model reads them, and whether
    the response was cut. The response is tokenized on its own with special-token
    strings kept as text (a response cannot close its turn by writing
    ``<|im_end|>``), and cut from the front when too long: its end holds the answer."""
    if getattr(tok, "chat_template", None):
        text = tok.apply_chat_template(
            [{"role": "user", "content": question}, {"role": "assistant", "content": _SLOT}], tokenize=False
        )
        head, _, tail = text.partition(_SLOT)
    else:
        head, tail = f"{question}\n\n", ""
    h = tok(head, add_special_tokens=False)["input_ids"]
    t = tok(tail, add_special_tokens=False)["input_ids"]
    r = tok(response[-200_000:], add_special_tokens=False, split_special_tokens=True)["input_ids"]
    room = max(1, max_tokens - len(h) - len(t))
    return h + r[-room:] + t, len(r) > room


class RewardModel:
    """A loaded reward model: :meth:`score` rates (question, response) pairs, first logit."""

    def __init__(self, name_or_path: str, *, device: str = "auto", batch_size: int = 16, max_tokens: int = 4096):
        self.name = name_or_path
        self.model, self.tok = _load(name_or_path, device)
        self.batch_size, self.max_tokens = batch_size, max_tokens
        self.cut = 0  # responses cut from the front so far

    @torch.no_grad()
    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        dev = next(self.model.parameters()).device
        pad = self.tok.pad_token_id
        scores: list[float] = []
        for s in range(0, len(pairs), self.batch_size):
            enc = [encode(self.tok, q, a, self.max_tokens) for q, a in pairs[s : s + self.batch_size]]
            self.cut += sum(c for _, c in enc)
            L = max(len(ids) for ids, _ in enc)
            ids = torch.full((len(enc), L), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, (x, _) in enumerate(enc):  # right padding: the model pools its last real token
                ids[i, : len(x)] = torch.as_tensor(x)
                mask[i, : len(x)] = 1
            logits = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits
            scores += logits[:, 0].float().tolist()
        if not all(math.isfinite(x) for x in scores):
            raise PolicyLoadError(f"reward model {self.name!r} produced non-finite scores")
        return scores


def reward_model_scores(
    name_or_path: str,
    rows: Sequence[dict],
    *,
    device: str = "auto",
    batch_size: int = 16,
    max_tokens: int = 4096,
    log=None,
) -> list[list[float]]:
    """For each row, one score per response (``rows`` as :func:`grade.load_generations` returns)."""
    rm = RewardModel(name_or_path, device=device, batch_size=batch_size, max_tokens=max_tokens)
    flat = [(r["question"], resp) for r in rows for resp in r["responses"]]
    scores = rm.score(flat)
    if rm.cut and log:
        log(
            f"reward model: {rm.cut} of {len(flat)} responses were longer than {max_tokens} tokens and cut from the front"
        )
    out, i = [], 0
    for r in rows:
        out.append(scores[i : i + len(r["responses"])])
        i += len(r["responses"])
    return out


# ----------------------------------------------------------------------------- step scorers


class PrefixScorer:
    """A step scorer from ``rate(prompts, prefixes) -> one number per prefix``: step h's score
    is the rating of the response up to the end of step h. Ratings are cached by (prompt,
    prefix), so a search that extends a path rates only its new step; :meth:`reset` between
    batches of problems."""

    def __init__(self, rate: Callable[[list[tuple[int, ...]], list[tuple[int, ...]]], list[float]]):
        self.rate = rate
        self.cache: dict[tuple, float] = {}

    def reset(self) -> None:
        self.cache.clear()

    @property
    def sampled_tokens(self) -> int:
        """Tokens the rater has sampled (a Monte Carlo rater's continuations), cache misses only."""
        return int(getattr(self.rate, "sampled_tokens", 0))

    def __call__(self, prompts, responses, ends) -> list[list[float]]:
        keys = [[(tuple(p), tuple(r[:e])) for e in es] for p, r, es in zip(prompts, responses, ends, strict=True)]
        missing = list(dict.fromkeys(k for ks in keys for k in ks if k not in self.cache))
        if missing:
            values = self.rate([k[0] for k in missing], [k[1] for k in missing])
            if len(values) != len(missing):
                raise ValueError(f"a step rater returned {len(values)} values for {len(missing)} prefixes")
            self.cache.update(zip(missing, (float(v) for v in values)))
        return [[self.cache[k] for k in ks] for ks in keys]


def reward_model_rater(rm, tokenizer, questions: dict) -> Callable:
    """An outcome verifier at each step: ``rm.score`` of (question, response so far), for a
    :class:`RewardModel` or a generative verifier. ``questions`` maps a prompt's token ids (a
    tuple) to its question text; the caller fills it."""

    def rate(prompts, prefixes):
        texts = [tokenizer.decode(list(x), skip_special_tokens=True) for x in prefixes]
        return rm.score([(questions[p], t) for p, t in zip(prompts, texts)])

    return rate


class MonteCarloRater:
    """The prover's chance of answering correctly from a prefix, by ``rollouts`` continuations
    checked against the reference answer (an oracle: it knows the answer, so it bounds what a
    learned step scorer could give the search); a finished prefix is rated by its own verdict.
    ``answers`` maps a prompt's token ids (a tuple) to its reference answer; the caller fills it.
    ``ended(tokens)``: whether a prefix is a finished response (the search's own rule)."""

    def __init__(self, rollout, tokenizer, verifier, *, rollouts: int, sampling, max_new_tokens: int, ended):
        self.rollout, self.tok, self.verifier = rollout, tokenizer, verifier
        self.m, self.sampling, self.max_new_tokens, self.ended = rollouts, sampling, max_new_tokens, ended
        self.answers: dict[tuple, str] = {}
        self.sampled_tokens = 0  # continuation tokens sampled

    def __call__(self, prompts, prefixes) -> list[float]:
        from pipeline.models.prover import prefix_successes

        out = [0.0] * len(prompts)
        finished = [i for i, x in enumerate(prefixes) if self.ended(x)]
        if finished:
            texts = [self.tok.decode(list(prefixes[i]), skip_special_tokens=True) for i in finished]
            verdicts = self.verifier.verify_batch(texts, [self.answers[prompts[i]] for i in finished])
            for i, v in zip(finished, verdicts):
                out[i] = float(v.correct)
        done = set(finished)
        open_ = [i for i in range(len(prompts)) if i not in done]
        if open_:
            keys = [(list(prompts[i]), list(prefixes[i]), self.answers[prompts[i]]) for i in open_]
            limits = [self.max_new_tokens - len(prefixes[i]) for i in open_]
            sampling = dataclasses.replace(self.sampling, max_new_tokens=max(limits))
            wins, tokens = prefix_successes(self.rollout, self.tok, self.verifier, keys, [], self.m, sampling, limits)
            self.sampled_tokens += tokens
            for i, w in zip(open_, wins):
                out[i] = w / self.m
        return out


class PAVStepScorer:
    """PAV's step scores from trained value models (``rl-pipeline pav``): ``Q^pi + alpha * A^mu``
    (:func:`pipeline.models.value_model.step_scores`) on the policy's own token ids, so the
    value models must share the policy's tokenizer."""

    def __init__(self, path: str, *, base: str | None = None, alpha: float = 1.0, tokenizer=None, device="auto"):
        from pipeline.config import ConfigError
        from pipeline.models.value_model import load_value_model

        self.mu, tok, self.meta = load_value_model(path, device=device)
        self.pi = load_value_model(base, device=device)[0] if base else None
        if tokenizer is not None and tokenizer.get_vocab() != tok.get_vocab():
            raise ConfigError(f"process verifier {path!r} has another tokenizer than the policy; search needs the same")
        self.pad, self.alpha, self.tokenizer = tok.pad_token_id, alpha, tok

    def __call__(self, prompts, responses, ends) -> list[list[float]]:
        from pipeline.models.value_model import predict_values, step_scores

        mu = predict_values(self.mu, self.pad, prompts, responses, ends)
        pi = predict_values(self.pi, self.pad, prompts, responses, ends) if self.pi is not None else [None] * len(mu)
        return [step_scores(m, q, self.alpha) for m, q in zip(mu, pi)]


class LikelihoodStepScorer:
    """A verifier-free step scorer: the policy's own confidence. Step h's likelihood is the
    geometric-mean probability the policy (at temperature 1) gives that step's tokens,
    ``exp(mean log p)``; the score after step h rates the path so far by its least likely step
    (a slip is one unlikely step among likely ones: DeepConf's lowest-group confidence, arXiv
    2508.15260, with steps as the groups). Scores lie in (0, 1] and never rise along a path, so
    ``aggregate: last`` is the whole path's weakest step. ``model``: the policy as a Hugging Face
    causal LM (the evaluate stage's own on the HF backend)."""

    def __init__(self, model, pad_id: int, *, batch_size: int = 32):
        self.model, self.pad, self.batch_size = model, pad_id, batch_size

    @torch.no_grad()
    def __call__(self, prompts, responses, ends) -> list[list[float]]:
        from pipeline.models.policy import eval_mode, make_batch, response_logprobs
        from pipeline.models.prover import prefix_cuts

        dev = next(self.model.parameters()).device
        out: list[list[float]] = []
        with eval_mode(self.model):
            for s in range(0, len(prompts), self.batch_size):
                P, R = prompts[s : s + self.batch_size], responses[s : s + self.batch_size]
                logp, _ = response_logprobs(self.model, make_batch(P, R, self.pad).to(dev))
                for row, es in zip(logp.cpu().tolist(), ends[s : s + self.batch_size]):
                    scores, low = [], 1.0
                    for a, b in zip(prefix_cuts(es), es):  # step h: tokens [a, b)
                        if b > a:
                            low = min(low, math.exp(sum(row[a:b]) / (b - a)))
                        scores.append(low)
                    out.append(scores)
        return out
