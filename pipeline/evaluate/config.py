"""The evaluate stage's schema (``rl-pipeline evaluate``): EvalConfig and the field names of a
generations file (GenerationKeys)."""

from __future__ import annotations

import dataclasses

from pipeline.config import ConfigError, ModelConfig, RolloutConfig, VerifierConfig


@dataclasses.dataclass
class GenerationKeys:
    """Field names in a generations file (``evaluate --generations``)."""

    response: str = "responses"  # the N responses: a list of strings (or one string)
    answer: str | None = None  # the reference answer (None: ground_truth, else answer, as the evaluate stage writes it)
    question: str = "question"  # the problem text (optional)
    correct: str | None = None  # per-response correctness in the file; None: grade with the verifier
    reference_correct: str | None = (
        None  # the file's own grades to compare the verifier with (None: score/correct/is_correct if present)
    )
    verifier_score: str | None = None  # per-response verifier scores (a number, or a list of step scores)
    second_response: str | None = None  # second attempts (self-correction), same order as response
    tokens: str | None = "tokens"  # per-response token counts (optional)
    benchmark: str = "benchmark"  # benchmark name (default: the file name)
    id: str = "id"  # problem id (default: idx, else the line number)


@dataclasses.dataclass
class SearchConfig:
    """Test-time search (``evaluate --search``): how each problem's generation budget is spent."""

    strategy: str | None = (
        None  # None: plain sampling (generation.n responses) | bon | weighted_bon | beam | dvts | adaptive (each problem's difficulty bin picks strategy, width and scorer, from `allocation`)
    )
    budget: int = 16  # N: samples (bon, weighted_bon) or continuations per step (beam, dvts)
    beam_width: int = 4  # M (beam, dvts): continuations per beam per step; N/M beams or subtrees end as N/M candidates
    scorer: str = "pav"  # step scores: pav (process_verifier, + process_base_verifier) | orm (reward_model at each step) | genrm (the generative verifier at each step) | likelihood (verifier-free: the policy's geometric-mean token probability of the path's least likely step so far) | mc (Monte Carlo continuations by the policy checked against the reference answer: an oracle bound)
    mc_rollouts: int = 4  # scorer mc: continuations per prefix
    split: str = "lines"  # step boundaries, as the training engines split: lines | episodes
    max_steps: int = 12  # tree depth (beam, dvts); at the last step open beams are completed to max_new_tokens
    step_tokens: int = 64  # most tokens one step may take (beam, dvts)
    allocation: str | None = None  # adaptive: comparison.json of `rl-pipeline allocate` (its table at this budget)

    def __post_init__(self) -> None:
        from pipeline.evaluate.search import SCORERS, STRATEGIES, TREE_SEARCHES

        if self.strategy is not None and self.strategy not in STRATEGIES:
            raise ConfigError(f"search.strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.scorer not in SCORERS:
            raise ConfigError(f"search.scorer must be one of {', '.join(SCORERS)}, got {self.scorer!r}")
        if self.split not in ("lines", "episodes"):
            raise ConfigError(f"search.split must be lines or episodes, got {self.split!r}")
        if min(self.budget, self.beam_width, self.mc_rollouts, self.max_steps, self.step_tokens) < 1:
            raise ConfigError("search.budget, beam_width, mc_rollouts, max_steps and step_tokens must be >= 1")
        if self.strategy == "adaptive" and not self.allocation:
            raise ConfigError(
                "search.strategy adaptive needs search.allocation (rl-pipeline allocate's comparison.json)"
            )
        if self.strategy in TREE_SEARCHES and self.budget % self.beam_width:
            raise ConfigError(
                f"search.budget ({self.budget}) must be a multiple of search.beam_width ({self.beam_width}): "
                f"{self.strategy} keeps budget / beam_width paths, each continued beam_width times per step"
            )


@dataclasses.dataclass
class EvalConfig:
    """``rl-pipeline evaluate``: held-out benchmarks, pass@k, maj@k, best-of-N."""

    model: ModelConfig = dataclasses.field(
        default_factory=ModelConfig
    )  # the model to generate with (not needed for generations)
    benchmarks: list[str] = dataclasses.field(
        default_factory=lambda: ["math500"]
    )  # math500 aime24 amc23 minerva_math olympiadbench gsm8k, or .jsonl paths
    data_dir: str | None = (
        None  # local benchmark files (default: $PIPELINE_EVAL_DIR, else ../shared/data/eval if present, else the Hub)
    )
    limit: int | None = None  # first N problems of each benchmark (None: all)
    instruction: str = (
        "Please reason step by step, and put your final answer within \\boxed{}."  # appended to each question
    )
    system_prompt: str | None = None  # optional system message
    generation: RolloutConfig = dataclasses.field(
        default_factory=lambda: RolloutConfig(n=4, temperature=0.6, top_p=0.95, max_new_tokens=1024, max_batch=64)
    )  # sampling; n = samples per problem
    verifier: VerifierConfig = dataclasses.field(default_factory=VerifierConfig)
    generations: str | None = None  # score this JSONL instead of generating (see keys)
    keys: GenerationKeys = dataclasses.field(default_factory=GenerationKeys)
    aggregate: str = "last"  # per-step verifier scores -> one: last / min / product / mean / max
    second_attempt: str | None = (
        None  # self-correction: after each response ask again with this instruction ("default": SCoRe's, as in training) and report Accuracy@t1/t2 and the deltas
    )
    reward_model: str | None = (
        None  # a sequence-classification model (hub name or path) scoring responses for best-of-N
    )
    genrm: str | None = (
        None  # a generative verifier (causal LM, GenRM): best-of-N by p(Yes) to "Is the answer correct (Yes/No)?"
    )
    genrm_rationales: int = (
        0  # GenRM-CoT: sampled verification rationales per response, p(Yes) averaged over them (0: direct)
    )
    process_verifier: str | None = (
        None  # a PAV model (rl-pipeline pav, prover mu): best-of-N by step scores Q^pi + process_alpha * A^mu, combined by `aggregate`
    )
    process_base_verifier: str | None = (
        None  # a PAV model labelled with the policy itself as prover (progress.prover_k 1): Q^pi of each step; None: the process verifier's own values stand in
    )
    process_alpha: float = 1.0  # weight of the prover's advantage A^mu (the change of its value across the step) against Q^pi; 0 ranks by Q^pi alone
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)  # test-time search over steps
    ks: list[int] = dataclasses.field(
        default_factory=list
    )  # k values shown in report.md (empty: powers of two and n); report.json has all
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
        if self.genrm_rationales < 0:
            raise ConfigError("genrm_rationales must be >= 0")
        if self.bootstrap < 0 or self.max_subsets < 1 or (self.limit is not None and self.limit < 1):
            raise ConfigError("bootstrap must be >= 0, max_subsets >= 1, limit >= 1")
        if any(k < 1 for k in self.ks):
            raise ConfigError(f"ks must be positive integers, got {self.ks}")
        s = self.search
        if s.strategy:
            if self.generations:
                raise ConfigError("search generates with a model; a --generations file cannot be searched")
            if self.second_attempt:
                raise ConfigError("search and second_attempt do not combine: search the first attempt only")
            from pipeline.evaluate.search import missing_scorer_input

            missing = missing_scorer_input(self, s.scorer)
            if missing:
                raise ConfigError(f"search.scorer {s.scorer} {missing}")
            if s.strategy == "adaptive" and not self.process_verifier:
                raise ConfigError(
                    "search.strategy adaptive needs process_verifier: its value of the bare question is the "
                    "difficulty that picks each problem's bin (rl-pipeline allocate --process-verifier)"
                )
