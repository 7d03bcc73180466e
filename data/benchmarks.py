"""Held-out math benchmarks: one loader per set, local files or the Hugging Face Hub.

Each set stores its question and reference answer differently (``answer``, a
``final_answer`` list, only a ``\\boxed{}`` inside ``solution``, text after
``####``); a :class:`BenchmarkSpec` knows how to read its own, and every loader
returns the same :class:`EvalProblem` records. The evaluation stage scores
against them and the curation stage decontaminates against them.

Local files (``<data_dir>/<spec.file>``, e.g. ``../shared/data/eval``) are used
when present; otherwise the set is loaded from the Hub by its dataset name.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from data.io import InputError, read_jsonl


@dataclass(frozen=True)
class EvalProblem:
    benchmark: str
    id: str
    question: str
    answer: str
    meta: dict = field(default_factory=dict, compare=False)


def _first(row: dict, *keys: str):
    for k in keys:
        v = row.get(k)
        if v not in (None, "", "None"):
            return v
    return None


def _number_text(v) -> str:
    """``27.0`` (or ``"27.0"``) -> ``"27"``; anything else as text."""
    s = str(v).strip()
    try:
        f = float(s)
    except ValueError:
        return s
    return str(int(f)) if f.is_integer() and abs(f) < 1e15 else s


def _plain_answer(row: dict) -> str | None:
    v = _first(row, "ground_truth", "answer", "final_answer")
    if isinstance(v, list):
        return _join_answers(v)
    return None if v is None else _number_text(v)


def _boxed_in_solution(row: dict) -> str | None:
    if _first(row, "answer") is not None:  # the Hub copy has the answer as a field
        return _plain_answer(row)
    from data.latex import boxed_answers

    boxes = boxed_answers(str(row.get("solution") or ""))
    return boxes[-1] if boxes else None


def _join_answers(items) -> str | None:
    items = [str(x).strip() for x in items if str(x).strip()]
    if not items:
        return None
    return items[0] if len(items) == 1 else ", ".join(items)


def _olympiad_answer(row: dict) -> str | None:
    v = row.get("final_answer")
    if isinstance(v, str):  # stored as the text of a Python list: "['2']"
        try:
            v = ast.literal_eval(v)  # data files only, never model output
        except (ValueError, SyntaxError):
            v = [v]
    if isinstance(v, (list, tuple)):
        return _join_answers(v)
    return _plain_answer(row)


def _gsm8k_answer(row: dict) -> str | None:
    a = str(row.get("answer") or "")
    if "####" not in a:
        return None
    return a.rsplit("####", 1)[1].strip().replace(",", "") or None


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    file: str  # file name in a local data directory
    hub: tuple[str, str | None, str]  # (dataset, config, split) on the Hugging Face Hub
    answer: Callable[[dict], str | None]
    question_keys: tuple[str, ...] = ("problem", "question")
    id_keys: tuple[str, ...] = ("id", "idx", "unique_id")


BENCHMARKS: dict[str, BenchmarkSpec] = {
    s.name: s
    for s in [
        BenchmarkSpec("math500", "math500.jsonl", ("HuggingFaceH4/MATH-500", None, "test"), _plain_answer),
        BenchmarkSpec("aime24", "aime24.jsonl", ("HuggingFaceH4/aime_2024", None, "train"), _plain_answer),
        BenchmarkSpec("amc23", "amc23.jsonl", ("math-ai/amc23", None, "test"), _plain_answer),
        BenchmarkSpec("minerva_math", "minerva_math.jsonl", ("math-ai/minervamath", None, "test"), _boxed_in_solution),
        BenchmarkSpec(
            "olympiadbench",
            "olympiadbench.jsonl",
            ("Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train"),
            _olympiad_answer,
            question_keys=("question", "problem"),
        ),
        BenchmarkSpec(
            "gsm8k", "gsm8k.jsonl", ("openai/gsm8k", "main", "test"), _gsm8k_answer, question_keys=("question",)
        ),
    ]
}


def default_data_dir() -> Path | None:
    """``$PIPELINE_EVAL_DIR``, else ``../shared/data/eval`` beside the repository, if it exists."""
    env = os.environ.get("PIPELINE_EVAL_DIR")
    if env:
        return Path(env)
    p = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "eval"
    return p if p.is_dir() else None


def _rows_from_hub(spec: BenchmarkSpec) -> list[dict]:
    name, config, split = spec.hub
    try:
        import datasets

        ds = datasets.load_dataset(name, config, split=split)
    except Exception as e:  # offline, missing, renamed: say what was tried
        raise InputError(
            f"benchmark {spec.name}: no local file, and loading {name} ({split}) from the "
            f"Hugging Face Hub failed: {type(e).__name__}: {str(e)[:200]}"
        ) from None
    return [dict(r) for r in ds]


def _from_rl_parquet(path: Path, limit: int | None) -> list[EvalProblem]:
    """A verl-schema parquet (e.g. a curated or synthetic held-out split) as a benchmark:
    the last user message is the question, ``reward_model.ground_truth`` the answer."""
    from data.formats import read_rl_rows

    rows = read_rl_rows(path, limit=limit)
    return [
        EvalProblem(
            path.stem,
            str(r.index),
            next(m["content"] for m in reversed(r.messages) if m["role"] == "user"),
            r.ground_truth,
            {"data_source": r.data_source},
        )
        for r in rows
    ]


def load_benchmark(name: str, data_dir: str | os.PathLike | None = None, limit: int | None = None) -> list[EvalProblem]:
    """The problems of benchmark ``name`` (see :data:`BENCHMARKS`), of a JSONL file
    given by path (fields ``problem``/``question`` and ``ground_truth``/``answer``), or of a
    verl-schema parquet file.

    Rows without a question or a reference answer are an error naming the file
    and line, not silently skipped: a benchmark with holes is not comparable."""
    path = Path(name)
    if name not in BENCHMARKS and path.suffix == ".parquet":
        return _from_rl_parquet(path, limit)
    if name not in BENCHMARKS and path.suffix == ".jsonl":
        spec = BenchmarkSpec(path.stem, path.name, ("", None, ""), _plain_answer)
        source = path
    elif name in BENCHMARKS:
        spec = BENCHMARKS[name]
        d = Path(data_dir) if data_dir else default_data_dir()
        source = d / spec.file if d is not None and (d / spec.file).is_file() else None
    else:
        raise InputError(
            f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}, or give a .jsonl or verl .parquet path"
        )
    if source is not None:
        rows = list(read_jsonl(source))
    else:
        rows = list(enumerate(_rows_from_hub(spec), 1))
        source = Path(spec.hub[0])
    out = []
    for line, row in rows:
        q = _first(row, *spec.question_keys)
        a = spec.answer(row)
        if q is None or a is None:
            missing = "question" if q is None else "reference answer"
            raise InputError(f"{source}:{line}: no {missing} in this {spec.name} row (fields: {', '.join(row)})")
        pid = _first(row, *spec.id_keys)
        meta = {k: row[k] for k in ("level", "subject", "type", "subfield", "unit") if row.get(k) not in (None, "None")}
        out.append(EvalProblem(spec.name, str(pid if pid is not None else line - 1), str(q).strip(), a, meta))
        if limit is not None and len(out) >= limit:
            break
    return out
