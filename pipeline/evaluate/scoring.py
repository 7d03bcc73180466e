"""Verifier scores for best-of-N from a model: an outcome reward model (ORM).

Any Hugging Face sequence-classification model with one output (a reward
model) scores each (question, response) pair: the chat with the response as the
assistant's turn, through the model's chat template when it has one. The score
is the first logit. Process verifiers (per-step scores, aggregated by
last/min/product) plug in beside it.
"""

from __future__ import annotations

from typing import Sequence

import torch

from pipeline.train.policy import PolicyLoadError, pick_device


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
    tok.padding_side = "right"
    return model.to(pick_device(device)).eval(), tok


def _text(tok, question: str, response: str) -> str:
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template([{"role": "user", "content": question}, {"role": "assistant", "content": response}],
                                       tokenize=False)
    return f"{question}\n\n{response}"


@torch.no_grad()
def reward_model_scores(name_or_path: str, rows: Sequence[dict], *, device: str = "auto", batch_size: int = 16,
                        max_tokens: int = 4096) -> list[list[float]]:
    """For each row, one score per response (``rows`` as :func:`grade.load_generations` returns)."""
    model, tok = _load(name_or_path, device)
    dev = next(model.parameters()).device
    flat = [(r["question"], resp) for r in rows for resp in r["responses"]]
    scores: list[float] = []
    for s in range(0, len(flat), batch_size):
        texts = [_text(tok, q, a) for q, a in flat[s : s + batch_size]]
        enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_tokens, add_special_tokens=False)
        logits = model(**{k: v.to(dev) for k, v in enc.items()}).logits
        scores += logits[:, 0].float().tolist()
    out, i = [], 0
    for r in rows:
        out.append(scores[i : i + len(r["responses"])])
        i += len(r["responses"])
    return out
