"""Raw problem sources -> :class:`Record` rows, by per-source field mappings in config.

Every source has its own schema, so a :class:`pipeline.config.SourceConfig` says
where the question, answer, options, correct option, id and subject live:

* a field name (``answer``), or a template over fields (``"{Body} {Question}"``);
* options as a list field, a list stored as text (``"['A)5', 'B)6']"``), or text
  (``"A) $f(-6)=0$ B) $f(6)=-6$"``); options inline in the question are found
  by the multiple-choice filter;
* the correct option as a letter (``C``) or a 0-based index (``2``).

Local JSONL and Parquet files, or a Hugging Face dataset by name.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from data.io import InputError, read_jsonl

MAX_OPTIONS_CHARS = 20_000  # longer option fields are cut before parsing
_FIELD = re.compile(r"\{([A-Za-z_][\w.-]*)\}")
_LETTERS = "ABCDEFGHIJ"


@dataclass
class Record:
    """One raw problem as the filters see it (filters may rewrite question/answer)."""

    uid: str  # "<source>:<id>", unique
    source: str
    source_id: str
    line: int  # line (JSONL) or row (1-based) in the source
    question: str
    answer: str
    original_question: str = ""
    original_answer: str = ""
    options: dict[str, str] | None = None  # letter -> option text
    correct_option: str | None = None  # letter
    correct_option_given: bool = False  # the source maps a correct-option field (even one that did not resolve)
    subject: str | None = None
    solution: str = ""  # the source's own worked solution or formula, when it has one
    meta: dict = field(default_factory=dict)  # filled by filters: language, answer kind, solve rate ...


def _get(row: dict, spec: str | None):
    """A field value, or a template filled from several fields; None if absent."""
    if not spec:
        return None
    if "{" not in spec:
        v = row.get(spec)
        return None if v is None or (isinstance(v, float) and v != v) else v
    missing = [f for f in _FIELD.findall(spec) if row.get(f) in (None, "")]
    if len(missing) == len(_FIELD.findall(spec)):
        return None
    return _FIELD.sub(lambda m: str(row.get(m.group(1)) or ""), spec).strip()


def parse_options(value) -> dict[str, str] | None:
    """Options in any of the shapes sources use -> {letter: text}; None if none."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()[:MAX_OPTIONS_CHARS]
        if text.startswith("[") and text.endswith("]"):
            try:
                value = ast.literal_eval(text)  # a list stored as text (data, never model output; length-capped)
            except Exception:  # SyntaxError, ValueError, RecursionError, MemoryError on hostile text
                value = text
        if isinstance(value, str):
            return split_lettered(value)
    if isinstance(value, dict):
        return {str(k).strip().upper(): str(v).strip() for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [str(x).strip() for x in value]
        lettered = [re.match(r"^\(?([A-J])\s*[).:]\s*(.*)$", x, re.S) for x in items]
        if items and all(lettered):
            return {m.group(1): m.group(2).strip() for m in lettered}
        return {_LETTERS[i]: x for i, x in enumerate(items[: len(_LETTERS)])}
    return None


_OPTION_MARK = re.compile(r"(?:^|(?<=\s))\(?([A-J])\s*[).:．、]\s*")


def split_lettered(text: str) -> dict[str, str] | None:
    """``"A) 5 B) 6 C) 7"`` -> {A: 5, B: 6, C: 7}; needs consecutive letters from A."""
    marks = [m for m in _OPTION_MARK.finditer(text)]
    seq, want = [], "A"
    for m in marks:
        if m.group(1) == want:
            seq.append(m)
            want = chr(ord(want) + 1)
    if len(seq) < 2:
        return None
    out = {}
    for i, m in enumerate(seq):
        end = seq[i + 1].start() if i + 1 < len(seq) else len(text)
        out[m.group(1)] = text[m.end() : end].strip()
    return out


def correct_letter(value, options: dict[str, str] | None) -> str | None:
    """The correct option's letter from a letter (``C``, ``(C)``) or an index (``2``)."""
    if value is None:
        return None
    s = str(value).strip().strip("()").strip().upper()
    if len(s) == 1 and s in _LETTERS:
        return s
    if s.isdigit() and options:
        i = int(s)
        return _LETTERS[i] if i < len(options) else None
    return None


def _rows(src) -> Iterator[tuple[int, dict]]:
    if src.hub:
        try:
            import datasets

            ds = datasets.load_dataset(src.hub, src.hub_config, split=src.split)
        except Exception as e:
            raise InputError(
                f"source {src.name}: loading {src.hub} ({src.split}) from the Hugging Face Hub failed: "
                f"{type(e).__name__}: {str(e)[:200]}"
            ) from None
        yield from enumerate((dict(r) for r in ds), 1)
        return
    path = Path(src.file)
    if not path.is_file():
        raise InputError(f"source {src.name}: {path}: no such file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as e:
            raise InputError(f"source {src.name}: {path}: not a readable parquet file ({e})") from None
        yield from enumerate(table.to_pylist(), 1)
    else:
        yield from read_jsonl(path)


def _answer_text(value) -> tuple[str, str | None]:
    """(answer as text, problem) for whatever a source stores as its answer."""
    if value is None:
        return "", None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value), None
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(str(v) for v in value), None  # several final answers, as a list
    return "", f"the answer field holds a {type(value).__name__}"


def _fields(spec: str | None) -> list[str]:
    if not spec:
        return []
    return _FIELD.findall(spec) if "{" in spec else [spec]


def read_source(src) -> list[Record]:
    """All rows of one source as Records. A row without a question or an answer
    field is still a Record (with an empty string): the filters drop it with a
    reason, so that nothing is lost silently. A question or answer field that no
    row of the source has is a config mistake, and an error."""
    out = []
    seen: set[str] = set()
    present: set[str] = set()
    for line, row in _rows(src):
        present.update(row)
        sid = _get(row, src.id)
        sid = str(sid) if sid is not None else str(line - 1)
        if sid in seen:  # ids must be unique within a source; fall back to the line
            k, base = 0, f"{sid}@{line}"
            sid = base
            while sid in seen:
                k += 1
                sid = f"{base}.{k}"
        seen.add(sid)
        q = _get(row, src.question)
        a, problem = _answer_text(_get(row, src.answer))
        options = parse_options(_get(row, src.options))
        given = _get(row, src.correct_option)
        letter = correct_letter(given, options)
        subject = _get(row, src.subject)
        solution = _get(row, src.solution)
        rec = Record(
            uid=f"{src.name}:{sid}",
            source=src.name,
            source_id=sid,
            line=line,
            question="" if q is None else str(q),
            answer=a,
            options=options,
            correct_option=letter,
            correct_option_given=given is not None,
            subject=None if subject is None else str(subject),
            solution="" if solution is None else str(solution),
        )
        rec.original_question, rec.original_answer = rec.question, rec.answer
        if problem:
            rec.meta["answer_problem"] = problem
        out.append(rec)
        if src.limit and len(out) >= src.limit:
            break
    mapped = {f: key for key in ("question", "answer") for f in _fields(getattr(src, key))}  # the ones every row needs
    missing = sorted(f for f in mapped if f not in present)
    if out and missing:
        raise InputError(
            f"source {src.name}: no row has the field(s) {missing} (mapped as "
            f"{', '.join(sorted({mapped[f] for f in missing}))}); fields present: {', '.join(sorted(present))}"
        )
    return out
