"""The evaluation stage: generate (or read) responses, grade, score, report.

    evaluate(cfg, out)   # -> the report dict; writes OUT/report.{json,md}, plots,
                         #    OUT/generations/<benchmark>.jsonl and OUT/graded.jsonl

Two ways in: a model and benchmark names (responses are generated, resumably),
or an existing generations file (``cfg.generations``), scored without a model.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from data.io import write_jsonl
from pipeline.config import ConfigError, to_dict
from pipeline.evaluate.config import EvalConfig
from pipeline.evaluate.grade import GradedProblem, disagreements, grade, load_generations
from pipeline.evaluate.metrics import problem_table, summarize, vote_weights
from pipeline.evaluate.report import write_report


def _bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="item", disable=not enabled, dynamic_ncols=True, leave=False)


def generate_all(cfg: EvalConfig, out: Path, progress: bool, log: Callable[[str], None]) -> list[dict]:
    from data.benchmarks import load_benchmark
    from pipeline.evaluate.generate import Generator, check_resumable, generate_benchmark

    if not cfg.model.path:
        raise ConfigError("model.path (--model) is required unless --generations gives responses to score")
    if not cfg.benchmarks:
        raise ConfigError("benchmarks: name at least one (e.g. --benchmarks math500,gsm8k)")
    stems = [Path(b).stem for b in cfg.benchmarks]
    if len(set(stems)) != len(stems):
        raise ConfigError(
            f"benchmarks: two share a name ({', '.join(sorted({s for s in stems if stems.count(s) > 1}))}); "
            "their generations would share a file: rename one"
        )
    problems = {b: load_benchmark(b, cfg.data_dir, cfg.limit) for b in cfg.benchmarks}
    gen_dir = out / "generations"
    gen_dir.mkdir(parents=True, exist_ok=True)
    check_resumable(cfg, gen_dir)
    log(f"loading {cfg.model.path}")
    generator = Generator(cfg)
    s = cfg.search
    rows: list[dict] = []
    with contextlib.ExitStack() as stack:
        if s.strategy:
            from pipeline.evaluate.search import Searcher

            verifier = None
            if s.scorer == "mc" or s.strategy == "adaptive":  # mc checks answers; adaptive groups them
                from rewards.verifier import Verifier

                v = cfg.verifier
                verifier = stack.enter_context(Verifier(workers=v.workers, timeout=v.timeout, mode=v.mode))
            generator = Searcher(cfg, generator, verifier=verifier, log=log)
        for name, probs in problems.items():
            with _bar(len(probs), f"{s.strategy or 'generate'} {name}", progress) as bar:
                path = gen_dir / f"{Path(name).stem}.jsonl"
                rows += generate_benchmark(generator, probs, path, chunk=16, progress=bar.update)
            per = f"{s.strategy} search, budget {s.budget}" if s.strategy else f"{cfg.generation.n} responses"
            log(f"{name}: {len(probs)} problems x {per}")
    return rows


def _token_counter(cfg: EvalConfig):
    """Token counts for files without them: the model's tokenizer when one is named."""
    if not cfg.model.path:
        return None
    from pipeline.models.policy import load_tokenizer
    from rewards.check import MAX_RESPONSE_CHARS

    tok = load_tokenizer(cfg.model.path, cfg.model.gguf_file)
    return lambda text: len(
        tok(text[-MAX_RESPONSE_CHARS:], add_special_tokens=False, split_special_tokens=True)["input_ids"]
    )


def evaluate(cfg: EvalConfig, out: str | Path, *, progress: bool = True, log: Callable[[str], None] = print) -> dict:
    from rewards.verifier import Verifier

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a directory")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if cfg.generations and cfg.second_attempt:
        raise ConfigError(
            "second_attempt generates second attempts with a model; a --generations file brings its own "
            "(name them with --second-response-key)"
        )
    if cfg.generations:
        rows = load_generations(cfg.generations, cfg.keys, cfg.aggregate, cfg.limit)
        count = _token_counter(cfg)
        log(f"{cfg.generations}: {len(rows)} problems, {sum(len(r['responses']) for r in rows)} responses")
    else:
        rows = generate_all(cfg, out, progress, log)
        count = None
    if cfg.reward_model and not cfg.search.strategy:  # a search scored its candidates as it went
        from pipeline.evaluate.scoring import reward_model_scores

        if any("scores" in r for r in rows):
            log(f"--reward-model: its scores replace the file's {cfg.keys.verifier_score!r}")
        for r, s in zip(rows, reward_model_scores(cfg.reward_model, rows, device=cfg.model.device, log=log)):
            r["scores"] = s
    if cfg.genrm and not cfg.search.strategy:
        from pipeline.models.generative_verifier import GenerativeVerifier

        if any("scores" in r for r in rows):
            log("--genrm: its p(Yes) scores replace the other verifier scores")
        genrm = GenerativeVerifier(cfg.genrm, device=cfg.model.device, rationales=cfg.genrm_rationales, seed=cfg.seed)
        with _bar(sum(len(r["responses"]) for r in rows), "genrm", progress) as bar:
            for r in rows:
                r["scores"] = genrm.score([(r["question"], x) for x in r["responses"]])
                bar.update(len(r["responses"]))
    if cfg.process_verifier and not cfg.search.strategy:
        from pipeline.evaluate.metrics import aggregate_score
        from pipeline.models.value_model import process_scores

        if cfg.reward_model or any("scores" in r for r in rows):
            log(f"--process-verifier: its {cfg.aggregate} step scores replace the other verifier scores")
        steps_per_row = process_scores(
            cfg.process_verifier,
            rows,
            base=cfg.process_base_verifier,
            alpha=cfg.process_alpha,
            instruction=cfg.instruction,
            system_prompt=cfg.system_prompt,
            device=cfg.model.device,
            log=log,
        )
        for r, steps in zip(rows, steps_per_row):
            r["scores"] = [aggregate_score(x, cfg.aggregate) if x else 0.0 for x in steps]
    t_gen = time.perf_counter() - t0

    v = cfg.verifier
    n_checks = sum(len(r["responses"]) * ("correct" not in r) + len(r.get("responses_t2") or []) for r in rows) + len(
        rows
    )
    with (
        Verifier(workers=v.workers, timeout=v.timeout, mode=v.mode) as verifier,
        _bar(n_checks, "grade", progress) as bar,
    ):
        graded = grade(rows, verifier, count_tokens=count, progress=bar.update)
    t_grade = time.perf_counter() - t0 - t_gen
    _write_graded(graded, out / "graded.jsonl")

    by_bench: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(graded):
        by_bench[g.benchmark].append(i)
    results = [g.result() for g in graded]
    weights = vote_weights(results)
    table = problem_table(results, max_subsets=cfg.max_subsets, seed=cfg.seed, share_ties=cfg.share_ties)
    opts = dict(resamples=cfg.bootstrap, confidence=cfg.confidence, seed=cfg.seed)
    overall = summarize(results, per=table, **opts)
    report = {
        **overall["metrics"],
        "ci": overall["ci"],
        "overall": overall,
        "benchmarks": {
            b: summarize([results[i] for i in ix], per=[table[i] for i in ix], **opts) for b, ix in by_bench.items()
        },
        "weighted_vote_weights": weights if any(g.scores for g in graded) else None,
        "graded_by": (
            f"the file's `{cfg.keys.correct}`"
            if cfg.keys.correct and cfg.generations
            else f"the project's verifier ({v.mode} mode)"
        ),
        "disagreements": disagreements(graded),
        "grouping_fallbacks": sum(g.extra.get("grouping") != "ok" for g in graded),
        "settings": _settings(cfg),
        "seconds": {"generate": round(t_gen, 2), "grade": round(t_grade, 2)},
    }
    if cfg.search.strategy:
        report["search"] = search_summary(cfg, rows, overall["metrics"])
    write_report(report, out, plots=cfg.plots, ks=cfg.ks or None)
    headline = ", ".join(f"{k} {overall['metrics'][k]:.1f}" for k in _headline(overall["metrics"]))
    log(f"{overall['problems']} problems: {headline}; wrote {out / 'report.md'}")
    return report


def search_summary(cfg: EvalConfig, rows: list[dict], metrics: dict) -> dict:
    """What the search picked and what it cost: the pick's accuracy (bon@n or wbon@n over the
    candidates) and the tokens generated per problem, pruned continuations included."""
    from pipeline.evaluate.search import PICK

    s = cfg.search
    n = min(len(r["responses"]) for r in rows) if rows else 0
    spent = [r["search"]["generated_tokens"] for r in rows if "search" in r]
    chosen: dict[str, int] = {}
    for r in rows:
        if r.get("search", {}).get("chosen"):
            chosen[r["search"]["chosen"]] = chosen.get(r["search"]["chosen"], 0) + 1
    return {
        **({"allocation": s.allocation, "chosen": chosen} if s.strategy == "adaptive" else {}),
        "strategy": s.strategy,
        "budget": s.budget,
        "beam_width": s.beam_width if s.strategy in ("beam", "dvts") else None,
        # adaptive: each bin's run brings its own scorer
        "scorer": ", ".join(sorted({r["search"].get("scorer", "pav") for r in rows if "search" in r}))
        if s.strategy == "adaptive"
        else s.scorer,
        "aggregate": cfg.aggregate,
        "candidates": n,
        "pick": f"{PICK[s.strategy]}@{n}",
        "accuracy": metrics.get(f"{PICK[s.strategy]}@{n}"),
        "generated_tokens_per_problem": sum(spent) / len(spent) if spent else 0.0,
        "scorer_seconds": round(sum(r["search"].get("scorer_seconds", 0.0) for r in rows if "search" in r), 2),
        "scorer_tokens_per_problem": (
            sum(r["search"].get("scorer_tokens", 0.0) for r in rows if "search" in r) / len(spent) if spent else 0.0
        ),
    }


def _headline(metrics: dict) -> list[str]:
    n = max((int(k.split("@")[1]) for k in metrics if k.startswith("pass@")), default=1)
    keys = dict.fromkeys(("pass@1", f"pass@{n}", f"maj@{n}", f"bon@{n}", f"wbon@{n}", "acc@t1", "acc@t2"))
    return [k for k in keys if k in metrics]


def _settings(cfg: EvalConfig) -> dict:
    d = to_dict(cfg)
    if cfg.generations:
        return {
            "generations": cfg.generations,
            "keys": d["keys"],
            "aggregate": cfg.aggregate,
            "reward_model": cfg.reward_model,
            **_genrm_settings(cfg),
            **_process_settings(cfg),
            "verifier": d["verifier"],
            "bootstrap": cfg.bootstrap,
            "instruction": cfg.instruction,
            "system_prompt": cfg.system_prompt,
        }
    g = d.pop("generation")
    return {
        "model": cfg.model.path,
        "benchmarks": cfg.benchmarks,
        "n": g["n"],
        "temperature": g["temperature"],
        "top_p": g["top_p"],
        "max_new_tokens": g["max_new_tokens"],
        "backend": g["backend"],
        "instruction": cfg.instruction,
        "system_prompt": cfg.system_prompt,
        "limit": cfg.limit,
        **({"search": d["search"]} if cfg.search.strategy else {}),
        "reward_model": cfg.reward_model,
        **_genrm_settings(cfg),
        **_process_settings(cfg),
        "verifier": d["verifier"],
        "bootstrap": cfg.bootstrap,
        "seed": cfg.seed,
    }


def _genrm_settings(cfg: EvalConfig) -> dict:
    return {"genrm": cfg.genrm, "genrm_rationales": cfg.genrm_rationales} if cfg.genrm else {}


def _process_settings(cfg: EvalConfig) -> dict:
    if not cfg.process_verifier:
        return {"process_verifier": None}
    return {
        "process_verifier": cfg.process_verifier,
        "process_base_verifier": cfg.process_base_verifier,
        "process_alpha": cfg.process_alpha,
        "process_score": "Q^pi + alpha * A^mu"
        if cfg.process_base_verifier
        else "Q^mu + alpha * A^mu (no process_base_verifier: the prover's values stand in for Q^pi)",
    }


def _write_graded(graded: list[GradedProblem], path: Path) -> None:
    """Per-response grades, answers and groups: what every figure was computed from."""

    def row(g: GradedProblem) -> dict:
        out = {
            "benchmark": g.benchmark,
            "id": g.id,
            "answer": g.answer,
            "correct": g.correct,
            "extracted": g.answers,
            "group": g.labels,
        }
        for k in ("reasons", "scores", "tokens", "correct_t2", "file_correct"):
            if getattr(g, k) is not None:
                out[k] = getattr(g, k)
        return out

    write_jsonl(path, (row(g) for g in graded))
