"""The RL dataset format every stage shares: verl's parquet schema.

One row per problem::

    data_source:  str                        where the problem came from
    prompt:       [{"role": "user", "content": str}, ...]   chat messages
    ability:      str                        "math"
    reward_model: {"style": "rule", "ground_truth": str}
    extra_info:   {"split": str, "index": int, "question": str, "answer": str, ...}

verl's ``RLHFDataset`` reads these files unchanged, and so does the
single-process engine (:func:`read_rl_rows`). Synthetic rows also carry
``extra_info.solution``: a worked solution for the supervised warm-up.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from data.io import InputError, atomic_writer

SYNTHETIC_SOURCE = "synthetic/arithmetic"


@dataclass(frozen=True)
class RLRow:
    """What the engines need from one row."""

    messages: list[dict]  # the chat prompt
    ground_truth: str
    data_source: str
    index: int
    solution: str | None = None  # supervised target, when the source has one
    question: str | None = None


def verl_row(
    question: str,
    answer: str,
    *,
    data_source: str,
    index: int,
    split: str,
    instruction: str | None = None,
    extra: dict | None = None,
) -> dict:
    """A row in verl's schema. ``instruction`` (if any) is appended to the question."""
    content = question if not instruction else f"{question} {instruction}"
    return {
        "data_source": data_source,
        "prompt": [{"role": "user", "content": content}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": answer},
        "extra_info": {"split": split, "index": index, "question": question, "answer": answer, **(extra or {})},
    }


def prompt_messages(question: str, instruction: str, system_prompt: str | None) -> list[dict]:
    """The chat for one problem: optional system prompt, question + instruction."""
    user = f"{question}\n{instruction}".strip() if instruction else question
    return ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
        {"role": "user", "content": user}
    ]


def write_parquet(rows: Sequence[dict], path: str | os.PathLike) -> None:
    """Write rows atomically as parquet (pyarrow infers the nested schema)."""
    import pandas as pd

    if not rows:
        raise ValueError(f"refusing to write an empty dataset to {path}")
    with atomic_writer(path, "wb") as f:
        pd.DataFrame(list(rows)).to_parquet(f, index=False)


def _load_table(path: Path) -> list[dict]:
    import pandas as pd

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        elif path.suffix in (".jsonl", ".json"):
            df = pd.read_json(path, lines=path.suffix == ".jsonl")
        else:
            raise InputError(f"{path}: expected .parquet, .jsonl or .json")
    except InputError:
        raise
    except Exception as e:  # pyarrow/pandas raise many types for a bad file
        raise InputError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    return df.to_dict(orient="records")


def _plain(x):
    """numpy arrays / pyarrow structs from parquet -> plain lists and dicts."""
    if hasattr(x, "tolist") and not isinstance(x, (str, bytes)):
        x = x.tolist()
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def read_rl_rows(paths: str | os.PathLike | Iterable[str | os.PathLike], limit: int | None = None) -> list[RLRow]:
    """Read verl-schema files; a missing column or malformed row is an InputError
    naming the file and row."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[RLRow] = []
    for p in map(Path, paths):
        for i, raw in enumerate(_load_table(p)):
            row = _plain(raw)
            where = f"{p}: row {i}"
            missing = [k for k in ("prompt", "reward_model") if k not in row]
            if missing:
                raise InputError(f"{where}: missing column(s) {missing} (expected verl's schema; see data/formats.py)")
            msgs = row["prompt"]
            if isinstance(msgs, str):
                msgs = [{"role": "user", "content": msgs}]
            if not (isinstance(msgs, list) and msgs and all(isinstance(m, dict) and "content" in m for m in msgs)):
                raise InputError(f"{where}: `prompt` must be a list of {{role, content}} messages")
            rm = row["reward_model"]
            if not isinstance(rm, dict) or rm.get("ground_truth") is None:
                raise InputError(f"{where}: `reward_model.ground_truth` is missing")
            extra = row.get("extra_info") or {}
            index = extra.get("index")
            out.append(
                RLRow(
                    messages=[{"role": m.get("role") or "user", "content": str(m["content"])} for m in msgs],
                    ground_truth=str(rm["ground_truth"]),
                    data_source=str(row.get("data_source") or p.stem),
                    index=int(index) if index is not None else len(out),
                    solution=extra.get("solution"),
                    question=extra.get("question"),
                )
            )
            if limit is not None and len(out) >= limit:
                return out
    if not out:
        raise InputError(f"no rows in {', '.join(map(str, paths))}")
    return out


def synthetic_rows(
    n: int,
    *,
    seed: int,
    split: str,
    steps: int = 2,
    max_operand: int = 10,
    ops: tuple[str, ...] = ("+", "-", "*"),
    error_rate: float = 0.0,
    check_rate: float = 0.0,
    instruction: str | None = None,
    exclude: set[str] | None = None,
    direct_rate: float = 0.0,
    second_attempt_rate: float = 0.0,
    second_instruction: str | None = None,
    second_repeat_rate: float = 0.0,
    second_error_rate: float | None = None,
    step_slip_rate: float = 0.0,
) -> list[dict]:
    """``n`` distinct synthetic arithmetic problems as verl rows.

    Each row's ``extra_info.solution`` is a worked solution; a share
    ``error_rate`` of them carries a slip (``extra_info.solution_correct`` is
    false) while ``ground_truth`` stays right, so supervised training on the
    solutions copies the slips and the verifier does not reward them. A share
    ``check_rate`` re-checks every step on a line of its own (longer, no more
    correct: room for a length penalty to work). A share ``direct_rate`` states
    the answer with no working at all. ``step_slip_rate``: besides the one-slip
    flawed solutions, every step of the others slips independently at this
    rate, so long chains are mostly wrong (a sparse outcome reward).
    ``exclude``: questions to skip (keeps a held-out split disjoint).
    A share ``second_attempt_rate`` of rows are two-turn (self-correction
    warm-up): the prompt holds the question, a worked solution as the
    assistant's first attempt and ``second_instruction``; the target is a fresh,
    independent worked solution (slipping at ``second_error_rate``, default
    ``error_rate``): a model that re-solves rather than corrects, the starting
    point SCoRe trains from. With ``second_repeat_rate`` the target is instead
    the first attempt repeated word for word that often (a model that mostly
    stands by its first answer, slips included).
    """
    if second_attempt_rate and not second_instruction:
        raise ValueError("second_attempt_rate needs second_instruction")
    from data.synthetic import make_problem, worked_solution

    rng = random.Random(seed)
    seen = set(exclude or ())
    rows: list[dict] = []
    tries = 0
    while len(rows) < n:
        tries += 1
        if tries > 50 * n + 1000:
            raise ValueError(f"cannot draw {n} distinct problems with steps={steps}, max_operand={max_operand}")
        p = make_problem(rng, steps=steps, max_operand=max_operand, ops=ops)
        if p.question in seen:
            continue
        seen.add(p.question)
        text, ok = worked_solution(
            p, rng, error_rate, check_rate, direct_rate=direct_rate, step_slip_rate=step_slip_rate
        )
        row = verl_row(
            p.question,
            p.answer,
            data_source=SYNTHETIC_SOURCE,
            index=len(rows),
            split=split,
            instruction=instruction,
            extra={"solution": text, "solution_correct": ok, "steps": steps},
        )
        if second_attempt_rate and rng.random() < second_attempt_rate:
            if second_repeat_rate and rng.random() < second_repeat_rate:
                second, ok2 = text, ok
            else:
                slips = error_rate if second_error_rate is None else second_error_rate
                second, ok2 = worked_solution(p, rng, slips, check_rate)
            row["prompt"] += [{"role": "assistant", "content": text}, {"role": "user", "content": second_instruction}]
            row["extra_info"].update(solution=second, solution_correct=ok2, first_attempt_correct=ok)
        rows.append(row)
    return rows
