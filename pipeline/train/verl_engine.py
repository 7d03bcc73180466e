"""The verl engine: the project's ``TrainConfig`` as verl 0.9.1 Hydra overrides, and the launch.

``rl-pipeline train --engine verl --config C --out OUT`` runs
``python -m verl.trainer.main_ppo <overrides>`` (verl's Ray trainer: FSDP actor,
vLLM rollout servers) with the project's code plugged in:

* the outcome reward is ``rewards/verl_adapter.py::compute_score`` (verl's
  ``reward.custom_reward_function``), run by verl's reward loop;
* every reward term but ``outcome`` (ALP, overlong, length, and any term a user
  registers) is composed by the ``pipeline_terms`` advantage estimator of
  :mod:`pipeline.train.verl_plugin`, which calls ``rewards.terms.compose`` (the
  local engine's code) and then the configured verl estimator; a term defined
  outside ``rewards.terms`` has its module imported in every Ray process too;
* self-correction is the ``self_correction`` agent loop of
  :mod:`pipeline.train.verl_agent_loop`, whose two outputs carry their own
  targets to the ``pipeline_self_correction`` estimator of
  :mod:`pipeline.train.verl_plugin` (each attempt credited with its own reward,
  grouped by prompt and attempt, as the local engine does);
* process rewards (``progress.enabled``) are the ``progress`` agent loop of that
  module, which samples the Monte Carlo prover continuations (the policy as the
  prover) through verl's rollout servers and hands a per-token bonus to the
  ``pipeline_progress`` estimator of :mod:`pipeline.train.verl_plugin`.

The plugin modules reach every Ray process through ``VERL_USE_EXTERNAL_MODULES``
(set for the subprocess and in the job's Ray ``runtime_env``). Settings with no
verl equivalent raise :class:`~pipeline.config.ConfigError`; settings that only
concern the local engine are listed as notes (``--dry-run`` prints them).
:func:`validate` composes the overrides with verl's own Hydra config and runs its
``validate_config``, as ``main_ppo`` does, so a wrong key fails before launch.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import ConfigError
from pipeline.train.config import TrainConfig
from rewards.terms import outcome_scores

REPO = Path(__file__).resolve().parents[2]
INSTALLED_PACKAGES = ("pipeline", "rewards", "data")  # this project's, importable wherever it is installed
PLUGIN_MODULE = "pipeline.train.verl_plugin"
AGENT_LOOP_MODULE = "pipeline.train.verl_agent_loop"
EXTERNAL_MODULES = f"{PLUGIN_MODULE},{AGENT_LOOP_MODULE}"  # VERL_USE_EXTERNAL_MODULES
TERMS_ESTIMATOR = "pipeline_terms"  # registered in pipeline.train.verl_plugin
PROGRESS_ESTIMATOR = "pipeline_progress"  # registered in pipeline.train.verl_plugin
SCORE_ESTIMATOR = "pipeline_self_correction"  # registered in pipeline.train.verl_plugin
AGENT_LOOP = "self_correction"  # registered in pipeline.train.verl_agent_loop
PROGRESS_LOOP = "progress"  # registered in pipeline.train.verl_agent_loop
PROGRESS_KEYS = (
    "alpha",
    "split",
    "markers",
    "episodes_per_step",
    "max_steps",
    "mode",
    "answer_now_text",
    "answer_tokens",
    "mc_rollouts",
    "prover_k",
    "temperature",
)  # what the progress agent loop reads (algorithm.pipeline.progress)
VERL_VERSION = "0.9.1"


@dataclass
class Cluster:
    nnodes: int = 1
    gpus_per_node: int = 1


@dataclass
class VerlLaunch:
    """What ``main_ppo`` is run with: Hydra overrides, environment, and notes on settings
    that only the local engine reads."""

    overrides: list[str]
    env: dict[str, str]
    notes: list[str] = field(default_factory=list)

    def argv(self) -> list[str]:
        # -P: the working directory stays off the path (a data.py there would shadow our data package,
        # and the repository's tests/ the package of that name verl's wheel ships)
        return [sys.executable, "-P", "-m", "verl.trainer.main_ppo", *self.overrides]

    def render(self) -> str:
        """The shell command, one override per line (``--dry-run``)."""
        import shlex

        lines = [f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items())]
        lines.append("python -P -m verl.trainer.main_ppo")
        lines += [shlex.quote(o) for o in self.overrides]
        return " \\\n  ".join(lines) + "\n"


def cluster_from_env(nnodes: int | None, gpus_per_node: int | None, env=os.environ) -> Cluster:
    """Nodes and GPUs per node: the flags, else Slurm's variables, else this machine."""

    def from_env(*names: str) -> int | None:
        for n in names:
            v = env.get(n, "")
            m = re.match(r"\d+", v)  # SLURM_GPUS_ON_NODE may read "8", SLURM_JOB_NUM_NODES "4"
            if m and int(m.group()) > 0:
                return int(m.group())
        return None

    nodes = nnodes or from_env("SLURM_JOB_NUM_NODES", "SLURM_NNODES") or 1
    gpus = gpus_per_node or from_env("SLURM_GPUS_ON_NODE", "SLURM_GPUS_PER_NODE")
    if gpus is None:
        gpus = _local_gpu_count() or 1
    if nodes < 1 or gpus < 1:
        raise ConfigError("--nnodes and --gpus-per-node must be >= 1")
    return Cluster(nodes, gpus)


def _local_gpu_count() -> int:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def _value(v) -> str:
    """A Python value in Hydra's override grammar."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_value(x) for x in v) + "]"
    s = str(v)
    if re.fullmatch(r"[\w./:+-]+", s) and s not in ("true", "false", "null"):
        return s
    # Hydra's quoted strings: backslashes are literal except a run of them before a quote
    # (an inner quote, or the closing one), which is doubled
    body = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", s)
    body = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, body)
    return "'" + body + "'"


def _estimator(cfg: TrainConfig) -> str:
    """verl's ``algorithm.adv_estimator``: ours when progress, self-correction or any
    term besides ``outcome`` is on (verl's own estimators see only the verdict), else
    the configured one."""
    if cfg.progress.enabled:
        return PROGRESS_ESTIMATOR
    if cfg.self_correction.enabled:
        return SCORE_ESTIMATOR
    if set(cfg.reward.terms) - {"outcome"}:
        return TERMS_ESTIMATOR
    return cfg.algorithm.adv_estimator


def term_modules(cfg: TrainConfig) -> tuple[list[str], list[str]]:
    """``(modules, paths)``: the modules defining the config's reward terms outside
    ``rewards.terms``, which every Ray process must import so the estimator finds the
    terms registered, and the import roots they need beyond the installed packages
    (``pipeline``, ``rewards``, ``data``: the Ray workers import those as installed). A term
    defined in ``__main__`` (a script, a notebook) cannot be imported there: error."""
    from rewards.terms import TERMS

    modules, paths = [], []
    for name in cfg.reward.terms:
        module = getattr(TERMS[name], "__module__", None) or "__main__"
        if module == "rewards.terms" or module in modules:
            continue
        spec = importlib.util.find_spec(module) if module != "__main__" else None
        if spec is None or not spec.origin:
            raise ConfigError(
                f"reward term {name!r} is defined in {module!r}, which verl's Ray workers cannot import; "
                "register it in an importable module (as rewards/terms.py does) and import that "
                "module before building the launch, or use --engine local"
            )
        modules.append(module)
        root = Path(spec.origin).resolve().parents[module.count(".") + (spec.origin.endswith("__init__.py"))]
        if module.partition(".")[0] not in INSTALLED_PACKAGES and str(root) not in paths:
            paths.append(str(root))
    return modules, paths


def _check_supported(cfg: TrainConfig) -> None:
    """Settings that verl 0.9.1 cannot express: one clear error each."""
    cfg.require_inputs()
    if cfg.model.gguf_file:
        raise ConfigError("model.gguf_file: verl loads Hugging Face checkpoints only; convert the GGUF file first")
    if cfg.model.device not in ("auto", "cuda"):
        raise ConfigError(
            f"model.device {cfg.model.device!r}: verl places its workers on the cluster's GPUs itself; "
            "use auto or cuda with --engine verl"
        )
    if cfg.optim.schedule == "linear":
        raise ConfigError("optim.schedule linear: verl 0.9.1 has constant and cosine schedules only")
    pc = cfg.progress
    if pc.enabled:
        if pc.pav_model:
            raise ConfigError(
                "progress.pav_model is not supported on the verl engine: the PAV model would have to "
                "run inside verl's agent-loop workers, which hold no GPU model; use Monte Carlo "
                "progress (the policy as the prover), or --engine local"
            )
        if pc.prover_model:
            raise ConfigError(
                "progress.prover_model is not supported on the verl engine: its rollout servers serve "
                "only the policy, so the prover is the policy; leave prover_model empty, or use "
                "--engine local"
            )
        if pc.baseline == "termination":
            raise ConfigError(
                "progress.baseline termination is not supported on the verl engine: verl's estimators "
                "see one score per token, not where each response was cut; use --engine local"
            )
        if cfg.self_correction.enabled:
            raise ConfigError(
                "progress with self_correction is not supported on the verl engine: both are agent "
                "loops and a rollout runs one; use --engine local to combine them"
            )
    sc = cfg.self_correction
    if sc.enabled:
        if sc.stage == 1:
            raise ConfigError(
                "self_correction.stage 1 is not supported on the verl engine: verl 0.9.1's actor has one "
                "KL weight for every sequence, so the first attempt's extra KL (first_attempt_kl) "
                "cannot be expressed; use stage 2, or --engine local"
            )
        if sc.reference_model:
            raise ConfigError(
                "self_correction.reference_model is not supported on the verl engine: verl builds its "
                "reference model from actor_rollout_ref.model.path; start stage 2 from the base model, "
                "or use --engine local"
            )
        extra = sorted(set(cfg.reward.terms) - {"outcome"})
        if extra:
            raise ConfigError(
                f"self_correction with reward terms {extra} is not supported on the verl engine: the "
                "agent loop scores both attempts itself, outside the group; use only the outcome term"
            )
    if cfg.algorithm.adv_estimator == "gae":
        raise ConfigError("algorithm.adv_estimator gae needs a critic, which this project does not configure")
    if cfg.prompts_per_step % cfg.algorithm.mini_batches:
        raise ConfigError(
            f"prompts_per_step ({cfg.prompts_per_step}) must be divisible by algorithm.mini_batches "
            f"({cfg.algorithm.mini_batches}): verl's mini-batches are whole prompt groups"
        )


def build_launch(
    cfg: TrainConfig,
    out: str | os.PathLike,
    *,
    cluster: Cluster,
    resume: bool = False,
    extra: list[str] | tuple[str, ...] = (),
) -> VerlLaunch:
    """The overrides for ``verl.trainer.main_ppo`` (``extra``: raw ``key=value`` overrides, applied last)."""
    _check_supported(cfg)
    out = Path(out).resolve()
    a, r, o = cfg.algorithm, cfg.rollout, cfg.optim
    gpus = cluster.nnodes * cluster.gpus_per_node
    if (cfg.prompts_per_step * r.n) % gpus:
        raise ConfigError(
            f"prompts_per_step x rollout.n = {cfg.prompts_per_step * r.n} responses per step must be "
            f"divisible by the {gpus} GPU(s) ({cluster.nnodes} node(s) x {cluster.gpus_per_node})"
        )
    notes: list[str] = []
    ov: list[tuple[str, object]] = []
    put = lambda k, v: ov.append((k, v))  # noqa: E731

    # data
    put("data.train_files", list(cfg.data.train_files))
    put("data.val_files", list(cfg.data.heldout_files or cfg.data.train_files))
    put("data.val_max_samples", cfg.data.heldout_limit if cfg.data.heldout_files and cfg.data.heldout_limit else -1)
    put("data.train_batch_size", cfg.prompts_per_step)
    put("data.max_prompt_length", cfg.data.max_prompt_tokens)
    put("data.max_response_length", r.max_new_tokens)
    put("data.filter_overlong_prompts", True)  # the local engine skips longer prompts too
    put("data.truncation", "error")
    put("data.seed", cfg.seed)
    # model
    put("actor_rollout_ref.model.path", cfg.model.path)
    if cfg.model.dtype in ("bfloat16", "float16"):
        put("actor_rollout_ref.actor.fsdp_config.dtype", cfg.model.dtype)
        put("actor_rollout_ref.rollout.dtype", cfg.model.dtype)
    else:
        notes.append(
            "model.dtype float32: verl's FSDP actor keeps float32 weights and computes in bfloat16; "
            "the vLLM rollout runs in float32"
        )
        put("actor_rollout_ref.rollout.dtype", "float32")
    # algorithm
    estimator = _estimator(cfg)
    ours = estimator in (TERMS_ESTIMATOR, PROGRESS_ESTIMATOR, SCORE_ESTIMATOR)
    put("algorithm.adv_estimator", estimator)
    put("algorithm.norm_adv_by_std_in_grpo", a.norm_adv_by_std)
    put("algorithm.use_kl_in_reward", False)  # the KL is a loss term; pipeline_progress reads the token rewards
    actor = "actor_rollout_ref.actor"
    put(f"{actor}.policy_loss.loss_mode", a.loss_mode)
    if a.loss_mode == "dro":
        put(f"{actor}.policy_loss.dro_beta", 0.1)  # as the local engine
    put(f"{actor}.loss_agg_mode", a.loss_agg_mode)
    if a.loss_agg_mode == "seq-mean-token-sum-norm":
        put(f"{actor}.loss_scale_factor", r.max_new_tokens)  # Dr.GRPO's constant: the budget, as the local engine
    put(f"{actor}.clip_ratio_low", a.clip_ratio_low)
    put(f"{actor}.clip_ratio_high", a.clip_ratio_high)
    put(f"{actor}.clip_ratio_c", a.clip_ratio_c)
    put(f"{actor}.entropy_coeff", a.entropy_coeff)
    kl = a.kl_coef + (cfg.self_correction.kl_coef if cfg.self_correction.enabled else 0.0)  # SCoRe's beta1 on top
    put(f"{actor}.use_kl_loss", kl > 0)
    if kl > 0:
        put(f"{actor}.kl_loss_coef", kl)
        put(f"{actor}.kl_loss_type", a.kl_type)
    put(f"{actor}.ppo_epochs", a.ppo_epochs)
    put(f"{actor}.ppo_mini_batch_size", cfg.prompts_per_step // a.mini_batches)
    put(f"{actor}.ppo_micro_batch_size_per_gpu", a.micro_batch_size)
    put(f"{actor}.data_loader_seed", cfg.seed)
    # optimizer
    put(f"{actor}.optim.lr", o.lr)
    put(f"{actor}.optim.lr_scheduler_type", o.schedule)
    if o.schedule == "cosine":
        put(f"{actor}.optim.min_lr_ratio", 0.0)
    put(f"{actor}.optim.lr_warmup_steps", o.warmup_steps)
    put(f"{actor}.optim.weight_decay", o.weight_decay)
    put(f"{actor}.optim.clip_grad", o.grad_clip)
    # rollout
    ro = "actor_rollout_ref.rollout"
    put(f"{ro}.name", "vllm")
    if r.backend != "vllm":
        notes.append(f"rollout.backend {r.backend}: verl always samples with its vLLM rollout servers")
    notes.append(f"rollout.max_batch {r.max_batch}: the local engine's generate batch; vLLM schedules its own")
    put(f"{ro}.n", r.n)
    put(f"{ro}.temperature", r.temperature)
    put(f"{ro}.top_p", r.top_p)
    put(f"{ro}.gpu_memory_utilization", r.gpu_memory_utilization)
    put(f"{ro}.tensor_model_parallel_size", 1)
    put(f"{ro}.seed", cfg.seed)
    put(f"{ro}.log_prob_micro_batch_size_per_gpu", a.micro_batch_size)
    put("actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu", a.micro_batch_size)
    put(f"{ro}.val_kwargs.n", cfg.heldout_samples)
    put(f"{ro}.val_kwargs.temperature", cfg.heldout_temperature)
    put(f"{ro}.val_kwargs.top_p", r.top_p)
    put(f"{ro}.val_kwargs.do_sample", cfg.heldout_temperature > 0)
    if cfg.self_correction.enabled:
        put(f"{ro}.agent.default_agent_loop", AGENT_LOOP)
        put("trainer.use_v1", True)  # the v1 trainer takes a list of outputs and each one's rm_scores
    if cfg.progress.enabled:
        put(f"{ro}.agent.default_agent_loop", PROGRESS_LOOP)
        put("trainer.use_v1", True)  # the v1 trainer takes the agent loop's per-token rm_scores (v0 keeps a scalar)
        notes.append(
            "progress: the prover is the policy on verl's rollout servers; every rollout also samples "
            "its bare prompt's value (the local engine uses the group's solve rate) and validation "
            "rollouts pay the prover cost too"
        )
    # reward: the project's verifier
    v = cfg.reward.verifier
    put(
        "reward.custom_reward_function.path",
        str(Path(importlib.util.find_spec("rewards.verl_adapter").origin).resolve()),
    )
    put("reward.custom_reward_function.name", "compute_score_remote" if v.service_url else "compute_score")
    kwargs = {"mode": v.mode, "timeout": v.timeout}
    if v.service_url:
        kwargs["url"] = v.service_url
    if not ours:  # the outcome term on its own
        kwargs["correct_score"], kwargs["incorrect_score"] = outcome_scores(cfg.reward.terms.get("outcome"))
    ov += [(f"+reward.custom_reward_function.reward_kwargs.{k}", x) for k, x in kwargs.items()]
    if v.workers != 2 and not v.service_url:
        notes.append(
            f"reward.verifier.workers {v.workers}: each of verl's reward.num_workers reward workers "
            "runs its own verifier sandbox pool"
        )
    # the project's settings read by the plugin (estimator and agent loop): one namespace
    if ours:
        pl = {"base_estimator": a.adv_estimator, "group_size": r.n, "max_response_length": r.max_new_tokens}
        ov += [(f"+algorithm.pipeline.{k}", x) for k, x in pl.items()]
        ov += [
            (f"+algorithm.pipeline.terms.{name}.{k}", x)
            for name, spec in cfg.reward.terms.items()
            for k, x in ({"weight": 1.0} | (spec or {})).items()
        ]
        if cfg.self_correction.enabled:
            sc = cfg.self_correction
            ov += [
                ("+algorithm.pipeline.self_correction.instruction", sc.instruction),
                ("+algorithm.pipeline.self_correction.stage", sc.stage),
                ("+algorithm.pipeline.self_correction.bonus", sc.bonus),
            ]
        if cfg.progress.enabled:
            ov += [(f"+algorithm.pipeline.progress.{k}", getattr(cfg.progress, k)) for k in PROGRESS_KEYS]
    # trainer: steps, checkpoints, evaluation, loggers, cluster
    put("trainer.total_training_steps", cfg.steps)
    put("trainer.total_epochs", cfg.steps)  # an upper bound: every epoch has at least one step
    put("trainer.save_freq", cfg.save_every)
    put("trainer.max_actor_ckpt_to_keep", cfg.keep_checkpoints)
    put("trainer.default_local_dir", str(out / "checkpoints"))
    put("trainer.resume_mode", "auto" if resume else "disable")
    put("trainer.val_before_train", bool(cfg.data.heldout_files))
    put("trainer.test_freq", cfg.eval_every if cfg.data.heldout_files and cfg.eval_every else -1)
    put("trainer.logger", ["console", "file", "tensorboard"])
    put("trainer.project_name", "reasoning-rl-pipeline")
    put("trainer.experiment_name", out.name)
    put("trainer.nnodes", cluster.nnodes)
    put("trainer.n_gpus_per_node", cluster.gpus_per_node)
    if cfg.threads:
        notes.append(f"threads {cfg.threads}: torch CPU threads of the local engine; verl sets its workers' own")

    modules, paths = term_modules(cfg)
    env = {
        "VERL_USE_EXTERNAL_MODULES": ",".join([EXTERNAL_MODULES, *modules]),
        "TENSORBOARD_DIR": str(out / "tensorboard"),
        "VERL_FILE_LOGGER_PATH": str(out / "metrics.jsonl"),
    }
    if paths:  # the installed packages need no path; a term module elsewhere brings its import root
        env["PYTHONPATH"] = os.pathsep.join(paths)
    # Ray workers on other nodes do not inherit this process's environment: the job's runtime_env carries it
    ov += [(f"+ray_kwargs.ray_init.runtime_env.env_vars.{k}", x) for k, x in env.items()]
    overrides = [f"{k}={_value(x)}" for k, x in ov] + list(extra)
    for e in extra:
        if "=" not in e:
            raise ConfigError(f"--override {e!r}: expected KEY=VALUE (a Hydra override for verl's config)")
    return VerlLaunch(overrides, env, notes)


def validate(launch: VerlLaunch):
    """Compose the overrides with verl's own Hydra config (``ppo_trainer``, as ``main_ppo``
    does) and run verl's ``validate_config``; any failure is a ConfigError naming it."""
    import verl.trainer.main_ppo as main_ppo
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    config_dir = str(Path(main_ppo.__file__).parent / "config")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir, version_base=None):
            cfg = compose(config_name="ppo_trainer", overrides=launch.overrides)
        validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    except (HydraException, OmegaConfBaseException, AssertionError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"verl rejected the translated config: {first}") from None
    finally:
        GlobalHydra.instance().clear()
    return cfg


def check_runtime() -> None:
    """Fail fast, before Ray starts, where verl's trainer cannot run (it needs CUDA GPUs,
    vLLM and TransferQueue: without a GPU it waits for one for minutes)."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise ConfigError(
            "the verl engine needs CUDA GPUs (verl 0.9.1's Ray trainer cannot run on CPU); this "
            "machine has none. Use --engine local here, or --dry-run to see the verl command"
        )
    missing = [m for m in ("vllm", "transfer_queue") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"the verl engine needs {', '.join(missing)}: pip install -e '.[gpu]' on the GPU nodes")


def existing_run(out: str | os.PathLike) -> Path | None:
    """verl's checkpoint tracker in ``out``, if a run is there."""
    tracker = Path(out) / "checkpoints" / "latest_checkpointed_iteration.txt"
    return tracker if tracker.exists() else None


def run(launch: VerlLaunch) -> int:
    """``python -m verl.trainer.main_ppo`` as a subprocess: output streams through, its exit code is returned."""
    env = dict(os.environ)
    env.update(launch.env)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (launch.env.get("PYTHONPATH", ""), os.environ.get("PYTHONPATH", "")) if p
    )
    proc = subprocess.Popen(launch.argv(), env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise
