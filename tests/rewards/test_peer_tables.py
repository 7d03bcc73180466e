"""Other graders' public test tables as a regression test (see tests/peer_tables.py).

Every case we got right when the baseline was last written must stay right;
a change that fixes more cases updates the baseline with
``.venv/bin/python -m tests.peer_tables --update-baseline``."""

from __future__ import annotations

import json

import pytest

from tests.peer_tables import BASELINE, CASES_DIR, load_cases, our_verdict

CASES = load_cases()
BY_ID = {c.id: c for c in CASES}
KEYS = {"source", "repo", "path", "commit", "test", "gold", "pred", "pred_kind", "expected", "options", "note"}


def test_every_case_names_its_source():
    assert len(BY_ID) == len(CASES), "case ids must be unique"
    for path in CASES_DIR.glob("*.jsonl"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            row = json.loads(line)
            assert KEYS <= set(row), f"{path.name}:{n} lacks {KEYS - set(row)}"
            assert len(row["commit"]) == 40 and "/" in row["repo"], f"{path.name}:{n}"
            assert row["pred_kind"] in ("answer", "response") and isinstance(row["expected"], bool)
            if "adjudicated" in row:  # where we hold the peer wrong, the note says why
                assert isinstance(row["adjudicated"], bool) and row["adjudicated"] != row["expected"] and row["note"]


BASE = json.loads(BASELINE.read_text()) if BASELINE.is_file() else {"ids": []}


def test_baseline_covers_the_tables():
    assert BASE["ids"], "no baseline: run python -m tests.peer_tables --update-baseline"
    assert set(BASE["ids"]) <= set(BY_ID), "baseline names cases that no longer exist"


@pytest.mark.parametrize("case_id", BASE["ids"])
def test_cases_we_got_right_stay_right(case_id):
    case = BY_ID[case_id]
    assert our_verdict(case) is case.label, f"{case_id}: gold={case.gold!r} pred={case.pred[-200:]!r}"
