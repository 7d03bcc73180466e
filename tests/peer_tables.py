"""Other graders' public test tables, as one labelled set of (gold, prediction, verdict).

The cases in ``tests/fixtures/peer_cases/*.jsonl`` were transcribed from the test suites
of Math-Verify, NeMo-Skills, AReaL, hendrycks/math, slime, lighteval and open-r1;
each row names its repository, commit, file and test, and keeps the peer's own
expected verdict (``expected``), even where we think the peer is wrong: such rows
say why in ``note`` and carry our reading in ``adjudicated`` (absent: we agree with
the peer).

Used by ``tests/rewards/test_peer_tables.py`` (a regression test: the cases we get right stay
right) and by ``benchmarks/verifier.py`` (agreement and false positives, ours and
math-verify's side by side).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CASES_DIR = Path(__file__).resolve().parent / "fixtures" / "peer_cases"
# The regression baseline: ids of the cases the verifier agreed with when it was last updated.
BASELINE = CASES_DIR / "baseline.json"


@dataclass(frozen=True)
class PeerCase:
    id: str  # "<source>:<path>::<test>#<n>", stable across runs
    source: str
    gold: str
    pred: str
    pred_kind: str  # "answer" (a bare answer) or "response" (text with the answer inside)
    expected: bool  # the peer's verdict
    adjudicated: bool | None  # ours, where we believe the peer is wrong; None: the peer's stands
    options: dict
    note: str

    @property
    def label(self) -> bool:
        """The verdict we hold correct: the peer's, unless adjudicated otherwise."""
        return self.expected if self.adjudicated is None else self.adjudicated

    def response(self) -> str:
        """The text our verifier reads: a bare answer goes in a box, as a model would write it."""
        return f"\\boxed{{{self.pred}}}" if self.pred_kind == "answer" else self.pred

    def mode(self) -> str:
        """Strict (only boxed answers) where the peer's test demands a box, or the
        prediction is a bare answer we box; lenient for free text, which the peers
        read with their own answer extraction."""
        if self.pred_kind == "answer" or self.options.get("strict_box_verify") or self.options.get("requires_box"):
            return "strict"
        return "lenient"


def load_cases(directory: Path = CASES_DIR) -> list[PeerCase]:
    """Every case of every peer file, in file order; ids are unique."""
    out: list[PeerCase] = []
    for path in sorted(directory.glob("*.jsonl")):
        counts: dict[str, int] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            key = f"{row['source']}:{row['path']}::{row['test']}"
            counts[key] = counts.get(key, 0) + 1
            out.append(
                PeerCase(
                    id=f"{key}#{counts[key]}",
                    source=row["source"],
                    gold=str(row["gold"]),
                    pred=str(row["pred"]),
                    pred_kind=row.get("pred_kind", "answer"),
                    expected=bool(row["expected"]),
                    adjudicated=row.get("adjudicated"),
                    options=row.get("options") or {},
                    note=row.get("note", ""),
                )
            )
    return out


def math_verify_verdict(case: PeerCase) -> bool:
    """math-verify as verl and most trainers call it: the reference in a box, the
    prediction boxed when it is a bare answer; any failure is a wrong answer."""
    from math_verify import parse, verify

    try:
        gold = parse(case.gold if "\\boxed" in case.gold else f"\\boxed{{{case.gold}}}")
        pred = parse(case.response())
        return bool(verify(gold, pred))
    except Exception:
        return False


def our_verdict(case: PeerCase) -> bool:
    """Our verifier's verdict, in-process (the sandbox adds only time and memory bounds)."""
    from rewards.check import check

    return check(case.response(), case.gold, mode=case.mode()).correct


def write_baseline(cases: list[PeerCase], path: Path = BASELINE) -> dict:
    """Record which cases we get right (against ``label``): the regression test keeps them right."""
    right = sorted(c.id for c in cases if our_verdict(c) == c.label)
    data = {"cases": len(cases), "right": len(right), "ids": right}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return data


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--update-baseline"]:
        sys.exit("usage: python -m tests.peer_tables --update-baseline")
    got = write_baseline(load_cases())
    print(f"baseline: {got['right']}/{got['cases']} peer cases right -> {BASELINE}")
