"""Typed configs: YAML files map onto dataclasses; the dataclasses are the reference.

Every stage's config is a dataclass whose fields carry defaults and whose
docstrings/comments explain them. :func:`load_config` reads YAML into one,
rejecting unknown keys and wrong types with a message that names the key, and
resolving relative paths against the config file's directory.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(Exception):
    """A user-facing problem with a config file (shown without a traceback)."""


@dataclasses.dataclass
class VerifierConfig:
    workers: int = 2  # sandboxed worker processes
    timeout: float = 5.0  # seconds per check before the worker is killed
    mode: str = "strict"  # strict: only \boxed{} counts; lenient: also "final answer is", ####, ...

    def __post_init__(self) -> None:
        if self.mode not in ("strict", "lenient"):
            raise ConfigError(f"verifier.mode must be 'strict' or 'lenient', got {self.mode!r}")
        if self.workers < 1 or self.timeout <= 0:
            raise ConfigError("verifier.workers must be >= 1 and verifier.timeout > 0")


@dataclasses.dataclass
class SyntheticConfig:
    problems: int = 400  # how many arithmetic problems to generate
    steps: int = 3  # operations per problem (difficulty)
    max_operand: int = 20  # largest operand (difficulty)
    seed: int = 0


@dataclasses.dataclass
class DemoConfig:
    out: str = "runs/demo"  # output directory
    verifier: VerifierConfig = dataclasses.field(default_factory=VerifierConfig)
    synthetic: SyntheticConfig = dataclasses.field(default_factory=SyntheticConfig)
    bon_file: str | None = None  # real best-of-N responses with labels; skipped when missing


_PATH_FIELDS = {"out", "bon_file"}


def _build(cls: type[T], data: Any, where: str, base: Path) -> T:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {unknown}; valid keys: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, key, base)
            continue
        allowed = typing.get_args(hint) or (hint,)
        if value is None and type(None) in allowed:
            kwargs[name] = None
            continue
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not any(isinstance(value, a) for a in allowed if isinstance(a, type)):
            names = "/".join(a.__name__ for a in allowed if isinstance(a, type) and a is not type(None))
            raise ConfigError(f"{key}: expected {names}, got {value!r}")
        if name in _PATH_FIELDS and isinstance(value, str) and not os.path.isabs(value):
            value = str((base / value).resolve())
        kwargs[name] = value
    return cls(**kwargs)


def load_config(cls: type[T], path: str | os.PathLike | None, overrides: dict | None = None) -> T:
    """Read ``path`` (YAML) into ``cls``; ``None`` gives the defaults."""
    data: dict = {}
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
    data = {**data, **(overrides or {})}
    return _build(cls, data, "", base)


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)
