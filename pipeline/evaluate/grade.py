"""Grade responses: read a generations file, verify, group answers, attach scores.

A generations file is JSONL with one row per problem and the N responses as a
list (a single string is one response). Field names differ between tools, so
they are configurable (:class:`pipeline.config.GenerationKeys`); the defaults are
the names this stage writes itself.

Correctness comes from the file (``correct`` key) or from the project's
verifier. When the verifier grades and the file also carries grades of its own
(the ``reference_correct`` key, or the first of ``score`` / ``correct`` /
``is_correct`` holding one boolean per response), every response where the two
disagree is listed in the report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from data.io import InputError, read_jsonl
from pipeline.evaluate.metrics import ProblemResult, aggregate_score

AUTO_GRADE_KEYS = ("score", "correct", "is_correct")


@dataclass
class GradedProblem:
    benchmark: str
    id: str
    question: str
    answer: str
    responses: list[str]
    correct: list[bool]
    answers: list[str | None]  # each response's final answer (as grouped)
    labels: list[int]
    reasons: list[str] | None = None  # verifier reasons, when it graded
    scores: list[float] | None = None
    tokens: list[int] | None = None
    responses_t2: list[str] | None = None
    correct_t2: list[bool] | None = None
    file_correct: list[bool] | None = None  # the file's own grades, for comparison
    extra: dict = field(default_factory=dict)

    def result(self) -> ProblemResult:
        return ProblemResult(
            self.correct,
            self.labels,
            self.scores,
            lengths=self.tokens,
            correct_t2=self.correct_t2,
            key=f"{self.benchmark}/{self.id}",
        )


def _as_list(v, where: str, key: str) -> list:
    if isinstance(v, list):
        return v
    if isinstance(v, (str, int, float, bool)) or v is None:
        return [v]
    raise InputError(f"{where}: field {key!r} must be a list or a single value, got {type(v).__name__}")


def _bools(v, where: str, key: str, n: int) -> list[bool]:
    vals = _as_list(v, where, key)
    if len(vals) != n:
        raise InputError(f"{where}: {key!r} has {len(vals)} entries for {n} responses")
    out = []
    for x in vals:
        if isinstance(x, list) and len(x) == 1:
            x = x[0]
        if isinstance(x, bool) or x in (0, 1):
            out.append(bool(x))
        elif isinstance(x, str) and x.strip().lower() in ("true", "false", "1", "0"):
            out.append(x.strip().lower() in ("true", "1"))
        else:
            raise InputError(f"{where}: {key!r} must hold booleans (or 0/1), got {x!r}")
    return out


def _auto_grade_key(row: dict, n: int) -> str | None:
    for k in AUTO_GRADE_KEYS:
        v = row.get(k)
        if isinstance(v, list) and len(v) == n and all(isinstance(x, bool) or x in (0, 1) for x in v):
            return k
    return None


# Where --answer-key is not given: the verifier's default reference key (as the verifier CLI,
# the service and the verl adapter read it), else the key the evaluate stage's own
# generations.jsonl uses.
_DEFAULT_ANSWER_KEYS = ("ground_truth", "answer")


def load_generations(path: str | Path, keys, aggregate: str = "last", limit: int | None = None) -> list[dict]:
    """Rows of a generations file, normalised: benchmark, id, question, answer,
    responses, and (where the file has them) correct, scores, tokens, responses_t2,
    file_correct. Errors name the file and line."""
    rows = []
    for line, row in read_jsonl(path):
        where = f"{path}:{line}"
        if keys.response not in row:
            raise InputError(
                f"{where}: no response field {keys.response!r} (fields: {', '.join(row)}); set --response-key"
            )
        answer_key = keys.answer or next((k for k in _DEFAULT_ANSWER_KEYS if k in row), None)
        if answer_key not in row:
            wanted = repr(keys.answer) if keys.answer else " or ".join(map(repr, _DEFAULT_ANSWER_KEYS))
            raise InputError(
                f"{where}: no reference answer field {wanted} (fields: {', '.join(row)}); set --answer-key"
            )
        if row[keys.response] is None or row[keys.response] == []:
            raise InputError(f"{where}: {keys.response!r} holds no responses")
        if row[answer_key] is None or str(row[answer_key]).strip() == "":
            raise InputError(f"{where}: the reference answer {answer_key!r} is empty")
        responses = ["" if r is None else str(r) for r in _as_list(row[keys.response], where, keys.response)]
        n = len(responses)
        out = {
            "benchmark": str(row.get(keys.benchmark) or Path(path).stem),
            "id": str(row.get(keys.id, row.get("idx", line - 1))),
            "question": str(row.get(keys.question) or row.get("problem") or ""),
            "answer": row[answer_key],
            "responses": responses,
        }
        if keys.correct:
            if keys.correct not in row:
                raise InputError(f"{where}: no correctness field {keys.correct!r}")
            out["correct"] = _bools(row[keys.correct], where, keys.correct, n)
        else:
            ref = keys.reference_correct or _auto_grade_key(row, n)
            if ref and ref in row:
                out["file_correct"] = _bools(row[ref], where, ref, n)
                out["file_correct_key"] = ref
        if keys.verifier_score:
            if keys.verifier_score not in row:
                raise InputError(f"{where}: no score field {keys.verifier_score!r}")
            raw = _as_list(row[keys.verifier_score], where, keys.verifier_score)
            if len(raw) != n:
                raise InputError(f"{where}: {keys.verifier_score!r} has {len(raw)} entries for {n} responses")
            try:
                scores = [aggregate_score(x, aggregate) for x in raw]
            except (TypeError, ValueError) as e:
                raise InputError(f"{where}: {keys.verifier_score!r}: {e}") from None
            if not all(math.isfinite(s) for s in scores):
                raise InputError(f"{where}: {keys.verifier_score!r} holds NaN or infinity")
            out["scores"] = scores
        if keys.tokens and isinstance(row.get(keys.tokens), list) and len(row[keys.tokens]) == n:
            toks = row[keys.tokens]
            if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in toks):
                raise InputError(f"{where}: {keys.tokens!r} must hold non-negative integers, got {toks[:4]!r}")
            out["tokens"] = toks
        if keys.second_response and keys.second_response in row:
            t2 = ["" if r is None else str(r) for r in _as_list(row[keys.second_response], where, keys.second_response)]
            if len(t2) != n:
                raise InputError(f"{where}: {keys.second_response!r} has {len(t2)} entries for {n} first attempts")
            out["responses_t2"] = t2
        rows.append(out)
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise InputError(f"{path}: no rows")
    return rows


def grade(
    rows: Sequence[dict],
    verifier,
    *,
    count_tokens: Callable[[str], int] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[GradedProblem]:
    """Verify every response lacking a grade, group every problem's answers, count
    tokens where the rows have no counts; results in row order."""
    flat_resp, flat_gold, slots = [], [], []
    for i, r in enumerate(rows):
        if "correct" not in r:
            for j, resp in enumerate(r["responses"]):
                flat_resp.append(resp), flat_gold.append(r["answer"]), slots.append((i, j, "t1"))
        for j, resp in enumerate(r.get("responses_t2") or []):
            flat_resp.append(resp), flat_gold.append(r["answer"]), slots.append((i, j, "t2"))
    tick = (lambda *_: progress(1)) if progress else None
    verdicts = verifier.verify_batch(flat_resp, flat_gold, questions=None, on_result=tick) if flat_resp else []
    groups = verifier.group_answers(
        [r["responses"] for r in rows], on_result=(lambda *_: progress(1)) if progress else None
    )
    graded = []
    for r, g in zip(rows, groups):
        n = len(r["responses"])
        graded.append(
            GradedProblem(
                benchmark=r["benchmark"],
                id=r["id"],
                question=r["question"],
                answer=str(r["answer"]),
                responses=r["responses"],
                correct=list(r.get("correct") or [False] * n),
                answers=list(g.answers),
                labels=list(g.labels),
                reasons=None if "correct" in r else [""] * n,
                scores=r.get("scores"),
                tokens=r.get("tokens") or ([count_tokens(x) for x in r["responses"]] if count_tokens else None),
                responses_t2=r.get("responses_t2"),
                correct_t2=[False] * n if r.get("responses_t2") else None,
                file_correct=r.get("file_correct"),
                extra={"file_correct_key": r.get("file_correct_key"), "grouping": g.reason},
            )
        )
    for (i, j, turn), v in zip(slots, verdicts):
        if turn == "t1":
            graded[i].correct[j] = v.correct
            graded[i].reasons[j] = v.reason
        else:
            graded[i].correct_t2[j] = v.correct
    return graded


def disagreements(graded: Sequence[GradedProblem], limit: int = 50) -> dict:
    """Where the verifier's grades differ from the file's own."""
    items, total, compared, key = [], 0, 0, None
    for g in graded:
        if g.file_correct is None or g.reasons is None:
            continue
        key = key or g.extra.get("file_correct_key")
        for j, (ours, theirs) in enumerate(zip(g.correct, g.file_correct)):
            compared += 1
            if ours != theirs:
                total += 1
                if len(items) < limit:
                    items.append(
                        {
                            "benchmark": g.benchmark,
                            "id": g.id,
                            "response": j,
                            "verifier": ours,
                            "file": theirs,
                            "extracted": g.answers[j],
                            "reference": g.answer,
                            "reason": g.reasons[j],
                        }
                    )
    if not compared:
        return {}
    return {
        "file_key": key,
        "compared": compared,
        "disagree": total,
        "agreement": round(1 - total / compared, 6),
        "examples": items,
    }
