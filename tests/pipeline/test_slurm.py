"""Slurm: ``python -m pipeline submit`` and the ``slurm/*.sbatch`` scripts.

The first tests need no cluster: the plan (sbatch lines, afterok chaining, resolved
stage configs) and the user mistakes. The rest submit the real, unchanged scripts to a
real one-node Slurm cluster this module starts on localhost (``tests/slurm_cluster.py``;
``.ci/run`` installs the packages) and check what the jobs wrote: the CPU demo
pipeline (job array, dependency chain, merge), a failing stage cancelling its
dependents, a refused submission cancelling the jobs already queued, a training job
requeued twice (by its own time-limit signal, then as if preempted) that resumes from
its checkpoints, and a Ray cluster started with srun over a 2-node job (the cluster's
second node is a second slurmd on this host). Test-cluster differences (no GPU, 2 CPUs)
go on the sbatch command line, which beats ``#SBATCH``.
Without the Slurm packages (or root) these tests skip, saying why.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, load_config
from pipeline.evaluate.config import EvalConfig
from pipeline.slurm import eval_task, load_pipeline, merge_eval, parse_job_id, plan, write_stage_configs
from pipeline.train.config import TrainConfig
from tests.slurm_cluster import Cluster, why_unavailable

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "pipeline" / "demo.yaml"
SLURM = REPO / "slurm"


def cli(*args, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env
    )


def write_pipeline(tmp_path: Path, stages: list[dict], **top) -> Path:
    """A pipeline config in tmp_path whose stage configs are the demo's (absolute paths)."""
    for s in stages:
        if not os.path.isabs(s["config"]):
            s["config"] = str(REPO / "configs" / "pipeline" / s["config"])
    p = tmp_path / "pipe.yaml"
    p.write_text(yaml.safe_dump({"out": str(tmp_path / "out"), **top, "stages": stages}))
    return p


# --------------------------------------------------------------------------- no cluster needed


@pytest.mark.slow
def test_dry_run_prints_the_chain_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    r = cli("submit", "--config", str(DEMO), "--out", str(out), "--dry-run", "--sbatch=--partition=debug --qos=low")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 5 and all(line.startswith("sbatch --parsable ") for line in lines)
    data, warm, train, ev, merge = lines
    assert (
        "--dependency" not in data and f"{SLURM}/curate.sbatch --synthetic {out}/configs/data.yaml {out}/data" in data
    )
    assert "'--dependency=afterok:<data>' --kill-on-invalid-dep=yes" in warm and "train.sbatch --warmup" in warm
    assert "afterok:<warmup>" in train and "train.sbatch --engine local" in train and "--nodes=1" in train
    # 2 benchmarks x 2 shards, one log per task; the merge waits for the whole array
    assert "--array=0-3 " in ev and "%x-%A_%a.out" in ev and "afterok:<train>" in ev
    assert f"evaluate.sbatch --shards 2 {out}/configs/eval.yaml {out}/eval" in ev
    assert "afterok:<eval>" in merge and f"evaluate_merge.sbatch {out}/configs/eval.yaml {out}/eval" in merge
    for line in lines:  # config options, then the command line's (which win, coming last)
        assert line.index("--gres=none") < line.index("--partition=debug") < line.index("--qos=low")
    assert not out.exists(), "a dry run must not write anything"


def test_plan_resolves_placeholders_dependencies_and_configs(tmp_path):
    p = write_pipeline(
        tmp_path,
        [
            {"name": "data", "kind": "synthetic", "config": "demo/task.yaml"},
            {
                "name": "warmup",
                "kind": "warmup",
                "config": "demo/warmup.yaml",
                "overrides": {"data.train_files": ["${data}/train.parquet"]},
            },
            {
                "name": "big",
                "kind": "train",
                "config": "demo/train.yaml",
                "nodes": 4,
                "engine": "verl",
                "sbatch": ["--gres=gpu:8", "-c 32"],
                "overrides": {
                    "model": {"path": "${warmup}/model"},
                    "data.train_files": ["${data}/train.parquet"],
                    "rollout.n": 2,
                },
            },
            {
                "name": "side",
                "kind": "train",
                "config": "demo/train.yaml",
                "after": ["warmup"],
                "overrides": {"model.path": "${warmup}/model", "data.train_files": ["${out}/data/train.parquet"]},
            },
            {
                "name": "eval",
                "kind": "evaluate",
                "config": "demo/eval.yaml",
                "after": ["big", "side"],
                "max_parallel": 2,
                "merge_sbatch": ["--time=5"],
                "overrides": {"model.path": "${big}/model", "benchmarks": ["gsm8k", "math500"]},
            },
            {
                "name": "report",
                "kind": "evaluate",
                "config": "demo/eval.yaml",
                "overrides": {"model.path": "${side}/model", "benchmarks": ["gsm8k"]},
            },
        ],
        sbatch=["--account=proj"],
    )
    pl = plan(load_pipeline(p))
    out = tmp_path / "out"
    jobs = {j.key: j for j in pl.jobs}
    assert list(jobs) == ["data", "warmup", "big", "side", "eval", "eval-merge", "report", "report-merge"]
    assert jobs["side"].after == ["warmup"] and jobs["big"].after == ["warmup"]
    assert jobs["eval"].after == ["big", "side"]
    assert jobs["report"].after == ["eval-merge"], "a stage after an evaluation waits for its merge job"
    ids = {k: str(100 + i) for i, k in enumerate(jobs)}
    eval_cmd = jobs["eval"].command(ids)
    assert "--dependency=afterok:102:103" in eval_cmd and "--array=0-1%2" in eval_cmd
    big = jobs["big"].command(ids)
    assert big.index("--nodes=4") < big.index("--gres=gpu:8") and big[big.index("-c") + 1] == "32"
    assert big[-5:] == [
        str(SLURM / "train.sbatch"),
        "--engine",
        "verl",
        str(out / "configs" / "big.yaml"),
        str(out / "big"),
    ]
    assert "--time=5" in jobs["eval-merge"].argv and "--time=5" not in jobs["eval"].argv
    assert all("--account=proj" in j.argv for j in pl.jobs)
    # the resolved configs: placeholders are paths, overrides applied, round-trip through load_config
    write_stage_configs(pl)
    big_cfg = load_config(TrainConfig, out / "configs" / "big.yaml")
    assert big_cfg.model.path == str(out / "warmup" / "model")
    assert big_cfg.data.train_files == [str(out / "data" / "train.parquet")] and big_cfg.rollout.n == 2
    assert big_cfg == pl.stage_configs["big"]
    ev = load_config(EvalConfig, out / "configs" / "eval.yaml")
    assert ev.benchmarks == ["gsm8k", "math500"] and ev.model.path == str(out / "big" / "model") and ev.limit == 16


@pytest.mark.parametrize(
    "stages, message",
    [
        ([{"name": "a", "kind": "trian", "config": "demo/task.yaml"}], "kind must be one of curate, synthetic"),
        ([{"name": "a b", "kind": "train", "config": "demo/train.yaml"}], "needs a name of letters"),
        ([{"name": "logs", "kind": "synthetic", "config": "demo/task.yaml"}], "reserved"),
        (
            [
                {"name": "a", "kind": "synthetic", "config": "demo/task.yaml"},
                {"name": "a", "kind": "synthetic", "config": "demo/task.yaml"},
            ],
            "duplicate names ['a']",
        ),
        ([{"name": "a", "kind": "synthetic", "config": "nope.yaml"}], "config file not found"),
        (
            [
                {"name": "a", "kind": "synthetic", "config": "demo/task.yaml", "after": ["b"]},
                {"name": "b", "kind": "synthetic", "config": "demo/task.yaml"},
            ],
            "after: ['b'] name no stage before it",
        ),
        (
            [{"name": "t", "kind": "train", "config": "demo/train.yaml", "nodes": 2, "engine": "local"}],
            "local engine is one process",
        ),
        (
            [
                {
                    "name": "t",
                    "kind": "train",
                    "config": "demo/train.yaml",
                    "overrides": {"data.train_files": ["x.parquet"]},
                }
            ],
            "stage 't' (" + str(REPO / "configs/pipeline/demo/train.yaml") + "): model.path is empty",
        ),
        (
            [{"name": "t", "kind": "train", "config": "demo/train.yaml", "overrides": {"rollout.nn": 3}}],
            "rollout: unknown key(s) ['nn']",
        ),
        (
            [
                {
                    "name": "t",
                    "kind": "train",
                    "config": "demo/train.yaml",
                    "overrides": {"model.path": "${warmup}/model"},
                }
            ],
            "unknown placeholder ${warmup}; known: ${out}, ${t}",
        ),
        (
            [
                {"name": "a", "kind": "synthetic", "config": "demo/task.yaml"},
                {"name": "b", "kind": "synthetic", "config": "demo/task.yaml"},
                {
                    "name": "c",
                    "kind": "train",
                    "config": "demo/train.yaml",
                    "after": ["a"],
                    "overrides": {"model.path": "${a}/m", "data.train_files": ["${b}/train.parquet"]},
                },
            ],
            "${b} is the output of a stage this one does not wait for",
        ),
        (
            [
                {
                    "name": "e",
                    "kind": "evaluate",
                    "config": "demo/eval.yaml",
                    "overrides": {"model.path": "m", "benchmarks": ["x/held.jsonl", "y/held.parquet"]},
                }
            ],
            "share the name ['held']",
        ),
        (
            [
                {
                    "name": "e",
                    "kind": "evaluate",
                    "config": "demo/eval.yaml",
                    "overrides": {"model.path": "m", "shards": 2},
                }
            ],
            "unknown key(s) ['shards']",
        ),
        ([], "at least one stage"),
    ],
)
def test_config_mistakes_are_one_clear_error(tmp_path, stages, message):
    p = write_pipeline(tmp_path, stages)
    with pytest.raises(ConfigError) as e:
        plan(load_pipeline(p))
    assert message in str(e.value)


@pytest.mark.slow
def test_cli_errors_are_one_line_without_traceback(tmp_path):
    p = write_pipeline(tmp_path, [{"name": "t", "kind": "train", "config": "demo/train.yaml", "engine": "fast"}])
    r = cli("submit", "--config", str(p), "--dry-run")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == "error: stage 't': engine must be one of auto, local, verl, got 'fast'"
    r = cli(
        "train", "--config", str(REPO / "configs/train/tiny.yaml"), "--out", str(tmp_path / "t"), "--engine", "verl"
    )
    assert r.returncode == 2 and r.stderr.startswith("error: the verl engine needs CUDA GPUs")
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["PipelineConfig", "StageConfig"])
def test_readme_reference_tables_match_the_dataclasses(name):
    from pipeline import slurm
    from pipeline.config import reference_markdown

    table = reference_markdown(getattr(slurm, name))
    assert table in (REPO / "docs" / "gpus-and-slurm.md").read_text(), (
        f"docs/gpus-and-slurm.md's {name} table is stale: regenerate with `python -m pipeline.slurm {name}`"
    )
    assert not any(row.endswith("|  |") for row in table.splitlines()[2:]), f"{name}: a key has no comment"


def test_parse_job_id():
    assert parse_job_id("1234\n") == "1234"
    assert parse_job_id("1234;cluster2\n") == "1234"
    with pytest.raises(ConfigError, match="not a job id"):
        parse_job_id("sbatch: error: Batch job submission failed")


def test_array_task_range_and_incomplete_merge_are_clear_errors(tmp_path):
    cfg = load_config(
        EvalConfig,
        REPO / "configs/pipeline/demo/eval.yaml",
        {"model": {"path": "m"}, "benchmarks": ["a.jsonl", "b.jsonl", "c.jsonl"]},
    )
    with pytest.raises(ConfigError, match=r"3 benchmark\(s\) x 2 shard\(s\) = 6 task\(s\): submit with --array=0-5"):
        eval_task(cfg, tmp_path, 6, 2)
    from data.io import InputError, write_json

    with pytest.raises(InputError, match="no finished array task"):
        merge_eval(cfg, tmp_path)
    write_json(tmp_path / "shards" / "b" / "shard.json", {"name": "b", "shard": 0, "shards": 1, "problems": 0})
    with pytest.raises(InputError, match=r"2 of 3 array tasks have not finished \(a, c: task\(s\) 0, 2\)"):
        merge_eval(cfg, tmp_path)


# --------------------------------------------------------------------------- a real one-node cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = why_unavailable()
    if why:
        pytest.skip(why)
    c = Cluster(tmp_path_factory.mktemp("slurm"), extra_nodes=1)  # a second node only for multi-node jobs
    c.up()
    try:
        yield c
    finally:
        c.down()


@pytest.fixture(scope="module")
def job_env(cluster):
    """The environment jobs inherit: the cluster's SLURM_CONF and this interpreter's venv."""
    env = cluster.env(PYTHONUNBUFFERED="1")
    if (Path(sys.prefix) / "bin" / "activate").is_file():
        env["PIPELINE_VENV"] = sys.prefix
    else:  # no venv: the python running the tests, on PATH
        env["PIPELINE_VENV"] = "none"
        env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    return env


def sbatch(cluster, env, *args) -> str:
    r = subprocess.run(["sbatch", "--parsable", *map(str, args)], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    return parse_job_id(r.stdout)


def when(d: dict, key: str) -> datetime:
    return datetime.fromisoformat(d[key])


def wait_for(cond, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def demo_chain(cluster, job_env, tmp_path_factory):
    """The CPU demo pipeline submitted as a user submits it, run to the end."""
    out = tmp_path_factory.mktemp("pipeline") / "demo"
    t0 = time.monotonic()
    r = cli("submit", "--config", str(DEMO), "--out", str(out), "--sbatch=--time=00:10:00", env=job_env)
    assert r.returncode == 0, r.stderr
    ids = dict(line.split() for line in r.stdout.strip().splitlines())
    states = cluster.wait(list(ids.values()), timeout=400)
    return {"out": out, "ids": ids, "states": states, "seconds": time.monotonic() - t0}


@pytest.mark.slow
def test_demo_pipeline_runs_through_the_cluster(demo_chain, cluster):
    out, ids, states = demo_chain["out"], demo_chain["ids"], demo_chain["states"]
    logs = {p.name: p.read_text() for p in (out / "logs").glob("*.out")}
    assert list(ids) == ["data", "warmup", "train", "eval", "eval-merge"]
    bad = {k: (v["JobState"], v.get("ExitCode")) for k, v in states.items() if v["JobState"] != "COMPLETED"}
    assert not bad, f"jobs did not complete: {bad}\n" + "\n".join(f"== {k}\n{v[-2000:]}" for k, v in logs.items())
    jobs = json.loads((out / "jobs.json").read_text())["jobs"]
    assert {k: v["id"] for k, v in jobs.items()} == ids

    # the chain: every stage started after the one before it ended; the merge after every array task
    array = {k: v for k, v in states.items() if k.startswith(f"{ids['eval']}_")}
    assert sorted(array) == [f"{ids['eval']}_{i}" for i in range(4)]
    order = [states[ids["data"]], states[ids["warmup"]], states[ids["train"]]]
    for before, after in zip(order, order[1:]):
        assert when(after, "StartTime") >= when(before, "EndTime")
    assert min(when(t, "StartTime") for t in array.values()) >= when(states[ids["train"]], "EndTime")
    assert when(states[ids["eval-merge"]], "StartTime") >= max(when(t, "EndTime") for t in array.values())
    assert "--gres=gpu" not in states[ids["train"]].get("TRES", "")

    # each stage's outputs
    assert (out / "data" / "train.parquet").is_file() and (out / "warmup" / "model" / "config.json").is_file()
    metrics = [json.loads(x) for x in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(9))
    assert json.loads((out / "train" / "summary.json").read_text())["steps"] == 8
    assert (out / "train" / "model" / "config.json").is_file()
    assert any("array task 3: train shard 2/2, problems 8..15 of 16" in v for v in logs.values())

    # the merged report covers both benchmarks, and its grades are the shards' grades
    report = json.loads((out / "eval" / "report.json").read_text())
    assert report["overall"]["problems"] == 32 and set(report["benchmarks"]) == {"heldout", "train"}
    merged = {(g["benchmark"], g["id"]): g["correct"] for g in map(json.loads, (out / "eval" / "graded.jsonl").open())}
    shards = {}
    for f in (out / "eval" / "shards").glob("*/graded.jsonl"):
        shards.update({(g["benchmark"], g["id"]): g["correct"] for g in map(json.loads, f.open())})
    assert len(shards) == 32 and merged == shards
    for bench in ("heldout", "train"):
        rows = [c for (b, _), c in shards.items() if b == bench]
        pass1 = 100 * sum(sum(c) / len(c) for c in rows) / len(rows)
        assert report["benchmarks"][bench]["metrics"]["pass@1"] == pytest.approx(pass1)
    assert (out / "eval" / "report.md").is_file() and (out / "eval" / "pass_at_k.png").is_file()
    merge = json.loads((out / "eval" / "merge.json").read_text())
    assert len(merge["shards"]) == 4 and merge["generation_settings"]["n"] == 4
    print(f"demo chain: submit to last job done in {demo_chain['seconds']:.0f} s")


@pytest.mark.slow
def test_failed_stage_cancels_its_dependents(demo_chain, cluster, job_env, tmp_path):
    prev = demo_chain["out"]
    p = write_pipeline(
        tmp_path,
        [
            {
                "name": "train",
                "kind": "train",
                "config": "demo/train.yaml",
                "engine": "local",
                "overrides": {
                    "model.path": str(tmp_path / "no-such-model"),
                    "data.train_files": [str(prev / "data/train.parquet")],
                },
            },
            {
                "name": "eval",
                "kind": "evaluate",
                "config": "demo/eval.yaml",
                "overrides": {"model.path": "${train}/model", "benchmarks": [str(prev / "data/heldout.parquet")]},
            },
        ],
        sbatch=["--gres=none", "-c 1", "--mem=1G"],
    )
    r = cli("submit", "--config", str(p), env=job_env)
    assert r.returncode == 0, r.stderr
    ids = dict(line.split() for line in r.stdout.strip().splitlines())
    states = cluster.wait(list(ids.values()), timeout=120)
    assert states[ids["train"]]["JobState"] == "FAILED" and states[ids["train"]]["ExitCode"] == "2:0"
    assert {v["JobState"] for k, v in states.items() if k != ids["train"]} == {"CANCELLED"}
    log = next((tmp_path / "out" / "logs").glob("pipe-train-*.out")).read_text()
    assert re.search(r"^error: cannot load (model|tokenizer) .*no-such-model", log, re.M) and "Traceback" not in log


@pytest.mark.slow
def test_refused_submission_cancels_the_jobs_already_queued(cluster, job_env, tmp_path):
    p = write_pipeline(
        tmp_path,
        [
            {"name": "data", "kind": "synthetic", "config": "demo/task.yaml"},
            {
                "name": "warmup",
                "kind": "warmup",
                "config": "demo/warmup.yaml",
                "sbatch": ["--gres=gpu:1"],
                "overrides": {"data.train_files": ["${data}/train.parquet"]},
            },
        ],
        sbatch=["--gres=none", "-c 1", "--begin=now+3600"],
    )  # the first job must still be queued when cancelled
    r = cli("submit", "--config", str(p), env=job_env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    first = r.stdout.split()[1]  # "data <id>": queued before the refusal
    assert r.stderr.strip() == (
        "error: sbatch refused job 'warmup': sbatch: error: Invalid generic resource (gres) "
        f"specification; cancelled the jobs already queued ({first})"
    )
    assert cluster.wait(first, timeout=30)[first]["JobState"] == "CANCELLED"


def _train_config(tmp_path: Path, prev: Path, **changes) -> Path:
    """The demo's resolved train config (its warm-up model and data), changed."""
    cfg = yaml.safe_load((prev / "configs" / "train.yaml").read_text())
    cfg.update(changes)
    p = tmp_path / "train.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _checkpoint_step(out: Path) -> int:
    latest = out / "checkpoints" / "latest"
    try:
        return int(latest.read_text().strip().split("_")[1])
    except (OSError, IndexError, ValueError):
        return 0


@pytest.mark.slow
def test_train_job_requeued_resumes_from_its_checkpoints(demo_chain, cluster, job_env, tmp_path):
    """Requeued by its own time-limit handler (SIGUSR1, as --signal=B:USR1@120 sends it), then
    as if preempted (scontrol requeue): each restart continues from the last checkpoint."""
    config = _train_config(tmp_path, demo_chain["out"], steps=120, save_every=10, eval_every=0)
    out, log = tmp_path / "run", tmp_path / "train.log"
    jid = sbatch(
        cluster,
        job_env,
        "--gres=none",
        "-c",
        "1",
        "--mem=2G",
        f"--output={log}",
        SLURM / "train.sbatch",
        "--engine",
        "local",
        config,
        out,
    )

    def state():
        return cluster.job_states(jid)[jid]

    def requeue(how: list[str], restarts: int) -> None:
        subprocess.run(how, check=True, capture_output=True, timeout=30, env=job_env)
        # back in the queue, then running again (the test cluster's cred_expire=5 makes that ~6 s, not 2 minutes)
        wait_for(lambda: state()["Restarts"] == str(restarts), 60, f"job {jid} requeued ({' '.join(how)})")
        wait_for(lambda: state()["JobState"] == "RUNNING", 60, f"job {jid} running again")

    wait_for(lambda: _checkpoint_step(out) >= 10, 120, "the first checkpoint")
    first = _checkpoint_step(out)
    requeue(["scancel", "--batch", "--signal=USR1", jid], 1)  # the time-limit path
    wait_for(lambda: _checkpoint_step(out) >= first + 20, 120, "the requeued job's next checkpoints")
    second = _checkpoint_step(out)
    assert second < 120, "training finished before the second requeue: make it longer"
    requeue(["scontrol", "requeue", jid], 2)  # the preemption path
    final = cluster.wait(jid, timeout=180)[jid]
    text = log.read_text()
    assert final["JobState"] == "COMPLETED", text[-3000:]
    assert final["Restarts"] == "2"
    assert "time limit near (SIGUSR1): stopped the stage; requeueing job" in text
    assert text.count("no checkpoint in") == 1 and text.count("held-out accuracy before training") == 1
    resumed = [int(s) for s in re.findall(r"resuming from \S+step_\d+ \(step (\d+)\)", text)]
    assert len(resumed) == 2 and first <= resumed[0] < resumed[1] and resumed[1] >= second
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(121)), "each step logged exactly once: resumed, not restarted"
    assert json.loads((out / "summary.json").read_text())["steps"] == 120


def _live_processes_mentioning(text: str) -> list[str]:
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state not in ("Z", "X"):
            found.append(f"{d.name}: {cmd[:120]}")
    return found


@pytest.mark.slow
def test_verl_engine_starts_ray_over_the_job_nodes_with_srun(cluster, job_env, tmp_path):
    """train.sbatch on 2 nodes (engine auto: verl): a Ray head on the first node and a worker
    on the other, each started by srun; a ready-wait for both; the training command run
    against the cluster (PIPELINE_TRAIN_CMD: a probe instead of the verl engine, which needs GPUs); then
    Ray stopped, nothing of it left running."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import json, os, ray\n"
        "ray.init()  # RAY_ADDRESS from train.sbatch\n"
        "@ray.remote(num_cpus=1)\n"
        "def where():\n"
        "    import os, time\n"
        "    time.sleep(0.5)\n"
        "    return os.environ.get('SLURMD_NODENAME')  # the raylet's: the srun step that started it\n"
        "info = {'nodes': sum(n['Alive'] for n in ray.nodes()), 'cpus': ray.cluster_resources().get('CPU'),\n"
        "        'ran_on': sorted(set(ray.get([where.remote() for _ in range(8)]))),\n"
        "        'out': os.environ['PIPELINE_OUT'], 'config': os.environ['PIPELINE_CONFIG']}\n"
        "os.makedirs(info['out'], exist_ok=True)\n"
        "json.dump(info, open(os.path.join(info['out'], 'ray.json'), 'w'))\n"
    )
    config = REPO / "configs" / "pipeline" / "demo" / "train.yaml"
    out, log = tmp_path / "run", tmp_path / "ray.log"
    env = {**job_env, "PIPELINE_TRAIN_CMD": f"python {probe}", "PIPELINE_RAY_TIMEOUT": "150"}
    jid = sbatch(
        cluster,
        env,
        f"--partition={cluster.multi}",
        "--nodes=2",
        "--gres=none",
        "-c",
        "1",
        "--mem=4G",
        f"--output={log}",
        SLURM / "train.sbatch",
        config,
        out,
    )
    final = cluster.wait(jid, timeout=300)[jid]
    text = log.read_text()
    assert final["JobState"] == "COMPLETED", text[-3000:]
    assert "engine auto: verl (2 node(s), 0 GPU(s) per node)" in text
    assert re.search(r"Ray cluster ready: 2 of 2 node\(s\) at \S+ after \d+ s", text)
    info = json.loads((out / "ray.json").read_text())
    assert info["nodes"] == 2 and info["cpus"] == 2.0 and info["ran_on"] == sorted(cluster.nodes)
    assert info["config"] == str(config) and info["out"] == str(out)
    assert "Ray stopped" in text
    wait_for(lambda: not _live_processes_mentioning(f"/tmp/ray-{jid}"), 30, "Ray's processes to exit", every=0.5)
