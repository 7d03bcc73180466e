"""Difficulty from solve rates: N samples of a policy per problem, checked by the verifier.

The expensive part of curation, so it is optional (list ``solve_rate`` among the
filters) and resumable: responses go to ``OUT/solve_rate/responses.jsonl`` a
chunk of problems at a time (the evaluation stage's generator: transformers on
CPU, vLLM on GPU), and a re-run only samples the problems not there yet.
Problems every sample solves, or none does, give GRPO no signal (all advantages
zero) and ALP nothing to adapt to; the thresholds that drop them are config.
"""

from __future__ import annotations

from pipeline.curate.filters import register


@register("solve_rate")
def solve_rate(
    records,
    ctx,
    model: str = "",
    n: int = 8,
    temperature: float = 1.0,
    max_new_tokens: int = 1024,
    instruction: str = "Please reason step by step, and put your final answer within \\boxed{}.",
    backend: str = "hf",
    device: str = "auto",
    min_rate: float = 0.0,
    max_rate: float = 1.0,
    drop_unsolved: bool = True,
    drop_always_solved: bool = True,
):
    """Sample ``n`` responses per problem from ``model`` (hub name or path), store the
    verifier's solve rate as the problem's difficulty, and drop problems solved by
    none (``drop_unsolved``) or all (``drop_always_solved``) of the samples, or
    with a rate outside [``min_rate``, ``max_rate``]."""
    from data.benchmarks import EvalProblem
    from pipeline.config import ConfigError, ModelConfig, RolloutConfig
    from pipeline.evaluate.config import EvalConfig
    from pipeline.evaluate.generate import Generator, check_resumable, generate_benchmark

    if not model:
        raise ConfigError("filter solve_rate: `model` is required (the policy whose solve rates define difficulty)")
    cfg = EvalConfig(
        model=ModelConfig(path=model, device=device),
        instruction=instruction,
        seed=ctx.seed,
        generation=RolloutConfig(backend=backend, n=n, temperature=temperature, max_new_tokens=max_new_tokens),
    )
    work = ctx.out / "solve_rate"
    work.mkdir(parents=True, exist_ok=True)
    check_resumable(cfg, work)
    problems = [EvalProblem("curate", r.uid, r.question, r.answer) for r in records]
    rows = generate_benchmark(Generator(cfg), problems, work / "responses.jsonl", progress=ctx.tick)
    flat = [resp for row in rows for resp in row["responses"]]
    gold = [row["answer"] for row in rows for _ in row["responses"]]
    verdicts = ctx.verifier.verify_batch(flat, gold)
    out, i = [], 0
    for r, row in zip(records, rows):
        k = len(row["responses"])
        rate = sum(v.correct for v in verdicts[i : i + k]) / max(k, 1)
        i += k
        r.meta["solve_rate"] = rate
        if drop_unsolved and rate == 0:
            out.append(f"never solved (0/{k})")
        elif drop_always_solved and rate == 1:
            out.append(f"always solved ({k}/{k})")
        elif not min_rate <= rate <= max_rate:
            out.append(f"solve rate {rate:.2f} outside [{min_rate}, {max_rate}]")
        else:
            out.append(None)
    return out
