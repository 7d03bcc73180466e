"""Typed configs: YAML files map onto dataclasses; the dataclasses are the reference.

Every stage's config is a dataclass whose fields carry defaults and whose
docstrings/comments explain them. :func:`load_config` reads YAML into one,
rejecting unknown keys and wrong types with a message that names the key, and
resolving relative paths against the config file's directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf import errors as oc_errors

from rewards.progress import EPISODE_MARKERS as _EPISODE_MARKERS
from rewards.progress import MRT_STOP_TEMPLATE

T = TypeVar("T")


class ConfigError(Exception):
    """A user-facing problem with a config file (shown without a traceback)."""


@dataclasses.dataclass
class VerifierConfig:
    workers: int = 2  # sandboxed worker processes
    timeout: float = 5.0  # seconds per check before the worker is killed
    mode: str = "strict"  # strict: only \boxed{} counts; lenient: also "final answer is", ####, ...
    service_url: str | None = None  # train --engine verl only: check answers in the verifier service at this address (rl-verifier serve), off the GPU nodes; other stages check in-process

    def __post_init__(self) -> None:
        if self.service_url is not None and not str(self.service_url).startswith(("http://", "https://")):
            raise ConfigError(f"verifier.service_url must be an http(s):// address, got {self.service_url!r}")
        if self.mode not in ("strict", "lenient"):
            raise ConfigError(f"verifier.mode must be 'strict' or 'lenient', got {self.mode!r}")
        if self.workers < 1 or self.timeout <= 0:
            raise ConfigError("verifier.workers must be >= 1 and verifier.timeout > 0")


@dataclasses.dataclass
class SyntheticConfig:
    problems: int = 400  # how many arithmetic problems to generate
    steps: int = 3  # operations per problem (difficulty)
    max_operand: int = 20  # largest operand (difficulty)
    seed: int = 0  # RNG seed


@dataclasses.dataclass
class TaskConfig:
    """The built-in synthetic RL task: multi-step integer arithmetic, answers in \\boxed{}."""

    train: int = 2400  # training problems
    heldout: int = 200  # held-out problems (disjoint from training)
    steps: int = 2  # operations per problem (difficulty)
    max_operand: int = 9  # largest operand (difficulty)
    ops: str = "+-"  # operators drawn, any of + - * /
    error_rate: float = 0.25  # share of worked solutions with a slip (warm-up data only; ground truth stays right)
    seed: int = 0  # RNG seed

    def __post_init__(self) -> None:
        if not self.ops or set(self.ops) - set("+-*/"):
            raise ConfigError(f"task.ops must be a non-empty string of + - * /, got {self.ops!r}")
        if not 0 <= self.error_rate < 1:
            raise ConfigError("task.error_rate must be in [0, 1)")
        if self.train < 1 or self.heldout < 0 or self.steps < 1 or self.max_operand < 1:
            raise ConfigError("task.train, task.steps, task.max_operand must be >= 1 and task.heldout >= 0")


@dataclasses.dataclass
class ModelConfig:
    path: str = ""  # hub name (e.g. Qwen/Qwen2.5-Math-1.5B) or local directory
    gguf_file: str | None = None  # a GGUF file inside `path` (transformers' gguf_file=)
    dtype: str = "float32"  # float32 | bfloat16 | float16
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N


@dataclasses.dataclass
class DataConfig:
    train_files: list[str] = dataclasses.field(default_factory=list)  # verl-schema parquet/jsonl
    heldout_files: list[str] = dataclasses.field(default_factory=list)  # for held-out accuracy; optional
    heldout_limit: int | None = 200  # rows of the held-out files used (None: all)
    max_prompt_tokens: int = 512  # longer prompts are skipped (and counted in the log)


@dataclasses.dataclass
class RolloutConfig:
    backend: str = "hf"  # hf: transformers generate (CPU / one GPU) | vllm: the `gpu` extra
    n: int = 8  # K responses per prompt (the GRPO group)
    temperature: float = 1.0  # sampling temperature; in training, new, old and reference log-probs divide the logits by it (as verl does), so the loss is that of the policy that sampled
    top_p: float = 1.0  # nucleus sampling; 1.0 = off
    max_new_tokens: int = 64  # generation budget N
    max_batch: int = 256  # sequences per generate call (hf)
    gpu_memory_utilization: float = 0.3  # vllm

    def __post_init__(self) -> None:
        if self.backend not in ("hf", "vllm"):
            raise ConfigError(f"rollout.backend must be 'hf' or 'vllm', got {self.backend!r}")
        if self.n < 1 or self.max_new_tokens < 1 or self.temperature < 0:
            raise ConfigError("rollout.n and rollout.max_new_tokens must be >= 1, rollout.temperature >= 0")


# verl estimators that divide each group's centred rewards by the group's std
# when norm_adv_by_std is true
GROUP_STD_ESTIMATORS = ("grpo", "grpo_vectorized", "grpo_passk")


@dataclasses.dataclass
class AlgorithmConfig:
    """Advantage estimator and actor loss, by verl's registry names (verl.trainer.ppo.core_algos)."""

    adv_estimator: str = "grpo"  # grpo | rloo | reinforce_plus_plus_baseline | opo | gpg | ...
    norm_adv_by_std: bool = True  # false: Dr.GRPO's mean-only baseline
    loss_mode: str = "vanilla"  # verl policy loss: vanilla (PPO clip) | gspo | clip_cov | kl_cov | cispo | ...
    loss_agg_mode: str = "token-mean"  # token-mean | seq-mean-token-sum | seq-mean-token-mean | seq-mean-token-sum-norm
    clip_ratio_low: float = 0.2  # PPO clip: ratio >= 1 - clip_ratio_low
    clip_ratio_high: float = 0.28  # ratio <= 1 + clip_ratio_high; > low is DAPO's clip-higher
    clip_ratio_c: float = 3.0  # dual-clip bound
    entropy_coeff: float = 0.0  # entropy bonus weight
    kl_coef: float = 0.0  # KL-to-reference loss weight; 0 keeps no reference model
    kl_type: str = "low_var_kl+"  # verl kl_penalty: kl | abs | mse | low_var_kl | k3+ | low_var_kl+ | ...; the default (k3's value, k2's gradient) has the gradient of reverse KL (of pi from ref), which GRPO means; plain low_var_kl as a loss has forward KL's
    ppo_epochs: int = 1  # passes over each step's rollouts
    mini_batches: int = 1  # optimizer steps per pass
    micro_batch_size: int = 64  # sequences per forward/backward (gradient accumulation)

    def __post_init__(self) -> None:
        if self.ppo_epochs < 1 or self.mini_batches < 1 or self.micro_batch_size < 1:
            raise ConfigError("algorithm.ppo_epochs, mini_batches and micro_batch_size must be >= 1")


@dataclasses.dataclass
class OptimConfig:
    lr: float = 1e-5  # AdamW learning rate
    schedule: str = "constant"  # constant | cosine | linear (decay over the run)
    warmup_steps: int = 0  # linear learning-rate warm-up steps
    weight_decay: float = 0.0  # AdamW weight decay
    grad_clip: float = 1.0  # max gradient norm

    def __post_init__(self) -> None:
        if self.schedule not in ("constant", "cosine", "linear"):
            raise ConfigError(f"optim.schedule must be constant, cosine or linear, got {self.schedule!r}")
        if self.lr <= 0:
            raise ConfigError("optim.lr must be > 0")


@dataclasses.dataclass
class RewardConfig:
    terms: dict = dataclasses.field(default_factory=lambda: {"outcome": {"weight": 1.0}})  # reward terms (rewards/terms.py) by name, each {weight, ...params}; summed
    verifier: VerifierConfig = dataclasses.field(default_factory=VerifierConfig)

    def __post_init__(self) -> None:
        from rewards.terms import validate_terms

        try:
            validate_terms(self.terms)
        except ValueError as e:
            raise ConfigError(f"reward.terms: {e}") from None


@dataclasses.dataclass
class ProgressConfig:
    """Progress-based process rewards (PAV / MRT): per-step prover advantages on the step's tokens."""

    enabled: bool = False  # add alpha x progress to each step's tokens
    alpha: float = 1.0  # weight of the progress bonus against the outcome advantage
    split: str = "lines"  # steps: lines | episodes (MRT: paragraphs opening with `markers`)
    markers: list[str] = dataclasses.field(default_factory=lambda: list(_EPISODE_MARKERS))  # episode openers (split: episodes)
    episodes_per_step: int = 1  # split episodes: consecutive episodes per step (MRT's group_size: 3 on AIME, 5 on Omni-MATH)
    max_steps: int = 8  # steps per response; later ones join the last
    mode: str = "continue"  # continue: the prover completes each prefix (PAV) | answer_now: the policy itself answers at once (MRT's meta-prover; prover_k 1)
    answer_now_text: str = MRT_STOP_TEMPLATE  # appended to a prefix in answer_now mode: MRT's "time is up" text, which closes the think block; models without one want a short cue such as "\nThe answer is \\boxed{"
    answer_tokens: int = 4096  # generation budget after answer_now_text (MRT: 4096)
    mc_rollouts: int = 4  # prover continuations per prefix (Monte Carlo estimate of its success)
    prover_k: int = 4  # the prover is best-of-K of the sampled policy: V = 1 - (1 - q)^K, estimated without bias from c of M samples as 1 - C(M-c,K)/C(M,K) (needs K <= mc_rollouts); 1: the policy itself
    prover_model: str = ""  # a fixed prover model (same tokenizer); empty: the current policy
    temperature: float = 1.0  # prover sampling temperature
    pav_model: str = ""  # a trained PAV model (rl-pipeline pav): predict values instead of sampling
    baseline: str = "group"  # group: the estimator's group baseline on every token | termination: MRT's, the tokens after a random step prefix get R - R_termination (the policy answering at once there: answer_now_text, answer_tokens, mc_rollouts samples)

    def __post_init__(self) -> None:
        if self.split not in ("lines", "episodes"):
            raise ConfigError(f"progress.split must be lines or episodes, not {self.split!r}")
        if self.mode not in ("continue", "answer_now"):
            raise ConfigError(f"progress.mode must be continue or answer_now, not {self.mode!r}")
        if self.max_steps < 1 or self.mc_rollouts < 1 or self.prover_k < 1 or self.answer_tokens < 1:
            raise ConfigError("progress.max_steps, mc_rollouts, prover_k and answer_tokens must be >= 1")
        if self.temperature <= 0:
            raise ConfigError("progress.temperature must be > 0 (Monte Carlo estimates need sampling)")
        if self.baseline not in ("group", "termination"):
            raise ConfigError(f"progress.baseline must be group or termination, not {self.baseline!r}")
        if self.episodes_per_step < 1:
            raise ConfigError("progress.episodes_per_step must be >= 1")
        if self.mode == "answer_now" and (self.prover_k != 1 or self.prover_model):
            raise ConfigError("progress.mode answer_now is MRT's meta-prover: the current policy itself, answering at "
                              "once, so set prover_k: 1 and leave prover_model empty (best-of-K and other provers "
                              "go with mode: continue, PAV)")
        if self.prover_k > self.mc_rollouts:
            raise ConfigError(f"progress.prover_k ({self.prover_k}) must be <= mc_rollouts ({self.mc_rollouts}): "
                              "best-of-K values are estimated from K of the M samples at each prefix; lower prover_k or raise mc_rollouts")


_SCORE_INSTRUCTION = ("There might be an error in the solution above because of lack of understanding of the "
                      "question. Please correct the error, if any, and rewrite the solution.")


@dataclasses.dataclass
class SelfCorrectionConfig:
    """SCoRe: after the first attempt the conversation adds `instruction` and the policy answers again."""

    enabled: bool = False  # two attempts per rollout
    stage: int = 2  # 1: reward the second attempt, first attempt held near the reference by first_attempt_kl; 2: each attempt its own reward, the second's plus the bonus
    instruction: str = _SCORE_INSTRUCTION  # the user turn asking for a second attempt
    bonus: float = 10.0  # stage 2: alpha in alpha x (r(y2) - r(y1)), added to the second attempt's reward
    kl_coef: float = 0.01  # beta1: KL-to-reference weight on both attempts in both stages, added to algorithm.kl_coef
    first_attempt_kl: float = 0.1  # stage 1: KL-to-reference weight on first-attempt tokens (beta2), added to beta1
    reference_model: str = ""  # the KL reference (SCoRe: the base model, also for a stage-2 run started from a stage-1 checkpoint); empty: model.path

    def __post_init__(self) -> None:
        if self.stage not in (1, 2):
            raise ConfigError(f"self_correction.stage must be 1 or 2, not {self.stage!r}")
        if not self.instruction.strip():
            raise ConfigError("self_correction.instruction must not be empty")
        if self.first_attempt_kl < 0 or self.kl_coef < 0:
            raise ConfigError("self_correction.kl_coef and first_attempt_kl must be >= 0")


@dataclasses.dataclass
class TrainConfig:
    """``rl-pipeline train``: GRPO-style RL on one process."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    rollout: RolloutConfig = dataclasses.field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = dataclasses.field(default_factory=AlgorithmConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    reward: RewardConfig = dataclasses.field(default_factory=RewardConfig)
    progress: ProgressConfig = dataclasses.field(default_factory=ProgressConfig)
    self_correction: SelfCorrectionConfig = dataclasses.field(default_factory=SelfCorrectionConfig)
    steps: int = 100  # RL steps (one rollout batch + update each)
    prompts_per_step: int = 16  # prompts per step; the batch is prompts_per_step x rollout.n responses
    save_every: int = 25  # checkpoint period in steps (the last step is always saved)
    keep_checkpoints: int = 2  # older checkpoints are deleted
    eval_every: int = 0  # held-out accuracy period; 0: only before and after training
    heldout_samples: int = 4  # draws per held-out prompt
    heldout_temperature: float = 1.0  # 0: greedy
    seed: int = 0  # RNG seed (data order, sampling)
    threads: int | None = None  # torch CPU threads (None: torch's default)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.prompts_per_step < 1 or self.save_every < 1:
            raise ConfigError("steps, prompts_per_step and save_every must be >= 1")
        if self.progress.enabled and self.progress.baseline == "termination" and self.self_correction.enabled:
            raise ConfigError("progress.baseline termination with self_correction is not supported: the termination "
                              "baseline cuts single responses; use baseline: group")
        if ("alp" in self.reward.terms and self.algorithm.norm_adv_by_std
                and self.algorithm.adv_estimator in GROUP_STD_ESTIMATORS):
            raise ConfigError(
                f"reward.terms.alp with algorithm.adv_estimator {self.algorithm.adv_estimator} and norm_adv_by_std "
                "true: dividing by each group's reward std gives a never-solved and an always-solved group the "
                "same length advantages, so ALP's price per token no longer depends on the solve rate. "
                "Set algorithm.norm_adv_by_std: false (Dr.GRPO) or algorithm.adv_estimator: rloo")

    def require_inputs(self) -> None:
        """What a run needs and the defaults leave empty (checked by both engines before they start)."""
        if not self.model.path:
            raise ConfigError("model.path is required (a hub name or a local directory)")
        if not self.data.train_files:
            raise ConfigError("data.train_files is required (verl-schema parquet or jsonl)")


@dataclasses.dataclass
class PAVConfig:
    """``rl-pipeline pav``: Monte Carlo progress labels, then a value head trained on them."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)  # the policy whose responses are labelled (and the prover, unless progress.prover_model)
    init: str = ""  # the LM under the value head; empty: the policy
    data: DataConfig = dataclasses.field(default_factory=DataConfig)  # prompts (train_files) to label
    progress: ProgressConfig = dataclasses.field(default_factory=lambda: ProgressConfig(mc_rollouts=8))  # segmentation and Monte Carlo settings of the labels
    prompts: int = 256  # prompts labelled
    seeds_per_prompt: int = 4  # seed rollouts of the policy per prompt
    chunk: int = 16  # prompts per labelling batch
    max_new_tokens: int = 64  # generation budget of seed rollouts and prover continuations
    temperature: float = 1.0  # seed rollout temperature
    steps: int = 300  # value-head training steps
    batch_size: int = 32  # labelled responses per step
    optim: OptimConfig = dataclasses.field(default_factory=lambda: OptimConfig(lr=1e-3, schedule="cosine", warmup_steps=10))
    heldout_share: float = 0.1  # share of prompts whose labels check the fit
    verifier_workers: int = 2  # sandboxed verifier processes
    seed: int = 0  # RNG seed
    threads: int | None = None  # torch CPU threads (None: torch's default)

    def __post_init__(self) -> None:
        if min(self.prompts, self.seeds_per_prompt, self.chunk, self.max_new_tokens, self.steps, self.batch_size) < 1:
            raise ConfigError("pav: prompts, seeds_per_prompt, chunk, max_new_tokens, steps and batch_size must be >= 1")
        if not 0 < self.heldout_share < 1:
            raise ConfigError("pav.heldout_share must be between 0 and 1")


@dataclasses.dataclass
class WarmupConfig:
    """``rl-pipeline warmup``: supervised fine-tuning on worked solutions."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)  # empty path: build a tiny model
    tiny_size: str = "tiny"  # micro | tiny | small (see pipeline/models/tiny_model.py)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)  # rows need extra_info.solution
    steps: int = 600  # optimizer steps
    batch_size: int = 32  # sequences per step
    optim: OptimConfig = dataclasses.field(default_factory=lambda: OptimConfig(lr=3e-3, schedule="cosine", warmup_steps=20))
    heldout_samples: int = 4  # draws per held-out prompt for pass@1
    heldout_temperature: float = 1.0  # 0: greedy
    max_new_tokens: int = 64  # generation budget for the held-out measurement
    seed: int = 0  # RNG seed (model init, data order, sampling)
    threads: int | None = None  # torch CPU threads (None: torch's default)


@dataclasses.dataclass
class GenerationKeys:
    """Field names in a generations file (``evaluate --generations``)."""

    response: str = "responses"  # the N responses: a list of strings (or one string)
    answer: str | None = None  # the reference answer (None: ground_truth, else answer, as the evaluate stage writes it)
    question: str = "question"  # the problem text (optional)
    correct: str | None = None  # per-response correctness in the file; None: grade with the verifier
    reference_correct: str | None = None  # the file's own grades to compare the verifier with (None: score/correct/is_correct if present)
    verifier_score: str | None = None  # per-response verifier scores (a number, or a list of step scores)
    second_response: str | None = None  # second attempts (self-correction), same order as response
    tokens: str | None = "tokens"  # per-response token counts (optional)
    benchmark: str = "benchmark"  # benchmark name (default: the file name)
    id: str = "id"  # problem id (default: idx, else the line number)


@dataclasses.dataclass
class EvalConfig:
    """``rl-pipeline evaluate``: held-out benchmarks, pass@k, maj@k, best-of-N."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)  # the model to generate with (not needed for generations)
    benchmarks: list[str] = dataclasses.field(default_factory=lambda: ["math500"])  # math500 aime24 amc23 minerva_math olympiadbench gsm8k, or .jsonl paths
    data_dir: str | None = None  # local benchmark files (default: $PIPELINE_EVAL_DIR, else ../shared/data/eval if present, else the Hub)
    limit: int | None = None  # first N problems of each benchmark (None: all)
    instruction: str = "Please reason step by step, and put your final answer within \\boxed{}."  # appended to each question
    system_prompt: str | None = None  # optional system message
    generation: RolloutConfig = dataclasses.field(default_factory=lambda: RolloutConfig(n=4, temperature=0.6, top_p=0.95, max_new_tokens=1024, max_batch=64))  # sampling; n = samples per problem
    verifier: VerifierConfig = dataclasses.field(default_factory=VerifierConfig)
    generations: str | None = None  # score this JSONL instead of generating (see keys)
    keys: GenerationKeys = dataclasses.field(default_factory=GenerationKeys)
    aggregate: str = "last"  # per-step verifier scores -> one: last / min / product / mean / max
    second_attempt: str | None = None  # self-correction: after each response ask again with this instruction ("default": SCoRe's, as in training) and report Accuracy@t1/t2 and the deltas
    reward_model: str | None = None  # a sequence-classification model (hub name or path) scoring responses for best-of-N
    process_verifier: str | None = None  # a PAV model (rl-pipeline pav, prover mu): best-of-N by step scores Q^pi + process_alpha * A^mu, combined by `aggregate`
    process_base_verifier: str | None = None  # a PAV model labelled with the policy itself as prover (progress.prover_k 1): Q^pi of each step; None: the process verifier's own values stand in
    process_alpha: float = 1.0  # weight of the prover's advantage A^mu (the change of its value across the step) against Q^pi; 0 ranks by Q^pi alone
    ks: list[int] = dataclasses.field(default_factory=list)  # k values shown in report.md (empty: powers of two and n); report.json has all
    bootstrap: int = 1000  # bootstrap resamples for confidence intervals (0: none)
    confidence: float = 0.95  # confidence level of the intervals
    max_subsets: int = 256  # size-k subsets averaged per problem for maj@k / bon@k with k < n (exact when fewer)
    share_ties: bool = False  # false: a tied vote goes to the answer seen first (as upstream scripts); true: tied answers share the credit
    plots: bool = True  # write PNG plots
    seed: int = 0  # sampling and bootstrap seed
    threads: int | None = None  # torch CPU threads (None: torch's default)

    def __post_init__(self) -> None:
        from pipeline.evaluate.metrics import AGGREGATIONS

        if self.aggregate not in AGGREGATIONS:
            raise ConfigError(f"aggregate must be one of {', '.join(AGGREGATIONS)}, got {self.aggregate!r}")
        if not 0 < self.confidence < 1:
            raise ConfigError("confidence must be in (0, 1)")
        if self.process_base_verifier and not self.process_verifier:
            raise ConfigError("process_base_verifier (Q^pi) needs process_verifier (the prover's values, A^mu)")
        if self.process_alpha < 0:
            raise ConfigError("process_alpha must be >= 0")
        if self.bootstrap < 0 or self.max_subsets < 1 or (self.limit is not None and self.limit < 1):
            raise ConfigError("bootstrap must be >= 0, max_subsets >= 1, limit >= 1")
        if any(k < 1 for k in self.ks):
            raise ConfigError(f"ks must be positive integers, got {self.ks}")


@dataclasses.dataclass
class SourceConfig:
    """One raw source and where its fields are (every source has its own schema)."""

    name: str = ""  # short name; row ids become <name>:<id>
    file: str | None = None  # local .jsonl or .parquet
    hub: str | None = None  # or a Hugging Face dataset name
    hub_config: str | None = None  # its config (subset)
    split: str = "train"  # its split
    question: str = "question"  # field with the question, or a template over fields: "{Body} {Question}"
    answer: str = "answer"  # field (or template) with the reference answer
    id: str | None = None  # field with a row id (default: the row number)
    options: str | None = None  # field with multiple-choice options: a list, a list as text, or "A) .. B) .." text
    correct_option: str | None = None  # field with the correct option: a letter, or a 0-based index
    subject: str | None = None  # field with a subject/topic (for the subject filter)
    solution: str | None = None  # field with the source's own worked solution or formula (for the answer_key filter)
    limit: int | None = None  # read at most this many rows

    def __post_init__(self) -> None:
        if not self.name or not re.fullmatch(r"[\w.-]+", self.name):
            raise ConfigError(f"sources: every source needs a name of letters, digits, '_', '.', '-' (got {self.name!r})")
        if bool(self.file) == bool(self.hub):
            raise ConfigError(f"source {self.name}: give exactly one of `file` and `hub`")


def _default_filters() -> list:
    from pipeline.curate.filters import DEFAULT_ORDER

    return list(DEFAULT_ORDER)


@dataclasses.dataclass
class CurateConfig:
    """``rl-pipeline curate``: raw sources -> a clean, verifiable, decontaminated RL set."""

    sources: list[SourceConfig] = dataclasses.field(default_factory=list)  # the raw sources (see SourceConfig)
    eval_sets: list[str] = dataclasses.field(default_factory=lambda: ["math500", "aime24", "amc23", "minerva_math", "olympiadbench", "gsm8k"])  # decontaminate against these (names or .jsonl paths)
    eval_dir: str | None = None  # local evaluation files (default: $PIPELINE_EVAL_DIR, else ../shared/data/eval, else the Hub)
    filters: list = dataclasses.field(default_factory=lambda: _default_filters())  # filter names in order, or {name: {param: value}}
    val_size: float = 0.05  # held-out share of the kept rows (< 1) or a row count (>= 1) for val.parquet
    instruction: str = "Please reason step by step, and put your final answer within \\boxed{}."  # appended to each prompt
    verifier: VerifierConfig = dataclasses.field(default_factory=VerifierConfig)
    examples_per_reason: int = 3  # examples of each drop reason in the report
    seed: int = 0  # split and MinHash seed

    def __post_init__(self) -> None:
        # the filter list is checked by the curation stage's own registry (pipeline.curate.run.filter_plan)
        # when the stage starts and when `rl-pipeline submit` resolves the stage: config imports no stage
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"sources: duplicate names {dup}")
        if self.val_size < 0:
            raise ConfigError("val_size must be >= 0")


@dataclasses.dataclass
class DemoConfig:
    out: str = "runs/demo"  # output directory
    verifier: VerifierConfig = dataclasses.field(default_factory=VerifierConfig)
    synthetic: SyntheticConfig = dataclasses.field(default_factory=SyntheticConfig)
    bon_file: str | None = None  # real best-of-N responses with labels; skipped when missing
    stages: list[str] = dataclasses.field(default_factory=lambda: ["verifier", "curate", "train", "evaluate"])  # which demo parts run
    curate_config: str | None = None  # a curation config for the curate part (skipped when its sources are missing)
    curate_limit: int | None = 300  # rows read per source in the demo (None: all)
    task: TaskConfig = dataclasses.field(default_factory=TaskConfig)
    warmup: WarmupConfig = dataclasses.field(default_factory=WarmupConfig)  # data/model filled in by the demo
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)  # data/model filled in by the demo
    evaluate: EvalConfig = dataclasses.field(default_factory=lambda: EvalConfig(instruction="", bootstrap=1000, generation=RolloutConfig(n=8, temperature=1.0, max_new_tokens=40)))  # models/benchmarks filled in by the demo


_MODEL_FIELDS = {"path", "init", "prover_model", "pav_model", "reward_model", "process_verifier", "process_base_verifier"}  # hub name or local dir
_FILE_ITEM_FIELDS = {"benchmarks", "eval_sets"}  # lists of names or .jsonl/.parquet paths
_PATH_FIELDS = {"out", "bon_file", "curate_config", "train_files", "heldout_files", "data_dir", "generations", "file", "eval_dir"}


def _prepare(cls: type, data: Any, where: str, base: Path) -> dict:
    """The user's mapping for ``cls``, readied for OmegaConf's schema merge: sections must be
    mappings, one item where a list is expected becomes a list, and relative paths resolve
    against ``base`` (only values the user wrote: defaults stay as they are)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    out = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        hint = hints.get(name)
        if hint is None:  # unknown: OmegaConf names it
            out[name] = value
            continue
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if dataclasses.is_dataclass(hint):
            out[name] = _prepare(hint, value, key, base)
            continue
        if origin is list and args and dataclasses.is_dataclass(args[0]):
            if not isinstance(value, list):
                raise ConfigError(f"{key}: expected a list of mappings, got {value!r}")
            out[name] = [_prepare(args[0], v, f"{key}[{i}]", base) for i, v in enumerate(value)]
            continue
        if origin is list and isinstance(value, (str, int)) and not isinstance(value, bool):
            value = [value]  # one item where a list is expected
        if name in _PATH_FIELDS:
            value = _resolved(value, base, lambda v: True)
        elif name in _FILE_ITEM_FIELDS:  # names or files: only the files are paths
            value = _resolved(value, base, lambda v: v.endswith((".jsonl", ".parquet")))
        elif name in _MODEL_FIELDS:  # a local model directory; hub names stay as they are
            value = _resolved(value, base, lambda v: v.startswith(".") or (base / v).exists())
        out[name] = _literal(value)
    return out


def _literal(value: Any) -> Any:
    """``value`` with OmegaConf's ``${...}`` interpolation escaped: a config's strings are
    taken as written (the Slurm plan's own ``${stage}`` placeholders among them)."""
    if isinstance(value, str):
        return value.replace("${", "\\${")
    if isinstance(value, list):
        return [_literal(v) for v in value]
    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items()}
    return value


def _resolved(value: Any, base: Path, is_path) -> Any:
    if isinstance(value, list):
        return [_resolved(v, base, is_path) for v in value]
    if isinstance(value, str) and value and not os.path.isabs(value) and is_path(value):
        return str((base / value).resolve())
    return value


_TYPE_NAMES = {"Integer": "int", "Float": "float", "Boolean": "bool", "String": "str"}


def _omegaconf_error(e: Exception, schema: Any) -> ConfigError:
    """OmegaConf's error as one line that names the key (``rollout.n: expected int, got 2.5``)."""
    key = getattr(e, "full_key", "") or ""
    first = str(getattr(e, "msg", "") or e).splitlines()[0]
    if isinstance(e, oc_errors.ConfigKeyError):
        parent, _, leaf = key.rpartition(".")
        section = OmegaConf.select(schema, parent) if parent else schema
        cls = OmegaConf.get_type(section) if section is not None else None
        valid = sorted(f.name for f in dataclasses.fields(cls)) if cls and dataclasses.is_dataclass(cls) else []
        return ConfigError(f"{parent or 'config'}: unknown key(s) {[leaf]}; valid keys: {valid}")
    m = re.match(r"Value '(.*)' of type '\w+' could not be converted to (\w+)", first)
    if m:
        wanted = _TYPE_NAMES.get(m.group(2), m.group(2))
        return ConfigError(f"{key}: expected {wanted}, got {m.group(1)}")
    if "is not Optional" in first:
        return ConfigError(f"{key}: may not be null")
    return ConfigError(f"{key or 'config'}: {first}")


def load_config(cls: type[T], path: str | os.PathLike | None, overrides: dict | None = None) -> T:
    """Read ``path`` (YAML) into ``cls``; ``None`` gives the defaults.

    The dataclass is the schema (OmegaConf structured config): ``overrides`` merge into the
    file's mapping key by key, the result merges onto ``cls``'s defaults so that a section the user
    gives in part keeps that section's own defaults (``generation: {n: 8}`` keeps
    EvalConfig's temperature 0.6, not RolloutConfig's 1.0), types are checked and converted
    (YAML's ``2e-4`` is a float), and the dataclasses' own checks run last. A free-form
    mapping field (``reward.terms``) is replaced, not merged, by what the user gives."""
    data: Any = {}
    base = Path.cwd()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from None
        base = p.resolve().parent
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a mapping, got {type(data).__name__}")
    if overrides:
        data = OmegaConf.to_container(OmegaConf.merge(data, overrides))
    user = _prepare(cls, data, "", base)
    schema = OmegaConf.structured(cls)
    try:
        merged = OmegaConf.merge(schema, user)
        for key, value in _free_mappings(cls, user, ""):
            OmegaConf.update(merged, key, value, merge=False)
        return OmegaConf.to_object(merged)  # builds the dataclasses: their __post_init__ checks run
    except oc_errors.OmegaConfBaseException as e:
        raise _omegaconf_error(e, schema) from None
    except TypeError as e:  # a dataclass rejected its arguments
        raise ConfigError(str(e)) from None


def _free_mappings(cls: type, data: dict, where: str):
    """(dotted key, value) of every plain ``dict`` field the user set, nested sections included."""
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        hint = hints.get(name)
        key = f"{where}.{name}" if where else name
        if hint is dict or typing.get_origin(hint) is dict:
            yield key, value
        elif hint is not None and dataclasses.is_dataclass(hint) and isinstance(value, dict):
            yield from _free_mappings(hint, value, key)


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def _field_comments(cls) -> dict[str, str]:
    """``name: type = default  # comment`` fields of a dataclass -> {name: comment}; the
    comment may sit on any line of a field the formatter wrapped (``field(...)  # comment``)."""
    import ast
    import inspect
    import io
    import textwrap
    import tokenize

    src = textwrap.dedent(inspect.getsource(cls))
    comments = {
        t.start[0]: t.string.lstrip("#").strip()
        for t in tokenize.generate_tokens(io.StringIO(src).readline)
        if t.type == tokenize.COMMENT
    }
    out = {}
    for node in ast.parse(src).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            found = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
            if found:
                out[node.target.id] = found[-1]
    return out


def reference_markdown(cls, prefix: str = "") -> str:
    """The config reference table for ``cls`` (nested dataclasses flattened to dotted keys)."""
    rows: list[str] = []

    def walk(c, pre: str, instance=None) -> None:
        """Defaults come from ``instance`` (a nested field's own default) when given:
        ``EvalConfig.generation`` is a RolloutConfig with other defaults than the class's."""
        comments = _field_comments(c)
        hints = typing.get_type_hints(c)
        for f in dataclasses.fields(c):
            key = f"{pre}{f.name}"
            if instance is not None:
                default = getattr(instance, f.name)
            else:
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], key + ".", default)
                continue
            if isinstance(default, str) and "\n" in default:  # one table row: show the escapes
                shown = "`" + json.dumps(default) + "`"
            else:
                dumped = yaml.safe_dump(default, default_flow_style=True, width=10**6)
                shown = "`" + dumped.strip().removesuffix("...").strip() + "`"
            rows.append(f"| `{key}` | {shown} | {comments.get(f.name, '').replace('|', '/')} |")

    walk(cls, prefix)
    return "| key | default | meaning |\n|---|---|---|\n" + "\n".join(rows)


if __name__ == "__main__":  # python -m pipeline.config TrainConfig  -> its table in docs/config.md
    import sys

    print(reference_markdown(globals()[sys.argv[1] if len(sys.argv) > 1 else "TrainConfig"]))
