"""Verifier scores for best-of-N from a model: an outcome reward model (ORM).

Any Hugging Face sequence-classification model with one output (a reward
model) scores each (question, response) pair: the chat with the response as the
assistant's turn, through the model's chat template when it has one. The score
is the first logit. Process verifiers (per-step scores, aggregated by
last/min/product) plug in beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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


@torch.no_grad()
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
    model, tok = _load(name_or_path, device)
    dev = next(model.parameters()).device
    flat = [(r["question"], resp) for r in rows for resp in r["responses"]]
    scores: list[float] = []
    cut = 0
    pad = tok.pad_token_id
    for s in range(0, len(flat), batch_size):
        enc = [encode(tok, q, a, max_tokens) for q, a in flat[s : s + batch_size]]
        cut += sum(c for _, c in enc)
        L = max(len(ids) for ids, _ in enc)
        ids = torch.full((len(enc), L), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, (x, _) in enumerate(enc):  # right padding: the model pools its last real token
            ids[i, : len(x)] = torch.as_tensor(x)
            mask[i, : len(x)] = 1
        logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits
        scores += logits[:, 0].float().tolist()
    if not all(math.isfinite(x) for x in scores):
        raise PolicyLoadError(f"reward model {name_or_path!r} produced non-finite scores")
    if cut and log:
        log(f"reward model: {cut} of {len(flat)} responses were longer than {max_tokens} tokens and cut from the front")
    out, i = [], 0
    for r in rows:
        out.append(scores[i : i + len(r["responses"])])
        i += len(r["responses"])
    return out
