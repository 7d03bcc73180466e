"""The PAV model: a causal LM with a scalar head that predicts the prover's success at each
step boundary in one forward pass (trained by ``rl-pipeline pav``, :mod:`pipeline.train.pav`),
a drop-in for the Monte Carlo estimator (:class:`pipeline.models.prover.ProgressEstimator`) in
training and the process verifier of best-of-N in evaluation (:func:`process_scores`)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from data.formats import prompt_messages
from data.io import write_json
from pipeline.config import ConfigError, ProgressConfig
from pipeline.models.policy import PolicyLoadError, encode_prompt, load_policy, save_policy
from pipeline.models.prover import ProgressResult, StepSegmenter

HEAD_FILE, META_FILE = "value_head.pt", "pav.json"


class ValueModel(torch.nn.Module):
    """A causal LM with a scalar head: logit of the prover's success after each token."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm
        self.head = torch.nn.Linear(lm.config.hidden_size, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, input_ids, attention_mask) -> torch.Tensor:
        out = (
            self.lm.model(input_ids=input_ids, attention_mask=attention_mask)
            if hasattr(self.lm, "model")
            else self.lm(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        )
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out.hidden_states[-1]
        return self.head(hidden).squeeze(-1)  # (B, T) logits


def boundary_positions(prompt_len: int, ends: Sequence[int]) -> list[int]:
    """Token positions whose hidden state sees each boundary's prefix: the prompt's
    last token, then each step's last token."""
    return [prompt_len - 1] + [prompt_len + e - 1 for e in ends]


def right_padded(seqs: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


@torch.no_grad()
def predict_values(model: ValueModel, pad: int, prompts, responses, ends, batch_size: int = 32) -> list[np.ndarray]:
    """Predicted success at every boundary: H+1 values per response."""
    model.eval()
    dev = next(model.parameters()).device
    out: list[np.ndarray] = []
    for s in range(0, len(prompts), batch_size):
        P, R, E = prompts[s : s + batch_size], responses[s : s + batch_size], ends[s : s + batch_size]
        ids, mask = right_padded([list(p) + list(r) for p, r in zip(P, R)], pad)
        probs = torch.sigmoid(model(ids.to(dev), mask.to(dev)).float()).cpu()
        for i, (p, e) in enumerate(zip(P, E)):
            out.append(probs[i, boundary_positions(len(p), e)].numpy().astype(float))
    return out


class PAVPredictor:
    """Drop-in for :class:`ProgressEstimator`: predicted values instead of sampled ones."""

    def __init__(self, model: ValueModel, tokenizer, cfg: ProgressConfig):
        self.model, self.tok, self.cfg = model, tokenizer, cfg
        self.segment = StepSegmenter(cfg, tokenizer)

    @classmethod
    def load(cls, path: str | Path, cfg: ProgressConfig, *, tokenizer=None, device="auto") -> PAVPredictor:
        model, tok, meta = load_value_model(path, device=device)
        if tokenizer is not None and tokenizer.get_vocab() != tok.get_vocab():
            raise ConfigError(f"PAV model {str(path)!r} has another tokenizer than the policy")
        if meta.get("split") != cfg.split:
            print(
                f"[pav] note: {path} was labelled with split={meta.get('split')!r}, using {cfg.split!r}",
                file=sys.stderr,
            )
        return cls(model, tok, cfg)

    def estimate(self, prompts, responses, gold=None, *, outcomes=None, start_success=None) -> ProgressResult:
        t0 = time.perf_counter()
        ends = [self.segment(r) for r in responses]
        keep = [i for i, e in enumerate(ends) if e]
        values = [np.zeros(1) for _ in ends]
        pred = predict_values(
            self.model,
            self.tok.pad_token_id,
            [prompts[i] for i in keep],
            [responses[i] for i in keep],
            [ends[i] for i in keep],
        )
        for i, v in zip(keep, pred):
            values[i] = v
        return ProgressResult(ends, values, seconds=time.perf_counter() - t0)


def load_value_model(path: str | Path, device: str = "auto"):
    path = Path(path)
    if not (path / HEAD_FILE).is_file() or not (path / META_FILE).is_file():
        raise PolicyLoadError(
            f"{path} is not a PAV model directory (no {HEAD_FILE} / {META_FILE}); train one with `rl-pipeline pav`"
        )
    lm, tok = load_policy(str(path), device=device)
    model = ValueModel(lm)
    model.head.load_state_dict(torch.load(path / HEAD_FILE, map_location="cpu", weights_only=True))
    model.to(next(lm.parameters()).device).eval()
    return model, tok, json.loads((path / META_FILE).read_text())


def save_value_model(model: ValueModel, tok, path: str | Path, meta: dict) -> None:
    path = Path(path)
    save_policy(model.lm, tok, path)
    torch.save(model.head.state_dict(), path / HEAD_FILE)
    write_json(path / META_FILE, meta)


def process_values(
    path: str,
    rows: Sequence[dict],
    *,
    instruction: str = "",
    system_prompt: str | None = None,
    split: str = "lines",
    device: str = "auto",
    log=None,
) -> list[list[np.ndarray]]:
    """For each row, each response's predicted success at every step boundary (H+1
    values: before the first step, then after each). The question is put to the
    model as generation put it to the policy: ``instruction`` appended, the
    optional ``system_prompt``, in the model's chat template."""
    model, tok, meta = load_value_model(path, device=device)
    cfg = ProgressConfig(split=meta.get("split", split), max_steps=meta.get("max_steps", 8))
    seg = StepSegmenter(cfg, tok)
    prompts, responses, ends = [], [], []
    for r in rows:
        p = encode_prompt(tok, prompt_messages(r["question"], instruction, system_prompt))
        for text in r["responses"]:
            ids = tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"] or [tok.eos_token_id]
            prompts.append(p)
            responses.append(ids)
            ends.append(seg(ids))
    values = predict_values(model, tok.pad_token_id, prompts, responses, ends)
    out, i = [], 0
    for r in rows:
        out.append(values[i : i + len(r["responses"])])
        i += len(r["responses"])
    if log:
        log(
            f"process verifier {path}: scored {len(values)} responses, {np.mean([len(e) for e in ends]):.1f} steps each"
        )
    return out


def step_scores(q_mu: np.ndarray, q_pi: np.ndarray | None = None, alpha: float = 1.0) -> list[float]:
    """PAV's effective reward per step h: ``Q^pi(s_h, a_h) + alpha * A^mu(s_h, a_h)``,
    with ``A^mu`` the change of the prover's value across the step (``q_mu[h] -
    q_mu[h-1]``). ``q_mu``, ``q_pi``: H+1 values each (before the first step, then
    after each); without ``q_pi`` the prover's own values stand in for it. Ranking
    by ``Q`` alone conflates good steps with good states; ``A^mu`` credits the step."""
    q_mu = np.asarray(q_mu, dtype=float)
    q_pi = q_mu if q_pi is None else np.asarray(q_pi, dtype=float)
    if q_pi.shape != q_mu.shape:
        raise ValueError(
            f"Q^pi has {q_pi.shape[0]} values and Q^mu {q_mu.shape[0]}: the two models split the "
            "response into different steps (train both with the same progress.split)"
        )
    return (q_pi[1:] + alpha * np.diff(q_mu)).tolist()


def process_scores(
    path: str,
    rows: Sequence[dict],
    *,
    base: str | None = None,
    alpha: float = 1.0,
    instruction: str = "",
    system_prompt: str | None = None,
    device: str = "auto",
    log=None,
) -> list[list[list[float]]]:
    """Best-of-N with a process verifier: for each row, each response's step scores
    (:func:`step_scores`; aggregate them with last / min / product). ``path``: the
    PAV model (prover mu); ``base``: one labelled with the policy as prover (Q^pi)."""
    kw = dict(instruction=instruction, system_prompt=system_prompt, device=device, log=log)
    mu = process_values(path, rows, **kw)
    pi = process_values(base, rows, **kw) if base else [[None] * len(r) for r in mu]
    return [[step_scores(m, q, alpha) for m, q in zip(ms, qs)] for ms, qs in zip(mu, pi)]
