"""The embedded CPU demo: run every stage that exists on small data, then write
``summary.json`` with each stage's headline figures.

* ``verifier``: the reward verifier on data the project generates itself (always)
  and on the real best-of-N responses in ``../shared/data/bon`` (when present).
* ``curate``: the curation stage on a slice of the real raw sources in
  ``../shared/data/raw`` (when present), decontaminated against the evaluation sets.
* ``train``: the synthetic arithmetic task -> supervised warm-up of a tiny
  from-scratch model -> GRPO, plus a same-compute supervised control from the
  same checkpoint; held-out pass@1 before, after RL and after the control.
* ``evaluate``: the evaluation stage on the held-out split for the warm-up, RL
  and control models (pass@k, maj@k, side-by-side tables), and on the real
  best-of-N file (when present), reproducing its upstream figures.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

from data.io import atomic_writer, read_jsonl, write_json, write_jsonl
from data.synthetic import labelled_responses, make_problem
from pipeline.config import RolloutConfig, SyntheticConfig, TaskConfig, VerifierConfig, to_dict
from pipeline.evaluate.config import EvalConfig
from pipeline.train.config import TrainConfig, WarmupConfig


@dataclasses.dataclass
class DemoConfig:
    out: str = "runs/demo"  # output directory
    verifier: VerifierConfig = dataclasses.field(default_factory=VerifierConfig)
    synthetic: SyntheticConfig = dataclasses.field(default_factory=SyntheticConfig)
    bon_file: str | None = None  # real best-of-N responses with labels; skipped when missing
    stages: list[str] = dataclasses.field(
        default_factory=lambda: ["verifier", "curate", "train", "evaluate"]
    )  # which demo parts run
    curate_config: str | None = None  # a curation config for the curate part (skipped when its sources are missing)
    curate_limit: int | None = 300  # rows read per source in the demo (None: all)
    task: TaskConfig = dataclasses.field(default_factory=TaskConfig)
    warmup: WarmupConfig = dataclasses.field(default_factory=WarmupConfig)  # data/model filled in by the demo
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)  # data/model filled in by the demo
    evaluate: EvalConfig = dataclasses.field(
        default_factory=lambda: EvalConfig(
            instruction="", bootstrap=1000, generation=RolloutConfig(n=8, temperature=1.0, max_new_tokens=40)
        )
    )  # models/benchmarks filled in by the demo


def _score(verdicts, labels) -> dict:
    n = len(verdicts)
    agree = sum(v.correct == bool(lab) for v, lab in zip(verdicts, labels))
    return {
        "responses": n,
        "verifier_correct": sum(v.correct for v in verdicts),
        "label_correct": sum(bool(x) for x in labels),
        "agreement": round(agree / n, 4) if n else None,
        "disagreements": n - agree,
        "reasons": dict(Counter(v.reason for v in verdicts)),
    }


def run_verifier_demo(cfg: DemoConfig, out: Path, log=print) -> dict:
    from rewards.verifier import Verifier

    s = cfg.synthetic
    rng = random.Random(s.seed)
    problems = [make_problem(rng, steps=s.steps, max_operand=s.max_operand) for _ in range(s.problems)]
    pairs = labelled_responses(problems, rng)
    summary: dict = {}
    with Verifier(workers=cfg.verifier.workers, timeout=cfg.verifier.timeout, mode=cfg.verifier.mode) as v:
        t0 = time.perf_counter()
        verdicts = v.verify_batch([r for r, _ in pairs], [p.answer for p in problems])
        dt = time.perf_counter() - t0
        summary["synthetic"] = {
            **_score(verdicts, [lab for _, lab in pairs]),
            "checks_per_s": round(len(pairs) / dt, 1),
        }
        write_jsonl(
            out / "verifier_synthetic.jsonl",
            (
                {"question": p.question, "answer": p.answer, "response": r, "label": lab, **vd.to_dict()}
                for p, (r, lab), vd in zip(problems, pairs, verdicts)
            ),
        )
        log(f"verifier on {len(pairs)} synthetic responses: agreement {summary['synthetic']['agreement']:.4f}")

        bon = Path(cfg.bon_file) if cfg.bon_file else None
        if bon is not None and bon.is_file():
            rows = [row for _, row in read_jsonl(bon)]
            resp = [r for row in rows for r in row["response"]]
            gold = [row["gt"] for row in rows for _ in row["response"]]
            labels = [s_ for row in rows for s_ in row["score"]]
            t0 = time.perf_counter()
            verdicts = v.verify_batch(resp, gold)
            dt = time.perf_counter() - t0
            summary["bon"] = {**_score(verdicts, labels), "checks_per_s": round(len(resp) / dt, 1), "file": str(bon)}
            log(
                f"verifier on {len(resp)} real responses ({bon.name}): agreement with reference labels "
                f"{summary['bon']['agreement']:.4f}, {summary['bon']['checks_per_s']:.0f} checks/s"
            )
        else:
            summary["bon"] = {"skipped": f"{cfg.bon_file} not found (real data is optional)"}
            log(f"real best-of-N file not found ({cfg.bon_file}); synthetic data only")
    return summary


def write_task_data(task, out: Path) -> tuple[Path, Path]:
    """The synthetic task as verl parquet: ``train.parquet`` (with worked solutions,
    a share of them flawed) and a disjoint ``heldout.parquet``."""
    from data.formats import synthetic_rows, write_parquet

    common = dict(steps=task.steps, max_operand=task.max_operand, ops=tuple(task.ops))
    train = synthetic_rows(task.train, seed=task.seed, split="train", error_rate=task.error_rate, **common)
    held = (
        synthetic_rows(
            task.heldout,
            seed=task.seed + 1,
            split="test",
            exclude={r["extra_info"]["question"] for r in train},
            **common,
        )
        if task.heldout
        else []
    )
    write_parquet(train, out / "train.parquet")
    if held:
        write_parquet(held, out / "heldout.parquet")
    return out / "train.parquet", out / "heldout.parquet"


def run_supervised_control(train_cfg, warm_model: str, log, save_to: Path | None = None) -> dict:
    """Continue supervised training from the warm-up checkpoint with the RL run's
    compute: as many optimizer steps, each on as many sequences (prompts x K),
    at the same learning rate and schedule; then the same held-out measurement."""
    import torch

    from data.formats import read_rl_rows
    from pipeline.models.policy import load_policy, save_policy
    from pipeline.train.heldout import eval_seed, heldout_accuracy
    from pipeline.train.sft import sft_examples, train_sft
    from rewards.verifier import Verifier

    tc = train_cfg
    torch.manual_seed(tc.seed)
    model, tok = load_policy(warm_model, device=tc.model.device)
    rows = read_rl_rows(tc.data.train_files)
    heldout = read_rl_rows(tc.data.heldout_files, limit=tc.data.heldout_limit)
    t0 = time.perf_counter()
    train_sft(
        model,
        tok,
        sft_examples(rows, tok),
        steps=tc.steps,
        batch_size=tc.prompts_per_step * tc.rollout.n,
        lr=tc.optim.lr,
        schedule=tc.optim.schedule,
        warmup_steps=tc.optim.warmup_steps,
        seed=tc.seed,
    )
    seconds = time.perf_counter() - t0
    if save_to is not None:
        save_policy(model, tok, save_to)
    with Verifier(workers=1) as v:
        r = heldout_accuracy(
            model,
            tok,
            heldout,
            v,
            samples=tc.heldout_samples,
            temperature=tc.heldout_temperature,
            max_new_tokens=tc.rollout.max_new_tokens,
            seed=eval_seed(tc.seed, tc.steps),
        )
    log(
        f"supervised control: {tc.steps} steps x {tc.prompts_per_step * tc.rollout.n} sequences in {seconds:.0f} s, "
        f"held-out pass@1 {r['acc']:.3f}"
    )
    return {"control_acc_after": r["acc"], "control_seconds": round(seconds, 2)}


def run_train_demo(cfg: DemoConfig, out: Path, log) -> dict:
    """Synthetic data -> warm-up -> GRPO and a supervised control (see module doc)."""
    from pipeline.train.engine import train
    from pipeline.train.sft import run_warmup

    for sub in ("warmup", "rl", "control"):  # a demo always starts over
        shutil.rmtree(out / sub, ignore_errors=True)
    train_file, held_file = write_task_data(cfg.task, out / "data")
    data = dataclasses.replace(cfg.warmup.data, train_files=[str(train_file)], heldout_files=[str(held_file)])
    log(
        f"synthetic task: {cfg.task.train} training / {cfg.task.heldout} held-out problems, "
        f"{cfg.task.steps} steps of {cfg.task.ops!r} on operands <= {cfg.task.max_operand}, "
        f"{cfg.task.error_rate:.0%} of worked solutions flawed"
    )
    bars = sys.stderr.isatty()  # progress bars on a terminal only, never into a log
    warm = run_warmup(dataclasses.replace(cfg.warmup, data=data), out / "warmup", log=log, progress=bars)
    warm_model = str(out / "warmup" / "model")
    tc = dataclasses.replace(
        cfg.train,
        model=dataclasses.replace(cfg.train.model, path=warm_model),
        data=dataclasses.replace(cfg.train.data, train_files=[str(train_file)], heldout_files=[str(held_file)]),
    )
    rl = train(tc, out / "rl", log=log, progress=bars)
    log(
        f"GRPO: held-out pass@1 {rl['heldout_acc_before']:.3f} -> {rl['heldout_acc_after']:.3f} "
        f"in {tc.steps} steps ({rl['seconds_this_run']:.0f} s)"
    )
    control = run_supervised_control(tc, warm_model, log, save_to=out / "control" / "model")
    return {
        "warmup_heldout_acc": warm.get("heldout_acc"),
        "warmup_heldout_acc_greedy": warm.get("heldout_acc_greedy"),
        "warmup_seconds": warm["seconds"],
        "heldout_acc_before": rl["heldout_acc_before"],
        "heldout_acc_after": rl["heldout_acc_after"],
        **control,
        "rl_seconds": rl["seconds_this_run"],
        "rl_steps": tc.steps,
        "metrics": str(out / "rl" / "metrics.jsonl"),
    }


def run_evaluate_demo(cfg: DemoConfig, out: Path, log) -> dict:
    """The evaluation stage on the demo's own models and, when present, the real
    best-of-N file; comparison tables in ``OUT/eval/*.md``."""
    from pipeline.evaluate.report import compare_markdown
    from pipeline.evaluate.run import evaluate

    summary: dict = {}
    held = out / "data" / "heldout.parquet"
    models = {name: out / name / "model" for name in ("warmup", "rl", "control")}
    models = {k: p for k, p in models.items() if p.is_dir()}
    ec = cfg.evaluate
    keep = ("pass@1", f"pass@{ec.generation.n}", f"maj@{ec.generation.n}")
    if held.is_file() and models:
        reports = {}
        for name, path in models.items():
            shutil.rmtree(out / "eval" / name, ignore_errors=True)  # a demo always starts over
            c = dataclasses.replace(
                ec, model=dataclasses.replace(ec.model, path=str(path)), benchmarks=[str(held)], generations=None
            )
            reports[name] = evaluate(c, out / "eval" / name, progress=False, log=lambda m: None)
            summary[name] = {k: reports[name][k] for k in keep}
            log(
                f"evaluate {name} on held-out ({ec.generation.n} samples, T={ec.generation.temperature}): "
                + ", ".join(f"{k} {v:.1f}" for k, v in summary[name].items())
            )
        for other in ("rl", "control"):
            if "warmup" in reports and other in reports:
                with atomic_writer(out / "eval" / f"warmup_vs_{other}.md") as f:
                    f.write(compare_markdown(reports["warmup"], reports[other], "warmup", other))
    else:
        summary["heldout"] = {"skipped": "no demo models yet (run the train stage first)"}
    bon = Path(cfg.bon_file) if cfg.bon_file else None
    if bon is not None and bon.is_file():
        keys = dataclasses.replace(
            ec.keys, response="response", answer="gt", correct="score", verifier_score="pred_score"
        )
        c = dataclasses.replace(ec, generations=str(bon), keys=keys, model=dataclasses.replace(ec.model, path=""))
        rep = evaluate(c, out / "eval" / "bon", progress=False, log=lambda m: None)
        summary["bon"] = {k: rep[k] for k in ("pass@1", "maj@8", "bon@8", "pass@8")}
        log(f"evaluate {bon.name} from its own fields: " + ", ".join(f"{k} {v:.1f}" for k, v in summary["bon"].items()))
    return summary


def run_curate_demo(cfg: DemoConfig, out: Path, log) -> dict:
    """The curation stage on the first ``curate_limit`` rows of each real raw source
    (``curate_config``; skipped with a note when the sources are not there)."""
    from pipeline.config import load_config
    from pipeline.curate.config import CurateConfig
    from pipeline.curate.run import curate

    if not cfg.curate_config or not Path(cfg.curate_config).is_file():
        log(f"curation config not found ({cfg.curate_config}); curate part skipped")
        return {"skipped": f"{cfg.curate_config} not found"}
    cc = load_config(CurateConfig, cfg.curate_config)
    missing = [s.file for s in cc.sources if s.file and not Path(s.file).is_file()]
    if missing:
        log(f"raw sources not found ({missing[0]} ...); curate part skipped (real data is optional)")
        return {"skipped": f"raw sources not found: {', '.join(missing)}"}
    for s in cc.sources:
        s.limit = cfg.curate_limit
    rep = curate(cc, out / "curated", progress=False, log=lambda m: None)
    log(
        f"curate {rep['rows_in']} raw rows ({cfg.curate_limit} per source): kept {rep['kept']}, "
        + ", ".join(f"{f['filter']} -{f['dropped']}" for f in rep["filters"] if f["dropped"])
    )
    return {
        k: rep[k]
        for k in (
            "rows_in",
            "kept",
            "train",
            "val",
            "dropped",
            "contaminated_by_eval_set",
            "reformulated_multiple_choice",
        )
    } | {
        "dropped_by_filter": {f["filter"]: f["dropped"] for f in rep["filters"]},
        "report": str(out / "curated" / "report.md"),
    }


DEMO_STAGES = {
    "verifier": run_verifier_demo,
    "curate": run_curate_demo,
    "train": run_train_demo,
    "evaluate": run_evaluate_demo,
}


def run_demo(cfg: DemoConfig, out_dir: str | None = None) -> dict:
    out = Path(out_dir or cfg.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"[demo] {msg}", file=sys.stderr, flush=True)

    unknown = [s for s in cfg.stages if s not in DEMO_STAGES]
    if unknown:
        from pipeline.config import ConfigError

        raise ConfigError(f"stages: unknown {unknown}; choose from {list(DEMO_STAGES)}")
    t0 = time.perf_counter()
    summary = {"config": to_dict(cfg), "stages": list(cfg.stages)}
    for stage in cfg.stages:
        summary[stage] = DEMO_STAGES[stage](cfg, out, log)
        write_json(out / "summary.json", summary)  # partial results survive a later failure
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    write_json(out / "summary.json", summary)
    log(f"wrote {out / 'summary.json'}")
    return summary
