"""The project's rollouts on verl as agent loops (``actor_rollout_ref.rollout.agent.default_agent_loop``).

Both are registered in verl's agent-loop registry when this module is imported
(``VERL_USE_EXTERNAL_MODULES``); verl's ``AgentLoopWorker`` builds one per rollout
with ``hydra.utils.instantiate`` and awaits its ``run``. Their settings are read
from ``algorithm.pipeline`` and the verifier's from
``reward.custom_reward_function.reward_kwargs`` (both written by
:mod:`pipeline.train.verl_engine`); prompts are chat-templated by
``pipeline.models.policy.encode_prompt``, as in the local engine, and answers are
judged by ``rewards/verl_adapter.py::compute_score``.

``self_correction`` (SCoRe): the rollout asks for a first attempt, then adds it to
the conversation with the correction instruction as a user turn
(``pipeline.models.rollout.second_attempt_prompt``, the local engine's
prompt) and asks again. It returns two outputs, one per attempt, as verl's v1
trainer accepts from an agent loop, each with its own training target
(``self_correction.attempt_targets``: r(y1); r(y2) + bonus * c2) and its attempt
number packed into its ``rm_scores`` (``pack_attempt_rewards``), which the
``pipeline_self_correction`` estimator unpacks. verl copies the final output's
``reward_score`` to the earlier ones; the packed ``rm_scores`` are what reaches
the estimator. The targets are :mod:`rewards.self_correction`'s, the token layout
:mod:`pipeline.train.verl_plugin`'s.

``progress`` (PAV / MRT process rewards, the policy as the prover): the rollout
generates a response, cuts it into steps (``pipeline.models.prover.StepSegmenter``),
and for the prefix before each step asks the same rollout servers for
``mc_rollouts`` prover continuations (``continue``: finish the solution within the
budget left; ``answer_now``: answer after ``answer_now_text``). The verifier's
verdicts give each prefix's success rate; ``step_values`` (best-of-K, the
response's own verdict after the last step), ``step_progress`` and
``progress_bonus`` (``rewards.progress``, the local engine's functions) turn them
into ``alpha * progress`` on each step's tokens. The verdict and that per-token
bonus reach the ``pipeline_progress`` estimator packed into the output's per-token
``rm_scores`` (:func:`pipeline.train.verl_plugin.pack_token_rewards`). Cost per
rollout: one generation plus ``steps x mc_rollouts`` prover generations and
verifications; unlike the local engine, the bare prompt's value is sampled too
(an agent loop sees one rollout, not its group's solve rate) and prefixes are not
shared between the group's rollouts.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import uuid4

import numpy as np
import torch
from omegaconf import OmegaConf
from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput, register

from pipeline.config import ProgressConfig, SelfCorrectionConfig
from pipeline.models.policy import encode_prompt
from pipeline.models.prover import (
    StepSegmenter,
    forced_ids,
    prefix_cuts,
    prover_input,
    prover_room,
    prover_text,
    step_values,
)
from pipeline.models.rollout import second_attempt_prompt
from pipeline.train.verl_engine import AGENT_LOOP, PROGRESS_LOOP
from pipeline.train.verl_plugin import attempt_outputs, pack_attempt_rewards, pack_token_rewards
from rewards.progress import progress_bonus, step_progress
from rewards.self_correction import FIRST, SECOND, attempt_targets, shaped_reward
from rewards.terms import outcome_scores


class _PipelineLoop(AgentLoopBase):
    """Generation through verl's server manager and the project's verifier."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pipeline = self.config.algorithm.pipeline
        self.reward_kwargs = dict(self.config.reward.custom_reward_function.get("reward_kwargs") or {})
        self.response_length = self.rollout_config.response_length

    async def _generate(self, prompt_ids: list[int], sampling_params: dict[str, Any]):
        return await self.server_manager.generate(
            request_id=uuid4().hex, prompt_ids=prompt_ids, sampling_params=sampling_params
        )

    async def _correct(self, text: str, row: dict) -> bool:
        """The verifier's verdict, from the service when ``reward_kwargs.url`` names one, else in this process."""
        from rewards.verl_adapter import compute_score, compute_score_remote

        extra = row.get("extra_info")
        args = (
            row.get("data_source", ""),
            text,
            row["reward_model"]["ground_truth"],
            dict(extra) if isinstance(extra, dict) else None,
        )
        if self.reward_kwargs.get("url"):
            result = await compute_score_remote(*args, **self.reward_kwargs)
        else:
            result = await asyncio.get_running_loop().run_in_executor(
                None, lambda: compute_score(*args, **self.reward_kwargs)
            )
        return bool(result["acc"])

    def _prompt(self, row: dict) -> tuple[list[dict], list[int]]:
        messages = [dict(m) for m in row["raw_prompt"]]
        return messages, self._cap_text_prompt_length(encode_prompt(self.tokenizer, messages))

    def _text(self, ids) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


class TokenRewardOutput(AgentLoopOutput):
    """An output whose ``rm_scores`` are given per token (``token_rewards``, one per
    response token) instead of ``reward_score`` on the last token, which is what
    verl's ``AgentLoopOutput.as_dict`` would write."""

    token_rewards: list[float]

    def as_dict(self) -> dict[str, Any]:
        out = super().as_dict()
        out.pop("token_rewards", None)
        out["rm_scores"] = torch.tensor(self.token_rewards, dtype=torch.float32)
        return out


@register(AGENT_LOOP)
class SelfCorrectionAgentLoop(_PipelineLoop):
    """First attempt, correction instruction, second attempt; settings from ``algorithm.pipeline``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        sc = self.pipeline.self_correction
        self.instruction = str(sc.instruction)
        self.sc = SelfCorrectionConfig(
            enabled=True, stage=int(sc.get("stage", 2)), bonus=float(sc.bonus), instruction=self.instruction
        )
        self.outcome = dict(self.pipeline.terms.get("outcome") or {})

    async def run(self, sampling_params: dict[str, Any], **kwargs):
        messages, prompt_ids = self._prompt(kwargs)
        first = await self._generate(prompt_ids, sampling_params)
        first_text = self._text(first.token_ids[: self.response_length])
        second_prompt = self._cap_text_prompt_length(
            second_attempt_prompt(self.tokenizer, messages, first_text, self.instruction)
        )
        second = await self._generate(second_prompt, sampling_params)
        second_text = self._text(second.token_ids[: self.response_length])
        c1, c2 = await asyncio.gather(self._correct(first_text, kwargs), self._correct(second_text, kwargs))
        targets = attempt_targets(self.sc, c1, c2, self.outcome)
        right, wrong = outcome_scores(self.outcome)
        shaped = float(
            shaped_reward(self.sc, [right if c2 else wrong], [c1], [c2])[0]
        )  # SCoRe's r(y2) + bonus (c2 - c1)
        info = {"score": shaped, "acc": float(c2), "acc_t1": float(c1)}
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        parts = attempt_outputs(
            prompt_ids, first.token_ids, second_prompt, second.token_ids, self.response_length, pad_id=pad
        )
        outputs = []
        for turns, part, attempt, target in zip((2, 4), parts, (FIRST, SECOND), targets):
            outputs.append(
                TokenRewardOutput(
                    **part,
                    num_turns=turns,
                    metrics=AgentLoopMetrics(),
                    reward_score=target,
                    token_rewards=pack_attempt_rewards(target, attempt, len(part["response_ids"])),
                    extra_fields={"reward_extra_info": dict(info)},
                )
            )
        return outputs


@register(PROGRESS_LOOP)
class ProgressAgentLoop(_PipelineLoop):
    """A response, then Monte Carlo prover continuations from each step prefix on the
    same servers; returns the response with its verdict and per-token progress bonus."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        spec = OmegaConf.to_container(self.pipeline.progress, resolve=True)
        self.pc = ProgressConfig(enabled=True, **spec)
        self.segment = StepSegmenter(self.pc, self.tokenizer)
        self.forced = forced_ids(self.pc, self.tokenizer)

    async def run(self, sampling_params: dict[str, Any], **kwargs):
        pc = self.pc
        _, prompt_ids = self._prompt(kwargs)
        t0 = time.perf_counter()
        out = await self._generate(prompt_ids, sampling_params)
        response = list(out.token_ids[: self.response_length])
        ends = self.segment(response)
        cuts = prefix_cuts(ends)
        rooms = [prover_room(pc, self.response_length, cut) for cut in cuts]
        prover = {**sampling_params, "temperature": pc.temperature, "logprobs": False}
        conts = await asyncio.gather(
            *[
                self._generate(prover_input(prompt_ids, response[:cut], self.forced), {**prover, "max_tokens": room})
                for cut, room in zip(cuts, rooms)
                for _ in range(pc.mc_rollouts)
            ]
        )
        t1 = time.perf_counter()
        M = pc.mc_rollouts
        pieces = [list(c.token_ids)[: rooms[j // M]] for j, c in enumerate(conts)]
        texts = [prover_text(self.tokenizer, response[: cuts[j // M]], self.forced, p) for j, p in enumerate(pieces)]
        verdicts = await asyncio.gather(
            self._correct(self._text(response), kwargs), *[self._correct(t, kwargs) for t in texts]
        )
        correct, sampled = verdicts[0], np.asarray(verdicts[1:], dtype=float)
        success = [float(sampled[j * M : (j + 1) * M].sum()) for j in range(len(cuts))]
        values = step_values(success, M, correct, pc.prover_k) if ends else np.zeros(1)
        progress = step_progress(values)
        bonus = progress_bonus(ends, progress, len(response), pc.alpha)
        info = {
            "score": float(correct),
            "acc": float(correct),
            "progress_mean": float(progress.mean()) if progress.size else 0.0,
            "progress_negative": float((progress < 0).mean()) if progress.size else 0.0,
            "progress_steps": float(len(ends)),
            "mc_rollouts": float(len(conts)),
            "mc_tokens": float(sum(len(p) for p in pieces)),
        }
        logprobs = list(out.log_probs[: len(response)]) if out.log_probs is not None else None
        return TokenRewardOutput(
            prompt_ids=prompt_ids,
            response_ids=response,
            response_mask=[1] * len(response),
            response_logprobs=logprobs,
            reward_score=float(correct),
            token_rewards=pack_token_rewards(float(correct), bonus).tolist(),
            num_turns=2,
            metrics=AgentLoopMetrics(generate_sequences=t1 - t0, compute_score=time.perf_counter() - t1),
            extra_fields={"reward_extra_info": info},
        )
