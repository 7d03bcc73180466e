"""The train stage's schema: ``rl-pipeline train`` (TrainConfig), ``warmup`` (WarmupConfig) and
``pav`` (PAVConfig), with their algorithm, optimiser and reward sections. Loaded by
:func:`pipeline.config.load_config`; the sections several stages share are there."""

from __future__ import annotations

import dataclasses

from pipeline.config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    ProgressConfig,
    RolloutConfig,
    SelfCorrectionConfig,
    VerifierConfig,
)

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
    terms: dict = dataclasses.field(
        default_factory=lambda: {"outcome": {"weight": 1.0}}
    )  # reward terms (rewards/terms.py) by name, each {weight, ...params}; summed
    verifier: VerifierConfig = dataclasses.field(default_factory=VerifierConfig)

    def __post_init__(self) -> None:
        from rewards.ideas import misplaced_term_hint
        from rewards.terms import validate_terms

        for name in self.terms if isinstance(self.terms, dict) else ():
            hint = misplaced_term_hint(name)
            if hint:
                raise ConfigError(f"reward.terms: {hint}")
        try:
            validate_terms(self.terms)
        except ValueError as e:
            raise ConfigError(f"reward.terms: {e}") from None


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
            raise ConfigError(
                "progress.baseline termination with self_correction is not supported: the termination "
                "baseline cuts single responses; use baseline: group"
            )
        if (
            "alp" in self.reward.terms
            and self.algorithm.norm_adv_by_std
            and self.algorithm.adv_estimator in GROUP_STD_ESTIMATORS
        ):
            raise ConfigError(
                f"reward.terms.alp with algorithm.adv_estimator {self.algorithm.adv_estimator} and norm_adv_by_std "
                "true: dividing by each group's reward std gives a never-solved and an always-solved group the "
                "same length advantages, so ALP's price per token no longer depends on the solve rate. "
                "Set algorithm.norm_adv_by_std: false (Dr.GRPO) or algorithm.adv_estimator: rloo"
            )

    def require_inputs(self) -> None:
        """What a run needs and the defaults leave empty (checked by both engines before they start)."""
        if not self.model.path:
            raise ConfigError("model.path is required (a hub name or a local directory)")
        if not self.data.train_files:
            raise ConfigError("data.train_files is required (verl-schema parquet or jsonl)")


@dataclasses.dataclass
class PAVConfig:
    """``rl-pipeline pav``: Monte Carlo progress labels, then a value head trained on them."""

    model: ModelConfig = dataclasses.field(
        default_factory=ModelConfig
    )  # the policy whose responses are labelled (and the prover, unless progress.prover_model)
    init: str = ""  # the LM under the value head; empty: the policy
    data: DataConfig = dataclasses.field(default_factory=DataConfig)  # prompts (train_files) to label
    progress: ProgressConfig = dataclasses.field(
        default_factory=lambda: ProgressConfig(mc_rollouts=8)
    )  # segmentation and Monte Carlo settings of the labels
    prompts: int = 256  # prompts labelled
    seeds_per_prompt: int = 4  # seed rollouts of the policy per prompt
    chunk: int = 16  # prompts per labelling batch
    max_new_tokens: int = 64  # generation budget of seed rollouts and prover continuations
    temperature: float = 1.0  # seed rollout temperature
    steps: int = 300  # value-head training steps
    batch_size: int = 32  # labelled responses per step
    optim: OptimConfig = dataclasses.field(
        default_factory=lambda: OptimConfig(lr=1e-3, schedule="cosine", warmup_steps=10)
    )
    heldout_share: float = 0.1  # share of prompts whose labels check the fit
    verifier_workers: int = 2  # sandboxed verifier processes
    seed: int = 0  # RNG seed
    threads: int | None = None  # torch CPU threads (None: torch's default)

    def __post_init__(self) -> None:
        if min(self.prompts, self.seeds_per_prompt, self.chunk, self.max_new_tokens, self.steps, self.batch_size) < 1:
            raise ConfigError(
                "pav: prompts, seeds_per_prompt, chunk, max_new_tokens, steps and batch_size must be >= 1"
            )
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
    optim: OptimConfig = dataclasses.field(
        default_factory=lambda: OptimConfig(lr=3e-3, schedule="cosine", warmup_steps=20)
    )
    heldout_samples: int = 4  # draws per held-out prompt for pass@1
    heldout_temperature: float = 1.0  # 0: greedy
    max_new_tokens: int = 64  # generation budget for the held-out measurement
    seed: int = 0  # RNG seed (model init, data order, sampling)
    threads: int | None = None  # torch CPU threads (None: torch's default)
