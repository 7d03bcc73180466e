"""The curation stage: sources -> filters in order -> train/val parquet, dropped rows, report.

    curate(cfg, out)   # writes OUT/train.parquet, OUT/val.parquet, OUT/dropped.parquet,
                       # OUT/report.json, OUT/report.md, OUT/drop_reasons.png, OUT/manifest.json

Every input row ends up in exactly one of kept (train + val) and dropped (with
the filter and the reason), and that is asserted. ``manifest.json`` is written
last and records a fingerprint of the config, of every input file (size and
modification time) and of the curation code; a re-run whose fingerprint matches
does nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

from data.io import InputError, atomic_writer, write_json
from pipeline.config import ConfigError, to_dict
from pipeline.curate import dedup, difficulty  # noqa: F401 - they register their filters
from pipeline.curate.config import CurateConfig
from pipeline.curate.filters import FILTERS, Context
from pipeline.curate.sources import Record, read_source


def filter_plan(spec: list) -> list[tuple[str, dict]]:
    """``["normalize", {"near_dedup": {"threshold": 0.85}}, ...]`` -> [(name, params)],
    names and parameter names checked against the filters' signatures."""
    plan = []
    for item in spec:
        if isinstance(item, str):
            name, params = item, {}
        elif isinstance(item, dict) and len(item) == 1:
            name, params = next(iter(item.items()))
            params = params or {}
        else:
            raise ConfigError(f"filters: each entry is a name or {{name: {{param: value}}}}, got {item!r}")
        try:
            sig = FILTERS.check(name, params)
        except ValueError as e:
            raise ConfigError(f"filters: {e}") from None
        for key, value in params.items():
            _check_param(name, key, value, sig[key].default)
        plan.append((name, params))
    names = [n for n, _ in plan]
    if len(set(names)) != len(names):
        raise ConfigError(f"filters: a filter is listed twice in {names}")
    return plan


def run_filters(
    records: list[Record],
    plan: list[tuple[str, dict]],
    ctx: Context,
    *,
    progress: bool = False,
    log: Callable[[str], None] = lambda m: None,
):
    """Apply the filters in order, each to the survivors of the ones before.
    Returns (kept records, [(record, filter, reason)], per-filter counts and seconds)."""
    from tqdm import tqdm

    dropped: list[tuple[Record, str, str]] = []
    per_filter: list[dict] = []
    alive = records
    for name, params in plan:
        t = time.perf_counter()
        with tqdm(
            total=len(alive), desc=f"{name:15s}", unit="row", disable=not progress, leave=False, dynamic_ncols=True
        ) as bar:
            ctx.tick = bar.update
            reasons = FILTERS[name](alive, ctx, **params)
        if len(reasons) != len(alive):
            raise RuntimeError(f"filter {name} returned {len(reasons)} verdicts for {len(alive)} rows")
        keep = []
        for r, why in zip(alive, reasons):
            if why is None:
                keep.append(r)
            else:
                dropped.append((r, name, str(why)))
        per_filter.append(
            {
                "filter": name,
                "in": len(alive),
                "dropped": len(alive) - len(keep),
                "seconds": round(time.perf_counter() - t, 2),
            }
        )
        log(f"{name}: dropped {len(alive) - len(keep)} of {len(alive)}")
        alive = keep
    return alive, dropped, per_filter


_UNIT_RANGE = {"threshold", "near_threshold", "min_confidence", "min_rate", "max_rate"}


def _check_param(name: str, key: str, value, default) -> None:
    """A filter parameter has its default's type (and a sane range), or the run stops now."""
    where = f"filters: {name}.{key}"
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and isinstance(default, int) and not isinstance(default, bool) and key not in _UNIT_RANGE:
            ok = float(value).is_integer() and value >= (0 if key.startswith("min_") else 1)
        if ok and key in _UNIT_RANGE and not 0 <= value <= 1:
            raise ConfigError(f"{where} must be between 0 and 1, got {value!r}")
    elif isinstance(default, (tuple, list)):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif isinstance(default, str):
        ok = isinstance(value, str)
    else:
        ok = True
    if not ok:
        raise ConfigError(f"{where}: expected {type(default).__name__} like {default!r}, got {value!r}")


def _fingerprint(cfg: CurateConfig) -> str:
    h = hashlib.sha256(json.dumps(to_dict(cfg), sort_keys=True, default=str).encode())
    from data.benchmarks import default_data_dir

    files = [s.file for s in cfg.sources if s.file]
    eval_dir = cfg.eval_dir or default_data_dir()
    if eval_dir:
        files += sorted(str(p) for p in Path(eval_dir).glob("*"))
    files += [e for e in cfg.eval_sets if e.endswith((".jsonl", ".parquet"))]
    for f in files:
        p = Path(f)
        st = p.stat() if p.exists() else None
        h.update(f"{p}:{st.st_size if st else -1}:{st.st_mtime_ns if st else -1}".encode())
    root = Path(__file__).resolve().parents[2]  # the code that decides: a changed filter re-runs
    code = [
        *root.glob("pipeline/curate/*.py"),
        *root.glob("rewards/*.py"),
        *root.glob("data/*.py"),
        root / "pipeline" / "config.py",
    ]
    for src in sorted(code):
        h.update(src.read_bytes())
    from importlib.metadata import version

    for lib in ("datasketch", "py3langid", "math-verify", "sympy"):
        h.update(f"{lib}=={version(lib)}".encode())
    return h.hexdigest()


def _outputs_exist(out: Path, names: list[str]) -> bool:
    return bool(names) and all((out / f).is_file() for f in names)


def _val_hash(uid: str, seed: int) -> float:
    """A row's place in [0, 1) for the val split: fixed per uid, so adding or
    removing other rows never moves it across the split."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{uid}".encode(), digest_size=8).digest(), "little") / 2**64


def curate(cfg: CurateConfig, out: str | Path, *, progress: bool = True, log: Callable[[str], None] = print) -> dict:
    from data.benchmarks import load_benchmark
    from rewards.verifier import Verifier

    out = Path(out)
    if not cfg.sources:
        raise ConfigError("sources: at least one source is required")
    plan = filter_plan(cfg.filters)
    fp = _fingerprint(cfg)
    manifest = out / "manifest.json"
    if manifest.is_file():
        try:
            m = json.loads(manifest.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            m = {}
        if m.get("fingerprint") == fp and _outputs_exist(out, m.get("outputs", [])):
            log(f"{out} is up to date with this config and these inputs: nothing to do")
            return json.loads((out / "report.json").read_text())
        manifest.unlink()  # outputs are about to change: a crash from here on must not look up to date
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a directory")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    records: list[Record] = []
    for src in cfg.sources:
        rows = read_source(src)
        log(f"{src.name}: {len(rows)} rows from {src.file or src.hub}")
        records += rows
    n_in = len(records)
    evals = (
        [p for name in cfg.eval_sets for p in load_benchmark(name, cfg.eval_dir)]
        if "decontaminate" in dict(plan)
        else []
    )
    if evals:
        log(f"decontaminating against {len(evals)} problems of {', '.join(cfg.eval_sets)}")
    elif "decontaminate" in dict(plan):
        log("warning: decontaminate is listed but eval_sets is empty: nothing to decontaminate against")

    with Verifier(workers=cfg.verifier.workers, timeout=cfg.verifier.timeout, mode=cfg.verifier.mode) as verifier:
        ctx = Context(verifier=verifier, eval_problems=evals, out=out, seed=cfg.seed)
        alive, dropped, per_filter = run_filters(records, plan, ctx, progress=progress, log=log)
    if n_in != len(alive) + len(dropped):  # not an assert: it must hold under python -O too
        raise RuntimeError(f"accounting error: {n_in} rows in, {len(alive)} kept + {len(dropped)} dropped")

    # val: a share of the kept rows by a seeded hash of their uid (a row's side never depends on
    # the other rows), or a fixed count: the rows with the smallest hashes
    if cfg.val_size < 1:
        val_ids = {r.uid for r in alive if _val_hash(r.uid, cfg.seed) < cfg.val_size}
    else:
        val_ids = {r.uid for r in sorted(alive, key=lambda r: _val_hash(r.uid, cfg.seed))[: int(cfg.val_size)]}
    train = [r for r in alive if r.uid not in val_ids]
    val = [r for r in alive if r.uid in val_ids]
    from pipeline.curate.report import write_report

    _write_dropped(dropped, out / "dropped.parquet")
    report = _report(cfg, records, train, val, dropped, per_filter, time.perf_counter() - t0)
    if not train:
        write_report(report, out)
        why = (
            f"no rows survived the filters (all {n_in} dropped)"
            if not alive
            else f"val_size {cfg.val_size:g} takes all {len(alive)} kept rows"
        )
        raise InputError(f"{why}; nothing written to train.parquet (see {out / 'report.md'})")
    _write_rl(train, out / "train.parquet", "train", cfg)
    outputs = ["train.parquet", "dropped.parquet", "report.json", "report.md", "drop_reasons.png"]
    if val:
        _write_rl(val, out / "val.parquet", "val", cfg)
        outputs.append("val.parquet")
    else:
        (out / "val.parquet").unlink(missing_ok=True)
    write_report(report, out)
    write_json(manifest, {"fingerprint": fp, "rows_in": n_in, "kept": len(alive), "outputs": outputs})
    log(f"kept {len(alive)} of {n_in} rows ({len(train)} train, {len(val)} val); wrote {out / 'report.md'}")
    return report


def _write_rl(rows: list[Record], path: Path, split: str, cfg: CurateConfig) -> None:
    from data.formats import verl_row, write_parquet

    write_parquet(
        [
            verl_row(
                r.question,
                r.answer,
                data_source=f"curated/{r.source}",
                index=i,
                split=split,
                instruction=cfg.instruction or None,
                extra={
                    "source": r.source,
                    "source_id": r.source_id,
                    "uid": r.uid,
                    "original_question": r.original_question,
                    "original_answer": r.original_answer,
                    "difficulty": r.meta.get("solve_rate"),
                    "answer_kind": r.meta.get("answer_kind"),
                    "reformulated": r.meta.get("reformulated"),
                },
            )
            for i, r in enumerate(rows)
        ],
        path,
    )


def _write_dropped(dropped: list[tuple[Record, str, str]], path: Path) -> None:
    import pandas as pd

    df = pd.DataFrame(
        [
            {
                "uid": r.uid,
                "source": r.source,
                "source_id": r.source_id,
                "line": r.line,
                "filter": f,
                "reason": why,
                "question": r.original_question,
                "answer": r.original_answer,
            }
            for r, f, why in dropped
        ],
        columns=["uid", "source", "source_id", "line", "filter", "reason", "question", "answer"],
    )
    with atomic_writer(path, "wb") as f:
        df.to_parquet(f, index=False)


def _report(cfg, records, train, val, dropped, per_filter, seconds: float) -> dict:
    by_source: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        by_source[r.source]["in"] += 1
    for r in train + val:
        by_source[r.source]["kept"] += 1
    for r, f, _ in dropped:
        by_source[r.source][f] += 1
    contaminated: Counter = Counter()
    for r, f, _ in dropped:
        if f == "decontaminate":
            contaminated[r.meta.get("contaminated_by", "?")] += 1
    examples: dict[str, list] = defaultdict(list)
    for r, f, why in dropped:
        if len(examples[f]) < cfg.examples_per_reason:
            examples[f].append(
                {"uid": r.uid, "reason": why, "question": r.original_question[:300], "answer": r.original_answer[:100]}
            )
    return {
        "rows_in": len(records),
        "kept": len(train) + len(val),
        "train": len(train),
        "val": len(val),
        "dropped": len(dropped),
        "filters": per_filter,
        "by_source": {s: dict(c) for s, c in by_source.items()},
        "contaminated_by_eval_set": dict(contaminated),
        "reformulated_multiple_choice": sum(r.meta.get("reformulated") == "multiple_choice" for r in train + val),
        "examples": dict(examples),
        "eval_sets": cfg.eval_sets,
        "seconds": round(seconds, 2),
    }
