#!/usr/bin/env python
"""Curation: how right its decisions are, and its throughput.

    .venv/bin/python benchmarks/curate.py [--sizes 50000,200000] [--workers 2] [--skip-shared] [--labels-only]

0. Decisions (needs ../shared/data): the row-level filters of
   ``configs/curate/shared.yaml`` on every shared raw row, scored against the
   hand-labelled rows in ``tests/fixtures/curate_labels*.jsonl`` (precision and recall
   overall and per filter, see ``pipeline.curate.audit.label_scores``) and
   audited for suspect answer keys among the kept rows (the verifier reads the
   key only as a string; the source's own arithmetic contradicts it). The same
   figures for the decisions stored in ``benchmarks/data/curate_rows_<rev>.json.gz``
   (the row outcomes and kept answers of an earlier checkout, written by
   ``--save-rows``) are printed beside them as "before".

1. ``configs/curate/shared.yaml`` on the shared raw files (~9.8k messy rows, every
   filter, decontaminated against the six evaluation sets), when present.
2. A synthetic input of each size: varied word problems (random names, objects,
   numbers and phrasings) with 5% exact and 3% near duplicates planted, through
   the default filters, decontaminated against the shared evaluation sets when
   present. Near-linear scaling means seconds per row stay flat from the small
   size to the large one; the ratio is printed per filter.

Each run is a fresh ``curate()`` in this process (the verifier's workers start
per run). The last line is the headline.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAMES = [
    "Ava",
    "Ben",
    "Chen",
    "Dara",
    "Eli",
    "Fatima",
    "Goran",
    "Hana",
    "Ivan",
    "Jun",
    "Kofi",
    "Lena",
    "Mateo",
    "Nia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tariq",
    "Uma",
    "Vera",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoe",
]
THINGS = [
    "apples",
    "marbles",
    "stickers",
    "books",
    "pencils",
    "coins",
    "cards",
    "shells",
    "stamps",
    "beads",
    "cookies",
    "tickets",
    "plants",
    "blocks",
    "ribbons",
    "buttons",
    "candles",
    "kites",
    "boats",
    "puzzles",
]
PLACES = [
    "at the market",
    "in the garden",
    "at school",
    "in the attic",
    "at the fair",
    "on the farm",
    "in the library",
    "at the beach",
    "in the shop",
    "at the museum",
    "in the park",
    "at home",
]
VERBS = [
    ("buys", "more"),
    ("finds", "more"),
    ("gives away", "fewer"),
    ("loses", "fewer"),
    ("receives", "more"),
    ("sells", "fewer"),
    ("collects", "more"),
    ("donates", "fewer"),
]


def synthetic_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows: list[dict] = []
    while len(rows) < n:
        roll = rng.random()
        if rows and roll < 0.05:  # an exact duplicate of an earlier row
            dup = dict(rng.choice(rows))
            dup["id"] = f"r{len(rows)}"
            rows.append(dup)
            continue
        if rows and roll < 0.08:  # a near duplicate: same numbers, one phrase changed
            src = rng.choice(rows)
            q = src["question"].replace("How many", "How many in total", 1).replace("Then", "After that", 1)
            rows.append({"id": f"r{len(rows)}", "question": q, "answer": src["answer"]})
            continue
        a, b, c = rng.randint(2, 999), rng.randint(2, 500), rng.randint(2, 9)
        name, other = rng.sample(NAMES, 2)
        thing, place = rng.choice(THINGS), rng.choice(PLACES)
        verb, direction = rng.choice(VERBS)
        total = a + b if direction == "more" else a - b
        extra = rng.choice(
            [
                "",
                f" {other} watches {rng.choice(['quietly', 'closely', 'happily'])}.",
                f" The weather is {rng.choice(['sunny', 'rainy', 'windy', 'cold'])}.",
            ]
        )
        q = (
            f"{name} has {a} {thing} {place}.{extra} Then {name} {verb} {b} {thing}. "
            f"{rng.choice(['How many', 'What number of'])} {thing} does {name} have now, "
            f"and how many groups of {c} could be made?"
        ).replace(", and how many groups of", ". Ignore groups of")
        rows.append({"id": f"r{len(rows)}", "question": q, "answer": str(total)})
    return rows


def run(cfg_dict: dict, out: Path, base: Path) -> dict:
    from pipeline.config import load_config
    from pipeline.curate.config import CurateConfig
    from pipeline.curate.run import curate

    path = base / f"cfg_{out.name}.json"
    path.write_text(json.dumps(cfg_dict))
    cfg = load_config(CurateConfig, path)
    t0 = time.perf_counter()
    rep = curate(cfg, out, progress=False, log=lambda m: None)
    secs = time.perf_counter() - t0
    return {
        "rows": rep["rows_in"],
        "kept": rep["kept"],
        "seconds": round(secs, 1),
        "rows_per_s": round(rep["rows_in"] / secs),
        "filters": {f["filter"]: f["seconds"] for f in rep["filters"]},
        "dropped": {f["filter"]: f["dropped"] for f in rep["filters"] if f["dropped"]},
    }


LABEL_FILES = ("curate_labels.jsonl", "curate_labels_heldout.jsonl", "curate_labels_fresh.jsonl")


def decisions(workers: int, save: Path | None) -> str:
    """Section 0: label scores and key audit, now and (when stored) before. Returns the headline."""
    import gzip

    from pipeline.config import load_config
    from pipeline.curate.audit import key_audit, label_scores, read_labels, row_outcomes
    from pipeline.curate.config import CurateConfig
    from pipeline.curate.sources import read_source
    from rewards.verifier import Verifier

    cfg = load_config(CurateConfig, ROOT / "configs" / "curate" / "shared.yaml")
    verifier = Verifier(workers=workers)
    try:
        t0 = time.perf_counter()
        outcome, kept = row_outcomes(cfg, verifier)
        secs = time.perf_counter() - t0
    finally:
        verifier.close()
    if save:
        with gzip.open(save, "wt") as f:
            json.dump({"outcome": outcome, "kept_answers": {r.uid: r.answer for r in kept}}, f, sort_keys=True)
    runs = {"now": (outcome, key_audit(kept))}
    for stored in sorted((ROOT / "benchmarks" / "data").glob("curate_rows_*.json.gz")):
        with gzip.open(stored, "rt") as f:
            old = json.load(f)
        # the earlier checkout's kept rows with its answers, the source's solution as read now
        records = {r.uid: r for s in cfg.sources for r in read_source(s) if r.uid in old["kept_answers"]}
        for uid, answer in old["kept_answers"].items():
            records[uid].answer = answer
        runs[f"before ({stored.name.split('_')[-1].split('.')[0]})"] = (
            old["outcome"],
            key_audit(list(records.values())),
        )
    print(f"row-level filters on {len(outcome)} shared raw rows: {secs:.1f} s", flush=True)
    head = []
    for name, (out, audit) in runs.items():
        counts = {k: len(v) if isinstance(v, list) else v for k, v in audit.items()}
        print(
            f"[{name}] kept {counts['kept']} rows; suspect keys: {counts['string_only']} read only as a string, "
            f"{counts['contradicted']} contradicted by the source's arithmetic (of {counts['with_formula']} with one)"
            + (f", e.g. {audit['contradicted'][:4]}" if audit["contradicted"] else "")
        )
        for file in LABEL_FILES:
            path = ROOT / "tests" / "fixtures" / file
            if not path.exists():
                continue
            sc = label_scores(out, read_labels(path))
            print(
                f"[{name}] {file} ({sc['rows']} rows): accuracy {sc['accuracy']}, keep precision {sc['keep_precision']}, "
                f"keep recall {sc['keep_recall']}, drop precision {sc['drop_precision']}"
            )
            for f, v in sc["per_filter"].items():
                if v["decided"] or v["labelled"]:
                    print(
                        f"    {f:16s} precision {v['precision']} ({v['decided']} decided)  "
                        f"recall {v['recall']} ({v['labelled']} labelled)"
                    )
            if sc["wrong"]:
                print(f"    wrong: {sc['wrong']}")
            if file == LABEL_FILES[-1]:
                head.append(
                    f"{name}: fresh labels accuracy {sc['accuracy']}, keep precision {sc['keep_precision']}, "
                    f"{counts['contradicted']} contradicted keys kept"
                )
    return "; ".join(head)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="50000,200000")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--skip-shared", action="store_true")
    p.add_argument("--labels-only", action="store_true", help="only section 0: decisions against the hand labels")
    p.add_argument("--save-rows", type=Path, help="write this checkout's row outcomes and kept answers here (.json.gz)")
    a = p.parse_args()
    eval_dir = ROOT.parent / "shared" / "data" / "eval"
    results: dict[str, dict] = {}
    shared_raw = (ROOT.parent / "shared" / "data" / "raw").is_dir()
    decided = decisions(a.workers, a.save_rows) if shared_raw and (a.labels_only or not a.skip_shared) else ""
    if a.labels_only:
        print("curate decisions: " + (decided or "../shared/data is not present"))
        return
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        shared = ROOT / "configs" / "curate" / "shared.yaml"
        if not a.skip_shared and eval_dir.is_dir():
            import yaml

            cfg = yaml.safe_load(shared.read_text())
            for s in cfg["sources"]:
                s["file"] = str((shared.parent / s["file"]).resolve())
            cfg["eval_dir"] = str(eval_dir)
            cfg["verifier"] = {"workers": a.workers}
            results["shared"] = run(cfg, base / "shared", base)
            print(f"shared raw files: {json.dumps(results['shared'])}", flush=True)
        for n in [int(x) for x in a.sizes.split(",")]:
            f = base / f"synthetic_{n}.jsonl"
            f.write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows(n)))
            cfg = {
                "sources": [{"name": "synthetic", "file": str(f), "id": "id"}],
                "eval_dir": str(eval_dir) if eval_dir.is_dir() else None,
                "eval_sets": ["math500", "aime24", "amc23", "minerva_math", "olympiadbench", "gsm8k"]
                if eval_dir.is_dir()
                else [],
                "verifier": {"workers": a.workers},
            }
            results[str(n)] = run(cfg, base / f"syn{n}", base)
            print(f"synthetic {n}: {json.dumps(results[str(n)])}", flush=True)
    sizes = [k for k in results if k != "shared"]
    head = []
    if "shared" in results:
        head.append(f"shared raw {results['shared']['rows']} rows: {results['shared']['rows_per_s']} rows/s")
    for k in sizes:
        head.append(f"synthetic {int(k) // 1000}k: {results[k]['rows_per_s']} rows/s")
    if len(sizes) >= 2:
        small, big = results[sizes[0]], results[sizes[-1]]
        factor = big["rows"] / small["rows"]
        ratios = ", ".join(
            f"{f} x{big['filters'][f] / max(small['filters'][f], 1e-3):.1f}"
            for f in ("exact_dedup", "near_dedup", "decontaminate")
        )
        head.append(f"time growth for {factor:.0f}x rows: {ratios}")
    print("curate: " + " | ".join(head + ([decided] if decided else [])))


if __name__ == "__main__":
    main()
