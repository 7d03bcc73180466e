"""Rollouts: K sampled responses per prompt, behind one small interface.

``Rollout.generate(prompts, n, sampling)`` returns, for each prompt in order,
its ``n`` responses as token-id lists (the EOS token kept when the model
stopped, none when it ran out of budget). Two backends share the config:

* :class:`HFRollout`: ``transformers`` generation with the KV cache, batched,
  on the training model itself (CPU or one GPU). Sampling is the model's plain
  distribution (no top-k): the RL loss assumes the samples came from it.
* :class:`VLLMRollout`: vLLM on a GPU (the ``gpu`` extra), with the policy's
  weights pushed into the engine after every update.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from pipeline.models.policy import encode_prompt, eval_mode


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()  # stop after any of these strings (kept in the output): one step of a search

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


class Rollout(Protocol):
    def generate(self, prompts: Sequence[Sequence[int]], n: int, sampling: Sampling) -> list[list[list[int]]]: ...

    def sync_weights(self, model) -> None: ...


def cut_at_eos(tokens: Sequence[int], eos_ids: set[int], pad_id: int) -> list[int]:
    """A response up to and including its first EOS; trailing padding dropped."""
    out = []
    for t in tokens:
        out.append(int(t))
        if t in eos_ids:
            return out
    while out and out[-1] == pad_id and pad_id not in eos_ids:
        out.pop()
    return out


class HFRollout:
    """Batched ``model.generate`` over left-padded prompts."""

    def __init__(self, model, tokenizer, max_batch: int = 256):
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        eos = model.generation_config.eos_token_id
        eos = eos if isinstance(eos, (list, tuple)) else [eos if eos is not None else tokenizer.eos_token_id]
        self.eos_ids = {int(e) for e in eos if e is not None}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self.eos_ids))

    def sync_weights(self, model) -> None:  # generation runs on the training model itself
        self.model = model

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], n: int, sampling: Sampling) -> list[list[list[int]]]:
        flat = [list(p) for p in prompts for _ in range(n)]
        out: list[list[int]] = []
        device = next(self.model.parameters()).device
        with eval_mode(self.model):
            for s in range(0, len(flat), self.max_batch):
                chunk = flat[s : s + self.max_batch]
                P = max(len(p) for p in chunk)
                ids = torch.full((len(chunk), P), self.pad_id, dtype=torch.long)
                attn = torch.zeros_like(ids)
                for i, p in enumerate(chunk):
                    ids[i, P - len(p) :] = torch.as_tensor(p)
                    attn[i, P - len(p) :] = 1
                kwargs = dict(
                    max_new_tokens=sampling.max_new_tokens,
                    pad_token_id=self.pad_id,
                    eos_token_id=sorted(self.eos_ids),
                    use_cache=True,
                )
                if sampling.stop:  # a stopped row is padded after its stop string; cut_at_eos drops the padding
                    kwargs.update(stop_strings=list(sampling.stop), tokenizer=self.tokenizer)
                if sampling.greedy:
                    kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
                else:
                    kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
                gen = self.model.generate(input_ids=ids.to(device), attention_mask=attn.to(device), **kwargs)
                for row in gen[:, P:].tolist():
                    out.append(self._stopped(cut_at_eos(row, self.eos_ids, self.pad_id), sampling.stop))
        return [out[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _stopped(self, row: list[int], stop: tuple[str, ...]) -> list[int]:
        """With the pad token an EOS, a row stopped by a stop string reads as ended (its padding
        starts with an EOS): drop that EOS when a stop string is in the tokens before it."""
        if stop and row and row[-1] == self.pad_id and self.pad_id in self.eos_ids:
            tail = self.tokenizer.decode(row[:-1][-8:], skip_special_tokens=True)
            if any(s in tail for s in stop):
                return row[:-1]
        return row


class VLLMRollout:
    """vLLM generation on a GPU; ``sync_weights`` loads the trained weights in place.

    Needs the ``gpu`` extra (``pip install -e '.[gpu]'``) and a CUDA GPU.
    """

    def __init__(self, model_path: str, *, gpu_memory_utilization: float = 0.3, seed: int = 0, dtype: str = "auto"):
        try:
            from vllm import LLM
        except ImportError as e:
            raise RuntimeError("rollout.backend=vllm needs the `gpu` extra (pip install -e '.[gpu]') and a GPU") from e
        self.llm = LLM(
            model=model_path,
            gpu_memory_utilization=gpu_memory_utilization,
            seed=seed,
            dtype=dtype,
            enable_prefix_caching=True,
        )
        self._seed = seed
        self._calls = 0

    def sync_weights(self, model) -> None:
        state = model.state_dict()

        def load(worker_self):  # runs inside each vLLM worker
            worker_self.model_runner.model.load_weights(weights=list(state.items()))
            return True

        self.llm.collective_rpc(load)
        self.llm.reset_prefix_cache()

    def generate(self, prompts: Sequence[Sequence[int]], n: int, sampling: Sampling) -> list[list[list[int]]]:
        from vllm import SamplingParams

        self._calls += 1
        params = SamplingParams(
            n=n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_new_tokens,
            seed=self._seed * 1_000_003 + self._calls,
            stop=list(sampling.stop) or None,
            include_stop_str_in_output=True,
        )
        outs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts], params, use_tqdm=False)
        return [[list(c.token_ids) for c in o.outputs] for o in outs]


def second_attempt_prompt(tokenizer, messages: list[dict], first_attempt: str, instruction: str) -> list[int]:
    """The conversation so far (prompt, first attempt, correction instruction), ready for the second attempt."""
    return encode_prompt(
        tokenizer,
        [*messages, {"role": "assistant", "content": first_attempt}, {"role": "user", "content": instruction}],
    )


def generate_second_attempts(rollout, tokenizer, conversations, first_attempts, instruction: str, sampling):
    """One second attempt per first attempt (``conversations[i]`` is the prompt ``first_attempts[i]``
    answered), generated on ``rollout``; returns (their prompts, their token ids). The one
    second-attempt loop of training, held-out measurement and evaluation."""
    prompts = [
        second_attempt_prompt(tokenizer, conv, text, instruction)
        for conv, text in zip(conversations, first_attempts, strict=True)
    ]
    return prompts, [group[0] for group in rollout.generate(prompts, 1, sampling)]
