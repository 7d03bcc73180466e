"""Typed configs: YAML files map onto dataclasses; the dataclasses are the schema and the reference.

Each stage's schema sits next to its code (``pipeline.train.config``,
``pipeline.evaluate.config``, ``pipeline.curate.config``, ``pipeline.demo``,
``pipeline.slurm``); this module holds the loader and the sections several stages
share (verifier, model, data, rollout, the progress and self-correction reward
ideas, the synthetic task). :func:`load_config` reads YAML into a schema through
OmegaConf's structured configs, rejecting unknown keys and wrong types with a
message that names the key, and resolving relative paths against the config
file's directory.
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


_MODEL_FIELDS = {"path", "init", "prover_model", "pav_model", "reward_model", "process_verifier", "process_base_verifier"}  # hub name or local dir
_FILE_ITEM_FIELDS = {"benchmarks", "eval_sets"}  # lists of names or .jsonl/.parquet paths
_PATH_FIELDS = {"out", "bon_file", "curate_config", "train_files", "heldout_files", "data_dir", "generations", "file", "eval_dir"}


def _prepare(cls: type, data: Any, where: str, base: Path, free: list | None = None) -> dict:
    """The user's mapping for ``cls``, readied for OmegaConf's schema merge: sections must be
    mappings, one item where a list is expected becomes a list, and relative paths resolve
    against ``base`` (only values the user wrote: defaults stay as they are). Each plain
    ``dict`` field the user set in a nested section is appended to ``free`` as (dotted key,
    value), to replace rather than merge into its default."""
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
            out[name] = _prepare(hint, value, key, base, free)
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
        if free is not None and (hint is dict or origin is dict):
            free.append((key, out[name]))
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
    free: list = []
    user = _prepare(cls, data, "", base, free)
    schema = OmegaConf.structured(cls)
    try:
        merged = OmegaConf.merge(schema, user)
        for key, value in free:
            OmegaConf.update(merged, key, value, merge=False)
        return OmegaConf.to_object(merged)  # builds the dataclasses: their __post_init__ checks run
    except oc_errors.OmegaConfBaseException as e:
        raise _omegaconf_error(e, schema) from None
    except TypeError as e:  # a dataclass rejected its arguments
        raise ConfigError(str(e)) from None


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


if __name__ == "__main__":  # python -m pipeline.config pipeline.train.config.TrainConfig -> its table (docs/config.md)
    import importlib
    import sys

    module, _, name = (sys.argv[1] if len(sys.argv) > 1 else "pipeline.train.config.TrainConfig").rpartition(".")
    print(reference_markdown(getattr(importlib.import_module(module or "pipeline.config"), name)))
