"""The policy: any Hugging Face causal LM, plus the two things RL asks of it:
turn chat prompts into token ids, and give per-token log-probs of responses.

Batches use one layout everywhere (rollout, RL loss, supervised loss)::

    [pad pad p p p p | r r r r pad pad]
     left-padded prompt  right-padded response

so the response always starts at column ``P`` and the logits that predict it
are columns ``P-1 .. P+R-2``. Position ids count real tokens only, matching
what ``generate`` used when it sampled the response.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch


class PolicyLoadError(Exception):
    """The model or tokenizer cannot be loaded (shown without a traceback)."""


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PolicyLoadError(f"device {device!r} requested but no CUDA GPU is available")
    return torch.device(device)


def load_tokenizer(name_or_path: str, gguf_file: str | None = None):
    from transformers import AutoTokenizer

    try:
        tok = (
            AutoTokenizer.from_pretrained(name_or_path, gguf_file=gguf_file)
            if gguf_file
            else AutoTokenizer.from_pretrained(name_or_path)
        )
    except Exception as e:  # OSError, ValueError, HF hub errors...
        raise PolicyLoadError(f"cannot load tokenizer {name_or_path!r}: {type(e).__name__}: {e}") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_policy(name_or_path: str, *, gguf_file: str | None = None, device: str = "auto", dtype: str = "float32"):
    """``(model, tokenizer)`` from a hub name or a local directory (or a GGUF file in it)."""
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(name_or_path, gguf_file)
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(dtype)
    if torch_dtype is None:
        raise PolicyLoadError(f"dtype must be float32, bfloat16 or float16, got {dtype!r}")
    kwargs = {"dtype": torch_dtype}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    try:
        model = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
    except Exception as e:
        raise PolicyLoadError(f"cannot load model {name_or_path!r}: {type(e).__name__}: {e}") from None
    model.to(pick_device(device))
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def encode_prompt(tokenizer, messages: list[dict]) -> list[int]:
    """Chat-template a message list into token ids, ready for the assistant's turn."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    # base models without a template: plain concatenation
    text = "\n\n".join(m["content"] for m in messages) + "\n"
    return tokenizer(text)["input_ids"]


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, P+R)
    attention_mask: torch.Tensor  # (B, P+R)
    position_ids: torch.Tensor  # (B, P+R)
    response_mask: torch.Tensor  # (B, R) float: 1 on response tokens
    prompt_len: int  # P

    @property
    def responses(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_len :]

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, idx) -> Batch:
        return Batch(
            self.input_ids[idx],
            self.attention_mask[idx],
            self.position_ids[idx],
            self.response_mask[idx],
            self.prompt_len,
        )

    def to(self, device) -> Batch:
        return Batch(
            *(t.to(device) for t in (self.input_ids, self.attention_mask, self.position_ids, self.response_mask)),
            self.prompt_len,
        )


def make_batch(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int) -> Batch:
    """Lay out prompt/response pairs as described in the module docstring."""
    if len(prompts) != len(responses):
        raise ValueError("prompts and responses differ in length")
    P = max(len(p) for p in prompts)
    R = max(1, max(len(r) for r in responses))
    B = len(prompts)
    ids = torch.full((B, P + R), pad_id, dtype=torch.long)
    attn = torch.zeros((B, P + R), dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        ids[i, P - len(p) : P] = torch.as_tensor(p, dtype=torch.long)
        attn[i, P - len(p) : P] = 1
        if len(r):
            ids[i, P : P + len(r)] = torch.as_tensor(r, dtype=torch.long)
            attn[i, P : P + len(r)] = 1
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    return Batch(ids, attn, pos, attn[:, P:].float(), P)


@contextlib.contextmanager
def eval_mode(model):
    """``model`` in eval mode (no dropout) for the block, then back in the mode it was in: a
    training policy that generates or scores between updates keeps training afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def response_logits(model, batch: Batch) -> torch.Tensor:
    """Logits predicting each response token: (B, R, V)."""
    R = batch.input_ids.shape[1] - batch.prompt_len
    kwargs = {"logits_to_keep": R + 1} if _takes_logits_to_keep(model) else {}  # skip the LM head on the prompt
    out = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        use_cache=False,
        **kwargs,
    )
    return out.logits[:, -(R + 1) : -1, :].float()


def _takes_logits_to_keep(model) -> bool:
    return _forward_takes(type(model), "logits_to_keep")


@functools.cache
def _forward_takes(cls: type, name: str) -> bool:
    import inspect

    return name in inspect.signature(cls.forward).parameters


def response_logprobs(
    model, batch: Batch, with_entropy: bool = False, entropy_grad: bool = True, temperature: float = 1.0
):
    """Per-token log-probs of the response tokens (B, R), and optionally entropy (B, R)
    (without a graph when ``entropy_grad`` is false: a metric, not a loss term).

    ``temperature``: the rollout's sampling temperature. The policy that sampled is
    ``softmax(logits / T)``, so its log-probs (new, old and reference alike, as verl
    computes them) divide the logits by T; 0 (greedy) and 1 leave them as they are."""
    from verl.utils.torch_functional import entropy_from_logits, logprobs_from_logits

    logits = response_logits(model, batch)
    if temperature and temperature != 1.0:
        logits = logits / float(temperature)
    logp = logprobs_from_logits(logits, batch.responses)
    if not with_entropy:
        return logp, None
    if entropy_grad:
        return logp, entropy_from_logits(logits)
    with torch.no_grad():
        return logp, entropy_from_logits(logits.detach())


def save_policy(model, tokenizer, path: str | os.PathLike) -> None:
    """Save model + tokenizer to ``path`` atomically: written beside it, then renamed
    into place, so a crash never leaves a half-written model directory."""
    import shutil
    from pathlib import Path

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
