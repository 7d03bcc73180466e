"""The pipeline on a Slurm cluster: submit every stage as an sbatch job chained with
``--dependency=afterok``, and the evaluation stage's array tasks and merge step.

    rl-pipeline submit --config configs/pipeline/demo.yaml [--dry-run]

A pipeline config (:class:`PipelineConfig`) lists stages in order. Each names its
``kind`` (which ``rl-pipeline`` stage runs, hence which ``slurm/*.sbatch``
script), its own stage config file, and ``overrides`` of that config's keys, where
``${stage}`` stands for an earlier stage's output directory ``OUT/<stage>``:

    stages:
      - {name: data, kind: curate, config: ../curate/shared.yaml}
      - {name: train, kind: train, config: ../train/qwen.yaml,
         overrides: {data.train_files: ["${data}/train.parquet"]}}

At submit time every stage config is loaded with its overrides (so a mistake is
one line on stderr before anything is queued) and written, fully resolved, to
``OUT/configs/<stage>.yaml``: the job runs exactly that file. Job ids go to
stdout and ``OUT/jobs.json``, logs to ``OUT/logs``.

An ``evaluate`` stage is a job array, one task per benchmark (or per shard of
one: ``shards``), each task writing ``OUT/<stage>/shards/<benchmark>[.<shard>]``
(:func:`eval_task`), then a merge job that builds the combined report in
``OUT/<stage>`` from the shards' generations without a model (:func:`merge_eval`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from data.io import InputError, atomic_writer, read_jsonl, write_json, write_jsonl
from pipeline.config import ConfigError, TaskConfig, load_config, to_dict
from pipeline.curate.config import CurateConfig
from pipeline.evaluate.config import EvalConfig, GenerationKeys
from pipeline.train.config import TrainConfig, WarmupConfig

REPO = Path(__file__).resolve().parents[1]
SLURM_DIR = REPO / "slurm"


@dataclasses.dataclass(frozen=True)
class Kind:
    """What a stage kind runs: its config class, its sbatch script and the script's flags."""

    config: type
    script: str
    flags: tuple[str, ...] = ()


KINDS = {
    "curate": Kind(CurateConfig, "curate.sbatch"),
    "synthetic": Kind(TaskConfig, "curate.sbatch", ("--synthetic",)),
    "warmup": Kind(WarmupConfig, "train.sbatch", ("--warmup",)),
    "train": Kind(TrainConfig, "train.sbatch"),
    "evaluate": Kind(EvalConfig, "evaluate.sbatch"),
}
ENGINES = ("auto", "local", "verl")
_RESERVED = {"configs", "logs", "out"}  # OUT/configs and OUT/logs are the pipeline's; ${out} is OUT
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


@dataclasses.dataclass
class StageConfig:
    """One stage of a pipeline: one sbatch job (an ``evaluate`` stage: an array and a merge job)."""

    name: str = ""  # output directory OUT/<name>, job name and the ${name} placeholder; letters, digits, _ . -
    kind: str = ""  # curate / synthetic / warmup / train / evaluate: the stage that runs (and its sbatch script)
    config: str = ""  # the stage's own config file (relative to the pipeline config)
    overrides: dict = dataclasses.field(default_factory=dict)  # stage config keys to set, dotted: {model.path: "${warmup}/model"}
    after: list[str] = dataclasses.field(default_factory=list)  # stages this one waits for (afterok); empty: the stage before it
    sbatch: list[str] = dataclasses.field(default_factory=list)  # sbatch options for this stage's jobs, e.g. [--gres=gpu:8, --time=2-00:00:00]
    nodes: int = 1  # train: nodes; more than one needs the verl engine (Ray over the nodes)
    engine: str = "auto"  # train: local (one process) / verl (Ray) / auto (local on one node with at most one GPU, else verl)
    shards: int = 1  # evaluate: array tasks per benchmark (1: one task per benchmark)
    max_parallel: int | None = None  # evaluate: array tasks running at once (--array=0-N%max_parallel; None: no limit)
    merge_sbatch: list[str] = dataclasses.field(default_factory=list)  # evaluate: sbatch options for the merge job (CPU only)

    def __post_init__(self) -> None:
        where = f"stage {self.name!r}" if self.name else "stages"
        if not self.name or not re.fullmatch(r"[A-Za-z0-9][\w.-]*", self.name):
            raise ConfigError(f"{where}: every stage needs a name of letters, digits, '_', '.', '-' (got {self.name!r})")
        if self.name in _RESERVED:
            raise ConfigError(f"{where}: the names {sorted(_RESERVED)} are reserved")
        if self.kind not in KINDS:
            raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not self.config:
            raise ConfigError(f"{where}: `config` (the stage's config file) is required")
        if self.engine not in ENGINES:
            raise ConfigError(f"{where}: engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.nodes < 1 or self.shards < 1 or (self.max_parallel is not None and self.max_parallel < 1):
            raise ConfigError(f"{where}: nodes, shards and max_parallel must be >= 1")
        if self.nodes > 1 and self.kind != "train":
            raise ConfigError(f"{where}: only a train stage runs on several nodes (nodes: {self.nodes})")
        if self.nodes > 1 and self.engine == "local":
            raise ConfigError(f"{where}: the local engine is one process on one node; use engine: verl for nodes: {self.nodes}")


@dataclasses.dataclass
class PipelineConfig:
    """``rl-pipeline submit``: every stage as a Slurm job, each waiting for the ones before it."""

    name: str = ""  # job name prefix (default: the config file's name)
    out: str = "runs/pipeline"  # each stage writes OUT/<stage>; resolved stage configs in OUT/configs, logs in OUT/logs
    sbatch: list[str] = dataclasses.field(default_factory=list)  # sbatch options for every job (before each stage's own), e.g. [--account=proj, --partition=gpu]
    stages: list[StageConfig] = dataclasses.field(default_factory=list)  # in order (see StageConfig)

    def __post_init__(self) -> None:
        if not self.stages:
            raise ConfigError("stages: at least one stage is required")
        names = [s.name for s in self.stages]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"stages: duplicate names {dup}")
        for i, s in enumerate(self.stages):
            unknown = [a for a in s.after if a not in names[:i]]
            if unknown:
                raise ConfigError(f"stage {s.name!r}: after: {unknown} name no stage before it "
                                  f"(earlier stages: {names[:i] or 'none'})")


# --------------------------------------------------------------------------- planning


@dataclasses.dataclass
class Job:
    """One sbatch submission; ``after`` are keys of jobs it waits for."""

    key: str
    stage: str
    argv: list[str]  # sbatch and its options, without the dependency; the script and its arguments last
    after: list[str]
    script_at: int  # index of the script in argv (the dependency option goes before it)

    def command(self, ids: dict[str, str]) -> list[str]:
        argv = list(self.argv)
        if self.after:
            dep = "afterok:" + ":".join(ids[k] for k in self.after)
            argv[self.script_at:self.script_at] = [f"--dependency={dep}", "--kill-on-invalid-dep=yes"]
        return argv


@dataclasses.dataclass
class Plan:
    config: PipelineConfig
    out: Path
    stage_configs: dict[str, object]  # stage name -> its resolved config dataclass
    jobs: list[Job]


def _options(items: list[str], where: str) -> list[str]:
    """sbatch options from config lists; an item may hold several (``"-c 4"``)."""
    out: list[str] = []
    for item in items:
        try:
            out += shlex.split(item)
        except ValueError as e:
            raise ConfigError(f"{where}: cannot split {item!r}: {e}") from None
    return out


def load_pipeline(path: str | os.PathLike, out: str | None = None) -> PipelineConfig:
    """The pipeline config at ``path`` (stage config paths made absolute); ``out`` overrides its ``out``."""
    cfg = load_config(PipelineConfig, path, {"out": str(Path(out).resolve())} if out else None)
    base = Path(path).resolve().parent
    for s in cfg.stages:
        p = Path(os.path.expanduser(s.config))
        s.config = str(p if p.is_absolute() else (base / p).resolve())
        if not Path(s.config).is_file():
            raise ConfigError(f"stage {s.name!r}: config file not found: {s.config}")
    if not cfg.name:
        cfg.name = Path(path).stem
    return cfg


def _ancestors(cfg: PipelineConfig) -> dict[str, set[str]]:
    parents = {s.name: (s.after or ([cfg.stages[i - 1].name] if i else [])) for i, s in enumerate(cfg.stages)}
    out: dict[str, set[str]] = {}
    for s in cfg.stages:  # stages only wait for earlier ones, so one pass in order suffices
        out[s.name] = set(parents[s.name]).union(*(out[p] for p in parents[s.name]))
    return out


def _substitute(value, stage: str, dirs: dict[str, str], ancestors: set[str]):
    """``${name}`` -> that stage's output directory (``${out}``: the pipeline's), recursively."""
    if isinstance(value, dict):
        return {k: _substitute(v, stage, dirs, ancestors) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, stage, dirs, ancestors) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        name = m.group(1)
        if name not in dirs:
            raise ConfigError(f"stage {stage!r}: overrides: unknown placeholder ${{{name}}}; known: "
                              + ", ".join(f"${{{n}}}" for n in dirs))
        if name != "out" and name not in ancestors:
            raise ConfigError(f"stage {stage!r}: overrides: ${{{name}}} is the output of a stage this one does not "
                              "wait for (list it in `after`, or order the stages so that it runs first)")
        return dirs[name]

    return _PLACEHOLDER.sub(one, value)


def _nest(flat: dict, stage: str) -> dict:
    """``{"model.path": x, "rollout": {"n": 4}}`` -> nested mappings."""
    out: dict = {}
    for key, value in flat.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"stage {stage!r}: overrides: keys must be non-empty strings, got {key!r}")
        *parents, leaf = key.split(".")
        d = out
        for p in parents:
            nxt = d.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"stage {stage!r}: overrides: {key!r} conflicts with {p!r}")
            d = nxt
        if isinstance(value, dict) and isinstance(d.get(leaf), dict):
            d[leaf].update(value)
        else:
            d[leaf] = value
    return out


def _check_stage(stage: StageConfig, c) -> None:
    """What a stage needs before it can run at all: fail at submit time, not hours later in the queue."""
    where = f"stage {stage.name!r} ({stage.config})"
    if stage.kind == "curate":
        from pipeline.curate.run import filter_plan

        if not c.sources:
            raise ConfigError(f"{where}: sources: at least one source is required")
        try:
            filter_plan(c.filters)  # filter names and parameters, checked by the stage's own registry
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
    if stage.kind in ("warmup", "train") and not c.data.train_files:
        raise ConfigError(f"{where}: data.train_files is empty (set it, e.g. in overrides: "
                          "{data.train_files: [\"${data}/train.parquet\"]})")
    if stage.kind == "train" and not c.model.path:
        raise ConfigError(f"{where}: model.path is empty (a hub name, a directory, or \"${{warmup}}/model\")")
    if stage.kind == "evaluate":
        if c.generations:
            raise ConfigError(f"{where}: `generations` is set: scoring a file needs no array of model jobs; "
                              "run `rl-pipeline evaluate --config ...` (or slurm/evaluate.sbatch without --array)")
        if not c.model.path:
            raise ConfigError(f"{where}: model.path is empty (e.g. \"${{train}}/model\")")
        if not c.benchmarks:
            raise ConfigError(f"{where}: benchmarks: name at least one")
        stems = [Path(b).stem for b in c.benchmarks]
        if len(set(stems)) != len(stems):
            raise ConfigError(f"{where}: two benchmarks share the name {sorted({s for s in stems if stems.count(s) > 1})}; "
                              "their shards would share a directory: rename one")


def _local_model_path(c, config_file: str) -> None:
    """``model.path: ../x`` in a stage config means a directory beside that config (as every
    other path in it), not beside wherever the job happens to start."""
    model = getattr(c, "model", None)
    p = getattr(model, "path", "") or ""
    if p.startswith(("./", "../", "~")):
        model.path = str((Path(config_file).parent / os.path.expanduser(p)).resolve())


def plan(cfg: PipelineConfig, sbatch_args: list[str] | None = None) -> Plan:
    """Every stage config resolved and checked, and the sbatch command of every job."""
    out = Path(cfg.out)
    dirs = {"out": str(out), **{s.name: str(out / s.name) for s in cfg.stages}}
    ancestors = _ancestors(cfg)
    common = _options(cfg.sbatch, "sbatch")
    extra = list(sbatch_args or [])
    logs = out / "logs"
    stage_configs: dict[str, object] = {}
    jobs: list[Job] = []
    last_job: dict[str, str] = {}  # stage -> the key of the job its dependents wait for
    for i, s in enumerate(cfg.stages):
        kind = KINDS[s.kind]
        overrides = _nest(_substitute(s.overrides, s.name, dirs, ancestors[s.name]), s.name)
        try:
            c = load_config(kind.config, s.config, overrides)
        except (ConfigError, InputError) as e:
            raise ConfigError(f"stage {s.name!r} ({s.config}): {e}") from None
        _local_model_path(c, s.config)
        _check_stage(s, c)
        stage_configs[s.name] = c
        resolved = out / "configs" / f"{s.name}.yaml"
        parents = s.after or ([cfg.stages[i - 1].name] if i else [])
        after = [last_job[p] for p in parents]
        own = _options(s.sbatch, f"stage {s.name!r}: sbatch")
        name = f"--job-name={cfg.name}-{s.name}"
        if s.kind == "evaluate":
            tasks = len(c.benchmarks) * s.shards
            array = f"--array=0-{tasks - 1}" + (f"%{s.max_parallel}" if s.max_parallel else "")
            argv = ["sbatch", "--parsable", name, array, f"--output={logs}/%x-%A_%a.out", *common, *own, *extra]
            script = [str(SLURM_DIR / kind.script), "--shards", str(s.shards), str(resolved), str(out / s.name)]
            jobs.append(Job(s.name, s.name, argv + script, after, len(argv)))
            merge_own = _options(s.merge_sbatch, f"stage {s.name!r}: merge_sbatch")
            argv = ["sbatch", "--parsable", f"--job-name={cfg.name}-{s.name}-merge", f"--output={logs}/%x-%j.out",
                    *common, *merge_own, *extra]
            script = [str(SLURM_DIR / "evaluate_merge.sbatch"), str(resolved), str(out / s.name)]
            jobs.append(Job(f"{s.name}-merge", s.name, argv + script, [s.name], len(argv)))
            last_job[s.name] = f"{s.name}-merge"
            continue
        argv = ["sbatch", "--parsable", name, f"--output={logs}/%x-%j.out"]
        flags = list(kind.flags)
        if s.kind == "train":
            argv.append(f"--nodes={s.nodes}")
            flags += ["--engine", s.engine]
        argv += [*common, *own, *extra]
        script = [str(SLURM_DIR / kind.script), *flags, str(resolved), str(out / s.name)]
        jobs.append(Job(s.name, s.name, argv + script, after, len(argv)))
        last_job[s.name] = s.name
    return Plan(cfg, out, stage_configs, jobs)


def write_stage_configs(p: Plan) -> None:
    for name, c in p.stage_configs.items():
        with atomic_writer(p.out / "configs" / f"{name}.yaml") as f:
            f.write(f"# stage {name!r} of pipeline {p.config.name!r}, resolved by `rl-pipeline submit`\n")
            yaml.safe_dump(to_dict(c), f, sort_keys=False, allow_unicode=True)


# --------------------------------------------------------------------------- submitting


class SubmitError(ConfigError):
    """sbatch refused a job (shown as one line, like a config error)."""


def parse_job_id(stdout: str) -> str:
    """The job id from ``sbatch --parsable`` output (``"123"`` or ``"123;cluster"``)."""
    text = stdout.strip().splitlines()[-1].strip() if stdout.strip() else ""
    jid = text.split(";", 1)[0]
    if not jid.isdigit():
        raise SubmitError(f"sbatch printed {stdout.strip()!r}, not a job id")
    return jid


def _sbatch(argv: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise SubmitError(f"{argv[0]} not found: submit from a machine with the Slurm client "
                          "(or print the commands with --dry-run)") from None
    except subprocess.TimeoutExpired:
        raise SubmitError(f"{argv[0]} did not answer in 120 s (is slurmctld reachable?)") from None


def submit(p: Plan, *, dry_run: bool = False, echo: Callable[[str], None] = print,
           log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> dict[str, str]:
    """Submit every job in order (or, with ``dry_run``, print its command); returns
    ``{job key: id}``. A refused submission cancels the jobs this call queued."""
    if dry_run:
        for job in p.jobs:
            echo(shlex.join(job.command({k: f"<{k}>" for k in job.after})))
        return {}
    write_stage_configs(p)
    (p.out / "logs").mkdir(parents=True, exist_ok=True)
    ids: dict[str, str] = {}
    commands: dict[str, list[str]] = {}
    for job in p.jobs:
        argv = job.command(ids)
        r = _sbatch(argv)
        if r.returncode != 0:
            msg = " ".join((r.stderr.strip() or r.stdout.strip() or f"exit code {r.returncode}").split())
            if ids:
                subprocess.run(["scancel", *ids.values()], capture_output=True, timeout=60)
                msg += f"; cancelled the jobs already queued ({', '.join(ids.values())})"
            raise SubmitError(f"sbatch refused job {job.key!r}: {msg}")
        ids[job.key] = parse_job_id(r.stdout)
        commands[job.key] = argv
        echo(f"{job.key} {ids[job.key]}")
    write_json(p.out / "jobs.json", {
        "pipeline": p.config.name, "submitted": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "jobs": {k: {"id": ids[k], "command": shlex.join(commands[k])} for k in ids},
    })
    log(f"submitted {len(ids)} jobs; outputs in {p.out}, logs in {p.out / 'logs'}, ids in {p.out / 'jobs.json'}")
    return ids


# --------------------------------------------------------------------------- evaluation array and merge


def _shard_dir(out: Path, stem: str, shard: int, shards: int) -> Path:
    return out / "shards" / (stem if shards == 1 else f"{stem}.{shard}")


def eval_task(cfg: EvalConfig, out: str | Path, task: int, shards: int = 1, *, progress: bool = True,
              log: Callable[[str], None] = print) -> dict:
    """One array task: benchmark ``task // shards`` (its ``task % shards``-th contiguous
    slice when ``shards`` > 1) into ``OUT/shards/<benchmark>[.<shard>]``, then
    ``shard.json`` there, which marks the task done for :func:`merge_eval`."""
    from data.benchmarks import load_benchmark
    from pipeline.evaluate.run import evaluate

    if cfg.generations:
        raise ConfigError("--array-task: this config scores a generations file (`generations`); "
                          "there is nothing to split: run it as one job")
    if shards < 1:
        raise ConfigError(f"--shards must be >= 1, got {shards}")
    n = len(cfg.benchmarks) * shards
    if not 0 <= task < n:
        raise ConfigError(f"--array-task {task}: the config has {len(cfg.benchmarks)} benchmark(s) x {shards} "
                          f"shard(s) = {n} task(s): submit with --array=0-{n - 1}")
    stems = [Path(b).stem for b in cfg.benchmarks]
    if len(set(stems)) != len(stems):
        raise ConfigError(f"benchmarks: two share a name ({', '.join(sorted({s for s in stems if stems.count(s) > 1}))}); "
                          "their shards would share a directory: rename one")
    bench, shard = cfg.benchmarks[task // shards], task % shards
    stem = Path(bench).stem
    d = _shard_dir(Path(out), stem, shard, shards)
    meta = {"benchmark": bench, "name": stem, "shard": shard, "shards": shards, "task": task}
    (d / "shard.json").unlink(missing_ok=True)  # not done until this run says so
    if shards == 1:
        c = dataclasses.replace(cfg, benchmarks=[bench], plots=False)
        log(f"array task {task}: {stem}")
    else:
        problems = load_benchmark(bench, cfg.data_dir, cfg.limit)
        lo, hi = len(problems) * shard // shards, len(problems) * (shard + 1) // shards
        meta.update(first=lo, end=hi)
        log(f"array task {task}: {stem} shard {shard + 1}/{shards}, problems {lo}..{hi - 1} of {len(problems)}")
        if hi == lo:
            write_json(d / "shard.json", {**meta, "problems": 0})
            log(f"shard {shard + 1}/{shards} of {stem} is empty ({len(problems)} problems)")
            return {}
        part = d / "problems" / f"{stem}.jsonl"  # named as the benchmark, so its rows keep the benchmark's name
        write_jsonl(part, ({"id": p.id, "problem": p.question, "answer": p.answer, **p.meta} for p in problems[lo:hi]))
        c = dataclasses.replace(cfg, benchmarks=[str(part)], limit=None, plots=False)
    report = evaluate(c, d, progress=progress, log=log)
    write_json(d / "shard.json", {**meta, "problems": report["overall"]["problems"]})
    return report


def merge_eval(cfg: EvalConfig, out: str | Path, *, progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """The report of every benchmark of ``cfg`` from the finished shards in ``OUT/shards``:
    their generations (and verifier scores, if any) are joined into
    ``OUT/generations.jsonl`` and scored as one file (no model is loaded), so the
    figures are those one job over all benchmarks would give."""
    from pipeline.evaluate.run import evaluate

    out = Path(out)
    root = out / "shards"
    found: dict[tuple[str, int], tuple[Path, dict]] = {}
    for meta_file in sorted(root.glob("*/shard.json")):
        try:
            m = json.loads(meta_file.read_text())
            found[(m["name"], int(m["shard"]))] = (meta_file.parent, m)
        except (ValueError, KeyError, TypeError):
            raise InputError(f"{meta_file} is corrupt; re-run that array task") from None
    if not found:
        raise InputError(f"no finished array task in {root}: did `evaluate --array-task` run with --out {out}?")
    counts = sorted({m["shards"] for _, m in found.values()})
    if len(counts) > 1:
        raise InputError(f"{root} mixes runs with {counts} shards per benchmark; delete it and run the array again")
    shards = counts[0]
    expected = [(Path(b).stem, s) for b in cfg.benchmarks for s in range(shards)]
    missing = [k for k in expected if k not in found]
    if missing:
        names = ", ".join(f"{n}" if shards == 1 else f"{n}.{s}" for n, s in missing)
        tasks = ", ".join(str(expected.index(k)) for k in missing)
        raise InputError(f"{len(missing)} of {len(expected)} array tasks have not finished ({names}: task(s) {tasks}); "
                         "see their logs, re-run them, then merge again")
    extra = sorted(set(found) - set(expected))
    if extra:
        log(f"ignoring shards not in the config's benchmarks: {', '.join(n for n, _ in extra)}")

    rows: list[dict] = []
    settings: dict | None = None
    parts = []
    for key in expected:
        d, m = found[key]
        name = key[0]
        gen = d / "generations" / f"{name}.jsonl"
        got = [r for _, r in read_jsonl(gen)] if m["problems"] else []
        if len(got) != m["problems"]:
            raise InputError(f"{gen} holds {len(got)} problems, its task finished with {m['problems']}; "
                             "re-run that array task")
        if m["problems"]:
            st = json.loads((d / "generations" / "settings.json").read_text())
            if settings is None:
                settings = st
            elif st != settings:
                diff = sorted(k for k in set(st) | set(settings) if st.get(k) != settings.get(k))
                raise InputError(f"{d} was generated with other settings than the first shard ({', '.join(diff)} "
                                 "differ); re-run the array with one config")
            scores = {(g["benchmark"], str(g["id"])): g["scores"] for _, g in read_jsonl(d / "graded.jsonl")
                      if g.get("scores") is not None}
            for r in got:
                s = scores.get((r.get("benchmark"), str(r.get("id"))))
                if s is not None:
                    r["scores"] = s
        rows += got
        parts.append({**m, "dir": str(d)})
    merged = out / "generations.jsonl"
    write_jsonl(merged, rows)
    with_scores = any("scores" in r for r in rows)
    changes = dict(generations=str(merged), limit=None, reward_model=None,
                   keys=GenerationKeys(verifier_score="scores" if with_scores else None),
                   model=dataclasses.replace(cfg.model, path=""))  # graded from the files: no model, no tokenizer
    if hasattr(cfg, "process_verifier"):
        changes["process_verifier"] = None  # its scores, like a reward model's, came with the shards
    c = dataclasses.replace(cfg, **changes)
    log(f"merging {len(parts)} shard(s) of {len(cfg.benchmarks)} benchmark(s): {len(rows)} problems")
    report = evaluate(c, out, progress=progress, log=log)
    write_json(out / "merge.json", {"generation_settings": settings, "shards": parts, "generations": str(merged)})
    return report


# --------------------------------------------------------------------------- CLI


def run_submit(config: str, *, out: str | None = None, dry_run: bool = False, sbatch_args: str | None = None) -> int:
    """``rl-pipeline submit``."""
    try:
        extra = shlex.split(sbatch_args or "")
    except ValueError as e:
        raise ConfigError(f"--sbatch: {e}") from None
    p = plan(load_pipeline(config, out), extra)
    submit(p, dry_run=dry_run)
    return 0


if __name__ == "__main__":  # python -m pipeline.slurm [StageConfig] -> its table in docs/gpus-and-slurm.md
    from pipeline.config import reference_markdown

    print(reference_markdown(globals()[sys.argv[1] if len(sys.argv) > 1 else "PipelineConfig"]))
