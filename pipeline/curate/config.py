"""The curate stage's schema (``rl-pipeline curate``): the run (CurateConfig) and each raw source
(SourceConfig)."""

from __future__ import annotations

import dataclasses
import re

from pipeline.config import ConfigError, VerifierConfig


@dataclasses.dataclass
class SourceConfig:
    """One raw source and where its fields are (every source has its own schema)."""

    name: str = ""  # short name; row ids become <name>:<id>
    file: str | None = None  # local .jsonl or .parquet
    hub: str | None = None  # or a Hugging Face dataset name
    hub_config: str | None = None  # its config (subset)
    split: str = "train"  # its split
    question: str = "question"  # field with the question, or a template over fields: "{Body} {Question}"
    answer: str = "answer"  # field (or template) with the reference answer
    id: str | None = None  # field with a row id (default: the row number)
    options: str | None = None  # field with multiple-choice options: a list, a list as text, or "A) .. B) .." text
    correct_option: str | None = None  # field with the correct option: a letter, or a 0-based index
    subject: str | None = None  # field with a subject/topic (for the subject filter)
    solution: str | None = None  # field with the source's own worked solution or formula (for the answer_key filter)
    limit: int | None = None  # read at most this many rows

    def __post_init__(self) -> None:
        if not self.name or not re.fullmatch(r"[\w.-]+", self.name):
            raise ConfigError(
                f"sources: every source needs a name of letters, digits, '_', '.', '-' (got {self.name!r})"
            )
        if bool(self.file) == bool(self.hub):
            raise ConfigError(f"source {self.name}: give exactly one of `file` and `hub`")


def _default_filters() -> list:
    from pipeline.curate.filters import DEFAULT_ORDER

    return list(DEFAULT_ORDER)


@dataclasses.dataclass
class CurateConfig:
    """``rl-pipeline curate``: raw sources -> a clean, verifiable, decontaminated RL set."""

    sources: list[SourceConfig] = dataclasses.field(default_factory=list)  # the raw sources (see SourceConfig)
    eval_sets: list[str] = dataclasses.field(
        default_factory=lambda: ["math500", "aime24", "amc23", "minerva_math", "olympiadbench", "gsm8k"]
    )  # decontaminate against these (names or .jsonl paths)
    eval_dir: str | None = (
        None  # local evaluation files (default: $PIPELINE_EVAL_DIR, else ../shared/data/eval, else the Hub)
    )
    filters: list = dataclasses.field(
        default_factory=lambda: _default_filters()
    )  # filter names in order, or {name: {param: value}}
    val_size: float = 0.05  # held-out share of the kept rows (< 1) or a row count (>= 1) for val.parquet
    instruction: str = (
        "Please reason step by step, and put your final answer within \\boxed{}."  # appended to each prompt
    )
    verifier: VerifierConfig = dataclasses.field(default_factory=VerifierConfig)
    examples_per_reason: int = 3  # examples of each drop reason in the report
    seed: int = 0  # split and MinHash seed

    def __post_init__(self) -> None:
        # the filter list is checked by the curation stage's own registry (pipeline.curate.run.filter_plan)
        # when the stage starts and when `rl-pipeline submit` resolves the stage: config imports no stage
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"sources: duplicate names {dup}")
        if self.val_size < 0:
            raise ConfigError("val_size must be >= 0")
